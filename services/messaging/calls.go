package messaging

import (
	"context"
	"time"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/natsx"
)

// Bounds of one JetStream request, well under a client's 5 s: a direct get
// to a replica that died with the request, or a publish to a stream that
// is electing its leader, otherwise waits out the handler's whole budget
// (while the conversation's lock is held, with the retries of every
// sender of that conversation queued behind it).
const (
	// readTimeout bounds one read; a read that NATS did not answer is
	// tried once more (direct gets are served by every replica: the
	// retry goes to a live one).
	readTimeout  = time.Second
	readAttempts = 2
	// writeTimeout bounds one publish: a stream without a leader answers
	// unavailable after it (the write may have been stored: a resend with
	// the same clientMsgId is deduplicated).
	writeTimeout = 2 * time.Second
)

// read runs f with a deadline of its own, and again once when NATS did not
// answer it.
func read[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	var v T
	var err error
	for range readAttempts {
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		v, err = f(rctx)
		cancel()
		if err == nil || !natsx.IsUnavailable(err) || ctx.Err() != nil {
			return v, err
		}
	}
	return v, err
}

// write returns ctx bounded for one publish.
func write(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, writeTimeout)
}

// errBusy answers a command that waited its whole budget for its
// conversation's lock.
var errBusy = errs.New(errs.CodeUnavailable, "conversation is busy; retry with the same clientMsgId")

// lock takes the lock of a conversation (striped), or gives up when ctx
// ends: a waiter never outlives its command.
func (s *Service) lock(ctx context.Context, key string) (unlock func(), err error) {
	return takeLock(ctx, s.locks[s.stripe(key)])
}

// lockReactions takes the lock of a message's reactions (striped), like
// lock.
func (s *Service) lockReactions(ctx context.Context, key string) (unlock func(), err error) {
	unlock, err = takeLock(ctx, s.reactLocks[s.stripe(key)])
	if err != nil {
		return nil, errReactBusy
	}
	return unlock, nil
}

// errReactBusy answers a react that waited its whole budget for its
// message's lock.
var errReactBusy = errs.New(errs.CodeUnavailable, "message is busy; retry")

func takeLock(ctx context.Context, ch chan struct{}) (unlock func(), err error) {
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, errBusy
	}
}

// multiLast is natsx.MultiLast as a read.
func (s *Service) multiLast(ctx context.Context, stream string, subjects []string, upToSeq uint64) (natsx.Batch, error) {
	return read(ctx, func(ctx context.Context) (natsx.Batch, error) {
		return natsx.MultiLast(ctx, s.nc, stream, subjects, upToSeq)
	})
}

// getBatchMax is natsx.GetBatchMax as a read.
func (s *Service) getBatchMax(ctx context.Context, stream, subject string, seq uint64, n, maxBytes int) (natsx.Batch, error) {
	return read(ctx, func(ctx context.Context) (natsx.Batch, error) {
		return natsx.GetBatchMax(ctx, s.nc, stream, subject, seq, n, maxBytes)
	})
}
