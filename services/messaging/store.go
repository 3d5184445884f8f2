package messaging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// maxAppendAttempts bounds the retries of an append that keeps losing the
// race for a conversation's next sequence to other instances.
const maxAppendAttempts = 16

// appended is the outcome of an append.
type appended struct {
	seq       uint64
	duplicate bool // the dedupe id was seen: seq is the original event's
}

// appendEvent stores ev as the conversation's next durable event, setting
// its PrevSeq, and publishes it live. dedupeID, when not empty, makes a
// resend within the dedupe window answer with the original seq. check,
// when not nil, runs before each attempt with the last seq the attempt
// expects: an append that succeeds with it follows a check that saw
// everything appended before it (an edit checks that its message was not
// deleted, a send that its sender is a participant). A message_new gets
// its id from its seq (msgid.go).
func (s *Service) appendEvent(ctx context.Context, org, conv string, ev *chatv1.Event, dedupeID string, check func(ctx context.Context, prev uint64) error) (appended, error) {
	key := names.ConversationKey(org, conv)
	subject := names.Store(org, conv)
	unlock, err := s.lock(ctx, key)
	if err != nil {
		return appended{}, err
	}
	defer unlock()

	t, known := s.cachedTail(key)
	if !known {
		if t, err = s.readTail(ctx, org, conv); err != nil {
			return appended{}, err
		}
	}
	for range maxAppendAttempts {
		prev := t.seq
		if check != nil {
			if err := check(ctx, prev); err != nil {
				return appended{}, err
			}
		}
		ev.PrevSeq = prev
		ev.Seq = 0
		ev.Tally = t.tally
		data, err := proto.Marshal(ev)
		if err != nil {
			return appended{}, err
		}
		wctx, cancel := write(ctx)
		ack, err := natsx.PublishExpect(wctx, s.nc, natsx.ExpectMsg{Subject: subject, Data: data, LastSubjectSeq: prev, MsgID: dedupeID})
		cancel()
		if natsx.IsWrongLastSequence(err) {
			// Another instance appended first: learn the new tail.
			if t, err = s.readTail(ctx, org, conv); err != nil {
				return appended{}, err
			}
			continue
		}
		if err != nil {
			s.last.Delete(key)
			return appended{}, fmt.Errorf("append to %s: %w", subject, err)
		}
		if ack.Duplicate {
			return appended{seq: ack.Sequence, duplicate: true}, nil
		}
		s.last.Store(key, tailOf(ev, ack.Sequence))
		ev.Seq = ack.Sequence
		fillMessageID(ev)
		s.publishLive(org, conv, ev)
		s.publishActivity(org, conv, ev)
		return appended{seq: ack.Sequence}, nil
	}
	s.last.Delete(key)
	return appended{}, errs.New(errs.CodeUnavailable, "conversation is too busy; retry")
}

// lastSeq is the seq of the conversation's newest durable event, 0 if none.
func (s *Service) lastSeq(ctx context.Context, org, conv string) (uint64, error) {
	m, err := read(ctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) {
		return s.events.GetLastMsgForSubject(ctx, names.Store(org, conv))
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last event: %w", err)
	}
	return m.Sequence, nil
}

// publishLive sends a durable event (with its seq) or an ephemeral one on
// the conversation's event subject. Core NATS is at most once: edges fill
// a gap in seqs from the stream.
func (s *Service) publishLive(org, conv string, ev *chatv1.Event) {
	data, err := proto.Marshal(ev)
	if err == nil {
		err = s.nc.Publish(names.ConvEvents(org, conv), data)
	}
	if err != nil {
		s.log.Warn("publish live event", "org", org, "err", err)
	}
}

// publishUser sends ev to every connection of each user.
func (s *Service) publishUser(org string, users []string, ev *chatv1.Event) {
	data, err := proto.Marshal(ev)
	if err != nil {
		return
	}
	for _, u := range users {
		if err := s.nc.Publish(names.UserEvents(org, u), data); err != nil {
			s.log.Warn("publish user event", "org", org, "err", err)
		}
	}
}

// eventAt reads the durable event with seq, checking that it belongs to the
// conversation.
func (s *Service) eventAt(ctx context.Context, org, conv string, seq uint64) (*chatv1.Event, error) {
	m, err := read(ctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) { return s.events.GetMsg(ctx, seq) })
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("event %d: %w", seq, err)
	}
	if m.Subject != names.Store(org, conv) {
		return nil, nil
	}
	return decodeEvent(m.Data, m.Sequence)
}

func decodeEvent(data []byte, seq uint64) (*chatv1.Event, error) {
	ev := &chatv1.Event{}
	if err := proto.Unmarshal(data, ev); err != nil {
		return nil, fmt.Errorf("stored event %d: %w", seq, err)
	}
	ev.Seq = seq
	fillMessageID(ev)
	return ev, nil
}

// fillMessageID gives a stored message_new without an id the one its seq
// makes (msgid.go).
func fillMessageID(ev *chatv1.Event) {
	if m := ev.GetMessageNew(); m != nil && m.MessageId == "" {
		m.MessageId = messageID(m.CreatedAtMs, ev.Seq)
	}
}

// eventsAfter reads up to n durable events with seq > after, in order, as
// many as fit b, and stops before the first with seq >= before (0: no
// bound). more says that events past those returned exist (below before).
func (s *Service) eventsAfter(ctx context.Context, org, conv string, after, before uint64, n int, b *budget) (_ []*chatv1.Event, more bool, _ error) {
	batch, err := s.getBatchMax(ctx, names.StreamEvents, names.Store(org, conv), after+1, n+1, b.fetchBytes())
	if err != nil {
		return nil, false, err
	}
	out := make([]*chatv1.Event, 0, min(n, len(batch.Msgs)))
	for _, m := range batch.Msgs {
		ev, err := decodeEvent(m.Data, m.Seq)
		if err != nil {
			return nil, false, err
		}
		if before > 0 && ev.Seq >= before {
			return out, false, nil
		}
		if len(out) == n || !b.event(ev) {
			return out, true, nil
		}
		out = append(out, ev)
	}
	return out, batch.Pending > 0, nil
}

// eventsBefore reads up to n durable events with seq < before (0: the
// newest), as many as fit b, walking the prevSeq chain back, and returns
// them in seq order, with whether older events exist.
func (s *Service) eventsBefore(ctx context.Context, org, conv string, before uint64, n int, b *budget) ([]*chatv1.Event, bool, error) {
	var upTo uint64
	if before > 0 {
		if before == 1 {
			return nil, false, nil
		}
		upTo = before - 1
	}
	batch, err := s.multiLast(ctx, names.StreamEvents, []string{names.Store(org, conv)}, upTo)
	if err != nil || len(batch.Msgs) == 0 {
		return nil, false, err
	}
	ev, err := decodeEvent(batch.Msgs[0].Data, batch.Msgs[0].Seq)
	if err != nil {
		return nil, false, err
	}
	var out []*chatv1.Event
	hasMore := false
	for ev != nil {
		if !b.event(ev) {
			hasMore = true
			break
		}
		out = append(out, ev)
		if ev.PrevSeq == 0 {
			break
		}
		if len(out) == n {
			hasMore = true
			break
		}
		// nil: expired with the stream's retention, and so is what is older.
		if ev, err = s.eventAt(ctx, org, conv, ev.PrevSeq); err != nil {
			return nil, false, err
		}
	}
	slices.Reverse(out)
	return out, hasMore, nil
}

// redactDeleted blanks the content of every message_new in events whose
// message was deleted since: history never serves deleted content.
func (s *Service) redactDeleted(ctx context.Context, org, conv string, events []*chatv1.Event) error {
	var subjects []string
	byID := map[string]*chatv1.MessageNew{}
	for _, ev := range events {
		if m := ev.GetMessageNew(); m != nil {
			subjects = append(subjects, names.KVSubject(names.BucketMessages, names.MessageKey(org, conv, m.MessageId)))
			byID[m.MessageId] = m
		}
	}
	for len(subjects) > 0 {
		chunk := subjects[:min(len(subjects), 1000)]
		subjects = subjects[len(chunk):]
		b, err := s.multiLast(ctx, names.KVStream(names.BucketMessages), chunk, 0)
		if err != nil {
			return err
		}
		for _, m := range b.Msgs {
			st := &chatv1.MessageState{}
			if m.IsKVMarker() || proto.Unmarshal(m.Data, st) != nil || !st.Deleted {
				continue
			}
			if mn := byID[lastToken(m.Subject)]; mn != nil {
				mn.Content, mn.Attachments = "", nil // the files are removed too
			}
		}
	}
	return nil
}

func lastToken(subject string) string {
	for i := len(subject) - 1; i >= 0; i-- {
		if subject[i] == '.' {
			return subject[i+1:]
		}
	}
	return subject
}

// dedupeID is the JetStream message id of a send: unique in the stream for
// one user, conversation and clientMsgId, whatever bytes the client chose.
func dedupeID(org, conv, user, clientMsgID string) string {
	h := sha256.New()
	for _, part := range []string{org, conv, user, clientMsgID} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// getConv loads a conversation of org; one that does not exist is
// not_found, like one of another organization (whose key differs).
func (s *Service) getConv(ctx context.Context, org, conv string) (*chatv1.Conversation, uint64, error) {
	c, rev, err := getProto[chatv1.Conversation](ctx, s.convs, names.ConversationKey(org, conv))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, errs.NotFound("conversation")
	}
	return c, rev, err
}

// getProto reads a protobuf value and its revision from a bucket; a key
// that does not exist is jetstream.ErrKeyNotFound.
func getProto[T any, PT interface {
	*T
	proto.Message
}](ctx context.Context, kv jetstream.KeyValue, key string) (PT, uint64, error) {
	e, err := read(ctx, func(ctx context.Context) (jetstream.KeyValueEntry, error) { return kv.Get(ctx, key) })
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, err
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", kv.Bucket(), err)
	}
	v := PT(new(T))
	if err := proto.Unmarshal(e.Value(), v); err != nil {
		return nil, 0, fmt.Errorf("decode %s: %w", kv.Bucket(), err)
	}
	return v, e.Revision(), nil
}

// updateConv applies change to the conversation with compare-and-set,
// retrying on a concurrent update. change returns false to leave it as is.
func (s *Service) updateConv(ctx context.Context, org, conv string, change func(*chatv1.Conversation) (bool, error)) (*chatv1.Conversation, bool, error) {
	for range maxAppendAttempts {
		c, rev, err := s.getConv(ctx, org, conv)
		if err != nil {
			return nil, false, err
		}
		changed, err := change(c)
		if err != nil || !changed {
			return c, false, err
		}
		data, err := proto.Marshal(c)
		if err != nil {
			return nil, false, err
		}
		_, err = s.convs.Update(ctx, names.ConversationKey(org, conv), data, rev)
		if natsx.IsWrongLastSequence(err) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("update conversation: %w", err)
		}
		return c, true, nil
	}
	return nil, false, errs.New(errs.CodeConflict, "conversation changed concurrently; retry")
}

// putMemberships indexes conv under each user, in one batch of async puts.
func (s *Service) putMemberships(ctx context.Context, org, conv string, users []string) error {
	futures := make([]jetstream.PubAckFuture, 0, len(users))
	for _, u := range users {
		f, err := s.js.PublishAsync(names.KVSubject(names.BucketMemberships, names.MembershipKey(org, u, conv)), nil)
		if err != nil {
			return fmt.Errorf("index membership: %w", err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("index membership: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// unindex removes conv from user's index with a delete marker that expires
// (kv.Delete's would stay forever, one per removal).
func (s *Service) unindex(ctx context.Context, org, user, conv string) error {
	msg := &nats.Msg{Subject: names.KVSubject(names.BucketMemberships, names.MembershipKey(org, user, conv)), Header: nats.Header{}}
	msg.Header.Set("KV-Operation", "DEL")
	if _, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgTTL(time.Minute)); err != nil {
		return fmt.Errorf("unindex membership: %w", err)
	}
	return nil
}

// userConversations lists the ids of the conversations user is in.
func (s *Service) userConversations(ctx context.Context, org, user string) ([]string, error) {
	b, err := s.multiLast(ctx, names.KVStream(names.BucketMemberships),
		[]string{names.KVSubject(names.BucketMemberships, names.MembershipFilter(org, user))}, 0)
	if err == nil {
		out := make([]string, 0, len(b.Msgs))
		for _, m := range b.Msgs {
			if !m.IsKVMarker() {
				out = append(out, lastToken(m.Subject))
			}
		}
		return out, nil
	}
	// More than one direct get may answer (1024): list the keys instead.
	lister, lerr := s.members.ListKeysFiltered(ctx, names.MembershipFilter(org, user))
	if lerr != nil {
		return nil, fmt.Errorf("list memberships: %w (direct: %v)", lerr, err)
	}
	var out []string
	for k := range lister.Keys() {
		out = append(out, lastToken(k))
	}
	return out, nil
}
