package natsx

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ExpectMsg is a message for a stream, stored only if the last message on
// its subject is still the one at LastSubjectSeq: a compare-and-set.
type ExpectMsg struct {
	Subject string
	Data    []byte
	// LastSubjectSeq is the sequence the subject's last message must have,
	// 0 for none yet (Nats-Expected-Last-Subject-Sequence, always sent).
	LastSubjectSeq uint64
	// MsgID, when not empty, deduplicates within the stream's window
	// (Nats-Msg-Id): a resend is acknowledged as a duplicate with the
	// original's sequence.
	MsgID string
	// TTL, when positive, is the message's own lifetime (Nats-TTL); the
	// stream must allow per-message TTLs.
	TTL time.Duration
}

// DefaultPublishTimeout bounds PublishExpect when ctx has no deadline: the
// DefaultTimeout of a jetstream.New context (nats.go's defaultAPITimeout).
const DefaultPublishTimeout = 5 * time.Second

// PublishExpect publishes m and waits for the stream's ack. It is
// jetstream.PublishMsg with WithExpectLastSequencePerSubject(m.LastSubjectSeq)
// and, when set, WithMsgID and WithMsgTTL, for the hot paths that do one on
// every command: the same headers, the same retries on no responders and
// the same errors (an error reply is "nats: " wrapping its
// *jetstream.APIError; no stream is jetstream.ErrNoStreamResponse; an ack
// that is not one is jetstream.ErrInvalidJSAck; a timeout or cancelled ctx
// is ctx's error), without the options' closures and allocations and with
// a parse of the usual ack that does not go through encoding/json
// (parsePubAck). Safe for concurrent use, like nc.
func PublishExpect(ctx context.Context, nc *nats.Conn, m ExpectMsg) (jetstream.PubAck, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultPublishTimeout)
		defer cancel()
	}
	resp, err := requestStream(ctx, nc, expectRequest(m))
	if err != nil {
		return jetstream.PubAck{}, err
	}
	return parsePubAck(resp.Data)
}

// expectRequest is m as the request jetstream.PublishMsg would send: the
// header values are formatted as its applyPublishHeaders does. The message
// and its header values are one allocation (nats.go does not keep a
// request's message once it is sent).
func expectRequest(m ExpectMsg) *nats.Msg {
	r := &struct {
		msg  nats.Msg
		vals [3]string
	}{}
	h := make(nats.Header, 3)
	add := func(i int, key, value string) {
		r.vals[i] = value
		h[key] = r.vals[i : i+1 : i+1]
	}
	add(0, jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(m.LastSubjectSeq, 10))
	if m.MsgID != "" {
		add(1, jetstream.MsgIDHeader, m.MsgID)
	}
	if m.TTL > 0 {
		add(2, jetstream.MsgTTLHeader, m.TTL.String())
	}
	r.msg = nats.Msg{Subject: m.Subject, Data: m.Data, Header: h}
	return &r.msg
}

// requestStream sends msg and waits for its answer, retrying a request
// that found no responder (a stream electing its leader answers none for
// a moment) as jetstream.PublishMsg does by default:
// DefaultPubRetryAttempts more times, DefaultPubRetryWait apart (cut short,
// not skipped, when ctx ends: the retry then fails with ctx's error). No
// responders to the last is jetstream.ErrNoStreamResponse.
func requestStream(ctx context.Context, nc *nats.Conn, msg *nats.Msg) (*nats.Msg, error) {
	resp, err := nc.RequestMsgWithContext(ctx, msg)
	for r := 0; errors.Is(err, nats.ErrNoResponders) && r < jetstream.DefaultPubRetryAttempts; r++ {
		t := time.NewTimer(jetstream.DefaultPubRetryWait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		resp, err = nc.RequestMsgWithContext(ctx, msg)
	}
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, jetstream.ErrNoStreamResponse
	}
	return resp, err
}
