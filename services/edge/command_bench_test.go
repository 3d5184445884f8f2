package edge

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// BenchmarkCommandThroughLanes is the edge's whole path of a command over a
// real socket: the poller finds the socket readable, a reader decodes and
// checks the frame, the send starts its conversation's lane, the lane asks
// messaging over NATS (an instance on the rig's connection that answers at
// once) and queues the rendered ack, which the client reads. Each round
// writes DefaultMaxCommandsInFlight sends, one to each of as many
// conversations (a lane started and ended per command), then reads their
// acks. An op is one command; cpu-ns/op is the process's CPU (the
// embedded nats-server's and the client's too).
func BenchmarkCommandThroughLanes(b *testing.B) {
	rig := newLaneRig(b, nil)
	ack, err := proto.Marshal(&chatv1.SendResponse{MessageId: "m", Seq: 1, CreatedAtMs: 1})
	if err != nil {
		b.Fatal(err)
	}
	sub, err := rig.nc.Subscribe(names.Command(names.Messaging, "acme", names.ActionSend), func(m *nats.Msg) { _ = m.Respond(ack) })
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := rig.nc.Flush(); err != nil {
		b.Fatal(err)
	}
	nc, _, _, err := ws.Dial(context.Background(), rig.url+"?access_token="+rig.token())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	const lanes = DefaultMaxCommandsInFlight
	frames := make([][]byte, lanes)
	for i := range frames {
		frames[i] = fmt.Appendf(nil, `{"id":"s%d","type":"message:send","data":{"conversationId":"conv-%d","content":"hello","clientMsgId":"c%d"}}`, i, i, i)
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Minute))
	cpu0 := cpuNanos()
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		k := min(lanes, b.N-done)
		for _, f := range frames[:k] {
			if err := wsutil.WriteClientText(nc, f); err != nil {
				b.Fatal(err)
			}
		}
		for got := 0; got < k; {
			msg, err := wsutil.ReadServerText(nc)
			if err != nil {
				b.Fatal(err)
			}
			if bytes.Contains(msg, []byte(`"type":"ack"`)) {
				got++
			} else if bytes.Contains(msg, []byte(`"id":"s`)) {
				b.Fatalf("a send was not acknowledged: %s", msg)
			}
		}
		done += k
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuNanos is this process's CPU time.
func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
