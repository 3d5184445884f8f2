package messaging

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// The inbox of a list page: each conversation's unread count and last
// message (docs/design.md, "Unread counts and last messages"). Only the
// page's conversations (at most 200) are read, each with a bounded number
// of reads:
//
//   - unread: nothing is read when read >= lastSeq, nor when this instance
//     counted for the same read and lastSeq before (inbox_cache.go). Else one batched direct
//     get from read+1, at most unreadScanEvents events and scanBytes bytes,
//     counts the message_new events of others not deleted within it (a
//     message_deleted after read names them). When the scan ends before the
//     last event, the tallies of the last event scanned and of the
//     conversation's last event say how many messages follow, all counted
//     as unread. Capped at unreadCap.
//   - lastMessage: the conversation's last event (read for its lastSeq
//     already) is the newest message, or its tally names it: one direct
//     get. The candidates' deleted state is read for the whole page in one
//     batch; a deleted one leads to the message before it (its tally), at
//     most lastMessageSteps times. Events stored before tallies are walked
//     back by prevSeq, as many steps.
const (
	unreadCap        = 100
	unreadScanEvents = 200
	// A page's scans share scanPageBytes, each between scanMinBytes and
	// scanMaxBytes.
	scanPageBytes = 512 << 10
	scanMinBytes  = 2 << 10
	scanMaxBytes  = 64 << 10
	// lastMessageSteps bounds the events read back past deleted messages
	// (and untallied events) for one conversation's last message: beyond,
	// it is absent.
	lastMessageSteps = 8
	// inboxReads bounds the reads of one page in flight at once.
	inboxReads = 16
)

// inbox fills in the unread counts and last messages of page, whose last
// events (by conversation id, raw as stored) are in lasts.
func (s *Service) inbox(ctx context.Context, org, user string, page []*chatv1.ConversationSummary, lasts map[string]storedEvent) error {
	tails := make([]*chatv1.Event, len(page))
	scan := make([]bool, len(page))
	scans := 0
	for i, c := range page {
		if m, ok := lasts[c.ConversationId]; ok {
			ev, err := decodeEvent(m.data, m.seq)
			if err != nil {
				return err
			}
			tails[i] = ev
		}
		if c.Read < c.LastSeq && tails[i] != nil {
			if n, ok := s.unreads.get(unreadKeyOf(org, user, c, tails[i])); ok {
				c.Unread = n
				continue
			}
			scan[i] = true
			scans++
		}
	}
	scanBytes := min(scanMaxBytes, max(scanMinBytes, scanPageBytes/max(scans, 1)))
	err := parallel(len(page), func(i int) bool { return scan[i] }, func(i int) error {
		c := page[i]
		n, err := s.unread(ctx, org, user, c, tails[i], scanBytes)
		if err == nil {
			s.unreads.put(unreadKeyOf(org, user, c, tails[i]), n)
		}
		c.Unread = n
		return err
	})
	if err != nil {
		return err
	}
	return s.lastMessages(ctx, org, page, tails)
}

// unreadKeyOf is the unreadCache key of c's count for user, whose
// conversation's last event is last.
func unreadKeyOf(org, user string, c *chatv1.ConversationSummary, last *chatv1.Event) unreadKey {
	return unreadKey{org: org, conv: c.ConversationId, user: user, read: c.Read, last: last.Seq}
}

// storedEvent is an event as read from the stream.
type storedEvent struct {
	seq  uint64
	data []byte
}

// unread counts the messages of others after c.Read, up to unreadCap.
func (s *Service) unread(ctx context.Context, org, user string, c *chatv1.ConversationSummary, last *chatv1.Event, scanBytes int) (uint32, error) {
	b, err := s.getBatchMax(ctx, names.StreamEvents, names.Store(org, c.ConversationId), c.Read+1, unreadScanEvents, scanBytes)
	if err != nil {
		return 0, fmt.Errorf("unread: %w", err)
	}
	var others []string
	deleted := map[string]bool{}
	var scanned *chatv1.Event
	for _, m := range b.Msgs {
		if m.Seq > last.Seq {
			break // appended since the list read its last seqs
		}
		ev, err := decodeEvent(m.Data, m.Seq)
		if err != nil {
			return 0, err
		}
		scanned = ev
		if mn := ev.GetMessageNew(); mn != nil && mn.SenderId != user {
			others = append(others, mn.MessageId)
		}
		if d := ev.GetMessageDeleted(); d != nil {
			deleted[d.MessageId] = true
		}
	}
	var n uint64
	for _, id := range others {
		if !deleted[id] {
			n++
		}
	}
	if scanned != nil && scanned.Seq < last.Seq {
		n += messagesBetween(scanned, last)
	}
	return uint32(min(n, unreadCap)), nil
}

// messagesBetween is how many message_new events came after from up to
// and including to, by their tallies (0 when either has none, or they
// count from different points).
func messagesBetween(from, to *chatv1.Event) uint64 {
	a, okA := messagesThrough(from)
	b, okB := messagesThrough(to)
	if !okA || !okB || from.Tally.SinceSeq != to.Tally.SinceSeq || b < a {
		return 0
	}
	return b - a
}

// lastMessages sets each page conversation's newest message not deleted.
func (s *Service) lastMessages(ctx context.Context, org string, page []*chatv1.ConversationSummary, tails []*chatv1.Event) error {
	cands := make([]*chatv1.Event, len(page))
	for i, ev := range tails {
		if ev.GetMessageNew() != nil {
			cands[i] = ev
		}
	}
	// The newest message by tally (or by walking back untallied events).
	err := parallel(len(page), func(i int) bool { return tails[i] != nil && tails[i].GetMessageNew() == nil }, func(i int) error {
		var err error
		cands[i], err = s.messageAtOrBefore(ctx, org, page[i].ConversationId, tails[i], lastMessageSteps)
		return err
	})
	if err != nil {
		return err
	}
	dead, err := s.deletedOf(ctx, org, page, cands)
	if err != nil {
		return err
	}
	// A deleted one: the message before it, and so on.
	err = parallel(len(page), func(i int) bool { return dead[i] }, func(i int) error {
		ev := cands[i]
		var err error
		for step := 0; ev != nil && dead[i] && step < lastMessageSteps; step++ {
			if ev, err = s.messageBefore(ctx, org, page[i].ConversationId, ev); err != nil || ev == nil {
				cands[i] = nil
				return err
			}
			if dead[i], err = s.isDeleted(ctx, org, page[i].ConversationId, ev.GetMessageNew().MessageId); err != nil {
				return err
			}
		}
		cands[i] = ev
		return nil
	})
	if err != nil {
		return err
	}
	for i, ev := range cands {
		if ev != nil && !dead[i] {
			m := ev.GetMessageNew()
			page[i].LastMessage = &chatv1.LastMessage{MessageId: m.MessageId, SenderId: m.SenderId, Content: cutChars(m.Content, previewChars), CreatedAtMs: m.CreatedAtMs}
		}
	}
	return nil
}

// messageAtOrBefore is ev if it is a message_new, else the newest one
// before it; nil if there is none, or none within steps reads.
func (s *Service) messageAtOrBefore(ctx context.Context, org, conv string, ev *chatv1.Event, steps int) (*chatv1.Event, error) {
	if ev.GetMessageNew() != nil {
		return ev, nil
	}
	return s.messageBeforeIn(ctx, org, conv, ev, steps)
}

// messageBefore is the newest message_new before ev.
func (s *Service) messageBefore(ctx context.Context, org, conv string, ev *chatv1.Event) (*chatv1.Event, error) {
	return s.messageBeforeIn(ctx, org, conv, ev, lastMessageSteps)
}

// messageBeforeIn finds the newest message_new before ev: one read by its
// tally, or a walk back by prevSeq of at most steps untallied events.
func (s *Service) messageBeforeIn(ctx context.Context, org, conv string, ev *chatv1.Event, steps int) (*chatv1.Event, error) {
	for range steps {
		seq, known := prevMessage(ev)
		if !known {
			seq = ev.PrevSeq
		}
		if seq == 0 {
			return nil, nil
		}
		prev, err := s.eventAt(ctx, org, conv, seq)
		if err != nil || prev == nil {
			return nil, err // nil: expired with the retention
		}
		if prev.GetMessageNew() != nil {
			return prev, nil
		}
		ev = prev
	}
	return nil, nil
}

// deletedOf reads, in one batch, whether each candidate message was
// deleted.
func (s *Service) deletedOf(ctx context.Context, org string, page []*chatv1.ConversationSummary, cands []*chatv1.Event) ([]bool, error) {
	dead := make([]bool, len(page))
	at := map[string]int{}
	var subjects []string
	for i, ev := range cands {
		if ev == nil {
			continue
		}
		key := names.MessageKey(org, page[i].ConversationId, ev.GetMessageNew().MessageId)
		at[key] = i
		subjects = append(subjects, names.KVSubject(names.BucketMessages, key))
	}
	b, err := s.multiLast(ctx, names.KVStream(names.BucketMessages), subjects, 0)
	if err != nil {
		return nil, fmt.Errorf("load message states: %w", err)
	}
	prefix := len(names.KVSubject(names.BucketMessages, ""))
	for _, m := range b.Msgs {
		st := &chatv1.MessageState{}
		if m.IsKVMarker() || proto.Unmarshal(m.Data, st) != nil || len(m.Subject) < prefix {
			continue
		}
		if i, ok := at[m.Subject[prefix:]]; ok && st.Deleted {
			dead[i] = true
		}
	}
	return dead, nil
}

// isDeleted reads whether one message was deleted.
func (s *Service) isDeleted(ctx context.Context, org, conv, msgID string) (bool, error) {
	st, _, err := getProto[chatv1.MessageState](ctx, s.messages, names.MessageKey(org, conv, msgID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.Deleted, nil
}

// parallel runs f for each of 0..n-1 that it wants, at most inboxReads at once, and returns the
// first error.
func parallel(n int, want func(i int) bool, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, inboxReads)
	for i := range n {
		if !want(i) {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// maxListIDs bounds an ids-only list: the most recent conversations whose
// activity an edge follows for one user.
const maxListIDs = 1000

// listIDs answers an ids-only list: the ids and last seqs of the caller's
// most recent conversations (at most limit, maxListIDs when 0 or more),
// from the membership index and one batched read of last events per 1,000
// conversations.
func (s *Service) listIDs(ctx context.Context, p *chatv1.Principal, limit uint32) (*chatv1.ListConversationsResponse, error) {
	n := maxListIDs
	if limit > 0 && int(limit) < n {
		n = int(limit)
	}
	convIDs, err := s.userConversations(ctx, p.Org, p.User)
	if err != nil {
		return nil, err
	}
	out := make([]*chatv1.ConversationSummary, 0, len(convIDs))
	for len(convIDs) > 0 {
		chunk := convIDs[:min(len(convIDs), 1000)]
		convIDs = convIDs[len(chunk):]
		subjects := make([]string, len(chunk))
		for i, c := range chunk {
			subjects[i] = names.Store(p.Org, c)
		}
		b, err := s.multiLast(ctx, names.StreamEvents, subjects, 0)
		if err != nil {
			return nil, fmt.Errorf("load last events: %w", err)
		}
		last := make(map[string]uint64, len(b.Msgs))
		for _, m := range b.Msgs {
			last[lastToken(m.Subject)] = m.Seq
		}
		for _, c := range chunk {
			out = append(out, &chatv1.ConversationSummary{ConversationId: c, LastSeq: last[c]})
		}
	}
	slices.SortFunc(out, func(a, b *chatv1.ConversationSummary) int {
		return compareSummary(a.LastSeq, a.ConversationId, b.LastSeq, b.ConversationId)
	})
	return &chatv1.ListConversationsResponse{Conversations: out[:min(len(out), n)]}, nil
}
