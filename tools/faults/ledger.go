package main

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// ledger is one phase's bookkeeping: every send (its clientMsgId, the
// answers it got, its ack), every message a member's application was
// handed, and the longest interruption each client saw. Clients write to
// it concurrently; tally reads it once the phase is over.
type ledger struct {
	mu sync.Mutex // guards everything below

	sends     map[string]*sendRec      // by clientMsgId
	errors    map[string]int           // "command:code" answers to anything but a send
	delivered map[int]map[uint64]uint8 // per slot, per seq: pushedBit, fetchedBit
	pushedDup map[int]int              // per slot: a seq the server pushed twice
	recovered int                      // events that came back through sinceSeq or a gap fill
	longest   time.Duration
	longestAt string // which slot and what, for the report
}

// sendRec is one message:send, across its retries.
type sendRec struct {
	conv      int
	answers   []string // error codes, and client-side "timeout" / "conn-lost"
	ackIDs    map[string]uint64
	firstAt   time.Time
	ackAt     time.Time
	duplicate bool // some ack said duplicate: true
}

// histRec is one message:new found in a conversation's history.
type histRec struct {
	conv        int
	seq         uint64
	messageID   string
	clientMsgID string
}

// How a member got a seq: the server pushed it (live or in a join's
// missed), or the member fetched it from history to fill a gap.
const (
	pushedBit uint8 = 1 << iota
	fetchedBit
)

// client-side outcomes of a send attempt: no answer in time, or the socket
// went away before the answer.
const (
	answerTimeout  = "timeout"
	answerConnLost = "conn-lost"
)

func newLedger() *ledger {
	return &ledger{
		sends:     map[string]*sendRec{},
		errors:    map[string]int{},
		delivered: map[int]map[uint64]uint8{},
		pushedDup: map[int]int{},
	}
}

// sendStart records the first attempt of a send.
func (l *ledger) sendStart(cmid string, conv int, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.sends[cmid]; !ok {
		l.sends[cmid] = &sendRec{conv: conv, ackIDs: map[string]uint64{}, firstAt: at}
	}
}

// sendAnswer records an attempt that did not succeed.
func (l *ledger) sendAnswer(cmid, code string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.sends[cmid]; s != nil {
		s.answers = append(s.answers, code)
	}
}

// sendAck records an ack.
func (l *ledger) sendAck(cmid, messageID string, seq uint64, duplicate bool, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sends[cmid]
	if s == nil {
		return
	}
	s.ackIDs[messageID] = seq
	if s.ackAt.IsZero() {
		s.ackAt = at
	}
	s.duplicate = s.duplicate || duplicate
}

// otherError counts an error answer to a command other than a send.
func (l *ledger) otherError(cmd, code string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors[cmd+":"+code]++
}

// deliver records that slot's application was handed seq; pushed says the
// server sent it (live or in a join's missed) rather than the client
// fetching it to fill a gap. A seq the server pushes twice to one member
// is a duplicate to the application; one it pushes after the member
// fetched it is not (the member already holds it, by seq).
func (l *ledger) deliver(slot int, seq uint64, pushed, recovered bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.delivered[slot]
	if m == nil {
		m = map[uint64]uint8{}
		l.delivered[slot] = m
	}
	bit := fetchedBit
	if pushed {
		bit = pushedBit
	}
	if m[seq]&bit != 0 && pushed {
		l.pushedDup[slot]++
	}
	m[seq] |= bit
	if recovered {
		l.recovered++
	}
}

// interrupted records that slot was without service for d (a send
// waiting for its ack, a socket waiting to be rejoined).
func (l *ledger) interrupted(what string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d > l.longest {
		l.longest, l.longestAt = d, what
	}
}

// tally is a phase's result.
type tally struct {
	Sends       int            `json:"sends"`
	Acked       int            `json:"acked"`
	Unacked     int            `json:"unacked"` // never acked by the end
	Lost        int            `json:"lost"`    // acked, not in history
	DupStored   int            `json:"dup_stored"`
	DupPushed   int            `json:"dup_pushed"`
	Undelivered int            `json:"undelivered"` // acked, never handed to a member
	SendErrors  map[string]int `json:"send_errors"` // answers to sends by code
	BadAnswers  int            `json:"bad_answers"` // a stored send answered with neither success nor unavailable
	Other       map[string]int `json:"other_errors"`
	Recovered   int            `json:"recovered"`
	Longest     time.Duration  `json:"longest_ns"`
	LongestAt   string         `json:"longest_at"`
	Examples    []string       `json:"examples,omitempty"`
}

// dups is what the application saw twice: a message stored twice for one
// clientMsgId, or one seq pushed twice to a member.
func (t tally) dups() int { return t.DupStored + t.DupPushed }

// tally compares the ledger with the conversations' history; members
// lists each conversation's member slots.
func (l *ledger) tally(history []histRec, members map[int][]int) tally {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := tally{SendErrors: map[string]int{}, Other: map[string]int{}, Recovered: l.recovered,
		Longest: l.longest, LongestAt: l.longestAt}
	byMsg := map[string]histRec{}
	stored := map[string]map[string]bool{} // clientMsgId -> messageIds
	for _, h := range history {
		byMsg[h.messageID] = h
		if stored[h.clientMsgID] == nil {
			stored[h.clientMsgID] = map[string]bool{}
		}
		stored[h.clientMsgID][h.messageID] = true
	}
	for _, ids := range stored {
		t.DupStored += len(ids) - 1
	}
	for cmid, s := range l.sends {
		t.Sends++
		l.tallySend(&t, cmid, s, byMsg, stored[cmid] != nil, members)
	}
	for _, n := range l.pushedDup {
		t.DupPushed += n
	}
	for k, n := range l.errors {
		t.Other[k] = n
	}
	sort.Strings(t.Examples)
	t.Examples = slices.Compact(t.Examples)
	if len(t.Examples) > 10 {
		t.Examples = t.Examples[:10]
	}
	return t
}

func (l *ledger) tallySend(t *tally, cmid string, s *sendRec, byMsg map[string]histRec, stored bool, members map[int][]int) {
	for _, a := range s.answers {
		t.SendErrors[a]++
		if stored && a != "unavailable" && a != answerTimeout && a != answerConnLost {
			t.BadAnswers++
			t.Examples = append(t.Examples, "stored send "+cmid+" answered "+a)
		}
	}
	if len(s.ackIDs) == 0 {
		t.Unacked++
		t.Examples = append(t.Examples, fmt.Sprintf("send %s never acked, started %s, answers %v", cmid, s.firstAt.UTC().Format("15:04:05.000"), s.answers))
		return
	}
	t.Acked++
	if len(s.ackIDs) > 1 {
		t.DupStored += len(s.ackIDs) - 1 // acked as two messages
		t.Examples = append(t.Examples, "send "+cmid+" acked with two message ids")
	}
	for id, seq := range s.ackIDs {
		h, ok := byMsg[id]
		if !ok || h.seq != seq || h.clientMsgID != cmid {
			t.Lost++
			t.Examples = append(t.Examples, "acked "+cmid+" ("+id+") not in history")
			continue
		}
		for _, slot := range members[s.conv] {
			if l.delivered[slot][seq] == 0 {
				t.Undelivered++
			}
		}
	}
}
