package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// sendResult is everything a send run measured.
type sendResult struct {
	Mode           string  `json:"mode"`
	Serve          string  `json:"serve,omitempty"` // raw or nats-ws: served by this process
	URL            string  `json:"url"`
	Org            string  `json:"org"`
	Conns          int     `json:"conns"`
	Rooms          int     `json:"rooms"`
	Members        int     `json:"members"`
	Rate           float64 `json:"rate"`
	DurationS      float64 `json:"duration_s"`
	ContentBytes   int     `json:"content_bytes"`
	FileLimitSoft  uint64  `json:"file_limit_soft"`
	FileLimitHard  uint64  `json:"file_limit_hard"`
	ServerSendRate string  `json:"server_send_limit,omitempty"` // from the session event
	sendCap        float64
	sendRefill     float64

	Dial         dialResult `json:"dial"`
	SetupSeconds float64    `json:"setup_s"`

	Sent        int64          `json:"sent"`
	SentPerSec  float64        `json:"sent_per_s"`
	WriteErrors int64          `json:"write_errors"`
	SenderLag   LatencySummary `json:"sender_lag"`

	Acked         int64          `json:"acked"`
	AckedInWindow int64          `json:"acked_in_window"`
	AckedPerSec   float64        `json:"acked_per_s"`
	DuplicateAcks int64          `json:"duplicate_acks"`
	ErrorReplies  int64          `json:"error_replies"`
	Unanswered    int64          `json:"unanswered"`
	AckLatency    LatencySummary `json:"ack_latency"`

	Errors       map[string]int64  `json:"errors"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	RateLimited  int64             `json:"rate_limited"`

	Delivered           int64          `json:"delivered"`
	DeliveredInWindow   int64          `json:"delivered_in_window"`
	DeliveredPerSec     float64        `json:"delivered_per_s"`
	ExpectedDeliveries  int64          `json:"expected_deliveries"`
	Missing             int64          `json:"missing"`
	MembersShort        int            `json:"members_short"`
	MembersShortClosed  int            `json:"members_short_closed"`
	MaxMissingPerMember int64          `json:"max_missing_per_member"`
	Extra               int64          `json:"extra"`
	Gaps                int64          `json:"seq_gaps"`
	Reorders            int64          `json:"seq_reorders"`
	Foreign             int64          `json:"foreign_messages"`
	E2ELatency          LatencySummary `json:"e2e_latency"`

	// CPU used during the sending window, in cores (CPU seconds per
	// second): this process's, and the server's from its /metrics
	// process_cpu_seconds_total (-1 when it could not be read).
	LoadgenCPUCores float64 `json:"loadgen_cpu_cores"`
	ServerCPUCores  float64 `json:"server_cpu_cores"`
	// MachineCPUCores is the whole machine's busy CPU (from /proc/stat;
	// -1 elsewhere): what is left after the two above is other processes
	// competing for the same cores.
	MachineCPUCores float64 `json:"machine_cpu_cores"`

	DrainSeconds float64           `json:"drain_s"`
	ServerCloses map[string]int64  `json:"server_closes"`
	CloseReasons map[string]string `json:"close_reasons,omitempty"`
	OtherEvents  map[string]int64  `json:"other_events"`
	SlowParses   int64             `json:"slow_parses"`
	Timeline     []tick            `json:"timeline"`
	Notes        []string          `json:"notes,omitempty"`
}

// tick is one second of a run: counts during that second.
type tick struct {
	T         int   `json:"t"`
	Sent      int64 `json:"sent"`
	Acked     int64 `json:"acked"`
	Errors    int64 `json:"errors"`
	Delivered int64 `json:"delivered"`
}

func runSend(cfg *config, d *dialer) (*sendResult, error) {
	res := &sendResult{
		Mode: cfg.mode, URL: cfg.url, Org: cfg.org, Conns: cfg.conns, Rooms: cfg.rooms, Members: cfg.members,
		Rate: cfg.rate, DurationS: cfg.duration.Seconds(), ContentBytes: cfg.size,
	}
	st := newStats()
	r := &run{st: st, roomAcked: make([]atomic.Int64, cfg.rooms), react: cfg.mode == "react"}
	setupStart := time.Now()

	// Connect every user.
	conns, dr := dialAll(d, r, cfg.conns, cfg.user, cfg.dialRate, cfg.dialConc, cfg.progress)
	res.Dial = dr
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	if dr.Failed > 0 {
		err := fmt.Errorf("%d of %d connections failed: %s", dr.Failed, dr.Attempted, fmtCounts(dr.Errors))
		if dr.Hint != "" {
			err = fmt.Errorf("%w (%s)", err, dr.Hint)
		}
		return res, err
	}
	limited := "message:send"
	if r.react {
		limited = "message:react"
	}
	res.ServerSendRate, res.sendCap, res.sendRefill = sendLimit(r.firstSess, limited)

	// Rooms: connection i is in room i % rooms; the first is the creator.
	members := make([][]*wsConn, cfg.rooms)
	for i, c := range conns {
		c.room = i % cfg.rooms
		members[c.room] = append(members[c.room], c)
	}
	convs := make([]string, cfg.rooms)
	if err := parallel(cfg.rooms, 64, func(ri int) error {
		ms := members[ri]
		parts := make([]string, 0, cfg.members)
		for _, c := range ms[1:] {
			parts = append(parts, c.user)
		}
		for j := len(ms); j < cfg.members; j++ {
			parts = append(parts, fmt.Sprintf("%soff%d-%d", cfg.userPrefix, ri, j)) // participants never connected
		}
		id := "c-" + strconv.Itoa(ri)
		payload, _ := json.Marshal(map[string]any{"id": id, "type": "conversation:create",
			"data": map[string]any{"participants": parts, "title": fmt.Sprintf("loadgen %s room %d", cfg.runID, ri)}})
		p, err := ms[0].request(id, payload, cfg.timeout)
		if err != nil {
			return fmt.Errorf("conversation:create by %s: %w", ms[0].user, err)
		}
		var reply struct {
			Type string `json:"type"`
			Data struct {
				ConversationID string `json:"conversationId"`
			} `json:"data"`
		}
		if err := json.Unmarshal(p, &reply); err != nil || reply.Type != "ack" || reply.Data.ConversationID == "" {
			return fmt.Errorf("conversation:create by %s: got %s", ms[0].user, p)
		}
		convs[ri] = reply.Data.ConversationID
		return nil
	}); err != nil {
		return res, err
	}
	if err := parallel(len(conns), 128, func(i int) error {
		c := conns[i]
		id := "j-" + strconv.Itoa(i)
		payload, _ := json.Marshal(map[string]any{"id": id, "type": "conversation:join",
			"data": map[string]any{"conversationId": convs[c.room]}})
		p, err := c.request(id, payload, cfg.timeout)
		if err != nil {
			return fmt.Errorf("conversation:join by %s: %w", c.user, err)
		}
		if _, typ, _ := envelope(p); string(typ) != "ack" {
			return fmt.Errorf("conversation:join by %s: got %s", c.user, p)
		}
		return nil
	}); err != nil {
		return res, err
	}
	var seeds [][]string
	if r.react {
		var err error
		if seeds, err = seedMessages(members, convs, cfg); err != nil {
			return res, err
		}
	}
	res.SetupSeconds = time.Since(setupStart).Seconds()
	if cfg.progress {
		fmt.Fprintf(os.Stderr, "  setup: %d connected, %d rooms created and joined in %.2fs; sending for %s\n",
			len(conns), cfg.rooms, res.SetupSeconds, cfg.duration)
	}

	// Send, open-loop: connection i sends at start + i/rate + k*conns/rate.
	start := time.Now().Add(100 * time.Millisecond)
	end := start.Add(cfg.duration)
	interval := float64(cfg.conns) / cfg.rate * 1e9
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		offset := float64(i) / cfg.rate * 1e9
		go func() {
			defer wg.Done()
			if r.react {
				c.reactLoop(convs[c.room], seeds[c.room], cfg, start, end, offset, interval)
				return
			}
			c.sendLoop(convs[c.room], cfg, start, end, offset, interval)
		}()
	}
	var prev tick
	snap := func(t int) tick {
		return tick{T: t, Sent: st.sent.Load(), Acked: st.acked.Load(), Errors: st.replyErrs.Load(), Delivered: st.delivered.Load()}
	}
	time.Sleep(time.Until(start))
	cpu0, srvCPU0, mach0 := selfCPU(), serverCPU(cfg.metricsURL), readProcStat()
	for t := 1; ; t++ {
		at := start.Add(time.Duration(t) * time.Second)
		if at.After(end) {
			at = end
		}
		time.Sleep(time.Until(at))
		cur := snap(t)
		d := tick{T: t, Sent: cur.Sent - prev.Sent, Acked: cur.Acked - prev.Acked, Errors: cur.Errors - prev.Errors, Delivered: cur.Delivered - prev.Delivered}
		res.Timeline = append(res.Timeline, d)
		if cfg.progress {
			fmt.Fprintf(os.Stderr, "  [%3ds] sent %6d acked %6d errors %5d delivered %8d  in flight %d\n",
				t, d.Sent, d.Acked, d.Errors, d.Delivered, cur.Sent-cur.Acked-cur.Errors)
		}
		prev = cur
		if !at.Before(end) {
			break
		}
	}
	res.LoadgenCPUCores = (selfCPU() - cpu0) / cfg.duration.Seconds()
	res.ServerCPUCores = -1
	res.MachineCPUCores = machineCores(mach0, readProcStat())
	if srvCPU1 := serverCPU(cfg.metricsURL); srvCPU0 >= 0 && srvCPU1 >= 0 {
		res.ServerCPUCores = (srvCPU1 - srvCPU0) / cfg.duration.Seconds()
	}
	res.AckedInWindow = prev.Acked
	res.DeliveredInWindow = prev.Delivered
	wg.Wait()

	// Drain: wait for outstanding acks and deliveries, until nothing moves
	// for 3 s or the drain limit.
	expected := func() int64 {
		var n int64
		for _, c := range conns {
			n += r.roomAcked[c.room].Load()
		}
		return n
	}
	res.DrainSeconds = drain(cfg.drain, func() (int64, bool) {
		answered := st.acked.Load() + st.replyErrs.Load()
		del := st.delivered.Load()
		return answered + del, answered >= st.sent.Load() && del >= expected()
	})

	// Totals.
	secs := cfg.duration.Seconds()
	res.Sent = st.sent.Load()
	res.SentPerSec = float64(res.Sent) / secs
	res.WriteErrors = st.writeErrs.Load()
	res.SenderLag = st.lag.Summary()
	res.Acked = st.acked.Load()
	res.AckedPerSec = float64(res.AckedInWindow) / secs
	res.DuplicateAcks = st.dupAcks.Load()
	res.ErrorReplies = st.replyErrs.Load()
	res.Unanswered = res.Sent - res.Acked - res.ErrorReplies
	res.AckLatency = st.ackLat.Summary()
	res.Delivered = st.delivered.Load()
	res.DeliveredPerSec = float64(res.DeliveredInWindow) / secs
	res.E2ELatency = st.e2eLat.Summary()
	res.Gaps, res.Reorders, res.Foreign = st.gaps.Load(), st.reorders.Load(), st.foreign.Load()
	res.SlowParses = st.slowParses.Load()
	for _, c := range conns {
		exp := r.roomAcked[c.room].Load()
		got := c.delivered.Load()
		res.ExpectedDeliveries += exp
		switch {
		case got < exp:
			res.Missing += exp - got
			res.MembersShort++
			if !c.alive() {
				res.MembersShortClosed++
			}
			res.MaxMissingPerMember = max(res.MaxMissingPerMember, exp-got)
		case got > exp:
			res.Extra += got - exp
		}
	}
	st.mu.Lock()
	res.Errors = copyMap(st.errs)
	res.ErrorSamples = map[string]string{}
	for k, v := range st.errMsgs {
		res.ErrorSamples[k] = v
	}
	for k, v := range st.errs {
		if len(k) >= len("rate-limit-exceeded") && k[:len("rate-limit-exceeded")] == "rate-limit-exceeded" {
			res.RateLimited += v
		}
	}
	res.OtherEvents = copyMap(st.events)
	res.ServerCloses, res.CloseReasons = closeMaps(st)
	st.mu.Unlock()
	res.Notes = sendNotes(cfg, res)
	return res, nil
}

func (c *wsConn) sendLoop(conv string, cfg *config, start, end time.Time, offset, interval float64) {
	st := c.r.st
	buf := make([]byte, 0, 256+cfg.size)
	pace(st, start, end, offset, interval, func(k int, now time.Time) bool {
		ts := now.UnixNano()
		buf = append(buf[:0], `{"id":"s`...)
		buf = strconv.AppendInt(buf, ts, 10)
		buf = append(buf, `","type":"message:send","data":{"conversationId":"`...)
		buf = append(buf, conv...)
		buf = append(buf, `","content":"t=`...)
		content := len(buf)
		buf = strconv.AppendInt(buf, ts, 10)
		buf = append(buf, ';')
		for len(buf)-content+2 < cfg.size {
			buf = append(buf, 'x')
		}
		buf = append(buf, `","clientMsgId":"`...)
		buf = append(buf, cfg.userPrefix...)
		buf = strconv.AppendInt(buf, int64(c.idx), 10)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, int64(k), 10)
		buf = append(buf, `"}}`...)
		if err := c.writeFrame(ws.OpText, buf); err != nil {
			st.writeErrs.Add(1)
			return false
		}
		st.sent.Add(1)
		return true
	})
}

// sendLimit is the limit of command the session event advertises.
func sendLimit(session []byte, command string) (desc string, capacity, refill float64) {
	var s struct {
		Data struct {
			Limits map[string]struct {
				Capacity        float64 `json:"capacity"`
				RefillPerSecond float64 `json:"refillPerSecond"`
			} `json:"limits"`
		} `json:"data"`
	}
	if json.Unmarshal(session, &s) != nil {
		return "", 0, 0
	}
	l, ok := s.Data.Limits[command]
	if !ok {
		return "", 0, 0
	}
	return fmt.Sprintf("capacity %.4g, refill %.4g/s per user", l.Capacity, l.RefillPerSecond), l.Capacity, l.RefillPerSecond
}

func sendNotes(cfg *config, res *sendResult) []string {
	var notes []string
	if res.RateLimited > 0 {
		notes = append(notes, fmt.Sprintf("%d sends were refused with rate-limit-exceeded: the server's per-user limits are too low for a load run; "+
			"start it with SWITCHBOARD_LIMITS='message:send=1000000/1000s,default=1000000/1000s' (or similar)", res.RateLimited))
	}
	perUser := float64(res.Sent) / float64(max(res.Conns, 1))
	if allowed := res.sendCap + res.sendRefill*res.DurationS; res.ServerSendRate != "" && res.RateLimited == 0 && perUser > 1.5*allowed+1 {
		notes = append(notes, fmt.Sprintf("the session event advertises message:send %s, which allows about %.0f sends per user in this run, "+
			"but each user sent %.0f and none was refused: the advertised limit is not enforced", res.ServerSendRate, allowed, perUser))
	}
	if res.Unanswered > 0 {
		notes = append(notes, fmt.Sprintf("%d sends got no reply within the drain time", res.Unanswered))
	}
	if res.Missing > 0 {
		notes = append(notes, fmt.Sprintf("%d deliveries missing: %d members got fewer message:new than their room's acked sends (%d of them were closed by the server)",
			res.Missing, res.MembersShort, res.MembersShortClosed))
	}
	if p99 := res.SenderLag.P99; p99 > 5 {
		notes = append(notes, fmt.Sprintf("the sender ran late (lag p99 %.1f ms): the load generator did not get a CPU in time (see the cpu line), so the offered load was burstier than the schedule", p99))
	}
	return notes
}

// selfCPU is this process's user and system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// procStat is the first line of /proc/stat: busy and total jiffies over
// all CPUs.
type procStat struct{ busy, total uint64 }

func readProcStat() *procStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return nil
	}
	var ps procStat
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil
		}
		ps.total += v
		if i != 3 && i != 4 { // idle, iowait
			ps.busy += v
		}
	}
	return &ps
}

// machineCores is how many cores were busy between two readings.
func machineCores(a, b *procStat) float64 {
	if a == nil || b == nil || b.total <= a.total {
		return -1
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total) * float64(runtime.NumCPU())
}

// serverCPU is the server's process_cpu_seconds_total, or -1.
func serverCPU(metricsURL string) float64 {
	m, err := fetchMetrics(metricsURL, []string{"process_cpu_seconds_total"})
	if err != nil {
		return -1
	}
	v, ok := m["process_cpu_seconds_total"]
	if !ok {
		return -1
	}
	return v
}

// parallel runs f(0..n-1) with at most conc at once and returns the first
// error.
func parallel(n, conc int, f func(int) error) error {
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	return first
}

func copyMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func closeMaps(st *stats) (map[string]int64, map[string]string) {
	codes := map[string]int64{}
	why := map[string]string{}
	for code, n := range st.closes {
		k := strconv.Itoa(code)
		if code == -1 {
			k = "lost (no close frame)"
		}
		codes[k] = n
		if w := st.closeWhy[code]; w != "" {
			why[k] = w
		}
	}
	return codes, why
}

// drain waits, after the sending stopped, until state says everything
// arrived, until its progress count has not moved for 3 s, or for at most
// limit; it returns how long it waited in seconds.
func drain(limit time.Duration, state func() (progress int64, done bool)) float64 {
	start := time.Now()
	last, lastChange := int64(-1), time.Now()
	for time.Since(start) < limit {
		progress, done := state()
		if done {
			break
		}
		if progress != last {
			last, lastChange = progress, time.Now()
		} else if time.Since(lastChange) > 3*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start).Seconds()
}

// pace calls step for k = 0, 1, … at start + offset + k·interval until
// end, recording how late each call came (st.lag); a step that returns
// false ends it. One schedule for every mode that sends at a rate.
func pace(st *stats, start, end time.Time, offset, interval float64, step func(k int, now time.Time) bool) {
	for k := 0; ; k++ {
		due := start.Add(time.Duration(offset + float64(k)*interval))
		if !due.Before(end) {
			return
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		now := time.Now()
		st.lag.Record(int64(now.Sub(due)))
		if !step(k, now) {
			return
		}
	}
}
