package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// dialResult says how dialing went.
type dialResult struct {
	Attempted int              `json:"attempted"`
	Connected int              `json:"connected"`
	Failed    int              `json:"failed"`
	Errors    map[string]int64 `json:"errors,omitempty"`
	Seconds   float64          `json:"seconds"`
	PerSecond float64          `json:"per_second"`
	SourceIPs int              `json:"source_ips"`
	Hint      string           `json:"hint,omitempty"`
}

// dialAll opens n connections at most rate per second with at most conc
// handshakes in flight; conns[i] is nil for a failed one.
func dialAll(d *dialer, r *run, n int, users func(int) string, rate float64, conc int, progress bool) ([]*wsConn, dialResult) {
	conns := make([]*wsConn, n)
	res := dialResult{Attempted: n, Errors: map[string]int64{}, SourceIPs: d.srcIPs}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var ok atomic.Int64
	sem := make(chan struct{}, conc)
	start := time.Now()
	stopProgress := make(chan struct{})
	if progress {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					mu.Lock()
					failed := res.Failed
					mu.Unlock()
					fmt.Fprintf(os.Stderr, "  dialing: %d connected, %d failed, %.0fs\n", ok.Load(), failed, time.Since(start).Seconds())
				}
			}
		}()
	}
	for i := range n {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * 1e9))); d > 0 {
				time.Sleep(d)
			}
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := d.dial(r, i, users(i))
			if err != nil {
				mu.Lock()
				res.Failed++
				key := dialErrKey(err)
				if _, seen := res.Errors[key]; seen || len(res.Errors) < 20 {
					res.Errors[key]++
				} else {
					res.Errors["(other)"]++
				}
				mu.Unlock()
				return
			}
			ok.Add(1)
			conns[i] = c
		}()
	}
	wg.Wait()
	close(stopProgress)
	res.Connected = int(ok.Load())
	res.Seconds = time.Since(start).Seconds()
	if res.Seconds > 0 {
		res.PerSecond = float64(res.Connected) / res.Seconds
	}
	for k := range res.Errors {
		if strings.HasSuffix(k, "HTTP 429") {
			res.Hint = "the edge refused upgrades with 429: it limits upgrade attempts per client address (-max-upgrades-per-ip, default 100/s), " +
				"connections per user and per edge; raise -src-ips, lower -dial-rate, or raise the server's limits"
		}
	}
	if len(res.Errors) == 0 {
		res.Errors = nil
	}
	return conns, res
}

func dialErrKey(err error) string {
	var se ws.StatusError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("upgrade refused: HTTP %d", int(se))
	case errors.Is(err, syscall.EMFILE):
		return "too many open files (EMFILE)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local port (EADDRNOTAVAIL)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "handshake timed out"
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// raiseFileLimit sets the soft RLIMIT_NOFILE to the hard one and returns
// both.
func raiseFileLimit() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return rl.Cur, rl.Max, err
		}
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return rl.Cur, rl.Max, nil
}
