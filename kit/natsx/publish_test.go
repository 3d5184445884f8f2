package natsx_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
)

// pubPair is a real server with two identical streams, one written with
// jetstream.PublishMsg (subjects a.>) and one with natsx.PublishExpect
// (subjects b.>), so that the same operations on both must answer alike.
type pubPair struct {
	nc *nats.Conn
	js jetstream.JetStream
	a  jetstream.Stream
	b  jetstream.Stream
}

func newPubPair(t testing.TB, storage jetstream.StorageType) pubPair {
	t.Helper()
	nc := natstest.Conn(t, natstest.Server(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	p := pubPair{nc: nc, js: js}
	for _, s := range []struct {
		name string
		into *jetstream.Stream
	}{{"A", &p.a}, {"B", &p.b}} {
		*s.into, err = js.CreateStream(context.Background(), jetstream.StreamConfig{
			Name: s.name, Subjects: []string{lower(s.name) + ".>"}, Storage: storage,
			AllowMsgTTL: true, Duplicates: time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func lower(s string) string { return string(rune(s[0]) + 'a' - 'A') }

// pubOp is one publish, done on both streams.
type pubOp struct {
	subject string // under a. and b.
	expect  uint64
	id      string
	ttl     time.Duration
}

// viaJetStream publishes op on stream A as the callers did before.
func (p pubPair) viaJetStream(ctx context.Context, op pubOp, prefix string) (*jetstream.PubAck, error) {
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(op.expect)}
	if op.id != "" {
		opts = append(opts, jetstream.WithMsgID(op.id))
	}
	if op.ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(op.ttl))
	}
	return p.js.PublishMsg(ctx, &nats.Msg{Subject: prefix + op.subject, Data: []byte(op.subject)}, opts...)
}

// viaNatsx publishes op on stream B with PublishExpect.
func (p pubPair) viaNatsx(ctx context.Context, op pubOp, prefix string) (jetstream.PubAck, error) {
	return natsx.PublishExpect(ctx, p.nc, natsx.ExpectMsg{Subject: prefix + op.subject, Data: []byte(op.subject),
		LastSubjectSeq: op.expect, MsgID: op.id, TTL: op.ttl})
}

// sameOutcome fails unless the two publishes answered alike: the same ack
// (but for the stream's name) or the same error, as the callers test it.
func sameOutcome(t *testing.T, what string, want *jetstream.PubAck, wantErr error, got jetstream.PubAck, err error) {
	t.Helper()
	if (wantErr == nil) != (err == nil) {
		t.Fatalf("%s: PublishMsg: %v, %v; PublishExpect: %+v, %v", what, want, wantErr, got, err)
	}
	if err != nil {
		if wantErr.Error() != err.Error() {
			t.Fatalf("%s: PublishExpect's error %q, PublishMsg's %q", what, err, wantErr)
		}
		var a, b *jetstream.APIError
		if errors.As(wantErr, &a) != errors.As(err, &b) || (a != nil && *a != *b) {
			t.Fatalf("%s: API errors %+v and %+v", what, a, b)
		}
		for _, target := range []error{jetstream.ErrNoStreamResponse, jetstream.ErrInvalidJSAck, context.Canceled, context.DeadlineExceeded} {
			if errors.Is(wantErr, target) != errors.Is(err, target) {
				t.Fatalf("%s: errors.Is(%v): PublishMsg %v, PublishExpect %v", what, target, errors.Is(wantErr, target), errors.Is(err, target))
			}
		}
		if natsx.IsWrongLastSequence(wantErr) != natsx.IsWrongLastSequence(err) || natsx.IsUnavailable(wantErr) != natsx.IsUnavailable(err) {
			t.Fatalf("%s: IsWrongLastSequence/IsUnavailable differ for %v", what, err)
		}
		return
	}
	w := *want
	if w.Stream == "A" {
		w.Stream = "B"
	}
	if w != got {
		t.Fatalf("%s: PublishExpect's ack %+v, PublishMsg's %+v", what, got, *want)
	}
}

// PublishExpect answers the publishes of the send path as PublishMsg does:
// a success, a duplicate (the original's seq), a wrong last sequence, a
// second message on the subject, one with a TTL, each on its own stream.
func TestPublishExpectLikePublishMsg(t *testing.T) {
	p := newPubPair(t, jetstream.FileStorage)
	ctx := context.Background()
	// The server checks the expected sequence before the message id: a
	// resend is a duplicate only when it expects the subject's last.
	ops := []pubOp{
		{subject: "x", expect: 0, id: "m1"},                               // seq 1
		{subject: "x", expect: 1, id: "m1"},                               // duplicate of 1
		{subject: "x", expect: 0, id: "m1"},                               // wrong last sequence
		{subject: "x", expect: 0, id: "m2"},                               // wrong last sequence
		{subject: "x", expect: 7},                                         // wrong last sequence
		{subject: "y", expect: 0},                                         // seq 2
		{subject: "x", expect: 1, id: "m3"},                               // seq 3
		{subject: "y", expect: 2, ttl: time.Hour},                         // seq 4
		{subject: "y", expect: 2, ttl: 90 * time.Second},                  // wrong last sequence
		{subject: "z", expect: 0, id: "m4", ttl: 1500 * time.Millisecond}, // seq 5
		{subject: "z", expect: 5, id: "m4", ttl: time.Hour},               // duplicate of 5
	}
	var duplicates, wrong int
	for i, op := range ops {
		what := fmt.Sprintf("op %d %+v", i, op)
		want, wantErr := p.viaJetStream(ctx, op, "a.")
		got, err := p.viaNatsx(ctx, op, "b.")
		sameOutcome(t, what, want, wantErr, got, err)
		if err == nil && got.Duplicate {
			duplicates++
		}
		if natsx.IsWrongLastSequence(err) {
			wrong++
		}
	}
	if duplicates != 2 || wrong != 4 {
		t.Fatalf("%d duplicates and %d wrong last sequences, want 2 and 4", duplicates, wrong)
	}
	for _, subj := range []string{"x", "y", "z"} {
		a, errA := p.a.GetLastMsgForSubject(ctx, "a."+subj)
		b, errB := p.b.GetLastMsgForSubject(ctx, "b."+subj)
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if a.Sequence != b.Sequence || fmt.Sprint(a.Header) != fmt.Sprint(b.Header) || string(a.Data) != string(b.Data) {
			t.Fatalf("%s: stored %d %v %q by PublishMsg, %d %v %q by PublishExpect", subj, a.Sequence, a.Header, a.Data, b.Sequence, b.Header, b.Data)
		}
	}
}

// A message published with a TTL expires: the header is the server's.
func TestPublishExpectTTLExpires(t *testing.T) {
	p := newPubPair(t, jetstream.FileStorage)
	ctx := context.Background()
	ack, err := p.viaNatsx(ctx, pubOp{subject: "t", ttl: time.Second}, "b.")
	if err != nil {
		t.Fatal(err)
	}
	m, err := p.b.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if ttl := m.Header.Get(jetstream.MsgTTLHeader); ttl != "1s" {
		t.Fatalf("stored Nats-TTL %q, want 1s", ttl)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := p.b.GetMsg(ctx, ack.Sequence)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a message with a TTL of 1 s is still there after 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// With no stream on the subject, both retry (two more tries, 250 ms apart)
// and then answer ErrNoStreamResponse; a context that ends while they
// wait answers its own error, as does one already over.
func TestPublishExpectNoStreamAndContext(t *testing.T) {
	p := newPubPair(t, jetstream.MemoryStorage)
	cases := []struct {
		name     string
		ctx      func() (context.Context, context.CancelFunc)
		onStream bool // a subject of the streams, else one of none
		minWait  time.Duration
	}{
		{"no stream", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} },
			false, 2 * jetstream.DefaultPubRetryWait},
		{"no stream, deadline while retrying", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}, false, 250 * time.Millisecond},
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, true, 0},
		{"deadline passed", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		}, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefixA, prefixB := "nowhere.", "nowhere."
			if c.onStream {
				prefixA, prefixB = "a.", "b."
			}
			ctx, cancel := c.ctx()
			t0 := time.Now()
			want, wantErr := p.viaJetStream(ctx, pubOp{subject: "x"}, prefixA)
			tookA := time.Since(t0)
			cancel()
			ctx, cancel = c.ctx()
			defer cancel()
			t0 = time.Now()
			got, err := p.viaNatsx(ctx, pubOp{subject: "x"}, prefixB)
			tookB := time.Since(t0)
			if err == nil {
				t.Fatalf("PublishExpect: %+v, want an error", got)
			}
			sameOutcome(t, c.name, want, wantErr, got, err)
			if tookA < c.minWait || tookB < c.minWait {
				t.Fatalf("answered after %v (PublishMsg) and %v (PublishExpect), want at least %v", tookA, tookB, c.minWait)
			}
			if !natsx.IsUnavailable(err) {
				t.Fatalf("%v: IsUnavailable false", err)
			}
		})
	}
}

// A subject whose only listener never answers times out with ctx's error.
func TestPublishExpectTimeout(t *testing.T) {
	p := newPubPair(t, jetstream.MemoryStorage)
	sub, err := p.nc.SubscribeSync("silent.>")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	want, wantErr := p.viaJetStream(ctx, pubOp{subject: "x"}, "silent.")
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	got, err := p.viaNatsx(ctx, pubOp{subject: "x"}, "silent.")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PublishExpect to a listener that does not answer: %v, want a deadline", err)
	}
	sameOutcome(t, "silent", want, wantErr, got, err)
}
