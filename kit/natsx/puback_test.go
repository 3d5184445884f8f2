package natsx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/natsx"
)

// ackShapes are answers to a publish: the server's templates (stream.go
// writes ,"duplicate": true with a space), its JSON-marshalled errors,
// and what only encoding/json decides on (escapes, other cases of a key,
// null, numbers of other forms, junk).
var ackShapes = []string{
	`{"stream":"S","seq":1}`,
	`{"stream":"chat_events","seq":18446744073709551615}`,
	`{"stream":"S","seq":0}`,
	`{"stream":"S","domain":"hub","seq":42}`,
	`{"stream":"S","seq":7,"duplicate": true}`,
	`{"stream":"S","domain":"hub","seq":7,"duplicate": true}`,
	`{"stream":"S","seq":7,"duplicate":false}`,
	`{"stream":"S","seq":9,"val":"123"}`,
	`{"stream":"S","seq":9,"batch":"b1","count":3}`,
	`{"stream":"S","seq":9,"duplicate": true,"batch":"b1","count":3}`,
	` { "stream" : "S" , "seq" : 3 } ` + "\n",
	"{\t\"stream\":\"S\",\r\n\"seq\":3}",
	`{"seq":3,"stream":"S"}`,
	`{"stream":"S","seq":3,"stream":"T"}`,
	`{"stream":"S","seq":3,"seq":4}`,
	`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"},"stream":"S","seq":0}`,
	`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"S","seq":0}`,
	`{"error":{"code":400,"err_code":10164,"description":"wrong last sequence"}}`,
	`{"error":null,"stream":"S","seq":1}`,
	`{"type":"io.nats.jetstream.api.v1.pub_ack","stream":"S","seq":1}`,
	`{"type":5,"stream":"S","seq":1}`,
	`{"Stream":"S","SEQ":2}`,
	`{"stream":"S","seq":2,"Seq":3}`,
	`{"STREAM":"T","stream":"S","seq":2}`,
	`{"stream":"S","seq":2,"Duplicate":true}`,
	`{"stre\u0061m":"S","seq":2}`,
	`{"stream":"S\u00e9","seq":2}`,
	`{"stream":"Sé","seq":2}`,
	"{\"stream\":\"S\xff\",\"seq\":2}",
	"{\"stream\":\"S\x01\",\"seq\":2}",
	`{"stream":"S","seq":null}`,
	`{"stream":null,"seq":1}`,
	`{"stream":"S","seq":-1}`,
	`{"stream":"S","seq":1.0}`,
	`{"stream":"S","seq":1e3}`,
	`{"stream":"S","seq":01}`,
	`{"stream":"S","seq":18446744073709551616}`,
	`{"stream":"S","seq":"1"}`,
	`{"stream":"S","seq":1,"duplicate":"true"}`,
	`{"stream":"S","seq":1,"duplicate":tru}`,
	`{"stream":"S","seq":1,"duplicate":truex}`,
	`{"stream":"S","seq":1,"count":-2}`,
	`{"stream":"S","seq":1,"other":{"a":[1,2]}}`,
	`{"stream":"","seq":1}`,
	`{"seq":1}`,
	`{"batch":"b"}`,
	`{}`,
	`{"stream":"S","seq":1}x`,
	`{"stream":"S","seq":1,}`,
	`{"stream":"S" "seq":1}`,
	`{"stream":"S","seq":1`,
	`{"stream":"S`,
	`[]`,
	`null`,
	``,
	`+OK`,
}

// The ack parse answers every shape as nats.go's PublishMsg does: a stub
// on a real server answers both with the same bytes, and the headers they
// send for the same publish are the same.
func TestPublishExpectReadsAcksLikePublishMsg(t *testing.T) {
	p := newPubPair(t, jetstream.MemoryStorage)
	headers := make(chan nats.Header, 2)
	sub, err := p.nc.Subscribe("stub.>", func(m *nats.Msg) {
		i, _ := strconv.Atoi(m.Subject[len("stub."):])
		headers <- m.Header
		_ = m.Respond([]byte(ackShapes[i]))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ops := []pubOp{{}, {id: "m"}, {expect: 12, ttl: time.Minute}, {expect: 1 << 40, id: "n", ttl: 1500 * time.Millisecond}}
	for i, shape := range ackShapes {
		op := ops[i%len(ops)]
		op.subject = strconv.Itoa(i)
		want, wantErr := p.viaJetStream(ctx, op, "stub.")
		hA := <-headers
		got, err := p.viaNatsx(ctx, op, "stub.")
		hB := <-headers
		sameOutcome(t, fmt.Sprintf("%q", shape), want, wantErr, got, err)
		if fmt.Sprint(hA) != fmt.Sprint(hB) {
			t.Fatalf("%+v: PublishMsg sent headers %v, PublishExpect %v", op, hA, hB)
		}
	}
}

// refParse is nats.go's reading of an ack (jetstream publishMsg), spelled
// out here: the reference for the fuzz.
func refParse(data []byte) (jetstream.PubAck, error) {
	var r refResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return jetstream.PubAck{}, jetstream.ErrInvalidJSAck
	}
	if r.Error != nil {
		return jetstream.PubAck{}, fmt.Errorf("nats: %w", r.Error)
	}
	if r.PubAck == nil || r.PubAck.Stream == "" {
		return jetstream.PubAck{}, jetstream.ErrInvalidJSAck
	}
	return *r.PubAck, nil
}

// refResponse is nats.go's pubAckResponse.
type refResponse struct {
	refAPIResponse
	*jetstream.PubAck
}

// refAPIResponse is nats.go's apiResponse.
type refAPIResponse struct {
	Type  string              `json:"type"`
	Error *jetstream.APIError `json:"error,omitempty"`
}

// The server's own ack templates take the fast path.
func TestScanPubAckTakesServerTemplates(t *testing.T) {
	for _, shape := range ackShapes[:12] {
		if _, ok := natsx.ScanPubAck([]byte(shape)); !ok {
			t.Errorf("%s: not scanned", shape)
		}
	}
}

// FuzzParsePubAck compares the ack parse with nats.go's on any input.
func FuzzParsePubAck(f *testing.F) {
	for _, shape := range ackShapes {
		f.Add([]byte(shape))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantErr := refParse(data)
		got, err := natsx.ParsePubAck(data)
		if want != got || fmt.Sprint(wantErr) != fmt.Sprint(err) {
			t.Fatalf("%q: parsed %+v, %v; nats.go: %+v, %v", data, got, err, want, wantErr)
		}
	})
}

// BenchmarkParsePubAck reads the usual ack (and a duplicate's) with the
// scan and with nats.go's encoding/json decoding.
func BenchmarkParsePubAck(b *testing.B) {
	for _, c := range []struct{ name, ack string }{
		{"ack", `{"stream":"chat_events","seq":1234567}`},
		{"duplicate", `{"stream":"chat_events","seq":1234567,"duplicate": true}`},
	} {
		data := []byte(c.ack)
		b.Run(c.name+"/scan", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := natsx.ParsePubAck(data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := refParse(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
