package standalone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
	"github.com/switchboard-chat/switchboard/services/messaging"
)

// churnWait bounds each command of the churn test. A request that gets no
// reply within it means the edge is stuck (or the machine hopelessly
// overloaded): the test fails either way.
const churnWait = 15 * time.Second

// TestRoomsUnderChurn runs, at once, what takes the edge's locks in every
// order it allows (doc.go in services/edge, "Locks"): joins and rejoins,
// leaves, removals by membership events, connections ending, typing and
// receipts, while a sender fans messages out to the room through two
// messaging instances and events are lost to the edge (gaps filled from
// the stream). Under -race it
// checks the locking; it fails on a deadlock (a command unanswered within
// churnWait; every wait is bounded, so the run cannot hang), and it checks
// that every connection joined at the end got every durable event after
// its join's lastSeq, each once, in order.
func TestRoomsUnderChurn(t *testing.T) {
	const workers = 8
	churn := 2 * time.Second
	if testing.Short() {
		churn = 500 * time.Millisecond
	}
	f := start(t)
	// A second messaging instance: two NATS connections publish the
	// conversation's events, which may then arrive out of order.
	second, err := messaging.New(context.Background(), f.natsAs(natsauth.Messaging), messaging.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop(context.Background()) })
	users := make([]string, workers)
	for i := range users {
		users[i] = fmt.Sprintf("w%d", i)
	}
	owner := f.dial("acme", "owner")
	conv := owner.create(users...)

	ctx, stopChurn := context.WithCancel(context.Background())
	defer stopChurn()
	sender := &churnSender{f: f, conv: conv, stop: make(chan int, 1)}
	senderDone := make(chan error, 1)
	go func() { senderDone <- sender.run() }()

	// Each worker joins for the last time at a moment of its own in the
	// second half, and goes on typing and marking while the others churn.
	results := make(chan churnResult, workers)
	var membership sync.Mutex
	for _, u := range users {
		w := &churnWorker{f: f, conv: conv, user: u, sender: sender, membership: &membership}
		final := time.Now().Add(churn/2 + rand.N(churn/2))
		go func() { results <- w.run(ctx, final) }()
	}

	// Events lost to the edge: the room holds what follows each and
	// fetches it, while the rest goes on.
	lost := make(chan int, 1)
	stopLosing := make(chan struct{})
	go func() { lost <- loseEvents(f.natsAs(natsauth.Messaging), conv, stopLosing) }()

	time.Sleep(churn)
	close(stopLosing)
	t.Logf("%d events lost to the edge", <-lost)
	stopChurn()
	var joined []churnResult
	for range workers {
		r := <-results
		if r.err != nil {
			t.Errorf("%s: %v", r.user, r.err)
			dumpOnce.Do(dumpGoroutines)
			continue
		}
		t.Logf("%s: %s; joined at the end from lastSeq %d", r.user, r.ops, r.lastSeq)
		joined = append(joined, r)
	}
	// Every worker joined for the last time: a tail of messages, then the
	// sender stops and says the seq of its last one.
	sender.stop <- 20
	if err := <-senderDone; err != nil {
		t.Fatalf("sender: %v", err)
	}
	seqs := sender.sent()
	if len(seqs) == 0 {
		t.Fatal("no message was sent")
	}
	t.Logf("%d messages sent", len(seqs))
	for _, r := range joined {
		if err := checkDelivered(r, conv, seqs); err != nil {
			t.Errorf("%s: %v", r.user, err)
		}
	}
}

// loseEvents appends a message to the conversation's stream now and then
// without publishing it live, as if core NATS had dropped it, until stop;
// it returns how many. Only the room's gap fill can deliver them.
func loseEvents(nc *nats.Conn, conv string, stop chan struct{}) int {
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, names.StreamEvents)
	if err != nil {
		return 0
	}
	n := 0
	for {
		select {
		case <-stop:
			return n
		case <-time.After(20 * time.Millisecond):
		}
		last, err := stream.GetLastMsgForSubject(ctx, names.Store("acme", conv))
		if err != nil {
			continue
		}
		id := fmt.Sprintf("lost-%d", n)
		data, _ := proto.Marshal(&chatv1.Event{ConversationId: conv, PrevSeq: last.Sequence, Body: &chatv1.Event_MessageNew{MessageNew: &chatv1.MessageNew{
			MessageId: id, SenderId: "owner", Content: id, ClientMsgId: id, CreatedAtMs: time.Now().UnixMilli(),
		}}})
		// Expecting the last seq keeps one chain: a messaging instance
		// that appended meanwhile wins, and this one tries again later.
		if _, err := js.Publish(ctx, names.Store("acme", conv), data, jetstream.WithExpectLastSequencePerSubject(last.Sequence)); err == nil {
			n++
		}
	}
}

// churnSender sends messages to the conversation, a few at a time, until
// told how many more to send.
type churnSender struct {
	f    *fixture
	conv string
	stop chan int

	mu   sync.Mutex
	seqs []uint64 // acked seqs, in order
}

func (s *churnSender) run() error {
	c, err := dialChurn(s.f, "owner")
	if err != nil {
		return err
	}
	// Sends go out a few at a time, each batch's acks awaited before the
	// next, so that events keep flowing while the workers wait on theirs.
	const batch = 4
	tail := -1
	for i := 0; tail != 0; {
		select {
		case tail = <-s.stop:
		default:
		}
		ids := make([]string, batch)
		for k := range ids {
			ids[k] = fmt.Sprintf("c-%d", s.f.ids.Add(1))
			i++
			if err := c.Send(ids[k], "message:send", map[string]any{"conversationId": s.conv, "content": fmt.Sprintf("m%d", i), "clientMsgId": fmt.Sprintf("m-%d", i)}); err != nil {
				return err
			}
		}
		for _, id := range ids {
			seq, err := sendReply(c, id)
			if err != nil {
				return err
			}
			s.mu.Lock()
			s.seqs = append(s.seqs, seq)
			s.mu.Unlock()
		}
		if tail > 0 {
			tail = max(tail-batch, 0)
		}
	}
	return nil
}

// sendReply waits for the ack of message:send id and returns its seq.
func sendReply(c *wsclient.Client, id string) (uint64, error) {
	r, err := c.Reply(id, churnWait)
	if err != nil {
		return 0, fmt.Errorf("message:send: %w", err)
	}
	var ack sendAck
	if r.Type != "ack" || r.Decode(&ack) != nil {
		return 0, fmt.Errorf("message:send: got %s", r)
	}
	return ack.Seq, nil
}

func (s *churnSender) sent() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.seqs...)
}

// newest is the seq of the newest message acked so far (0 before any).
func (s *churnSender) newest() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seqs) == 0 {
		return 0
	}
	return s.seqs[len(s.seqs)-1]
}

// churnWorker is one participant that keeps changing how it is in the
// room: joining, leaving, removing itself (its removal takes its sockets
// out of the room), being added back by the owner, reconnecting, typing,
// marking messages delivered.
type churnWorker struct {
	f      *fixture
	conv   string
	user   string
	sender *churnSender
	// membership serializes the workers' membership changes: messaging
	// does not order concurrent ones (a conversation:updated may carry a
	// participant list older than the one before it in the stream).
	membership *sync.Mutex

	c     *wsclient.Client
	admin *wsclient.Client // the owner's, to add the worker back
	ops   map[string]int
}

type churnResult struct {
	user    string
	err     error
	ops     string
	c       *wsclient.Client // joined at the end
	lastSeq uint64           // of that last join
}

// run churns until final, joins for the last time, then only types and
// marks until ctx ends.
func (w *churnWorker) run(ctx context.Context, final time.Time) churnResult {
	res := churnResult{user: w.user}
	w.ops = map[string]int{}
	res.err = w.connect()
	if res.err == nil {
		until, cancel := context.WithDeadline(ctx, final)
		res.err = w.churn(until, churnOps[:])
		cancel()
	}
	if res.err == nil {
		res.lastSeq, res.err = w.finalJoin()
	}
	if res.err == nil {
		res.err = w.churn(ctx, churnOps[len(churnOps)-2:])
	}
	res.c, res.ops = w.c, fmt.Sprint(w.ops)
	return res
}

// churnOps are what a worker does, picked at random; the last two leave
// its membership and its room alone.
var churnOps = [...]string{"join", "join", "join", "leave", "remove", "reconnect", "typing", "delivered"}

func (w *churnWorker) connect() error {
	var err error
	if w.c, err = dialChurn(w.f, w.user); err != nil {
		return err
	}
	w.admin, err = dialChurn(w.f, "owner")
	return err
}

func (w *churnWorker) churn(ctx context.Context, ops []string) error {
	var err error
	conv := map[string]any{"conversationId": w.conv}
	for ctx.Err() == nil {
		op := ops[rand.IntN(len(ops))]
		w.ops[op]++
		switch op {
		case "join", "leave":
			_, err = request(w.f, w.c, "conversation:"+op, conv)
		case "remove":
			// Removed while joined or not, then added back: a membership
			// event takes the worker's joined sockets out of the room.
			w.membership.Lock()
			_, err = request(w.f, w.c, "conversation:remove", map[string]any{"conversationId": w.conv, "userId": w.user})
			if err == nil {
				_, err = request(w.f, w.admin, "conversation:add", map[string]any{"conversationId": w.conv, "userIds": []string{w.user}})
			}
			w.membership.Unlock()
		case "reconnect":
			w.c.Kill()
			w.c, err = dialChurn(w.f, w.user)
		case "typing":
			_, err = request(w.f, w.c, "message:typing", map[string]any{"conversationId": w.conv, "isTyping": rand.IntN(2) == 0})
		case "delivered":
			if seq := w.sender.newest(); seq > 0 {
				_, err = request(w.f, w.c, "message:delivered", map[string]any{"conversationId": w.conv, "seq": seq})
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	return nil
}

// finalJoin leaves (the connection may be joined already) and joins once
// more, returning the join's lastSeq: from there on every durable event
// must arrive.
func (w *churnWorker) finalJoin() (uint64, error) {
	conv := map[string]any{"conversationId": w.conv}
	if _, err := request(w.f, w.c, "conversation:leave", conv); err != nil {
		return 0, err
	}
	raw, err := request(w.f, w.c, "conversation:join", conv)
	if err != nil {
		return 0, err
	}
	var ack joinAckJSON
	if err := json.Unmarshal(raw, &ack); err != nil {
		return 0, err
	}
	return ack.LastSeq, nil
}

var dumpOnce sync.Once

// dumpGoroutines writes every goroutine's stack to stderr: where the edge
// is stuck, when a command went unanswered.
func dumpGoroutines() {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	fmt.Fprintf(os.Stderr, "goroutines:\n%s\n", b.String())
}

// durableJSON is what the check reads of a durable event.
type durableJSON struct {
	ConversationID string `json:"conversationId"`
	Seq            uint64 `json:"seq"`
	PrevSeq        uint64 `json:"prevSeq"`
}

// checkDelivered waits until r's connection got the last message sent,
// then checks the durable events it got after its join: a chain of prevSeq
// from the join's lastSeq, without a gap or a repeat, holding every
// message sent after it.
func checkDelivered(r churnResult, conv string, sent []uint64) error {
	last := sent[len(sent)-1]
	var frames []wsclient.Frame
	deadline := time.Now().Add(churnWait)
	for {
		frames = r.c.Pending()
		if hasSeq(frames, conv, last) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("message seq %d not received within %v; got after the join: %s", last, churnWait, durableAfter(frames, conv, r.lastSeq))
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := map[uint64]bool{}
	prev := r.lastSeq
	for _, fr := range frames {
		d, ok := durableOf(fr, conv)
		if !ok || d.Seq <= r.lastSeq {
			continue // before the join
		}
		if d.PrevSeq != prev {
			return fmt.Errorf("%s seq %d has prevSeq %d, want %d (a gap or a reordering)", fr.Type, d.Seq, d.PrevSeq, prev)
		}
		prev = d.Seq
		if fr.Type == "message:new" {
			got[d.Seq] = true
		}
	}
	for _, s := range sent {
		if s > r.lastSeq && !got[s] {
			return fmt.Errorf("message seq %d (sent after the join's lastSeq %d) never arrived", s, r.lastSeq)
		}
	}
	return nil
}

// durableAfter lists the durable events in frames past seq, for a failure
// message.
func durableAfter(frames []wsclient.Frame, conv string, seq uint64) string {
	var b strings.Builder
	for _, fr := range frames {
		if d, ok := durableOf(fr, conv); ok && d.Seq > seq {
			fmt.Fprintf(&b, " %s %d/%d", fr.Type, d.Seq, d.PrevSeq)
		}
	}
	return b.String()
}

func durableOf(fr wsclient.Frame, conv string) (durableJSON, bool) {
	switch fr.Type {
	case "message:new", "message:edited", "message:deleted", "conversation:updated":
	default:
		return durableJSON{}, false
	}
	var d durableJSON
	if fr.Decode(&d) != nil || d.ConversationID != conv {
		return durableJSON{}, false
	}
	return d, true
}

func hasSeq(frames []wsclient.Frame, conv string, seq uint64) bool {
	for _, fr := range frames {
		if d, ok := durableOf(fr, conv); ok && d.Seq == seq {
			return true
		}
	}
	return false
}

// dialChurn connects user of acme and takes the session event, without
// failing the test (it runs on the workers' goroutines).
func dialChurn(f *fixture, user string) (*wsclient.Client, error) {
	c, err := wsclient.DialToken(context.Background(), f.url, token("acme", user))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", user, err)
	}
	f.t.Cleanup(c.Kill)
	if _, err := c.Next("session", churnWait); err != nil {
		return nil, fmt.Errorf("session event of %s: %w", user, err)
	}
	return c, nil
}

// request runs a command and returns its ack's data, or an error saying
// what came instead.
func request(f *fixture, c *wsclient.Client, typ string, data any) (json.RawMessage, error) {
	id := fmt.Sprintf("c-%d", f.ids.Add(1))
	r, err := c.Request(id, typ, data, churnWait)
	if errors.Is(err, wsclient.ErrTimeout) {
		return nil, fmt.Errorf("%s: no reply within %v (the edge is stuck?)", typ, churnWait)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	if r.Type != "ack" {
		return nil, fmt.Errorf("%s: got %s", typ, r)
	}
	return r.Data, nil
}
