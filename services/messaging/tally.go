package messaging

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Tallies (docs/design.md, "Unread counts and last messages"): every
// durable event is stored with a chatv1.Tally of what its conversation held
// before it: the seq of the newest message_new and how many message_new
// events came before. appendEvent knows both from the event it appends
// after (its per-instance cache of the conversation's tail, or the last
// event read back on a miss), and the expected-last-sequence check that
// orders the chain also makes the tally exact: an append whose view of the
// tail is stale is refused and retried with the tail read again. So a list
// finds a conversation's newest message with one read, and knows how many
// messages came after any event it read.
//
// Events stored before tallies existed carry none. The first tallied event
// after them counts from there (Tally.since_seq) and knows the newest
// message only if the untallied event before it was one.

// tail is what a conversation's newest durable event says: its seq and
// the tally an event appended after it gets.
type tail struct {
	seq   uint64
	tally *chatv1.Tally
}

// tailOf is the tail after ev, stored at seq; ev may be nil (no event).
func tailOf(ev *chatv1.Event, seq uint64) tail {
	if ev == nil {
		return tail{tally: &chatv1.Tally{}}
	}
	t := &chatv1.Tally{}
	if ev.Tally != nil {
		t.PrevMessageSeq, t.MessagesBefore, t.SinceSeq = ev.Tally.PrevMessageSeq, ev.Tally.MessagesBefore, ev.Tally.SinceSeq
	} else {
		t.SinceSeq = seq // untallied: count from here
	}
	if ev.GetMessageNew() != nil {
		t.PrevMessageSeq = seq
		if ev.Tally != nil {
			t.MessagesBefore++
		}
	}
	return tail{seq: seq, tally: t}
}

// messagesThrough is how many message_new events the conversation held up
// to and including ev (counted since its tally's since_seq), and whether ev
// is tallied at all.
func messagesThrough(ev *chatv1.Event) (uint64, bool) {
	if ev.Tally == nil {
		return 0, false
	}
	n := ev.Tally.MessagesBefore
	if ev.GetMessageNew() != nil {
		n++
	}
	return n, true
}

// prevMessage is the seq of the newest message_new before ev, and whether
// that is known (0 and true: there is none).
func prevMessage(ev *chatv1.Event) (uint64, bool) {
	if ev.Tally == nil {
		return 0, false
	}
	return ev.Tally.PrevMessageSeq, ev.Tally.PrevMessageSeq > 0 || ev.Tally.SinceSeq == 0
}

// cachedTail is the tail this instance appended last to the conversation.
func (s *Service) cachedTail(key string) (tail, bool) {
	v, ok := s.last.Load(key)
	if !ok {
		return tail{}, false
	}
	return v.(tail), true
}

// cachedLast is the seq this instance appended last to the conversation.
func (s *Service) cachedLast(key string) (uint64, bool) {
	t, ok := s.cachedTail(key)
	return t.seq, ok
}

// readTail reads the conversation's newest durable event back.
func (s *Service) readTail(ctx context.Context, org, conv string) (tail, error) {
	m, err := read(ctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) {
		return s.events.GetLastMsgForSubject(ctx, names.Store(org, conv))
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return tailOf(nil, 0), nil
	}
	if err != nil {
		return tail{}, fmt.Errorf("last event: %w", err)
	}
	ev := &chatv1.Event{}
	if err := proto.Unmarshal(m.Data, ev); err != nil {
		return tail{}, fmt.Errorf("stored event %d: %w", m.Sequence, err)
	}
	return tailOf(ev, m.Sequence), nil
}

// previewChars is how many characters (runes) of a message a list's last
// message and an activity's preview carry.
const previewChars = 200

// cutChars returns s cut to n characters, on a rune boundary. Invalid
// UTF-8 counts a byte as a character.
func cutChars(s string, n int) string {
	i := 0
	for k := 0; k < n; k++ {
		if i >= len(s) {
			return s
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}

// publishActivity sends a new message's activity on the conversation's
// activity subject (core NATS, at most once): one small event per message,
// whatever the number of participants; edges fan it out to the
// participants' connections that did not join (services/edge/activity.go).
func (s *Service) publishActivity(org, conv string, ev *chatv1.Event) {
	m := ev.GetMessageNew()
	if m == nil {
		return
	}
	act := &chatv1.Event{ConversationId: conv, Body: &chatv1.Event_ConversationActivity{ConversationActivity: &chatv1.ConversationActivity{
		LastSeq: ev.Seq, SenderId: m.SenderId, Preview: cutChars(m.Content, previewChars), CreatedAtMs: m.CreatedAtMs,
	}}}
	data, err := proto.Marshal(act)
	if err == nil {
		err = s.nc.Publish(names.ActivityEvents(org, conv), data)
	}
	if err != nil {
		s.log.Warn("publish activity", "org", org, "err", err)
	}
}
