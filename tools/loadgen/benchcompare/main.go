// Command benchcompare runs the same fan-out and send workloads against two
// builds of the standalone switchboard (a base revision and the working
// tree) and against the load generator's two ceilings (-serve raw and
// -serve nats-ws), in one run on one machine, and prints one table of
// ratios. `make bench-compare` builds what it needs and runs it; see
// docs/performance.md.
//
// Everything is on loopback. Every workload uses the same load generator
// binary (the same client code measuring), 100-byte messages and, for
// fan-out, 10 rooms of 100 members with one socket per member.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	base, head, loadgen string
	natsServer          string
	baseRev, headRev    string
	out                 string
	duration            time.Duration
	p99Limit            float64 // ms
	ladder              []float64
	light               float64   // deliveries/s
	sendLadder          []float64 // sends/s offered to 200 rooms of 1
	quick               bool
	scaling             bool
}

func main() {
	var o options
	var ladder string
	flag.StringVar(&o.base, "base", "", "switchboard binary of the base revision")
	flag.StringVar(&o.head, "head", "", "switchboard binary of the working tree")
	flag.StringVar(&o.loadgen, "loadgen", "", "loadgen binary")
	flag.StringVar(&o.natsServer, "nats-server", "", "nats-server binary, for the nats-ws reference (empty: skipped)")
	flag.StringVar(&o.baseRev, "base-rev", "?", "the base revision, for the table")
	flag.StringVar(&o.headRev, "head-rev", "?", "the working tree's revision, for the table")
	flag.StringVar(&o.out, "out", "", "directory for every run's JSON and the servers' logs (default: a temp dir)")
	flag.DurationVar(&o.duration, "duration", 4*time.Second, "sending time of each run")
	flag.Float64Var(&o.p99Limit, "p99", 50, "a fan-out step passes with e2e p99 under this many ms (and nothing missing, 95% of the offered rate delivered)")
	flag.StringVar(&ladder, "ladder", "10000,15000,20000,25000,30000,40000,50000,60000,70000,85000,100000,120000,150000,200000,250000,300000,400000",
		"fan-out steps, deliveries/s, tried in order until one fails twice")
	flag.Float64Var(&o.light, "light", 2000, "the light load, deliveries/s")
	var sendLadder string
	flag.StringVar(&sendLadder, "send-ladder", "1000,2000,3000,4000,5000,6000,8000,10000,12000",
		"sends/s offered to 200 rooms of 1 member, tried in order until one fails twice (the send ceiling: acked >= 95% of offered, ack p99 < 1 s)")
	flag.BoolVar(&o.quick, "quick", false, "one step of each kind and no memory runs, for a smoke test")
	flag.BoolVar(&o.scaling, "scaling", false, "also run the head alone over room sizes (10, 100, 1,000 members) and connections (1,000 to 19,000)")
	flag.Parse()
	parse := func(name, list string) []float64 {
		var out []float64
		for _, f := range strings.Split(list, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || v <= 0 {
				fatal(fmt.Errorf("-%s: %q", name, f))
			}
			out = append(out, v)
		}
		return out
	}
	o.ladder = parse("ladder", ladder)
	o.sendLadder = parse("send-ladder", sendLadder)
	if o.base == "" || o.head == "" || o.loadgen == "" {
		fatal(errors.New("-base, -head and -loadgen are required"))
	}
	if o.out == "" {
		d, err := os.MkdirTemp("", "bench-compare-")
		if err != nil {
			fatal(err)
		}
		o.out = d
	}
	if o.quick {
		o.ladder, o.sendLadder = o.ladder[:1], o.sendLadder[:1]
	}
	if err := run(&o); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchcompare:", err)
	os.Exit(1)
}

// system is one thing under test: a switchboard binary, or a ceiling.
type system struct {
	name   string
	binary string // empty: a loadgen -serve ceiling
	serve  string
}

// result is what one system measured.
type result struct {
	light     *runResult
	steps     []*runResult
	best      *runResult // the highest passing fan-out step
	sendCeil  *runResult
	firstFail *runResult
	saturated *runResult // the first step it could not keep up with, if the ladder reached one
	idle      *memRun    // memory per idle connection (switchboard only)
	joined    *memRun    // memory per joined connection (switchboard only)
}

func run(o *options) error {
	systems := []system{
		{name: "base", binary: o.base},
		{name: "head", binary: o.head},
		{name: "raw", serve: "raw"},
	}
	if o.natsServer != "" {
		systems = append(systems, system{name: "nats-ws", binary: o.natsServer, serve: "nats-ws"})
	}
	fmt.Fprintf(os.Stderr, "bench-compare: results in %s\n", o.out)
	load0 := loadavg()
	started := time.Now()
	results, err := measure(o, systems)
	if err != nil {
		return err
	}
	printTable(o, systems, results, load0, loadavg(), time.Since(started))
	if o.scaling {
		return scaling(o)
	}
	return nil
}

// contender is one system while it is measured: its server, if it has one,
// and where its ladders stand.
type contender struct {
	sys  system
	srv  *server
	res  *result
	past int  // fan-out steps run past the first failed one
	done bool // the ladder under way is over for it
}

// lg runs one loadgen step against c's system.
func (c *contender) lg(o *options, label string, conns, rooms int, rate float64) (*runResult, error) {
	args := []string{"-conns", strconv.Itoa(conns), "-rooms", strconv.Itoa(rooms), "-rate", fmt.Sprint(rate),
		"-duration", o.duration.String(), "-size", "100", "-drain", "5s", "-json", "-q"}
	switch {
	case c.sys.serve == "nats-ws":
		args = append(args, "-serve", c.sys.serve, "-url", "ws://"+c.srv.addr)
	case c.srv != nil:
		args = append(args, "-url", "ws://"+c.srv.addr+"/ws", "-secret", benchSecret, "-metrics-url", c.srv.metrics)
	default:
		args = append(args, "-serve", c.sys.serve)
	}
	return runLoadgen(o, c.sys.name+"-"+label, args)
}

// measure runs every system's workloads interleaved: each step of a
// ladder runs on every system still climbing it, one after the other,
// before the next step; so a drift of the machine (other tenants, heat)
// over the minutes of a run falls on every system alike rather than on
// whichever ran last. The servers are all up during the ladders; those not
// under load sit idle. Memory is measured afterwards, one system at a
// time, each on a server started afresh.
func measure(o *options, systems []system) (map[string]*result, error) {
	var cs []*contender
	defer func() {
		for _, c := range cs {
			if c.srv != nil {
				c.srv.stop()
			}
		}
	}()
	for _, sys := range systems {
		c := &contender{sys: sys, res: &result{}}
		var err error
		switch {
		case sys.serve == "nats-ws":
			c.srv, err = startNATSServer(o, sys)
		case sys.binary != "":
			c.srv, err = startServer(o, sys)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sys.name, err)
		}
		cs = append(cs, c)
	}
	each := func(f func(c *contender) error) error {
		for _, c := range cs {
			if c.done {
				continue
			}
			if err := f(c); err != nil {
				return fmt.Errorf("%s: %w", c.sys.name, err)
			}
		}
		return nil
	}
	fmt.Fprintf(os.Stderr, "== light\n")
	if err := each(func(c *contender) (err error) {
		c.res.light, err = c.lg(o, "light", 1000, 10, o.light/perRoom)
		return err
	}); err != nil {
		return nil, err
	}
	for _, d := range o.ladder {
		fmt.Fprintf(os.Stderr, "== fan-out %.0f\n", d)
		if err := each(func(c *contender) error { return c.fanoutStep(o, d) }); err != nil {
			return nil, err
		}
	}
	for _, c := range cs {
		c.done = false
	}
	for _, rate := range o.sendLadder {
		fmt.Fprintf(os.Stderr, "== send %.0f\n", rate)
		if err := each(func(c *contender) error { return c.sendStep(o, rate) }); err != nil {
			return nil, err
		}
	}
	results := map[string]*result{}
	for _, c := range cs {
		results[c.sys.name] = c.res
		if c.srv == nil || c.sys.serve != "" || o.quick {
			continue
		}
		// Memory is measured on a server of its own, started afresh: on
		// the one that ran the ladders, caches of the runs before (the
		// store's blocks, pools) are still being let go while the
		// connections open, and a per-connection figure taken there is
		// that noise.
		c.srv.stop()
		mem := c.sys
		mem.name += "-memory"
		var err error
		if c.srv, err = startServer(o, mem); err != nil {
			return nil, fmt.Errorf("%s: %w", c.sys.name, err)
		}
		if c.res.idle, err = idleMemory(o, c); err != nil {
			return nil, fmt.Errorf("%s: %w", c.sys.name, err)
		}
		if c.res.joined, err = joinedMemory(o, c); err != nil {
			return nil, fmt.Errorf("%s: %w", c.sys.name, err)
		}
		c.srv.stop()
		c.srv = nil
	}
	return results, nil
}

// perRoom is the members of a fan-out room (10 rooms of 1,000 sockets).
const perRoom = 100.0

// fanoutStep runs the fan-out step of d deliveries/s asked. The ladder
// goes on past the first failed step until the system saturates (or for
// at most maxPastFail steps): a step that fails the p99 bound is not yet a
// system that cannot keep up, and the p99 comparison is made where the
// base saturates.
func (c *contender) fanoutStep(o *options, d float64) error {
	res := c.res
	r, err := c.lg(o, fmt.Sprintf("fanout-%.0f", d), 1000, 10, d/perRoom)
	if err != nil {
		return err
	}
	if !r.passes(o.p99Limit) && res.firstFail == nil {
		// Once more: on a shared machine one burst of other work fails a
		// step by itself.
		again, err := c.lg(o, fmt.Sprintf("fanout-%.0f-again", d), 1000, 10, d/perRoom)
		if err != nil {
			return err
		}
		if again.passes(o.p99Limit) || again.E2E.P99 < r.E2E.P99 {
			r = again
		}
	}
	r.target = d
	res.steps = append(res.steps, r)
	if r.passes(o.p99Limit) {
		res.best = r
	} else if res.firstFail == nil {
		res.firstFail = r
	}
	if r.saturated(o.p99Limit) {
		res.saturated = r
		c.done = true
		return nil
	}
	if res.firstFail != nil {
		if c.past++; c.past > maxPastFail {
			c.done = true
		}
	}
	return nil
}

// sendStep runs the send-ceiling step of rate sends/s offered.
func (c *contender) sendStep(o *options, rate float64) error {
	res := c.res
	r, err := c.lg(o, fmt.Sprintf("send-%.0f", rate), 200, 200, rate)
	if err != nil {
		return err
	}
	if !r.sendPasses() {
		again, err := c.lg(o, fmt.Sprintf("send-%.0f-again", rate), 200, 200, rate)
		if err != nil {
			return err
		}
		r = again
	}
	if res.sendCeil == nil {
		res.sendCeil = r // the first step stands in when none passes
	}
	if !r.sendPasses() {
		c.done = true
		return nil
	}
	res.sendCeil = r
	return nil
}

const benchSecret = "bench-compare-secret-0123456789abcdef" // 32 bytes at least

// server is a standalone switchboard started for the run.
type server struct {
	cmd     *exec.Cmd
	addr    string
	pprof   string // net/http/pprof listener, to force a collection
	metrics string // its /metrics URL
	log     *os.File
}

// hasFlag reports whether binary's -h lists flag.
func hasFlag(binary, flag string) bool {
	out, _ := exec.Command(binary, "-h").CombinedOutput()
	return strings.Contains(string(out), "-"+flag+" ")
}

func startServer(o *options, sys system) (*server, error) {
	ws, err := freePort()
	if err != nil {
		return nil, err
	}
	nats, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(o.out, sys.name+"-data")
	_ = os.RemoveAll(dir)
	logf, err := os.Create(filepath.Join(o.out, sys.name+"-server.log"))
	if err != nil {
		return nil, err
	}
	pprof, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"-listen", ws, "-nats-listen", nats, "-data-dir", dir, "-log-level", "warn",
		"-max-upgrades-per-ip", "100000", "-max-connections-per-user", "100", "-pprof-listen", pprof}
	metrics := "http://" + ws + "/metrics"
	if hasFlag(sys.binary, "metrics-listen") {
		// Newer builds serve /metrics on a listener of their own.
		ml, err := freePort()
		if err != nil {
			return nil, err
		}
		args = append(args, "-metrics-listen", ml)
		metrics = "http://" + ml + "/metrics"
	}
	cmd := exec.Command(sys.binary, args...)
	// The limits are lifted (a million tokens, 1,000 a second per user)
	// over a long period on purpose: a bucket's key lives as long as an
	// empty bucket takes to refill, so with a period of a second every
	// user of the fan-out runs (one send each 2.5 s) would find its key
	// expired at each send, and each send would pay a read and the
	// server a delete marker that users of the real limits (10 a minute)
	// do not.
	cmd.Env = append(os.Environ(),
		"SWITCHBOARD_JWT_SECRET="+benchSecret,
		"SWITCHBOARD_LIMITS=message:send=1000000/1000s,default=1000000/1000s")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, addr: ws, pprof: pprof, metrics: metrics, log: logf}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + ws + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s not ready on %s within 30s (log: %s)", sys.binary, ws, logf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startNATSServer starts a nats-server whose WebSocket listener (no TLS,
// loopback) the nats-ws reference's clients dial.
func startNATSServer(o *options, sys system) (*server, error) {
	client, err := freePort()
	if err != nil {
		return nil, err
	}
	ws, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(o.out, "nats-ws.conf")
	text := fmt.Sprintf("listen: %q\nwebsocket {\n  listen: %q\n  no_tls: true\n}\n", client, ws)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(o.out, sys.name+"-server.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(sys.binary, "-c", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, addr: ws, log: logf}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", ws); err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("nats-server not listening on %s within 10s (log: %s)", ws, logf.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(25 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	_ = s.log.Close()
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// runResult is the part of loadgen's JSON the table uses.
type runResult struct {
	label          string
	target         float64
	Rate           float64 `json:"rate"`
	Members        int     `json:"members"`
	SentPerSec     float64 `json:"sent_per_s"`
	AckedPerSec    float64 `json:"acked_per_s"`
	DeliveredPerS  float64 `json:"delivered_per_s"`
	Missing        int64   `json:"missing"`
	Unanswered     int64   `json:"unanswered"`
	ErrorReplies   int64   `json:"error_replies"`
	ServerCPUCores float64 `json:"server_cpu_cores"`
	MachineCPU     float64 `json:"machine_cpu_cores"`
	LoadgenCPU     float64 `json:"loadgen_cpu_cores"`
	E2E            lat     `json:"e2e_latency"`
	Ack            lat     `json:"ack_latency"`
}

type lat struct {
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// maxPastFail is how many fan-out steps are run past the first failed one
// while the system has not saturated.
const maxPastFail = 3

// saturated: the system did not keep up with the step: less than 97% of
// the offered rate delivered, or a median above the p99 bound (a standing
// queue), or anything lost.
func (r *runResult) saturated(p99 float64) bool {
	offered := r.Rate * float64(r.Members)
	return r.Missing > 0 || r.Unanswered > 0 || r.DeliveredPerS < 0.97*offered || r.E2E.P50 > p99
}

// passes: nothing lost, the offered rate delivered (95%), p99 under limit.
func (r *runResult) passes(p99 float64) bool {
	offered := r.Rate * float64(r.Members)
	return r.Missing == 0 && r.Unanswered == 0 && r.DeliveredPerS >= 0.95*offered && r.E2E.P99 < p99
}

// runRaw runs loadgen with args and returns its stdout (its JSON), keeping
// both outputs under label in the results directory.
func runRaw(o *options, label string, args []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.loadgen, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	_ = os.WriteFile(filepath.Join(o.out, label+".json"), stdout.Bytes(), 0o644)
	_ = os.WriteFile(filepath.Join(o.out, label+".txt"), stderr.Bytes(), 0o644)
	if err != nil && stdout.Len() == 0 {
		return nil, fmt.Errorf("%s: loadgen %v: %v\n%s", label, args, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// sendPasses: the offered sends acked within the run (95%), ack p99 under 1 s.
func (r *runResult) sendPasses() bool {
	return r.Unanswered == 0 && r.ErrorReplies == 0 && r.AckedPerSec >= 0.95*r.Rate && r.Ack.P99 < 1000
}

func runLoadgen(o *options, label string, args []string) (*runResult, error) {
	out, err := runRaw(o, label, args)
	if err != nil {
		return nil, err
	}
	r := &runResult{label: label}
	if jerr := json.Unmarshal(out, r); jerr != nil || r.Members == 0 {
		// A failed run prints {"error":..., "partial": {...}}.
		var partial struct {
			Error   string     `json:"error"`
			Partial *runResult `json:"partial"`
		}
		if json.Unmarshal(out, &partial) == nil && partial.Partial != nil {
			partial.Partial.label = label
			fmt.Fprintf(os.Stderr, "  %-22s FAILED: %s\n", label, partial.Error)
			return partial.Partial, nil
		}
		return nil, fmt.Errorf("%s: loadgen %v: unreadable output %.300q", label, args, out)
	}
	fmt.Fprintf(os.Stderr, "  %-22s offered %8.0f/s delivered %9.0f/s  e2e p50 %7.2f p99 %8.2f ms  acked %7.0f/s  missing %d  server cpu %.2f  machine %.2f\n",
		label, r.Rate*float64(r.Members), r.DeliveredPerS, r.E2E.P50, r.E2E.P99, r.AckedPerSec, r.Missing, r.ServerCPUCores, r.MachineCPU)
	return r, nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
