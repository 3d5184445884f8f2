package ratelimit

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
)

// Benchmarks of checks through NATS: a client connection sends
// chat.cmd.ratelimit.<org>.check requests to one or two Limiter instances,
// each on its own connection, all over TCP loopback to one embedded server.
//
//	go test -run '^$' -bench . -benchtime 20000x ./
//
// The limit is huge so that no bucket runs dry (a denied check writes
// nothing and would flatter the numbers); users rotate over benchUsers keys
// (each parallel caller over its own 64), so after the first round an
// instance usually has the bucket cached.

const benchUsers = 4096

// benchSystem starts instances Limiters and returns a client connection,
// and a function that reports the CAS conflicts per check.
func benchSystem(b *testing.B, instances int) (*nats.Conn, func()) {
	b.Helper()
	ns := natstest.Server(b)
	var ls []*Limiter
	for range instances {
		ls = append(ls, start(b, natstest.Conn(b, ns), Config{Limits: mustLimits(b, "message:send=2000000000/1h")}))
	}
	report := func() {
		var c float64
		for _, l := range ls {
			c += testutil.ToFloat64(l.conflicts)
		}
		b.ReportMetric(c/float64(b.N), "conflicts/op")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	}
	return natstest.Conn(b, ns), report
}

func benchChecks(b *testing.B, instances int) {
	b.Run("sequential", func(b *testing.B) {
		nc, report := benchSystem(b, instances)
		b.ResetTimer()
		for i := range b.N {
			mustAllow(b, nc, fmt.Sprint("u", i%benchUsers))
		}
		report()
	})
	b.Run("parallel", func(b *testing.B) {
		nc, report := benchSystem(b, instances)
		var worker atomic.Int64
		b.SetParallelism(16) // 16 x GOMAXPROCS callers
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			// Not the benchmark's goroutine: b.Error and stop, no b.Fatal.
			w := worker.Add(1)
			for i := 0; pb.Next(); i++ {
				if err := allowed(nc, fmt.Sprint("p", w, "-", i%(benchUsers/64))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report()
	})
}

func mustAllow(b *testing.B, nc *nats.Conn, user string) {
	b.Helper()
	if err := allowed(nc, user); err != nil {
		b.Fatal(err)
	}
}

// allowed checks one send of user and says why when it is not allowed.
func allowed(nc *nats.Conn, user string) error {
	r, err := checkErr(nc, "acme", user, "message:send")
	if err != nil || !r.Allowed {
		return fmt.Errorf("check: %v %v", r, err)
	}
	return nil
}

func BenchmarkCheck(b *testing.B)             { benchChecks(b, 1) }
func BenchmarkCheckTwoInstances(b *testing.B) { benchChecks(b, 2) }

// BenchmarkCheckLatency times single sequential checks and reports p50 and
// p99; run it with -benchtime 20000x.
func BenchmarkCheckLatency(b *testing.B) {
	for _, instances := range []int{1, 2} {
		b.Run(fmt.Sprint("instances=", instances), func(b *testing.B) {
			nc, report := benchSystem(b, instances)
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				t := time.Now()
				mustAllow(b, nc, fmt.Sprint("u", i%benchUsers))
				took = append(took, time.Since(t))
			}
			b.StopTimer()
			slices.Sort(took)
			q := func(p float64) float64 { return float64(took[int(p*float64(len(took)-1))].Microseconds()) }
			b.ReportMetric(q(0.50), "p50-µs")
			b.ReportMetric(q(0.99), "p99-µs")
			report()
		})
	}
}
