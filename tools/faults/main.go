// Command faults is Switchboard's fault harness and soak driver. Everything
// it starts runs on loopback and is killed only by the pids it started.
//
// Modes:
//
//	faults: starts deploy/'s layout as separate processes (3 nats-server
//	        nodes with deploy/nats's configs, replicas 3, two of every
//	        service, two edges, each service with its own NATS user), then,
//	        for every fault of the table, runs a careful client (member
//	        sockets in conversations over both edges, sends at -rate, each
//	        retried with its clientMsgId until acked, each reconnect
//	        rejoining with sinceSeq, a prevSeq gap filled from history) with
//	        the fault in the middle, and checks every acknowledged message
//	        against history. Then the same against the standalone binary,
//	        killed 3 times and restarted on its data. It prints the table
//	        and exits 1 if a fault lost or duplicated anything acknowledged,
//	        answered a stored send with anything but success or
//	        unavailable, or kept a client waiting past its bound.
//	soak:   runs the standalone binary for -duration under a steady load
//	        with churn and samples its memory, goroutines and open files.
//
// `make test-faults` and `make soak` run it; docs/reliability.md has the
// bounds and what an operator sees during each fault.
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/kit/devtoken"
)

type options struct {
	mode, root, bin, natsServer string
	only, jsonOut, mdOut        string
	off                         int
	rate                        float64
	sockets, convs              int
	duration, sample, timeout   time.Duration
	keep                        bool
}

var startedAt = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(startedAt).Seconds(), fmt.Sprintf(format, args...))
}

// watchdog ends the run after d whatever it is doing: it kills every
// process it started and exits 1.
func watchdog(d time.Duration) {
	time.AfterFunc(d, func() {
		logf("the run took longer than -timeout %s: killing what it started", d)
		killAll()
		fmt.Println("FAIL: timed out")
		os.Exit(1)
	})
}

func main() {
	var o options
	fs := flag.NewFlagSet("faults", flag.ExitOnError)
	fs.StringVar(&o.mode, "mode", "faults", "faults, soak, or markdown (the table of a -json file)")
	fs.StringVar(&o.root, "root", ".", "the repository's root (deploy/ and bin/ are found there)")
	fs.StringVar(&o.bin, "bin", "", "directory of the built binaries (default <root>/bin)")
	fs.StringVar(&o.natsServer, "nats-server", "", "nats-server binary (default <root>/.bin/nats-server)")
	fs.StringVar(&o.only, "only", "", "comma-separated fault names to run (default all; sa-kill is the standalone's)")
	fs.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.mdOut, "markdown", "", "also write the table as Markdown to this file")
	fs.IntVar(&o.off, "port-offset", envInt("SWITCHBOARD_CLUSTER_PORT_OFFSET", 21000), "added to every deploy/ port (default $SWITCHBOARD_CLUSTER_PORT_OFFSET, else 21000)")
	fs.Float64Var(&o.rate, "rate", 100, "sends per second in total")
	fs.IntVar(&o.sockets, "sockets", 37, "member sockets")
	fs.IntVar(&o.convs, "convs", 5, "conversations")
	fs.DurationVar(&o.duration, "duration", 30*time.Minute, "soak: how long")
	fs.DurationVar(&o.sample, "sample", 0, "soak: sampling interval (default 1m, or 10s when -duration is under 15m)")
	fs.DurationVar(&o.timeout, "timeout", 0, "end the run (exit 1) after this long (default 25m for faults, -duration + 10m for a soak)")
	fs.BoolVar(&o.keep, "keep", false, "keep the state directory (stores, logs) even when every check passes")
	_ = fs.Parse(os.Args[1:])
	root, err := filepath.Abs(o.root)
	if err != nil {
		fatal(err)
	}
	o.root = root
	if o.bin == "" {
		o.bin = filepath.Join(root, "bin")
	}
	if o.natsServer == "" {
		o.natsServer = filepath.Join(root, ".bin", "nats-server")
	}
	switch o.mode {
	case "faults":
		watchdog(cmp.Or(o.timeout, 25*time.Minute))
		os.Exit(runFaults(o))
	case "soak":
		watchdog(cmp.Or(o.timeout, o.duration+10*time.Minute))
		os.Exit(runSoak(o))
	case "markdown":
		// Re-renders a run's -json results as a Markdown table.
		var rs []phaseResult
		b, err := os.ReadFile(o.jsonOut)
		if err == nil {
			err = json.Unmarshal(b, &rs)
		}
		if err != nil {
			fatal(err)
		}
		writeMarkdown(os.Stdout, rs)
		os.Exit(0)
	}
	fatal(fmt.Errorf("unknown -mode %q", o.mode))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "faults:", err)
	os.Exit(2)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func (o options) want(name string) bool {
	if o.only == "" {
		return true
	}
	for _, n := range strings.Split(o.only, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

// limits lifts the rate limits: the workload sends far more than a user's
// 10 per minute.
const limits = "message:send=1000000/1s,message:typing=1000000/1s,conversation:create=1000000/1s,default=1000000/1s"

// runFaults runs the table and returns the exit code.
func runFaults(o options) int {
	state, err := os.MkdirTemp("", "switchboard-faults-")
	if err != nil {
		fatal(err)
	}
	runID := strconv.FormatInt(time.Now().Unix()%1000000, 36)
	secret := devtoken.Secret()
	logf("state and logs in %s; load average %s", state, loadAvg())
	var results []phaseResult
	var setupErr error
	cl := &cluster{root: o.root, deploy: filepath.Join(o.root, "deploy"), bin: o.bin, natsServer: o.natsServer,
		state: state, logs: filepath.Join(state, "data", "cluster"), off: o.off, secret: secret, limits: limits}
	scen := clusterScenarios(cl)
	if anyWanted(o, scen) {
		logf("starting the cluster (port offset %d)", o.off)
		if err := cl.start(); err != nil {
			setupErr = fmt.Errorf("cluster: %w", err)
		} else {
			results = append(results, runScenarios(o, scen, cl.edgeURLs(), secret, runID, cl.healthy)...)
		}
		cl.stop()
	}
	if setupErr == nil && o.want("sa-kill") {
		r, err := runStandaloneFaults(o, state, secret, runID)
		results = append(results, r...)
		setupErr = err
	}
	printTable(os.Stdout, results)
	if o.mdOut != "" {
		if f, err := os.Create(o.mdOut); err == nil {
			writeMarkdown(f, results)
			f.Close()
		}
	}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		_ = os.WriteFile(o.jsonOut, b, 0o644)
	}
	fmt.Printf("load average at the end: %s\n", loadAvg())
	failed := setupErr != nil
	if setupErr != nil {
		fmt.Println("SETUP FAILED:", setupErr)
	}
	for _, r := range results {
		failed = failed || len(r.Failures) > 0
	}
	if failed || o.keep {
		fmt.Println("state and logs kept in", state)
	} else {
		_ = os.RemoveAll(state)
	}
	if failed {
		fmt.Println("FAIL")
		return 1
	}
	fmt.Println("PASS")
	return 0
}

func anyWanted(o options, sc []scenario) bool {
	for _, s := range sc {
		if o.want(s.name) {
			return true
		}
	}
	return false
}

// runScenarios runs each wanted scenario as a phase, waiting for the
// layout to be whole again in between.
func runScenarios(o options, sc []scenario, urls []string, secret, runID string, healthy func(time.Duration) error) []phaseResult {
	var out []phaseResult
	for _, s := range sc {
		if !o.want(s.name) {
			continue
		}
		if err := healthy(3 * time.Minute); err != nil {
			out = append(out, phaseResult{Name: s.name, Failures: []string{"layout not healthy before the fault: " + err.Error()}})
			continue
		}
		logf("%s: %s (load average %s)", s.name, s.title, loadAvg())
		r, err := runPhase(phaseConfig{
			name: s.name, urls: urls, secret: secret, convs: o.convs, sockets: o.sockets, rate: o.rate,
			warmup: 8 * time.Second, sendFor: s.sendFor, settle: s.bound + 15*time.Second, bound: s.bound, fault: s.fault,
		}, runID)
		r.Name = s.title
		if err != nil {
			r.Failures = append(r.Failures, "phase: "+err.Error())
		}
		logf("%s: acked %d, lost %d, dups %d, errors %v, longest %.2fs, failures %v",
			s.name, r.Tally.Acked, r.Tally.Lost, r.Tally.dups(), r.Tally.SendErrors, r.Tally.Longest.Seconds(), r.Failures)
		out = append(out, r)
	}
	return out
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
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
