package main

import (
	"bytes"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// stats are the counters of a run, shared by every connection's goroutines.
type stats struct {
	ackLat *Hist // send to ack
	e2eLat *Hist // send to message:new receipt, every receiving member
	lag    *Hist // how late the sender was against its schedule

	sent       atomic.Int64
	writeErrs  atomic.Int64
	acked      atomic.Int64
	dupAcks    atomic.Int64
	replyErrs  atomic.Int64 // error replies to sends
	delivered  atomic.Int64
	foreign    atomic.Int64 // message:new without our timestamp
	gaps       atomic.Int64 // prevSeq did not follow the last seq seen
	reorders   atomic.Int64 // seq not after the last seq seen (duplicate or late)
	slowParses atomic.Int64

	mu       sync.Mutex
	errs     map[string]int64  // "type/code" of error replies to sends
	errMsgs  map[string]string // a sample frame for each
	events   map[string]int64  // other frame types seen
	closes   map[int]int64     // server close codes (-1: lost without a close frame)
	closeWhy map[int]string
}

func newStats() *stats {
	return &stats{
		ackLat: NewHist(), e2eLat: NewHist(), lag: NewHist(),
		errs: map[string]int64{}, errMsgs: map[string]string{}, events: map[string]int64{},
		closes: map[int]int64{}, closeWhy: map[int]string{},
	}
}

func (s *stats) addErr(key string, frame []byte) {
	s.replyErrs.Add(1)
	s.mu.Lock()
	s.errs[key]++
	if _, ok := s.errMsgs[key]; !ok {
		s.errMsgs[key] = string(frame[:min(len(frame), 300)])
	}
	s.mu.Unlock()
}

func (s *stats) countEvent(typ string) {
	s.mu.Lock()
	s.events[typ]++
	s.mu.Unlock()
}

func (s *stats) serverClose(code int, why string) {
	s.mu.Lock()
	s.closes[code]++
	if _, ok := s.closeWhy[code]; !ok {
		s.closeWhy[code] = why
	}
	s.mu.Unlock()
}

// run is one load run: its counters and the rooms' acked sends.
type run struct {
	st        *stats
	roomAcked []atomic.Int64 // acked, not duplicate, sends per room

	sessMu    sync.Mutex
	firstSess []byte // the first session event, for its limits

	react   bool     // -mode react: acks and events are message:react's
	reacted sync.Map // "user|message|emoji|on" -> the command's send time (ns)
}

// text handles one text message of connection c, on c's reader goroutine.
func (r *run) text(c *wsConn, p []byte) {
	st := r.st
	id, typ, slow := envelope(p)
	if slow {
		st.slowParses.Add(1)
	}
	if id != nil {
		if len(id) > 1 && id[0] == 's' {
			// A reply to message:send: the id holds the send time.
			lat := time.Now().UnixNano()
			if ts, ok := parseUint(id[1:]); ok {
				lat -= int64(ts)
			} else {
				lat = 0
			}
			if string(typ) == "ack" {
				st.acked.Add(1)
				st.ackLat.Record(lat)
				if bytes.Contains(p, keyDuplicateT) || bytes.Contains(p, keyUnchanged) {
					st.dupAcks.Add(1)
				} else {
					r.roomAcked[c.room].Add(1)
				}
				return
			}
			st.addErr(string(typ)+"/"+string(stringAfter(p, keyCode)), p)
			return
		}
		if string(typ) == "ack" {
			if v, ok := uintAfter(p, keyLastSeq); ok {
				c.lastSeq, c.primed = v, true // a join ack
			}
		}
		select {
		case c.replies <- bytes.Clone(p):
		default:
		}
		return
	}
	switch string(typ) {
	case "message:new":
		if r.react {
			c.sequence(p) // the seed messages
			st.countEvent(string(typ))
			return
		}
		now := time.Now().UnixNano()
		c.delivered.Add(1)
		st.delivered.Add(1)
		if ts, ok := sendTime(p); ok {
			st.e2eLat.Record(now - ts)
		} else {
			st.foreign.Add(1)
		}
		c.sequence(p)
	case "message:reacted":
		r.reactedEvent(c, p)
	case "message:edited", "message:deleted", "conversation:updated":
		c.sequence(p)
		st.countEvent(string(typ))
	case "session":
		if !c.gotSess {
			c.gotSess = true
			r.sessMu.Lock()
			if r.firstSess == nil {
				r.firstSess = bytes.Clone(p)
			}
			r.sessMu.Unlock()
			close(c.sessSeen)
		}
	case "pong":
	default:
		st.countEvent(string(typ))
	}
}

// sequence checks a durable event's seq and prevSeq against the last seen.
func (c *wsConn) sequence(p []byte) {
	seq, ok := uintAfter(p, keySeq)
	if !ok {
		return
	}
	prev, ok := uintAfter(p, keyPrevSeq)
	if !ok {
		return
	}
	if !c.primed {
		c.lastSeq, c.primed = seq, true
		return
	}
	if seq <= c.lastSeq {
		c.r.st.reorders.Add(1)
		return
	}
	if prev != c.lastSeq {
		c.r.st.gaps.Add(1)
	}
	c.lastSeq = seq
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func fmtCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var b bytes.Buffer
	for i, k := range sortedKeys(m) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}
