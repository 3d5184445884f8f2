package messaging

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Receipts are one pair of "up to" markers per participant and
// conversation (delivered, read), so their cost does not grow with
// history or with the number of messages read.

func (s *Service) delivered(ctx context.Context, req *chatv1.MarkRequest) (*chatv1.MarkResponse, error) {
	return s.mark(ctx, req, false)
}

func (s *Service) read(ctx context.Context, req *chatv1.MarkRequest) (*chatv1.MarkResponse, error) {
	return s.mark(ctx, req, true)
}

// mark moves the caller's markers forward to seq (read implies
// delivered); an older seq changes nothing. A change is published as a
// receipt event; edges coalesce bursts of them.
func (s *Service) mark(ctx context.Context, req *chatv1.MarkRequest, read bool) (*chatv1.MarkResponse, error) {
	p := req.Principal
	if err := s.ownAction(ctx, p, req.ConversationId); err != nil {
		return nil, err
	}
	if err := s.checkSeq(ctx, p.Org, req.ConversationId, req.Seq); err != nil {
		return nil, err
	}
	key := names.ReceiptKey(p.Org, req.ConversationId, p.User)
	for range maxAppendAttempts {
		cur, rev, err := s.receipt(ctx, key)
		if err != nil {
			return nil, err
		}
		next := &chatv1.ReceiptState{UserId: p.User, Delivered: max(cur.GetDelivered(), req.Seq), Read: cur.GetRead()}
		if read {
			next.Read = max(next.Read, req.Seq)
		}
		next.Delivered = max(next.Delivered, next.Read)
		if proto.Equal(next, cur) {
			return &chatv1.MarkResponse{}, nil
		}
		data, err := proto.Marshal(next)
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			_, err = s.receipts.Create(ctx, key, data)
		} else {
			_, err = s.receipts.Update(ctx, key, data, rev)
		}
		if natsx.IsWrongLastSequence(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store receipt: %w", err)
		}
		s.publishLive(p.Org, req.ConversationId, &chatv1.Event{
			ConversationId: req.ConversationId,
			Body:           &chatv1.Event_Receipt{Receipt: &chatv1.Receipt{UserId: p.User, Delivered: next.Delivered, Read: next.Read}},
		})
		return &chatv1.MarkResponse{}, nil
	}
	return nil, errs.New(errs.CodeConflict, "receipt changed concurrently; retry")
}

// checkSeq refuses a marker beyond the conversation's last seq.
func (s *Service) checkSeq(ctx context.Context, org, conv string, seq uint64) error {
	if last, ok := s.cachedLast(names.ConversationKey(org, conv)); ok && seq <= last {
		return nil
	}
	last, err := s.lastSeq(ctx, org, conv)
	if err != nil {
		return err
	}
	if seq > last {
		return errs.Invalid(errs.Field{Field: "seq", Reason: fmt.Sprintf("is beyond the conversation's last seq (%d)", last)})
	}
	return nil
}

// receipt loads a participant's markers; none yet is a zero state, rev 0.
func (s *Service) receipt(ctx context.Context, key string) (*chatv1.ReceiptState, uint64, error) {
	r, rev, err := getProto[chatv1.ReceiptState](ctx, s.receipts, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &chatv1.ReceiptState{}, 0, nil
	}
	return r, rev, err
}
