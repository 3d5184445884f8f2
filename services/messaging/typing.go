package messaging

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/ids"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Typing is ephemeral: never in the conversation's history. Who is typing
// lives in the chat_typing bucket, one key per typist with a per-key TTL
// (TypingTTL): isTyping true creates the key and publishes a typing event,
// a renewal only extends the TTL (a burst of renewals is one event),
// isTyping false deletes it and publishes. When a key expires, every
// instance's watcher sees it and publishes isTyping false; edges drop the
// repeats.

func (s *Service) typing(ctx context.Context, req *chatv1.TypingRequest) (*chatv1.TypingResponse, error) {
	p := req.Principal
	if err := s.ownAction(ctx, p, req.ConversationId); err != nil {
		return nil, err
	}
	key := names.TypingKey(p.Org, req.ConversationId, p.User)
	var changed bool
	var err error
	if req.IsTyping {
		changed, err = s.startTyping(ctx, key)
	} else {
		changed, err = s.stopTyping(ctx, key)
	}
	if err != nil {
		return nil, err
	}
	if changed {
		s.publishTyping(p.Org, req.ConversationId, p.User, p.Connection, req.IsTyping)
	}
	return &chatv1.TypingResponse{}, nil
}

// startTyping creates or renews the typist's key; it reports a change
// when the user was not typing.
func (s *Service) startTyping(ctx context.Context, key string) (bool, error) {
	ttl := jetstream.KeyTTL(s.cfg.TypingTTL)
	for range maxAppendAttempts {
		_, err := s.typists.Create(ctx, key, nil, ttl)
		if err == nil {
			return true, nil
		}
		if !natsx.IsWrongLastSequence(err) {
			return false, fmt.Errorf("typing: %w", err)
		}
		e, err := s.typists.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired in between
		}
		if err != nil {
			return false, fmt.Errorf("typing: %w", err)
		}
		// Renew with compare-and-set, so that a concurrent stop is not
		// undone (kv.Update would drop the TTL: docs/nats-notes.md).
		_, err = s.js.PublishMsg(ctx, &nats.Msg{Subject: names.KVSubject(names.BucketTyping, key)},
			jetstream.WithExpectLastSequencePerSubject(e.Revision()), jetstream.WithMsgTTL(s.cfg.TypingTTL))
		if err == nil {
			return false, nil
		}
		if !natsx.IsWrongLastSequence(err) {
			return false, fmt.Errorf("typing: %w", err)
		}
	}
	// Every compare-and-set lost: the store keeps changing under us (or a
	// replica that is catching up answers the reads). Nothing the client
	// did conflicts with anything; it may simply retry.
	return false, errs.New(errs.CodeUnavailable, "typing state could not be settled; retry")
}

// stopTyping deletes the typist's key; it reports a change when the user
// was typing.
func (s *Service) stopTyping(ctx context.Context, key string) (bool, error) {
	e, err := s.typists.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("typing: %w", err)
	}
	err = s.typists.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
	if natsx.IsWrongLastSequence(err) {
		return false, nil // expired or stopped meanwhile: its event is out
	}
	if err != nil {
		return false, fmt.Errorf("typing: %w", err)
	}
	return true, nil
}

func (s *Service) publishTyping(org, conv, user, connection string, typing bool) {
	s.publishLive(org, conv, &chatv1.Event{
		ConversationId: conv,
		Body:           &chatv1.Event_Typing{Typing: &chatv1.Typing{UserId: user, IsTyping: typing, Connection: connection}},
	})
}

// watchTyping publishes isTyping false for every typist whose key expired.
// It runs until ctx ends.
func (s *Service) watchTyping(ctx context.Context) error {
	w, err := s.typists.WatchAll(ctx, jetstream.UpdatesOnly(), jetstream.MetaOnly())
	if err != nil {
		return fmt.Errorf("watch typing: %w", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		natsx.Follow(ctx, w, func(e jetstream.KeyValueEntry) {
			if e.Operation() != jetstream.KeyValuePurge {
				return
			}
			if org, conv, user, ok := splitTypingKey(e.Key()); ok {
				s.publishTyping(org, conv, user, "", false)
			}
		})
	}()
	return nil
}

func splitTypingKey(key string) (org, conv, user string, ok bool) {
	parts := strings.Split(key, ".")
	if len(parts) != 3 || !ids.Valid(parts[0]) || !ids.Valid(parts[1]) || !ids.Valid(parts[2]) {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// typingNow lists the participants typing in a conversation.
func (s *Service) typingNow(ctx context.Context, org string, conv *chatv1.Conversation) ([]string, error) {
	b, err := s.multiLast(ctx, names.KVStream(names.BucketTyping),
		[]string{names.KVSubject(names.BucketTyping, names.TypingKey(org, conv.ConversationId, "*"))}, 0)
	if err != nil {
		return nil, fmt.Errorf("load typing: %w", err)
	}
	var out []string
	for _, m := range b.Msgs {
		if m.IsKVMarker() {
			continue
		}
		_, _, user, ok := splitTypingKey(strings.TrimPrefix(m.Subject, "$KV."+names.BucketTyping+"."))
		if ok && isParticipant(conv, &chatv1.Principal{User: user}) {
			out = append(out, user)
		}
	}
	return out, nil
}

// typingTTLDefault is how long isTyping true lasts without a renewal.
const typingTTLDefault = 6 * time.Second
