package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memRun is the server's heap and RSS growth per connection while
// memConns connections were open, each read right after a forced garbage
// collection (through the server's pprof listener), against the same
// before they connected. heapPer is the heap's spans in use
// (go_memstats_heap_inuse_bytes), livePer the objects in them
// (go_memstats_heap_alloc_bytes, which after a collection is what is
// live): the difference is the free room in partly used spans.
type memRun struct {
	heapPer, livePer, rssPer float64
}

const memConns = 10000

// The server's metrics that the memory runs read (scrape reads only
// these).
const (
	mHeapInuse = "go_memstats_heap_inuse_bytes"
	mHeapAlloc = "go_memstats_heap_alloc_bytes"
	mRSS       = "process_resident_memory_bytes"
	mEdgeConns = "switchboard_edge_connections"
	mPresConns = "switchboard_presence_connections"
)

var scraped = map[string]bool{mHeapInuse: true, mHeapAlloc: true, mRSS: true, mEdgeConns: true, mPresConns: true}

// idleMemory holds 10,000 idle connections (loadgen -mode idle).
func idleMemory(o *options, c *contender) (*memRun, error) {
	sys, srv := c.sys, c.srv
	args := []string{"-mode", "idle", "-url", "ws://" + srv.addr + "/ws", "-secret", benchSecret, "-metrics-url", srv.metrics,
		"-conns", strconv.Itoa(memConns), "-duration", "6s", "-settle", "1s", "-json", "-q"}
	m, err := measureMemory(o, srv, func() error {
		_, err := runRaw(o, sys.name+"-idle", args)
		return err
	})
	if err == nil {
		fmt.Fprintf(os.Stderr, "  %-22s %d idle connections: heap in use %.2f KiB (live %.2f), RSS %.2f KiB per connection\n",
			sys.name+"-idle", memConns, m.heapPer/1024, m.livePer/1024, m.rssPer/1024)
	}
	return m, err
}

// joinedMemory runs 10,000 connections in 100 rooms of 100 at a light
// load (2,000 deliveries/s).
func joinedMemory(o *options, c *contender) (*memRun, error) {
	sys, srv := c.sys, c.srv
	m, err := measureMemory(o, srv, func() error {
		_, err := c.lg(o, "joined", memConns, memConns/100, 20)
		return err
	})
	if err == nil {
		fmt.Fprintf(os.Stderr, "  %-22s %d joined connections: heap in use %.1f KB (live %.1f), RSS %.1f KB per connection\n",
			sys.name+"-joined", memConns, m.heapPer/1000, m.livePer/1000, m.rssPer/1000)
	}
	return m, err
}

// measureMemory runs load and samples the server every second while all
// memConns connections are open and the presence service holds every one
// of them (before that, a server that is slower to catch up looks
// lighter); the last sample counts.
func measureMemory(o *options, srv *server, load func() error) (*memRun, error) {
	// The connections of the run before are gone first.
	for deadline := time.Now().Add(15 * time.Second); ; {
		m, err := scrape(srv.metrics)
		if err == nil && m[mEdgeConns] == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("connections of the run before still open 15s later (%v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	base, err := afterGC(srv)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var last map[string]float64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				m, err := scrape(srv.metrics)
				if err != nil || !allHeld(m) {
					continue
				}
				if m, err = afterGC(srv); err == nil && allHeld(m) {
					mu.Lock()
					last = m
					mu.Unlock()
				}
			}
		}
	}()
	err = load()
	close(stop)
	<-done
	if err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	if last == nil {
		return nil, fmt.Errorf("the server never held %d connections in both the edge and presence", memConns)
	}
	return &memRun{
		heapPer: (last[mHeapInuse] - base[mHeapInuse]) / memConns,
		livePer: (last[mHeapAlloc] - base[mHeapAlloc]) / memConns,
		rssPer:  (last[mRSS] - base[mRSS]) / memConns,
	}, nil
}

// allHeld reports whether the edge and the presence service both hold
// memConns connections.
func allHeld(m map[string]float64) bool {
	return m[mEdgeConns] >= memConns && m[mPresConns] >= memConns
}

// afterGC forces a collection in the server, then reads its metrics.
func afterGC(srv *server) (map[string]float64, error) {
	resp, err := http.Get("http://" + srv.pprof + "/debug/pprof/heap?gc=1")
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return scrape(srv.metrics)
}

// scrape reads the gauges in scraped from a Prometheus page (summed over
// labels).
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if !scraped[name] {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			out[name] += v
		}
	}
	return out, sc.Err()
}
