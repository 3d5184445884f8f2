package main

import (
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
)

func TestBucketsCoverValues(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 2, 127, 128, 255, 256, 257, 511, 512, 1000, 1 << 20, 123456789, histMaxV} {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d, below the previous %d: not monotone", v, i, prev)
		}
		prev = i
		lo, w := bucketRange(i)
		if v < lo || v >= lo+w {
			t.Fatalf("value %d in bucket %d = [%d, %d)", v, i, lo, lo+w)
		}
		if v >= 256 && float64(w)/float64(lo) > 1.0/128+1e-12 {
			t.Fatalf("bucket %d of %d is %d wide: more than 1/128 of %d", i, v, w, lo)
		}
	}
	if got := bucketOf(histMaxV); got != histBuckets-1 {
		t.Fatalf("bucketOf(max) = %d, want %d", got, histBuckets-1)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		v := r.Int64N(histMaxV)
		lo, w := bucketRange(bucketOf(v))
		if v < lo || v >= lo+w {
			t.Fatalf("value %d outside its bucket [%d, %d)", v, lo, lo+w)
		}
	}
}

func TestQuantilesMatchSortedSample(t *testing.T) {
	h := NewHist()
	r := rand.New(rand.NewPCG(3, 4))
	var vals []int64
	for range 200000 {
		// Log-normal-ish latencies from 10 us to seconds.
		v := int64(math.Exp(r.NormFloat64()*1.5 + 13))
		vals = append(vals, v)
		h.Record(v)
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		want := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 1.0/128 {
			t.Errorf("q%.3f = %d, exact %d (off by %.2f%%)", q, got, want, rel*100)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
		t.Errorf("min/max %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
	}
	if h.Count() != uint64(len(vals)) {
		t.Errorf("count %d", h.Count())
	}
}

func TestQuantilesSmall(t *testing.T) {
	h := NewHist()
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Fatal("an empty histogram must read 0")
	}
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	for q, want := range map[float64]int64{0.5: 50, 0.9: 90, 0.99: 99, 1: 100, 0.001: 1} {
		if got := h.Quantile(q); got != want {
			t.Errorf("q%g = %d, want %d (values below 256 are exact)", q, got, want)
		}
	}
	if h.Mean() != 50.5 {
		t.Errorf("mean %g", h.Mean())
	}
	h.Record(-5)
	h.Record(math.MaxInt64)
	if h.Min() != 0 || h.Max() != histMaxV {
		t.Errorf("out-of-range values: min %d max %d", h.Min(), h.Max())
	}
	s := h.Summary()
	if s.Count != 102 || s.Max != ms(histMaxV) || s.P50 != 0 {
		t.Errorf("summary %+v", s)
	}
}

func TestConcurrentRecord(t *testing.T) {
	h := NewHist()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10000 {
				h.Record(int64(g*10000 + i))
			}
		}()
	}
	wg.Wait()
	if h.Count() != 80000 || h.Min() != 0 || h.Max() != 79999 {
		t.Fatalf("count %d min %d max %d", h.Count(), h.Min(), h.Max())
	}
	if p := h.Quantile(0.5); math.Abs(float64(p-40000)) > 40000.0/128 {
		t.Fatalf("p50 %d", p)
	}
}

func TestEnvelope(t *testing.T) {
	for _, tc := range []struct {
		in, id, typ string
		slow        bool
	}{
		{`{"id":"s123","type":"ack","data":{"messageId":"x","seq":4}}`, "s123", "ack", false},
		{`{"type":"message:new","data":{"conversationId":"c"}}`, "", "message:new", false},
		{`{"id":"c-1","type":"rate-limit-exceeded","data":{"code":"rate_limited"}}`, "c-1", "rate-limit-exceeded", false},
		{`{"type":"pong"}`, "", "pong", false},
		{` {"data":{},"type":"ack","id":"z"}`, "z", "ack", true},
		{`not json`, "", "", true},
	} {
		id, typ, slow := envelope([]byte(tc.in))
		if string(id) != tc.id || string(typ) != tc.typ || slow != tc.slow {
			t.Errorf("%s: got %q %q %v", tc.in, id, typ, slow)
		}
	}
}

func TestFields(t *testing.T) {
	ev := []byte(`{"type":"message:new","data":{"conversationId":"c1","messageId":"m","seq":42,"prevSeq":40,"senderId":"u1","content":"t=1700000000123456789;xxx","clientMsgId":"a-1-2","createdAt":"2026-01-01T00:00:00.000Z"}}`)
	if v, ok := uintAfter(ev, keySeq); !ok || v != 42 {
		t.Errorf("seq %d %v", v, ok)
	}
	if v, ok := uintAfter(ev, keyPrevSeq); !ok || v != 40 {
		t.Errorf("prevSeq %d %v", v, ok)
	}
	if v, ok := sendTime(ev); !ok || v != 1700000000123456789 {
		t.Errorf("send time %d %v", v, ok)
	}
	if _, ok := sendTime([]byte(`{"type":"message:new","data":{"content":"hello"}}`)); ok {
		t.Error("a foreign message has no send time")
	}
	if c := stringAfter([]byte(`{"id":"s1","type":"error","data":{"code":"unavailable","message":"x"}}`), keyCode); string(c) != "unavailable" {
		t.Errorf("code %q", c)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, h := range []string{"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"} {
		if err := checkLoopbackHost(h); err != nil {
			t.Errorf("%s refused: %v", h, err)
		}
	}
	for _, h := range []string{"10.0.0.1", "0.0.0.0", "example.com", "", "128.0.0.1", "::", "localhost.example.com"} {
		if err := checkLoopbackHost(h); err == nil {
			t.Errorf("%s accepted", h)
		}
	}
	for _, u := range []string{"ws://10.1.1.1:8080/ws", "wss://127.0.0.1/ws", "ws://example.com/ws"} {
		if _, err := parseFlags([]string{"-url", u, "-secret", "x"}, &strings.Builder{}); err == nil {
			t.Errorf("-url %s accepted", u)
		}
	}
	if _, err := parseFlags([]string{"-url", "ws://127.0.0.1:1/ws", "-secret", "x", "-metrics-url", "http://192.168.1.1/metrics"}, &strings.Builder{}); err == nil {
		t.Error("a non-loopback -metrics-url was accepted")
	}
	cfg, err := parseFlags([]string{"-url", "ws://localhost:18080/ws", "-secret", "x", "-conns", "250", "-rooms", "3"}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.members != 84 || cfg.metricsURL != "http://localhost:9090/metrics" || cfg.srcIPs != 40 {
		t.Errorf("members %d metrics %s source addresses %d", cfg.members, cfg.metricsURL, cfg.srcIPs)
	}
	if cfg, err := parseFlags([]string{"-url", "ws://[::1]:18080/ws", "-secret", "x"}, &strings.Builder{}); err != nil || cfg.srcIPs != 1 {
		t.Errorf("IPv6 target: %v, %d source addresses", err, cfg.srcIPs)
	}
}

func TestParseMetrics(t *testing.T) {
	page := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
process_resident_memory_bytes 1.2345e+08
switchboard_edge_connections{org="a"} 3
switchboard_edge_connections{org="b b"} 4
go_memstats_heap_inuse_bytes_other 9
`
	m, err := parseMetrics(strings.NewReader(page), memMetrics)
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 42 || m["process_resident_memory_bytes"] != 1.2345e8 || m["switchboard_edge_connections"] != 7 {
		t.Errorf("%v", m)
	}
	if _, ok := m["go_memstats_heap_inuse_bytes"]; ok {
		t.Error("a metric with a longer name was taken for another")
	}
}
