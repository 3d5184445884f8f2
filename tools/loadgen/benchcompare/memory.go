package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// idleRun is loadgen's idle mode result, the part the table uses.
type idleRun struct {
	HeapInusePerConn float64 `json:"heap_inuse_bytes_per_conn"`
	RSSPerConn       float64 `json:"rss_bytes_per_conn"`
	Connected        int     `json:"-"`
}

// memRun is the server's memory growth while connections sat joined.
type memRun struct {
	conns     int
	heapPer   float64 // peak heap in use over the baseline, per connection
	rssPer    float64
	delivered float64
}

const memConns = 10000

func idleMemory(o *options, sys system, srv *server) (*idleRun, error) {
	args := []string{"-mode", "idle", "-url", "ws://" + srv.addr + "/ws", "-secret", benchSecret,
		"-conns", strconv.Itoa(memConns), "-duration", "4s", "-settle", "3s", "-json", "-q"}
	out, err := runRaw(o, sys.name+"-idle", args)
	if err != nil {
		return nil, err
	}
	var r idleRun
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("idle run: %w", err)
	}
	fmt.Fprintf(os.Stderr, "  %-22s %d idle connections: heap in use %.2f KiB, RSS %.2f KiB per connection\n",
		sys.name+"-idle", memConns, r.HeapInusePerConn/1024, r.RSSPerConn/1024)
	return &r, nil
}

// joinedMemory runs 10,000 connections in 100 rooms of 100 at a light
// load and samples the server's memory meanwhile.
func joinedMemory(o *options, sys system, srv *server, lg func(string, int, int, float64) (*runResult, error)) (*memRun, error) {
	metrics := "http://" + srv.addr + "/metrics"
	base, err := scrape(metrics)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	peak := map[string]float64{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				m, err := scrape(metrics)
				if err != nil || m["switchboard_edge_connections"] < memConns {
					continue
				}
				mu.Lock()
				for k, v := range m {
					peak[k] = max(peak[k], v)
				}
				mu.Unlock()
			}
		}
	}()
	r, err := lg("joined", memConns, memConns/100, 20)
	close(stop)
	<-done
	if err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	m := &memRun{conns: memConns, delivered: r.DeliveredPerS,
		heapPer: (peak["go_memstats_heap_inuse_bytes"] - base["go_memstats_heap_inuse_bytes"]) / memConns,
		rssPer:  (peak["process_resident_memory_bytes"] - base["process_resident_memory_bytes"]) / memConns,
	}
	fmt.Fprintf(os.Stderr, "  %-22s %d joined connections: peak heap in use +%.1f KB, RSS +%.1f KB per connection\n",
		sys.name+"-joined", memConns, m.heapPer/1000, m.rssPer/1000)
	return m, nil
}

// scrape reads a few gauges of a Prometheus page (summed over labels).
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	want := map[string]bool{"go_memstats_heap_inuse_bytes": true, "process_resident_memory_bytes": true, "switchboard_edge_connections": true}
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
		if !want[name] {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			out[name] += v
		}
	}
	return out, sc.Err()
}
