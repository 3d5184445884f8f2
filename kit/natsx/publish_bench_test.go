package natsx_test

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkPublishExpect is the send path's append against a real
// embedded server: one subject, each publish expecting the last one's
// sequence and carrying a fresh message id, with natsx.PublishExpect and
// with jetstream.PublishMsg (its two options), on two like streams of the
// same server (memory storage, so the disk does not drown the client).
// cpu-ns/op is the process's CPU, the embedded server's included.
func BenchmarkPublishExpect(b *testing.B) {
	p := newPubPair(b, jetstream.MemoryStorage)
	ctx := context.Background()
	var natsxSeq uint64 // the subject's last, across -count's runs
	b.Run("natsx", func(b *testing.B) {
		seq := natsxSeq
		defer func() { natsxSeq = seq }()
		b.ReportAllocs()
		defer reportCPU(b)()
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
	var jetstreamSeq uint64 // the subject's last, across -count's runs
	b.Run("jetstream", func(b *testing.B) {
		seq := jetstreamSeq
		defer func() { jetstreamSeq = seq }()
		b.ReportAllocs()
		defer reportCPU(b)()
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

// reportCPU starts measuring the process's CPU time (user and system, the
// embedded server's too); the func it returns reports it per op.
func reportCPU(b *testing.B) func() {
	cpu0 := cpuNanos()
	return func() { b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op") }
}

func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
