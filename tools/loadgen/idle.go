package main

import (
	"fmt"
	"os"
	"runtime"
	"time"
)

// idleResult is what an idle run measured.
type idleResult struct {
	Mode          string  `json:"mode"`
	URL           string  `json:"url"`
	MetricsURL    string  `json:"metrics_url"`
	Conns         int     `json:"conns"`
	DialRate      float64 `json:"dial_rate"`
	DurationS     float64 `json:"hold_s"`
	FileLimitSoft uint64  `json:"file_limit_soft"`
	FileLimitHard uint64  `json:"file_limit_hard"`

	Dial        dialResult         `json:"dial"`
	Before      map[string]float64 `json:"metrics_before"`
	After       map[string]float64 `json:"metrics_after_connect"`
	End         map[string]float64 `json:"metrics_end"`
	AliveAtEnd  int                `json:"alive_at_end"`
	ServerConns float64            `json:"server_connections_after_connect"` // switchboard_edge_connections delta

	RSSPerConn        float64 `json:"rss_bytes_per_conn"`
	HeapInusePerConn  float64 `json:"heap_inuse_bytes_per_conn"`
	StackInusePerConn float64 `json:"stack_inuse_bytes_per_conn"`
	SysPerConn        float64 `json:"go_sys_bytes_per_conn"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	// The same at the end of the hold (after pings went round).
	RSSPerConnEnd       float64 `json:"rss_bytes_per_conn_end"`
	HeapInusePerConnEnd float64 `json:"heap_inuse_bytes_per_conn_end"`

	Hold []idleSample `json:"hold"` // every 5 s of the hold
	// ServerCPUIdle is the server's CPU (cores) while it held the idle
	// connections (from process_cpu_seconds_total).
	ServerCPUIdle float64 `json:"server_cpu_cores_idle"`

	LoadgenBytesPerConn float64 `json:"loadgen_bytes_per_conn"` // this process's heap+stack per connection

	ServerCloses map[string]int64  `json:"server_closes"`
	CloseReasons map[string]string `json:"close_reasons,omitempty"`
	OtherEvents  map[string]int64  `json:"other_events"`
	Notes        []string          `json:"notes,omitempty"`
}

func runIdle(cfg *config, d *dialer) (*idleResult, error) {
	res := &idleResult{Mode: "idle", URL: cfg.url, MetricsURL: cfg.metricsURL, Conns: cfg.conns, DialRate: cfg.dialRate, DurationS: cfg.duration.Seconds()}
	st := newStats()
	r := &run{st: st}
	var err error
	if res.Before, err = fetchMetrics(cfg.metricsURL, memMetrics); err != nil {
		return res, fmt.Errorf("metrics before dialing: %w", err)
	}
	var ms0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)

	conns, dr := dialAll(d, r, cfg.conns, cfg.user, cfg.dialRate, cfg.dialConc, cfg.progress)
	res.Dial = dr
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.kill()
			}
		}
	}()
	n := float64(dr.Connected)
	if cfg.progress {
		fmt.Fprintf(os.Stderr, "  %d connected (%d failed) in %.1fs; settling %s\n", dr.Connected, dr.Failed, dr.Seconds, cfg.settle)
	}
	time.Sleep(cfg.settle)
	var ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	if n > 0 {
		res.LoadgenBytesPerConn = (float64(ms1.HeapInuse+ms1.StackInuse) - float64(ms0.HeapInuse+ms0.StackInuse)) / n
	}
	if res.After, err = fetchMetrics(cfg.metricsURL, memMetrics); err != nil {
		return res, fmt.Errorf("metrics after connecting: %w", err)
	}
	per := func(m map[string]float64, name string) float64 {
		if n == 0 {
			return 0
		}
		return (m[name] - res.Before[name]) / n
	}
	res.RSSPerConn = per(res.After, "process_resident_memory_bytes")
	res.HeapInusePerConn = per(res.After, "go_memstats_heap_inuse_bytes")
	res.StackInusePerConn = per(res.After, "go_memstats_stack_inuse_bytes")
	res.SysPerConn = per(res.After, "go_memstats_sys_bytes")
	res.GoroutinesPerConn = per(res.After, "go_goroutines")
	res.ServerConns = res.After["switchboard_edge_connections"] - res.Before["switchboard_edge_connections"]

	// Hold, answering pings.
	holdEnd := time.Now().Add(cfg.duration)
	alive := func() int {
		k := 0
		for _, c := range conns {
			if c != nil && c.alive() {
				k++
			}
		}
		return k
	}
	holdStart := time.Now()
	for time.Now().Before(holdEnd) {
		time.Sleep(min(5*time.Second, time.Until(holdEnd)))
		s := idleSample{T: time.Since(holdStart).Seconds(), Alive: alive()}
		if m, err := fetchMetrics(cfg.metricsURL, memMetrics); err == nil {
			s.RSS, s.HeapInuse = m["process_resident_memory_bytes"], m["go_memstats_heap_inuse_bytes"]
		}
		res.Hold = append(res.Hold, s)
		if cfg.progress {
			fmt.Fprintf(os.Stderr, "  holding %3.0fs: %d alive, server RSS %.1f MiB, heap in use %.1f MiB\n", s.T, s.Alive, s.RSS/(1<<20), s.HeapInuse/(1<<20))
		}
	}
	res.AliveAtEnd = alive()
	res.ServerCPUIdle = -1
	if res.End, err = fetchMetrics(cfg.metricsURL, memMetrics); err != nil {
		res.Notes = append(res.Notes, "metrics at the end: "+err.Error())
	} else {
		res.RSSPerConnEnd = per(res.End, "process_resident_memory_bytes")
		res.HeapInusePerConnEnd = per(res.End, "go_memstats_heap_inuse_bytes")
		if secs := time.Since(holdStart).Seconds(); secs > 0 {
			res.ServerCPUIdle = (res.End["process_cpu_seconds_total"] - res.After["process_cpu_seconds_total"]) / secs
		}
	}
	st.mu.Lock()
	res.ServerCloses, res.CloseReasons = closeMaps(st)
	res.OtherEvents = copyMap(st.events)
	st.mu.Unlock()
	if dr.Failed > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d connections failed: %s %s", dr.Failed, fmtCounts(dr.Errors), dr.Hint))
	}
	if res.AliveAtEnd < dr.Connected {
		res.Notes = append(res.Notes, fmt.Sprintf("%d connections ended during the hold", dr.Connected-res.AliveAtEnd))
	}
	if res.ServerConns != 0 && int(res.ServerConns) != dr.Connected {
		res.Notes = append(res.Notes, fmt.Sprintf("the edge's switchboard_edge_connections grew by %.0f, not %d", res.ServerConns, dr.Connected))
	}
	res.Notes = append(res.Notes, "memory is the whole server process's (with the standalone: edge, messaging and the embedded NATS); "+
		"heap in use depends on when the server last collected garbage, RSS on what the runtime returned to the OS")
	return res, nil
}

// idleSample is the state at one moment of the hold.
type idleSample struct {
	T         float64 `json:"t_s"`
	Alive     int     `json:"alive"`
	RSS       float64 `json:"rss_bytes"`
	HeapInuse float64 `json:"heap_inuse_bytes"`
}
