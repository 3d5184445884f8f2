package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// -serve nats-ws: the same fan-out through nats-server's own WebSocket
// listener, what a user would pick to skip the gateway. -url is a
// nats-server's WebSocket listener on loopback (websocket { no_tls: true });
// make bench-compare starts one. Every member is a nats.go client over
// ws://, subscribed to its room's subject, and publishes the same payload (a
// message:new frame's JSON, with the send time in its content) on the same
// schedule as a send run. There is no ack, no store and no order across
// publishers: sends are counted as published, deliveries and their latency
// as in a send run. (The load generator does not link nats-server: only the
// standalone binary does.)

// natsWSRun is the state of one nats-ws run.
type natsWSRun struct {
	st       *stats
	sent     []atomic.Int64 // published per room
	received []atomic.Int64 // per connection
}

func runNATSWS(cfg *config) (*sendResult, error) {
	res := &sendResult{
		Mode: "send", Serve: "nats-ws", Org: cfg.org, Conns: cfg.conns, Rooms: cfg.rooms, Members: cfg.members,
		Rate: cfg.rate, DurationS: cfg.duration.Seconds(), ContentBytes: cfg.size,
	}
	url := cfg.url
	res.URL = url
	st := newStats()
	r := &natsWSRun{st: st, sent: make([]atomic.Int64, cfg.rooms), received: make([]atomic.Int64, cfg.conns)}
	setupStart := time.Now()

	conns := make([]*nats.Conn, cfg.conns)
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	subject := func(room int) string { return "lg." + cfg.runID + ".room." + strconv.Itoa(room) }
	var failed atomic.Int64
	err := parallel(cfg.conns, cfg.dialConc, func(i int) error {
		if cfg.dialRate > 0 {
			if d := time.Until(setupStart.Add(time.Duration(float64(i) / cfg.dialRate * 1e9))); d > 0 {
				time.Sleep(d)
			}
		}
		nc, err := nats.Connect(url, nats.NoReconnect(), nats.Timeout(cfg.timeout), nats.Name(cfg.user(i)))
		if err != nil {
			failed.Add(1)
			return fmt.Errorf("connect %d: %w", i, err)
		}
		conns[i] = nc
		sub, err := nc.Subscribe(subject(i%cfg.rooms), func(m *nats.Msg) { r.receive(i, m.Data) })
		if err != nil {
			return err
		}
		_ = sub.SetPendingLimits(-1, -1)
		return nc.Flush()
	})
	res.Dial = dialResult{Attempted: cfg.conns, Connected: cfg.conns - int(failed.Load()), Failed: int(failed.Load()), SourceIPs: 1}
	if secs := time.Since(setupStart).Seconds(); secs > 0 {
		res.Dial.PerSecond = float64(res.Dial.Connected) / secs
	}
	if err != nil {
		return res, err
	}
	res.SetupSeconds = time.Since(setupStart).Seconds()
	res.Dial.Seconds = res.SetupSeconds
	if cfg.progress {
		fmt.Fprintf(os.Stderr, "  setup: %d NATS WebSocket clients subscribed in %.2fs; publishing for %s\n", cfg.conns, res.SetupSeconds, cfg.duration)
	}

	start := time.Now().Add(100 * time.Millisecond)
	end := start.Add(cfg.duration)
	interval := float64(cfg.conns) / cfg.rate * 1e9
	var wg sync.WaitGroup
	for i, nc := range conns {
		wg.Add(1)
		offset := float64(i) / cfg.rate * 1e9
		go func() {
			defer wg.Done()
			r.publishLoop(nc, i, subject(i%cfg.rooms), cfg, start, end, offset, interval)
		}()
	}
	time.Sleep(time.Until(start))
	cpu0, mach0 := selfCPU(), readProcStat()
	var prevSent, prevDel int64
	for t := 1; ; t++ {
		at := start.Add(time.Duration(t) * time.Second)
		if at.After(end) {
			at = end
		}
		time.Sleep(time.Until(at))
		s, d := st.sent.Load(), st.delivered.Load()
		res.Timeline = append(res.Timeline, tick{T: t, Sent: s - prevSent, Acked: s - prevSent, Delivered: d - prevDel})
		if cfg.progress {
			fmt.Fprintf(os.Stderr, "  [%3ds] published %6d delivered %8d\n", t, s-prevSent, d-prevDel)
		}
		prevSent, prevDel = s, d
		if !at.Before(end) {
			break
		}
	}
	res.LoadgenCPUCores = (selfCPU() - cpu0) / cfg.duration.Seconds()
	res.ServerCPUCores = -1
	res.MachineCPUCores = machineCores(mach0, readProcStat())
	res.AckedInWindow, res.DeliveredInWindow = prevSent, prevDel
	wg.Wait()

	expected := func() int64 {
		var n int64
		for i := range conns {
			n += r.sent[i%cfg.rooms].Load()
		}
		return n
	}
	res.DrainSeconds = drain(cfg.drain, func() (int64, bool) {
		del := st.delivered.Load()
		return del, del >= expected()
	})

	secs := cfg.duration.Seconds()
	res.Sent = st.sent.Load()
	res.SentPerSec = float64(res.Sent) / secs
	res.WriteErrors = st.writeErrs.Load()
	res.SenderLag = st.lag.Summary()
	res.Acked = res.Sent
	res.AckedPerSec = float64(res.AckedInWindow) / secs
	res.Delivered = st.delivered.Load()
	res.DeliveredPerSec = float64(res.DeliveredInWindow) / secs
	res.E2ELatency = st.e2eLat.Summary()
	res.Foreign = st.foreign.Load()
	for i := range conns {
		exp, got := r.sent[i%cfg.rooms].Load(), r.received[i].Load()
		res.ExpectedDeliveries += exp
		switch {
		case got < exp:
			res.Missing += exp - got
			res.MembersShort++
			res.MaxMissingPerMember = max(res.MaxMissingPerMember, exp-got)
		case got > exp:
			res.Extra += got - exp
		}
	}
	res.Errors, res.ServerCloses, res.OtherEvents = map[string]int64{}, map[string]int64{}, map[string]int64{}
	res.Notes = append(sendNotes(cfg, res), "nats-ws: plain NATS publish/subscribe over nats-server's WebSocket listener: no acks, no store, no order across publishers")
	return res, nil
}

// receive counts one delivered payload of connection i.
func (r *natsWSRun) receive(i int, p []byte) {
	now := time.Now().UnixNano()
	r.received[i].Add(1)
	r.st.delivered.Add(1)
	if ts, ok := sendTime(p); ok {
		r.st.e2eLat.Record(now - ts)
	} else {
		r.st.foreign.Add(1)
	}
}

// publishLoop publishes connection i's messages on the send run's
// schedule; each payload is shaped like the edge's message:new frame.
func (r *natsWSRun) publishLoop(nc *nats.Conn, i int, subject string, cfg *config, start, end time.Time, offset, interval float64) {
	st := r.st
	room := i % cfg.rooms
	user := cfg.user(i)
	buf := make([]byte, 0, 512+cfg.size)
	pace(st, start, end, offset, interval, func(k int, now time.Time) bool {
		seq := r.sent[room].Add(1)
		buf = messageNewJSON(buf[:0], "01JD0000000000000000000000", uint64(seq), user, now.UnixNano(), cfg.size, cfg.userPrefix, i, k)
		if err := nc.Publish(subject, buf); err != nil {
			r.sent[room].Add(-1)
			st.writeErrs.Add(1)
			return false
		}
		st.sent.Add(1)
		return true
	})
}

// messageNewJSON appends a message:new event's JSON as the edge renders it.
func messageNewJSON(b []byte, conv string, seq uint64, user string, ts int64, size int, prefix string, i, k int) []byte {
	b = append(b, `{"type":"message:new","data":{"conversationId":"`...)
	b = append(b, conv...)
	b = append(b, `","messageId":"01JD0000000000000000000000","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"prevSeq":`...)
	b = strconv.AppendUint(b, seq-1, 10)
	b = append(b, `,"senderId":"`...)
	b = append(b, user...)
	b = append(b, `","content":"t=`...)
	content := len(b) - 2
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, ';')
	for len(b)-content < size {
		b = append(b, 'x')
	}
	b = append(b, `","clientMsgId":"`...)
	b = append(b, prefix...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, `","createdAt":"2026-12-01T00:00:00.000Z"}}`...)
	return b
}
