// Command loadgen is Switchboard's load generator. It drives an edge over
// real WebSockets on the loopback interface (and refuses any other
// address) with a lean client: frames are read in place from a buffered
// reader and only the few fields a measurement needs are picked out.
//
// Modes:
//
//	send: -conns users in -rooms conversations of -members members send
//	      message:send at -rate per second in total (open loop, spread
//	      evenly over connections and time) for -duration; it reports acked
//	      sends per second, send-to-ack latency, delivered message:new per
//	      second, end-to-end latency and deliveries missing per member.
//	      With -serve raw or -serve nats-ws the same workload is served from
//	      this process, for a ceiling (rawserve.go, natsws.go).
//	idle: -conns connections that only answer pings, dialed at -dial-rate
//	      and held for -duration; it reads the server's /metrics before and
//	      after and reports memory per idle connection.
//	upload: -conns users upload files of -file-bytes to POST /files and
//	      download them again, -rate uploads per second in total, for
//	      -duration; it reports latencies, throughput and the server's
//	      memory during the run (upload.go).
//
// The server needs high rate limits for send runs, e.g.
// SWITCHBOARD_LIMITS='message:send=1000000/1000s,default=1000000/1000s'; refused
// sends are counted by type and code and reported. The edge also limits
// upgrades per client address (100/s by default), so connections are
// spread over source addresses 127.0.0.1..127.0.0.N (-src-ips, by default
// enough for 50 upgrades/s each).
//
// Example, against `make run` style standalone started with the limits
// above and SWITCHBOARD_JWT_SECRET set to a secret of 32 bytes or more
// (the edge refuses a shorter one), e.g. export
// SWITCHBOARD_JWT_SECRET=$(openssl rand -hex 32) in the shell of both:
//
//	loadgen -url ws://127.0.0.1:8080/ws -conns 1000 -rooms 10 -rate 1000 -duration 10s
//	loadgen -url ws://127.0.0.1:8080/ws -secret "$SWITCHBOARD_JWT_SECRET" -mode idle -conns 10000 -duration 70s -json
//	loadgen -url ws://127.0.0.1:8080/ws -mode react -conns 100 -rooms 10 -rate 200 -duration 10s
//
// -mode react runs the send run's rooms, but each room's creator first
// sends a few messages and then every member reacts and unreacts to them
// (message:react) at -rate: ack latency is command to ack, e2e latency
// command to each member's message:reacted (start the server with
// message:react in its limits too).
package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/kit/devtoken"
)

type config struct {
	url, metricsURL, secret, org string
	mode, serve                  string
	conns, rooms, members, size  int
	rate, dialRate               float64
	dialConc                     int
	duration, drain, settle      time.Duration
	timeout, tokenTTL            time.Duration
	srcIPs                       int
	userPrefix, runID            string
	json, progress               bool
	cpuProfile                   string
	fileBytes                    int64
}

func (c *config) user(i int) string { return c.userPrefix + strconv.Itoa(i) }

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	soft, hard, ferr := raiseFileLimit()
	if ferr != nil {
		fmt.Fprintln(os.Stderr, "loadgen: raising the open-file limit:", ferr)
	}
	if need := uint64(cfg.conns) + 64; soft < need {
		fmt.Fprintf(os.Stderr, "loadgen: warning: the open-file limit is %d (hard %d) and %d connections need about %d: raise `ulimit -n`\n", soft, hard, cfg.conns, need)
	}
	d := &dialer{
		url: cfg.url, timeout: cfg.timeout, srcIPs: cfg.srcIPs,
		bufSize: 32 << 10,
		mint: func(user string) string {
			return devtoken.Mint([]byte(cfg.secret), cfg.org, user, cfg.tokenTTL)
		},
	}
	if cfg.mode == "idle" {
		d.bufSize = 1 << 10
	}
	if cfg.progress {
		fmt.Fprintf(os.Stderr, "loadgen %s: %s, run %s, open-file limit %d (hard %d)\n", cfg.mode, cfg.url, cfg.runID, soft, hard)
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: -cpuprofile:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	var out any
	var human string
	switch cfg.mode {
	case "send", "react":
		var res *sendResult
		var err error
		switch cfg.serve {
		case "nats-ws":
			res, err = runNATSWS(cfg)
		case "raw":
			var rs *rawServer
			if rs, err = startRawServer(); err != nil {
				fail(cfg, nil, err)
			}
			cfg.url, d.url, cfg.metricsURL = rs.url(), rs.url(), ""
			res, err = runSend(cfg, d)
			if res != nil {
				res.Serve = "raw"
			}
			defer rs.close()
		default:
			res, err = runSend(cfg, d)
		}
		if res != nil {
			res.FileLimitSoft, res.FileLimitHard = soft, hard
		}
		if err != nil {
			fail(cfg, res, err)
		}
		out, human = res, res.human()
	case "upload":
		res, err := runUpload(cfg, d)
		if err != nil {
			fail(cfg, res, err)
		}
		out, human = res, res.human()
	case "idle":
		res, err := runIdle(cfg, d)
		if res != nil {
			res.FileLimitSoft, res.FileLimitHard = soft, hard
		}
		if err != nil {
			fail(cfg, res, err)
		}
		out, human = res, res.human()
	}
	if cfg.json {
		fmt.Fprint(os.Stderr, human)
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return
	}
	fmt.Print(human)
}

func fail(cfg *config, res any, err error) {
	pprof.StopCPUProfile()
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	if cfg.json && res != nil {
		_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"error": err.Error(), "partial": res})
	}
	os.Exit(1)
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.url, "url", "ws://127.0.0.1:8080/ws", "edge WebSocket URL (loopback only)")
	fs.StringVar(&cfg.metricsURL, "metrics-url", "", "server /metrics URL: memory in idle mode, server CPU in send mode (default: http://<url host>:9090/metrics, the metrics listener of the standalone and the edge)")
	fs.StringVar(&cfg.secret, "secret", os.Getenv("SWITCHBOARD_JWT_SECRET"), "HS256 secret of the server (default $SWITCHBOARD_JWT_SECRET)")
	fs.StringVar(&cfg.org, "org", "loadtest", "organization of the load users")
	fs.StringVar(&cfg.mode, "mode", "send", "send, react, idle or upload")
	fs.Int64Var(&cfg.fileBytes, "file-bytes", 10_000_000, "upload: bytes of each file")
	fs.StringVar(&cfg.serve, "serve", "", "send: serve the workload from this process instead of an edge at -url, for a ceiling: "+
		"raw (a trivial WebSocket broadcaster, no NATS, no Switchboard) or nats-ws (NATS clients of the nats-server WebSocket listener at -url)")
	fs.IntVar(&cfg.conns, "conns", 100, "connections, one user each")
	fs.IntVar(&cfg.rooms, "rooms", 1, "send: conversations; connection i joins room i % rooms")
	fs.IntVar(&cfg.members, "members", 0, "send: participants per conversation (default conns/rooms; more adds participants that never connect)")
	fs.Float64Var(&cfg.rate, "rate", 1000, "send: message:send per second in total, spread evenly over connections")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "send: how long to send; idle: how long to hold the connections")
	fs.IntVar(&cfg.size, "size", 64, "send: content bytes of each message (at least the 22-byte timestamp)")
	fs.Float64Var(&cfg.dialRate, "dial-rate", 2000, "connections opened per second (0: as fast as -dial-concurrency allows)")
	fs.IntVar(&cfg.dialConc, "dial-concurrency", 128, "handshakes in flight at most")
	fs.DurationVar(&cfg.drain, "drain", 15*time.Second, "send: longest wait for outstanding acks and deliveries after sending")
	fs.DurationVar(&cfg.settle, "settle", 3*time.Second, "idle: wait after the last connect before reading /metrics")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "bound on one handshake or setup command")
	fs.IntVar(&cfg.srcIPs, "src-ips", 0, "spread connections over source addresses 127.0.0.1..127.0.0.N, as many clients would be (the edge limits upgrades per address, default 100/s; "+
		"one address has ~28k ports); 0: enough for 50 upgrades/s per address")
	fs.StringVar(&cfg.userPrefix, "user-prefix", "", "user id prefix (default lg<run id>u)")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON object with all numbers on stdout (the summary goes to stderr)")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write the load generator's own CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	cfg.progress = !*quiet
	cfg.runID = runID()
	if cfg.userPrefix == "" {
		cfg.userPrefix = "lg" + cfg.runID + "u"
	}
	u, err := url.Parse(cfg.url)
	if err != nil {
		return nil, fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("-url: only ws:// on a loopback address is supported, got %q", cfg.url)
	}
	if err := checkLoopbackHost(u.Hostname()); err != nil {
		return nil, fmt.Errorf("-url: %w", err)
	}
	if cfg.metricsURL == "" {
		// The edge serves no metrics on its WebSocket listener.
		cfg.metricsURL = "http://" + net.JoinHostPort(u.Hostname(), "9090") + "/metrics"
	}
	mu, err := url.Parse(cfg.metricsURL)
	if err != nil || mu.Scheme != "http" {
		return nil, fmt.Errorf("-metrics-url: want http://<loopback host>/metrics, got %q", cfg.metricsURL)
	}
	if err := checkLoopbackHost(mu.Hostname()); err != nil {
		return nil, fmt.Errorf("-metrics-url: %w", err)
	}
	if cfg.serve != "" {
		if cfg.serve != "raw" && cfg.serve != "nats-ws" {
			return nil, fmt.Errorf("-serve: raw or nats-ws, got %q", cfg.serve)
		}
		if cfg.mode != "send" {
			return nil, errors.New("-serve is for -mode send")
		}
		if cfg.secret == "" {
			cfg.secret = "unchecked" // the ceilings do not verify tokens
		}
	}
	switch {
	case cfg.mode != "send" && cfg.mode != "react" && cfg.mode != "idle" && cfg.mode != "upload":
		return nil, fmt.Errorf("-mode: send, react, idle or upload, got %q", cfg.mode)
	case cfg.mode == "upload" && (cfg.fileBytes < 0 || cfg.rate <= 0):
		return nil, errors.New("upload: -file-bytes must not be negative and -rate must be positive")
	case cfg.secret == "":
		return nil, errors.New("-secret (or SWITCHBOARD_JWT_SECRET) is required: the server's HS256 secret")
	case cfg.conns < 1:
		return nil, errors.New("-conns must be at least 1")
	case cfg.duration <= 0:
		return nil, errors.New("-duration must be positive")
	case cfg.duration > 24*time.Hour:
		return nil, errors.New("-duration is at most 24h")
	case cfg.dialConc < 1:
		return nil, errors.New("-dial-concurrency must be at least 1")
	case cfg.dialRate < 0:
		return nil, errors.New("-dial-rate must not be negative")
	case cfg.srcIPs < 0 || cfg.srcIPs > 254:
		return nil, errors.New("-src-ips must be 0 (auto) to 254")
	case cfg.timeout <= 0:
		return nil, errors.New("-timeout must be positive")
	}
	if cfg.srcIPs == 0 {
		cfg.srcIPs = 1
		if ip := net.ParseIP(u.Hostname()); ip == nil || ip.To4() != nil { // localhost dials 127.0.0.1
			rate := cfg.dialRate
			if rate == 0 {
				rate = 10000
			}
			cfg.srcIPs = min(254, max(1, int(math.Ceil(rate/50))))
		}
	}
	if !validID(cfg.userPrefix+strconv.Itoa(cfg.conns)) || !validID(cfg.org) {
		return nil, errors.New("-org and -user-prefix must make ids of [A-Za-z0-9_-], at most 64 characters")
	}
	if cfg.mode == "send" || cfg.mode == "react" {
		switch {
		case cfg.rooms < 1 || cfg.rooms > cfg.conns:
			return nil, errors.New("-rooms must be 1 to -conns")
		case cfg.rate <= 0:
			return nil, errors.New("-rate must be positive")
		case cfg.size < 1 || cfg.size > 4096:
			return nil, errors.New("-size must be 1 to 4096")
		}
		perRoom := (cfg.conns + cfg.rooms - 1) / cfg.rooms
		if cfg.members == 0 {
			cfg.members = perRoom
		}
		if cfg.members < perRoom {
			return nil, fmt.Errorf("-members %d is less than the %d connections per room (-conns %d / -rooms %d)", cfg.members, perRoom, cfg.conns, cfg.rooms)
		}
		if cfg.members > 1000 {
			return nil, errors.New("-members is at most 1000 (the protocol's limit on participants)")
		}
	}
	cfg.tokenTTL = cfg.duration + cfg.drain + time.Duration(float64(cfg.conns)/max(cfg.dialRate, 100)*float64(time.Second)) + 30*time.Minute
	return cfg, nil
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// runID is 6 random base-36 characters: users and message ids of separate
// runs never collide.
func runID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (r *sendResult) human() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	lat := func(s LatencySummary) string {
		return fmt.Sprintf("p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms  (mean %.2f, n %d)", s.P50, s.P90, s.P99, s.Max, s.Mean, s.Count)
	}
	if r.Mode == "react" {
		p("== loadgen react: %d conns, %d rooms of %d members, %.0f message:react/s for %gs on %d messages a room (%s)", r.Conns, r.Rooms, r.Members, r.Rate, r.DurationS, seedsPerRoom, r.URL)
	} else {
		p("== loadgen send: %d conns, %d rooms of %d members, %.0f sends/s for %gs, %d-byte content (%s)", r.Conns, r.Rooms, r.Members, r.Rate, r.DurationS, r.ContentBytes, r.URL)
	}
	p("setup        %d connected in %.2fs (%.0f/s, from %d source addresses), rooms created and joined; %.2fs in all", r.Dial.Connected, r.Dial.Seconds, r.Dial.PerSecond, r.Dial.SourceIPs, r.SetupSeconds)
	if r.ServerSendRate != "" {
		p("server limit %s %s (from the session event)", map[bool]string{false: "message:send", true: "message:react"}[r.Mode == "react"], r.ServerSendRate)
	}
	p("sent         %d (%.1f/s)  write errors %d  sender lag p99 %.2f ms max %.2f ms", r.Sent, r.SentPerSec, r.WriteErrors, r.SenderLag.P99, r.SenderLag.Max)
	p("acked        %.1f/s during the run (%d); %d in all, %d duplicates, %d error replies, %d unanswered", r.AckedPerSec, r.AckedInWindow, r.Acked, r.DuplicateAcks, r.ErrorReplies, r.Unanswered)
	p("ack latency  %s", lat(r.AckLatency))
	p("errors       %s", fmtCounts(r.Errors))
	p("delivered    %.1f/s during the run (%d); %d in all, expected %d", r.DeliveredPerSec, r.DeliveredInWindow, r.Delivered, r.ExpectedDeliveries)
	p("per member   missing %d (members short %d, of them closed %d, worst %d)  extra %d  seq gaps %d  reordered/dup %d",
		r.Missing, r.MembersShort, r.MembersShortClosed, r.MaxMissingPerMember, r.Extra, r.Gaps, r.Reorders)
	p("e2e latency  %s", lat(r.E2ELatency))
	others := "?"
	if r.MachineCPUCores >= 0 && r.ServerCPUCores >= 0 {
		others = fmt.Sprintf("%.2f", max(0, r.MachineCPUCores-r.LoadgenCPUCores-r.ServerCPUCores))
	}
	p("cpu          load generator %.2f cores, server %.2f, other processes %s (machine %.2f of %d) during the run",
		r.LoadgenCPUCores, r.ServerCPUCores, others, r.MachineCPUCores, runtime.NumCPU())
	p("server closes %s  other events %s  drain %.2fs", fmtCounts(r.ServerCloses), fmtCounts(r.OtherEvents), r.DrainSeconds)
	for k, v := range r.CloseReasons {
		p("  close %s: %s", k, v)
	}
	for _, k := range sortedKeys(r.ErrorSamples) {
		p("  sample %s: %s", k, r.ErrorSamples[k])
	}
	if r.SlowParses > 0 {
		p("note: %d frames did not have the expected shape and were decoded with encoding/json", r.SlowParses)
	}
	for _, n := range r.Notes {
		p("NOTE: %s", n)
	}
	return b.String()
}

func (r *idleResult) human() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	kib := func(v float64) string { return fmt.Sprintf("%.2f KiB", v/1024) }
	p("== loadgen idle: %d conns at %.0f/s, held %gs (%s; metrics %s)", r.Conns, r.DialRate, r.DurationS, r.URL, r.MetricsURL)
	p("open files   limit %d (hard %d)", r.FileLimitSoft, r.FileLimitHard)
	p("connected    %d of %d in %.1fs (%.0f/s, from %d source addresses), failed %d %s", r.Dial.Connected, r.Dial.Attempted, r.Dial.Seconds, r.Dial.PerSecond, r.Dial.SourceIPs, r.Dial.Failed, fmtCounts(r.Dial.Errors))
	p("alive at end %d; server closes %s", r.AliveAtEnd, fmtCounts(r.ServerCloses))
	m := func(name string) string {
		return fmt.Sprintf("%-32s before %14.0f  after %14.0f  end %14.0f", name, r.Before[name], r.After[name], r.End[name])
	}
	for _, name := range memMetrics {
		p("%s", m(name))
	}
	p("per idle connection (after connecting): RSS %s  heap in use %s  stack in use %s  go sys %s  goroutines %.2f",
		kib(r.RSSPerConn), kib(r.HeapInusePerConn), kib(r.StackInusePerConn), kib(r.SysPerConn), r.GoroutinesPerConn)
	p("per idle connection (end of hold):      RSS %s  heap in use %s", kib(r.RSSPerConnEnd), kib(r.HeapInusePerConnEnd))
	p("server CPU while holding them: %.3f cores", r.ServerCPUIdle)
	p("load generator's own heap+stack per connection: %s", kib(r.LoadgenBytesPerConn))
	for _, n := range r.Notes {
		p("NOTE: %s", n)
	}
	return b.String()
}
