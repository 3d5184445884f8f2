package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/kit/devtoken"
)

// phaseConfig is one run of the workload with one fault in its middle.
type phaseConfig struct {
	name    string
	urls    []string // edges' WebSocket URLs; members spread over them
	secret  string
	convs   int
	sockets int
	rate    float64       // sends per second, in total
	warmup  time.Duration // sends before the fault starts
	sendFor time.Duration // how long the pacer hands out sends
	settle  time.Duration // after the pacer, how long sends may take to be acked
	bound   time.Duration // the longest interruption allowed
	fault   func(ctx context.Context) error
}

// phase is a running phaseConfig.
type phase struct {
	phaseConfig
	org         string
	led         *ledger
	members     []*member
	sendTimeout time.Duration
	reconnects  atomic.Int64
	gaps        atomic.Int64
	skipped     atomic.Int64 // sends not handed out: the member's queue was full
	outstanding atomic.Int64 // sends handed out and not finished (acked or given up)
}

// phaseResult is a phase's row of the table.
type phaseResult struct {
	Name       string        `json:"name"`
	Tally      tally         `json:"tally"`
	Bound      time.Duration `json:"bound_ns"`
	Reconnects int64         `json:"reconnects"`
	Gaps       int64         `json:"gaps"`
	Skipped    int64         `json:"skipped"`
	FaultErr   string        `json:"fault_error,omitempty"`
	Failures   []string      `json:"failures,omitempty"`
}

func (p *phase) token(user string) string {
	return devtoken.Mint([]byte(p.secret), p.org, user, 2*time.Hour)
}

// runPhase runs the workload and the fault and checks every ack against
// history.
func runPhase(cfg phaseConfig, runID string) (phaseResult, error) {
	p := &phase{phaseConfig: cfg, org: "faults", led: newLedger(), sendTimeout: 10 * time.Second}
	res := phaseResult{Name: cfg.name, Bound: cfg.bound}
	prefix := runID + "-" + cfg.name
	for i := range cfg.sockets {
		p.members = append(p.members, newMember(p, i, prefix+"-u"+strconv.Itoa(i), i%cfg.convs))
	}
	firsts, err := p.dialAll()
	if err != nil {
		return res, err
	}
	if err := p.createConvs(firsts); err != nil {
		return res, err
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	sendCtx, stopSend := context.WithCancel(runCtx)
	var wg sync.WaitGroup
	for i, m := range p.members {
		wg.Add(2)
		go func() { defer wg.Done(); m.run(runCtx, firsts[i]) }()
		go func() { defer wg.Done(); m.sender(sendCtx) }()
	}
	defer func() { stopRun(); wg.Wait() }()
	if err := p.waitJoined(runCtx, 30*time.Second); err != nil {
		stopSend()
		return res, err
	}
	faultDone := make(chan error, 1)
	go func() {
		time.Sleep(cfg.warmup)
		if cfg.fault == nil {
			faultDone <- nil
			return
		}
		logf("%s: fault starts", cfg.name)
		faultDone <- cfg.fault(runCtx)
		logf("%s: fault over", cfg.name)
	}()
	go p.background(sendCtx)
	p.pace(sendCtx)
	if ferr := <-faultDone; ferr != nil {
		res.FaultErr = ferr.Error()
	}
	p.waitAcked(cfg.settle)
	for _, m := range p.members {
		if st := m.stuck(); st != "" {
			logf("%s: stuck: %s", cfg.name, st)
		}
	}
	stopSend()
	time.Sleep(3 * time.Second) // deliveries in flight reach the members
	history, err := p.history(runCtx)
	if err != nil {
		return res, err
	}
	res.Tally = p.led.tally(history, p.memberSlots())
	res.Reconnects, res.Gaps, res.Skipped = p.reconnects.Load(), p.gaps.Load(), p.skipped.Load()
	res.Failures = verdict(res)
	return res, nil
}

// dialAll opens every member's first socket.
func (p *phase) dialAll() ([]*wsConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := make([]*wsConn, len(p.members))
	for i, m := range p.members {
		c, err := m.connect(ctx)
		if err != nil {
			for _, c := range out[:i] {
				c.close()
			}
			return nil, fmt.Errorf("dial member %d: %w", i, err)
		}
		out[i] = c
	}
	return out, nil
}

// createConvs creates the conversations, each by its first member.
func (p *phase) createConvs(firsts []*wsConn) error {
	for k := range p.convs {
		var users []string
		for _, m := range p.members {
			if m.conv == k {
				users = append(users, m.user)
			}
		}
		id, err := createConv(firsts[k], users)
		if err != nil {
			return fmt.Errorf("create conversation %d: %w", k, err)
		}
		for _, m := range p.members {
			if m.conv == k {
				m.convID = id
			}
		}
	}
	return nil
}

func createConv(c *wsConn, users []string) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		raw, err := c.request("conversation:create", map[string]any{"participants": users}, 10*time.Second)
		if err == nil {
			var a struct {
				ConversationID string `json:"conversationId"`
			}
			if err := json.Unmarshal(raw, &a); err != nil {
				return "", err
			}
			return a.ConversationID, nil
		}
		if time.Now().After(deadline) || !c.alive() {
			return "", err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (p *phase) waitJoined(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for _, m := range p.members {
		if _, err := m.current(ctx); err != nil {
			return fmt.Errorf("member %d did not join: %w", m.slot, err)
		}
	}
	return nil
}

// pace hands out sends at the configured rate, round robin over members.
func (p *phase) pace(ctx context.Context) {
	start := time.Now()
	n := int(p.rate * p.sendFor.Seconds())
	for i := range n {
		if d := time.Until(start.Add(time.Duration(float64(i) / p.rate * float64(time.Second)))); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		m := p.members[i%len(p.members)]
		p.outstanding.Add(1)
		select {
		case m.jobs <- p.name + "-" + strconv.Itoa(i):
		default:
			p.outstanding.Add(-1)
			p.skipped.Add(1)
		}
	}
}

// background sends presence queries and typing once a second, counting
// their errors: what a fault does to the other commands.
func (p *phase) background(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := p.members[i%len(p.members)]
		c, err := m.current(ctx)
		if err != nil {
			return
		}
		go func() {
			if _, err := c.request("presence:query", map[string]any{"userIds": []string{m.user}}, 10*time.Second); err != nil {
				p.led.otherError("presence:query", codeOf(err))
			}
			if _, err := c.request("message:typing", map[string]any{"conversationId": m.convID, "isTyping": true}, 10*time.Second); err != nil {
				p.led.otherError("message:typing", codeOf(err))
			}
		}()
	}
}

// waitAcked waits until no send is waiting for its ack, at most d.
func (p *phase) waitAcked(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if p.outstanding.Load() == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *phase) memberSlots() map[int][]int {
	out := map[int][]int{}
	for _, m := range p.members {
		out[m.conv] = append(out[m.conv], m.slot)
	}
	return out
}

// history pages every conversation's history from the start, as its
// first member.
func (p *phase) history(ctx context.Context) ([]histRec, error) {
	var out []histRec
	for k := range p.convs {
		recs, err := p.convHistory(ctx, p.members[k])
		if err != nil {
			return nil, fmt.Errorf("history of conversation %d: %w", k, err)
		}
		out = append(out, recs...)
	}
	return out, nil
}

func (p *phase) convHistory(ctx context.Context, m *member) ([]histRec, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var out []histRec
	var after uint64
	for {
		c, err := m.current(ctx)
		if err != nil {
			return nil, err
		}
		raw, err := c.request("conversation:history", map[string]any{"conversationId": m.convID, "afterSeq": after, "limit": 200}, 10*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return nil, errors.Join(err, ctx.Err())
			}
			time.Sleep(500 * time.Millisecond)
			continue
		}
		var h historyAck
		if err := json.Unmarshal(raw, &h); err != nil {
			return nil, err
		}
		for _, f := range h.Events {
			var e eventData
			if json.Unmarshal(f.Data, &e) != nil {
				continue
			}
			if e.Seq > after {
				after = e.Seq
			}
			if f.Type == "message:new" {
				out = append(out, histRec{conv: m.conv, seq: e.Seq, messageID: e.MessageID, clientMsgID: e.ClientMsgID})
			}
		}
		if !h.HasMore || len(h.Events) == 0 {
			return out, nil
		}
	}
}

// verdict lists why a phase fails: anything acked lost or seen twice, a
// stored send answered with neither success nor unavailable, a send never
// acked, or an interruption past the bound.
func verdict(r phaseResult) []string {
	t := r.Tally
	var f []string
	if t.Lost > 0 {
		f = append(f, fmt.Sprintf("%d acknowledged messages lost", t.Lost))
	}
	if t.dups() > 0 {
		f = append(f, fmt.Sprintf("%d duplicates to the application", t.dups()))
	}
	if t.Undelivered > 0 {
		f = append(f, fmt.Sprintf("%d acknowledged messages never reached a member", t.Undelivered))
	}
	if t.BadAnswers > 0 {
		f = append(f, fmt.Sprintf("%d answers to stored sends were neither success nor unavailable", t.BadAnswers))
	}
	if t.Unacked > 0 {
		f = append(f, fmt.Sprintf("%d sends never acknowledged", t.Unacked))
	}
	if r.Bound > 0 && t.Longest > r.Bound {
		f = append(f, fmt.Sprintf("interruption %.1fs (%s) over the bound %.0fs", t.Longest.Seconds(), t.LongestAt, r.Bound.Seconds()))
	}
	if r.FaultErr != "" {
		f = append(f, "fault: "+r.FaultErr)
	}
	return f
}
