package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/switchboard-chat/switchboard/kit/devtoken"
)

// sample is one reading of a process.
type sample struct {
	At         time.Duration `json:"at_ns"`
	RSSKiB     int64         `json:"rss_kib"`
	HeapKiB    int64         `json:"heap_inuse_kib"` // go_memstats_heap_inuse_bytes / 1024
	Goroutines int64         `json:"goroutines"`
	FDs        int64         `json:"fds"`
	Conns      int64         `json:"connections"`
	Churns     int64         `json:"churns"`
}

// runSoak runs the standalone under a steady load with churn for
// o.duration, sampling it, and returns the exit code: 1 if the workload
// lost or duplicated anything acknowledged or the process died, else 0.
func runSoak(o options) int {
	state, err := os.MkdirTemp("", "switchboard-soak-")
	if err != nil {
		fatal(err)
	}
	if o.sample == 0 {
		o.sample = time.Minute
		if o.duration < 15*time.Minute {
			o.sample = 10 * time.Second
		}
	}
	secret := devtoken.Secret()
	p := standalone(o, state, secret)
	// Ports apart from the fault run's standalone (and an odd metrics port).
	metrics := "127.0.0.1:" + strconv.Itoa(9193+o.off)
	p.args = []string{"-data-dir", filepath.Join(state, "standalone"),
		"-listen", "127.0.0.1:" + strconv.Itoa(8092+o.off),
		"-nats-listen", "127.0.0.1:" + strconv.Itoa(4292+o.off), "-metrics-listen", metrics}
	p.ready = "http://" + metrics + "/readyz"
	url := fmt.Sprintf("ws://127.0.0.1:%d/ws", 8092+o.off)
	logf("soak: standalone in %s for %s, sampling every %s; load average %s", state, o.duration, o.sample, loadAvg())
	if err := restart(p, 90*time.Second); err != nil {
		p.stop()
		fatal(err)
	}
	var samples []sample
	var churns atomic.Int64
	soak := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, o.duration)
		defer cancel()
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); churn(ctx, url, secret, w, &churns) }()
		}
		samples = sampleLoop(ctx, p, "http://"+metrics+"/metrics", o.sample, &churns)
		wg.Wait()
		return nil
	}
	r, err := runPhase(phaseConfig{
		name: "soak", urls: []string{url}, secret: secret, convs: o.convs, sockets: o.sockets, rate: o.rate,
		warmup: time.Second, sendFor: o.duration, settle: 30 * time.Second, bound: 30 * time.Second, fault: soak,
	}, strconv.FormatInt(time.Now().Unix()%1000000, 36))
	alive := p.running()
	p.stop()
	r.Name = fmt.Sprintf("soak %s at %.0f sends/s, %d members, 4 churners", o.duration, o.rate, o.sockets)
	if err != nil {
		r.Failures = append(r.Failures, "soak: "+err.Error())
	}
	if !alive {
		r.Failures = append(r.Failures, "the standalone died during the soak")
	}
	printTable(os.Stdout, []phaseResult{r})
	fmt.Println()
	printSamples(os.Stdout, samples)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"result": r, "samples": samples}, "", "  ")
		_ = os.WriteFile(o.jsonOut, b, 0o644)
	}
	fmt.Printf("load average at the end: %s; churn cycles %d\n", loadAvg(), churns.Load())
	if len(r.Failures) > 0 {
		fmt.Println("state and logs kept in", state)
		fmt.Println("FAIL")
		return 1
	}
	_ = os.RemoveAll(state)
	fmt.Println("PASS")
	return 0
}

// churn is one churning client until ctx ends: it connects as one of a
// few users, joins their conversation with sinceSeq, types, sends, marks
// delivered and read, sets away, leaves and disconnects, again and again.
func churn(ctx context.Context, url, secret string, w int, n *atomic.Int64) {
	ph := &phase{phaseConfig: phaseConfig{secret: secret}, org: "soak"}
	users := []string{fmt.Sprintf("churn%d-a", w), fmt.Sprintf("churn%d-b", w)}
	var convID string
	var since uint64
	for i := 0; ctx.Err() == nil; i++ {
		c, err := dialWS(url, ph.token(users[i%2]), 5*time.Second)
		if err != nil {
			_ = sleepCtx(ctx, time.Second)
			continue
		}
		if convID == "" {
			convID, _ = createConv(c, users)
		}
		if convID != "" {
			since = churnOnce(c, convID, since)
		}
		c.close()
		n.Add(1)
		_ = sleepCtx(ctx, 500*time.Millisecond)
	}
}

// churnOnce runs one connection's life in conversation convID and returns
// the newest seq it saw.
func churnOnce(c *wsConn, convID string, since uint64) uint64 {
	const t = 10 * time.Second
	join := map[string]any{"conversationId": convID}
	if since > 0 {
		join["sinceSeq"] = since
	}
	raw, err := c.request("conversation:join", join, t)
	if err != nil {
		return since
	}
	var ja joinAck
	_ = json.Unmarshal(raw, &ja)
	since = max(since, ja.LastSeq)
	_, _ = c.request("message:typing", map[string]any{"conversationId": convID, "isTyping": true}, t)
	raw, err = c.request("message:send", map[string]any{"conversationId": convID, "content": "churn",
		"clientMsgId": strconv.FormatInt(time.Now().UnixNano(), 36)}, t)
	if err == nil {
		var a sendAck
		_ = json.Unmarshal(raw, &a)
		since = max(since, a.Seq)
		_, _ = c.request("message:delivered", map[string]any{"conversationId": convID, "seq": a.Seq}, t)
		_, _ = c.request("message:read", map[string]any{"conversationId": convID, "seq": a.Seq}, t)
	}
	_, _ = c.request("message:typing", map[string]any{"conversationId": convID, "isTyping": false}, t)
	_, _ = c.request("presence:set", map[string]any{"status": "away"}, t)
	_, _ = c.request("conversation:list", map[string]any{}, t)
	_, _ = c.request("conversation:leave", map[string]any{"conversationId": convID}, t)
	return since
}

// sampleLoop samples p every interval until ctx ends, and once more then.
func sampleLoop(ctx context.Context, p *proc, metricsURL string, every time.Duration, churns *atomic.Int64) []sample {
	start := time.Now()
	var out []sample
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s := readSample(p.pid(), metricsURL)
		s.At, s.Churns = time.Since(start), churns.Load()
		out = append(out, s)
		select {
		case <-ctx.Done():
			s := readSample(p.pid(), metricsURL)
			s.At, s.Churns = time.Since(start), churns.Load()
			return append(out, s)
		case <-t.C:
		}
	}
}

// readSample reads pid's RSS and open files from /proc and the
// goroutines, heap in use and connections from its /metrics.
func readSample(pid int, metricsURL string) sample {
	var s sample
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				s.RSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = int64(len(ents))
	}
	s.Goroutines, s.Conns, s.HeapKiB = -1, -1, -1
	cl := http.Client{Timeout: 5 * time.Second}
	if resp, err := cl.Get(metricsURL); err == nil {
		m := parseMetrics(resp.Body)
		s.Goroutines, s.Conns = m.goroutines, m.conns
		if m.heapBytes >= 0 {
			s.HeapKiB = m.heapBytes / 1024
		}
		resp.Body.Close()
	}
	return s
}

// procMetrics are the readings soak takes from a process's /metrics.
type procMetrics struct {
	goroutines, conns, heapBytes int64
}

// parseMetrics picks go_goroutines, go_memstats_heap_inuse_bytes and the
// sum of switchboard_edge_connections out of a Prometheus text exposition
// (-1 for a metric that is absent).
func parseMetrics(r io.Reader) procMetrics {
	m := procMetrics{goroutines: -1, heapBytes: -1}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, val, ok := metricLine(line)
		if !ok {
			continue
		}
		switch {
		case name == "go_goroutines":
			m.goroutines = int64(val)
		case name == "go_memstats_heap_inuse_bytes":
			m.heapBytes = int64(val)
		case strings.HasPrefix(name, "switchboard_edge_connections"):
			m.conns += int64(val)
		}
	}
	return m
}

func metricLine(line string) (string, float64, bool) {
	if line == "" || line[0] == '#' {
		return "", 0, false
	}
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return "", 0, false
	}
	v, err := strconv.ParseFloat(line[i+1:], 64)
	if err != nil {
		return "", 0, false
	}
	name := line[:i]
	if j := strings.IndexByte(name, '{'); j >= 0 {
		name = name[:j]
	}
	return name, v, true
}

// printSamples prints the curves and, for each, whether it levels off.
func printSamples(w io.Writer, ss []sample) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "t\tRSS MiB\theap in use MiB\tgoroutines\topen files\tconnections\tchurn cycles\t")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t\n", s.At.Round(time.Second), float64(s.RSSKiB)/1024, float64(s.HeapKiB)/1024, s.Goroutines, s.FDs, s.Conns, s.Churns)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, c := range []struct {
		name  string
		unit  string
		noise float64 // per minute: a slope below this is flat
		get   func(sample) float64
	}{
		{"RSS", "MiB", 1, func(s sample) float64 { return float64(s.RSSKiB) / 1024 }},
		{"heap in use", "MiB", 1, func(s sample) float64 { return float64(s.HeapKiB) / 1024 }},
		{"goroutines", "", 5, func(s sample) float64 { return float64(s.Goroutines) }},
		{"open files", "", 2, func(s sample) float64 { return float64(s.FDs) }},
	} {
		first, last, ok := thirdSlopes(ss, c.get)
		if !ok {
			fmt.Fprintf(w, "%s: too few samples to judge\n", c.name)
			continue
		}
		fmt.Fprintf(w, "%s: slope %+.2f %s/min in the first third, %+.2f %s/min in the last: %s\n",
			c.name, first, c.unit, last, c.unit, levelVerdict(first, last, c.noise))
	}
}

// levelVerdict says whether a curve levels off: the last third's slope is
// within noise of flat, or at most half the first third's.
func levelVerdict(first, last, noise float64) string {
	switch {
	case last <= noise:
		return "levels off"
	case last <= first/2:
		return "slowing, not yet level"
	}
	return "still growing"
}

// thirdSlopes fits a line to the first and to the last third of the
// samples and returns their slopes per minute.
func thirdSlopes(ss []sample, get func(sample) float64) (first, last float64, ok bool) {
	n := len(ss) / 3
	if n < 2 {
		return 0, 0, false
	}
	return slope(ss[:n], get), slope(ss[len(ss)-n:], get), true
}

// slope is the least-squares slope of get over time, per minute.
func slope(ss []sample, get func(sample) float64) float64 {
	var sx, sy, sxx, sxy float64
	for _, s := range ss {
		x, y := s.At.Minutes(), get(s)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(ss))
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
