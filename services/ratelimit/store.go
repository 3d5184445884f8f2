package ratelimit

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// load reads the bucket at key from the chat_ratelimit stream. A key that
// never existed is the zero entry; one that was deleted or expired is a full
// bucket at the marker's revision, which the next write must expect.
func (l *Limiter) load(ctx context.Context, key string) (entry, error) {
	m, err := l.stream.GetLastMsgForSubject(ctx, names.KVSubject(names.BucketRateLimit, key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return entry{}, nil
	}
	if err != nil {
		return entry{}, l.unavailable("read bucket", err)
	}
	if isMarker(m.Header) || len(m.Data) == 0 {
		return entry{rev: m.Sequence}, nil
	}
	var b chatv1.Bucket
	if err := proto.Unmarshal(m.Data, &b); err != nil {
		// Unreadable state must not lock a user out: start full, and let
		// the write replace it.
		l.log.Warn("undecodable bucket, reset to full", "rev", m.Sequence, "err", err)
		return entry{rev: m.Sequence}, nil
	}
	return entry{st: state{tokens: b.Tokens, updatedMs: b.UpdatedMs}, rev: m.Sequence}, nil
}

// isMarker reports a KV delete or purge, or the server's marker of an
// expired key.
func isMarker(h nats.Header) bool {
	if len(h) == 0 {
		return false
	}
	op := h.Get("KV-Operation")
	return op == "DEL" || op == "PURGE" || h.Get(jetstream.MarkerReasonHeader) != ""
}

// store writes st at key if the key is still at rev (0: does not exist),
// with a TTL of life, and returns the new revision. A lost race is an error
// for which natsx.IsWrongLastSequence is true.
func (l *Limiter) store(ctx context.Context, key string, st state, rev uint64, life time.Duration) (uint64, error) {
	data, err := proto.Marshal(&chatv1.Bucket{Tokens: st.tokens, UpdatedMs: st.updatedMs})
	if err != nil {
		return 0, err
	}
	ack, err := natsx.PublishExpect(ctx, l.nc, natsx.ExpectMsg{Subject: names.KVSubject(names.BucketRateLimit, key), Data: data,
		LastSubjectSeq: rev, TTL: life})
	if err != nil {
		if natsx.IsWrongLastSequence(err) {
			return 0, err
		}
		return 0, l.unavailable("write bucket", err)
	}
	return ack.Sequence, nil
}
