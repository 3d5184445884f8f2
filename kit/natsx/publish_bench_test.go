package natsx_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkPublishExpect is the send path's append against a real
// embedded server: one subject, each publish expecting the last one's
// sequence and carrying a fresh message id, with natsx.PublishExpect and
// with jetstream.PublishMsg (its two options), on two like streams of the
// same server (memory storage, so the disk does not drown the client).
func BenchmarkPublishExpect(b *testing.B) {
	p := newPubPair(b, jetstream.MemoryStorage)
	ctx := context.Background()
	b.Run("natsx", func(b *testing.B) {
		var seq uint64
		b.ReportAllocs()
		for b.Loop() {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ack, err := p.viaNatsx(wctx, pubOp{subject: "bench", expect: seq, id: strconv.FormatUint(seq, 10)}, "b.")
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			seq = ack.Sequence
		}
	})
	b.Run("jetstream", func(b *testing.B) {
		var seq uint64
		b.ReportAllocs()
		for b.Loop() {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ack, err := p.viaJetStream(wctx, pubOp{subject: "bench", expect: seq, id: strconv.FormatUint(seq, 10)}, "a.")
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			seq = ack.Sequence
		}
	})
}
