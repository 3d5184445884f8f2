package natsx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
)

// StoredMsg is one message read from a stream.
type StoredMsg struct {
	Subject string
	Seq     uint64
	Header  nats.Header
	Data    []byte
}

// Batch is the result of a batched direct get.
type Batch struct {
	Msgs []StoredMsg
	// Pending is how many matching messages the stream holds after the last
	// one returned (from the server's end-of-batch marker).
	Pending uint64
}

type directReq struct {
	Seq       uint64   `json:"seq,omitempty"`
	NextFor   string   `json:"next_by_subj,omitempty"`
	Batch     int      `json:"batch,omitempty"`
	MaxBytes  int      `json:"max_bytes,omitempty"`
	MultiLast []string `json:"multi_last,omitempty"`
	UpToSeq   uint64   `json:"up_to_seq,omitempty"`
}

// expected is how many messages (with the end-of-batch marker) the answer
// to r may hold, as a channel size: more only waits for the reader.
func (r directReq) expected() int {
	n := r.Batch
	if len(r.MultiLast) > 0 {
		n = len(r.MultiLast)
	}
	return min(max(n, 1), 1024) + 1
}

// ErrDirect is a failed direct get (not "no messages", which is an empty
// batch).
var ErrDirect = errors.New("direct get failed")

// GetBatch reads up to n messages on subject from stream, starting at seq
// (inclusive), in one request. The stream needs AllowDirect.
func GetBatch(ctx context.Context, nc *nats.Conn, stream, subject string, seq uint64, n int) (Batch, error) {
	return GetBatchMax(ctx, nc, stream, subject, seq, n, 0)
}

// GetBatchMax is GetBatch that also stops once the messages read add up to
// maxBytes, as the server counts them (subject, headers and data), the one
// that reaches it included: a reader that keeps only so many bytes need
// not be sent more. 0 leaves the server's limit.
func GetBatchMax(ctx context.Context, nc *nats.Conn, stream, subject string, seq uint64, n, maxBytes int) (Batch, error) {
	if seq == 0 {
		seq = 1
	}
	return directGet(ctx, nc, stream, directReq{Seq: seq, NextFor: subject, Batch: n, MaxBytes: maxBytes})
}

// MultiLast reads the newest message of each subject (wildcards allowed) in
// one request; upToSeq bounds the search when not 0. At most 1024 results.
func MultiLast(ctx context.Context, nc *nats.Conn, stream string, subjects []string, upToSeq uint64) (Batch, error) {
	if len(subjects) == 0 {
		return Batch{}, nil
	}
	return directGet(ctx, nc, stream, directReq{MultiLast: subjects, UpToSeq: upToSeq})
}

func directGet(ctx context.Context, nc *nats.Conn, stream string, req directReq) (Batch, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Batch{}, err
	}
	// An async subscription into a channel sized for the answer: a sync
	// one would allocate nats.go's SubChanLen (64k entries, 512 KiB) per
	// request, which a list of 50 conversations makes 50 times.
	inbox := nc.NewInbox()
	msgs := make(chan *nats.Msg, req.expected())
	done := make(chan struct{})
	defer close(done)
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		select {
		case msgs <- m:
		case <-done:
		}
	})
	if err != nil {
		return Batch{}, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return Batch{}, err
	}
	var b Batch
	for {
		var m *nats.Msg
		select {
		case m = <-msgs:
		case <-ctx.Done():
			// Wrapped: a deadline is a replica that died with the request
			// or a stream electing, which IsUnavailable recognizes.
			return Batch{}, fmt.Errorf("%w: %w", ErrDirect, ctx.Err())
		}
		status, err := directStatus(m)
		switch {
		case err != nil:
			return Batch{}, err
		case status == "204": // end of batch
			b.Pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return b, nil
		case status == "404": // nothing matched
			return b, nil
		}
		sm, err := storedOf(m)
		if err != nil {
			return Batch{}, err
		}
		b.Msgs = append(b.Msgs, sm)
	}
}

// directStatus is a direct get answer's status: "" for a message, "204"
// (end of a batch) or "404" (nothing matched); any other is an error, no
// responders or a timeout where the server said so.
func directStatus(m *nats.Msg) (string, error) {
	switch status := m.Header.Get("Status"); status {
	case "", "204", "404":
		return status, nil
	case "503": // no responders: no replica serves direct gets now
		return "", fmt.Errorf("%w: %w", ErrDirect, nats.ErrNoResponders)
	case "408":
		return "", fmt.Errorf("%w: %w", ErrDirect, nats.ErrTimeout)
	default:
		return "", fmt.Errorf("%w: %s %s", ErrDirect, status, m.Header.Get("Description"))
	}
}

// storedOf is the stored message a direct get answered with.
func storedOf(m *nats.Msg) (StoredMsg, error) {
	seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil {
		return StoredMsg{}, fmt.Errorf("%w: bad sequence header", ErrDirect)
	}
	return StoredMsg{Subject: m.Header.Get("Nats-Subject"), Seq: seq, Header: m.Header, Data: m.Data}, nil
}

// IsKVMarker reports whether a message read from a KV bucket's stream is a
// delete or purge marker (kv.Delete, kv.Purge, or a per-key TTL expiry)
// rather than a value.
func (m StoredMsg) IsKVMarker() bool {
	if m.Header == nil {
		return false
	}
	switch m.Header.Get("KV-Operation") {
	case "DEL", "PURGE":
		return true
	}
	return m.Header.Get("Nats-Marker-Reason") != ""
}

// DirectNext reads the first message on subject at or after seq from
// stream with one direct get, over the connection's shared reply
// subscription (GetBatch subscribes to an inbox of its own for every call,
// which a reader calling it per chunk should not pay); ok is false when
// there is none.
func DirectNext(ctx context.Context, nc *nats.Conn, stream, subject string, seq uint64) (m StoredMsg, ok bool, err error) {
	body, err := json.Marshal(directReq{Seq: max(seq, 1), NextFor: subject})
	if err != nil {
		return StoredMsg{}, false, err
	}
	r, err := nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, body)
	if err != nil {
		return StoredMsg{}, false, fmt.Errorf("%w: %w", ErrDirect, err)
	}
	switch status, err := directStatus(r); {
	case err != nil:
		return StoredMsg{}, false, err
	case status == "404":
		return StoredMsg{}, false, nil
	case status != "":
		return StoredMsg{}, false, fmt.Errorf("%w: %s %s", ErrDirect, status, r.Header.Get("Description"))
	}
	m, err = storedOf(r)
	return m, err == nil, err
}
