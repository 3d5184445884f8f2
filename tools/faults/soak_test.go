package main

import (
	"strings"
	"testing"
	"time"
)

func TestSlopeAndLevel(t *testing.T) {
	var grow, level []sample
	for i := range 12 {
		at := time.Duration(i) * 10 * time.Second
		grow = append(grow, sample{At: at, FDs: int64(100 + 6*i)}) // 36 per minute
		v := int64(100 + 6*i)
		if i >= 4 {
			v = 124
		}
		level = append(level, sample{At: at, FDs: v})
	}
	fds := func(s sample) float64 { return float64(s.FDs) }
	first, last, ok := thirdSlopes(grow, fds)
	if !ok || first < 35.9 || first > 36.1 || last < 35.9 || last > 36.1 {
		t.Fatalf("growing curve: slopes %v %v %v, want 36 and 36", first, last, ok)
	}
	if v := levelVerdict(first, last, 2); v != "still growing" {
		t.Errorf("growing curve: %s", v)
	}
	first, last, _ = thirdSlopes(level, fds)
	if v := levelVerdict(first, last, 2); v != "levels off" || first < 30 {
		t.Errorf("levelling curve: first %v last %v: %s", first, last, v)
	}
	if _, _, ok := thirdSlopes(grow[:5], fds); ok {
		t.Error("five samples judged")
	}
}

func TestParseMetrics(t *testing.T) {
	in := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 123
go_memstats_heap_inuse_bytes 2.097152e+06
switchboard_edge_connections{org="a"} 3
switchboard_edge_connections{org="b"} 4
switchboard_edge_commands_total{type="ping",result="ok"} 9
`
	m := parseMetrics(strings.NewReader(in))
	if m.goroutines != 123 || m.conns != 7 || m.heapBytes != 2<<20 {
		t.Errorf("parseMetrics = %+v; want 123 goroutines, 7 connections, 2 MiB heap", m)
	}
}
