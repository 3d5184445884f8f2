package edge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// testMask is the mask of every client frame the tests build, so that the
// seed corpus is the same on every run.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// clientFrame is a masked client frame of op holding payload, encoded by
// gobwas/ws (an encoder independent of ours).
func clientFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	f := ws.NewFrame(op, fin, bytes.Clone(payload))
	f = ws.MaskFrameInPlaceWith(f, testMask)
	return ws.MustCompileFrame(f)
}

// rawHeader is a masked frame header written by hand, for headers that
// gobwas/ws refuses to encode; the payload (if any) follows unmasked by a
// zero mask.
func rawHeader(b0, b1 byte, ext ...byte) []byte {
	h := append([]byte{b0, b1}, ext...)
	return append(h, 0, 0, 0, 0) // zero mask
}

func frameStream(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func closePayload(code ws.StatusCode, reason string) []byte {
	p := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	copy(p[2:], reason)
	return p
}

// frameReaderCase is a client byte stream and what the reader makes of it.
type frameReaderCase struct {
	name   string
	in     []byte
	msgs   []string      // messages returned, in order
	pings  []string      // ping payloads seen
	code   ws.StatusCode // the close code of the final *closeError, or the peer's code
	peer   bool          // the stream ends with the client's close frame
	ioEnds bool          // the stream ends with a read error
}

const testMaxBytes = 1024

func frameReaderCases() []frameReaderCase {
	big := bytes.Repeat([]byte("a"), testMaxBytes)
	return []frameReaderCase{
		{name: "one text message", in: clientFrame(ws.OpText, true, []byte(`{"type":"ping"}`)), msgs: []string{`{"type":"ping"}`}, ioEnds: true},
		{name: "empty text message", in: clientFrame(ws.OpText, true, nil), msgs: []string{""}, ioEnds: true},
		{name: "message of exactly maxBytes", in: clientFrame(ws.OpText, true, big), msgs: []string{string(big)}, ioEnds: true},
		{name: "126-byte message (16-bit length)", in: clientFrame(ws.OpText, true, big[:126]), msgs: []string{string(big[:126])}, ioEnds: true},
		{name: "two messages", in: frameStream(clientFrame(ws.OpText, true, []byte("a")), clientFrame(ws.OpText, true, []byte("bc"))), msgs: []string{"a", "bc"}, ioEnds: true},
		{name: "fragmented message", in: frameStream(
			clientFrame(ws.OpText, false, []byte("hé")),
			clientFrame(ws.OpContinuation, false, []byte("ll")),
			clientFrame(ws.OpContinuation, true, []byte("o")),
		), msgs: []string{"héllo"}, ioEnds: true},
		{name: "rune split across fragments", in: frameStream(
			clientFrame(ws.OpText, false, []byte("h\xc3")),
			clientFrame(ws.OpContinuation, true, []byte("\xa9")),
		), msgs: []string{"hé"}, ioEnds: true},
		{name: "ping inside a fragmented message", in: frameStream(
			clientFrame(ws.OpText, false, []byte("ab")),
			clientFrame(ws.OpPing, true, []byte("p1")),
			clientFrame(ws.OpPong, true, []byte("unsolicited")),
			clientFrame(ws.OpContinuation, true, []byte("cd")),
		), msgs: []string{"abcd"}, pings: []string{"p1"}, ioEnds: true},
		{name: "ping of 125 bytes", in: clientFrame(ws.OpPing, true, big[:125]), pings: []string{string(big[:125])}, ioEnds: true},
		{name: "close with a code", in: frameStream(clientFrame(ws.OpText, true, []byte("x")), clientFrame(ws.OpClose, true, closePayload(1001, "bye"))), msgs: []string{"x"}, code: 1001, peer: true},
		{name: "close without a body", in: clientFrame(ws.OpClose, true, nil), code: CloseNormal, peer: true},
		{name: "close with a private code", in: clientFrame(ws.OpClose, true, closePayload(4321, "")), code: 4321, peer: true},
		{name: "close with a reserved code", in: clientFrame(ws.OpClose, true, closePayload(1005, "")), code: CloseProtocolError, peer: true},
		{name: "close with a 1-byte body", in: clientFrame(ws.OpClose, true, []byte{3}), code: CloseProtocolError, peer: true},
		{name: "close with a reason that is not UTF-8", in: clientFrame(ws.OpClose, true, closePayload(1000, "\xff")), code: CloseInvalidPayload, peer: true},
		{name: "unmasked frame", in: []byte{0x81, 1, 'a'}, code: CloseProtocolError},
		{name: "binary frame", in: clientFrame(ws.OpBinary, true, []byte{1, 2}), code: CloseUnsupported},
		{name: "RSV1 without an extension", in: rawHeader(0x80|0x40|byte(ws.OpText), 0x80), code: CloseProtocolError},
		{name: "reserved data opcode", in: rawHeader(0x80|0x3, 0x80), code: CloseProtocolError},
		{name: "reserved control opcode", in: rawHeader(0x80|0xb, 0x80), code: CloseProtocolError},
		{name: "fragmented ping", in: clientFrame(ws.OpPing, false, []byte("p")), code: CloseProtocolError},
		{name: "ping over 125 bytes", in: clientFrame(ws.OpPing, true, big[:126]), code: CloseProtocolError},
		{name: "continuation without a message", in: clientFrame(ws.OpContinuation, true, []byte("a")), code: CloseProtocolError},
		{name: "text inside a fragmented message", in: frameStream(clientFrame(ws.OpText, false, []byte("a")), clientFrame(ws.OpText, true, []byte("b"))), code: CloseProtocolError},
		{name: "message over maxBytes", in: clientFrame(ws.OpText, true, append(big, 'a')), code: CloseTooBig},
		{name: "fragments over maxBytes", in: frameStream(clientFrame(ws.OpText, false, big[:1000]), clientFrame(ws.OpContinuation, true, big[:25])), code: CloseTooBig},
		{name: "64-bit length with the MSB set", in: rawHeader(0x81, 0x80|127, 0x80, 0, 0, 0, 0, 0, 0, 0), code: CloseProtocolError},
		{name: "64-bit length of 2^62", in: rawHeader(0x81, 0x80|127, 0x40, 0, 0, 0, 0, 0, 0, 0), code: CloseTooBig},
		{name: "message in 64 fragments", in: fragmented(big[:128], 2), msgs: []string{string(big[:128])}, ioEnds: true},
		{name: "message in 65 fragments", in: fragmented(big[:130], 2), code: ClosePolicy},
		{name: "65 fragments with pings between", in: frameStream(fragmented(big[:65], 1)[:64*7], clientFrame(ws.OpPing, true, nil), clientFrame(ws.OpContinuation, true, []byte("a"))), pings: []string{""}, code: ClosePolicy},
		{name: "invalid UTF-8", in: clientFrame(ws.OpText, true, []byte("a\xffb")), code: CloseInvalidPayload},
		{name: "UTF-16 surrogate", in: clientFrame(ws.OpText, true, []byte("\xed\xa0\x80")), code: CloseInvalidPayload},
		{name: "truncated header", in: []byte{0x81}, ioEnds: true},
		{name: "truncated extended length", in: []byte{0x81, 0x80 | 126, 0}, ioEnds: true},
		{name: "truncated payload", in: clientFrame(ws.OpText, true, []byte("hello"))[:8], ioEnds: true},
		{name: "stream ends inside a fragmented message", in: clientFrame(ws.OpText, false, []byte("a")), ioEnds: true},
	}
}

// readAll runs fr over in until it fails, and returns the messages, the
// pings and the final result.
func readFrames(in []byte, maxBytes int) (msgs, pings []string, code ws.StatusCode, err error) {
	fr := frameReader{
		r:        bytes.NewReader(in),
		maxBytes: maxBytes,
		onPing:   func(p []byte) { pings = append(pings, string(p)) },
		onFrame:  func() {},
	}
	for {
		msg, c, err := fr.next()
		if err != nil {
			return msgs, pings, c, err
		}
		msgs = append(msgs, string(msg))
	}
}

func TestFrameReader(t *testing.T) {
	for _, tc := range frameReaderCases() {
		t.Run(tc.name, func(t *testing.T) {
			msgs, pings, code, err := readFrames(tc.in, testMaxBytes)
			if strings.Join(msgs, "|") != strings.Join(tc.msgs, "|") || len(msgs) != len(tc.msgs) {
				t.Errorf("messages %q, want %q", msgs, tc.msgs)
			}
			if strings.Join(pings, "|") != strings.Join(tc.pings, "|") || len(pings) != len(tc.pings) {
				t.Errorf("pings %q, want %q", pings, tc.pings)
			}
			var ce *closeError
			switch {
			case tc.ioEnds:
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("error %v, want the end of the stream", err)
				}
			case tc.peer:
				if err != errPeerClosed || code != tc.code {
					t.Errorf("error %v with code %d, want the peer's close with %d", err, code, tc.code)
				}
			case errors.As(err, &ce):
				if ce.code != tc.code {
					t.Errorf("closed with %d (%s), want %d", ce.code, ce.reason, tc.code)
				}
			default:
				t.Errorf("error %v, want a close with %d", err, tc.code)
			}
		})
	}
}

// FuzzFrameReader feeds arbitrary client bytes to the frame reader.
func FuzzFrameReader(f *testing.F) {
	for _, tc := range frameReaderCases() {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fr := frameReader{
			r:        bytes.NewReader(in),
			maxBytes: testMaxBytes,
			onPing: func(p []byte) {
				if len(p) > 125 {
					t.Fatalf("ping payload of %d bytes", len(p))
				}
			},
			onFrame: func() {},
		}
		for {
			msg, code, err := fr.next()
			if err != nil {
				checkReadErr(t, err, code)
				return
			}
			if code != 0 {
				t.Fatalf("message with close code %d", code)
			}
			if len(msg) > testMaxBytes {
				t.Fatalf("message of %d bytes, over the limit of %d", len(msg), testMaxBytes)
			}
			if !utf8.Valid(msg) {
				t.Fatalf("message is not UTF-8: %q", msg)
			}
		}
	})
}

func checkReadErr(t *testing.T, err error, code ws.StatusCode) {
	t.Helper()
	var ce *closeError
	switch {
	case errors.As(err, &ce):
		switch ce.code {
		case CloseProtocolError, CloseUnsupported, CloseInvalidPayload, ClosePolicy, CloseTooBig:
		default:
			t.Fatalf("closed with code %d (%s)", ce.code, ce.reason)
		}
		if ce.reason == "" {
			t.Fatalf("close %d without a reason", ce.code)
		}
	case err == errPeerClosed:
		if !sendableCloseCode(code) {
			t.Fatalf("peer's close answered with code %d, which may not be sent", code)
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	default:
		t.Fatalf("unexpected error %T: %v", err, err)
	}
}

// sendableCloseCode reports whether RFC 6455 (section 7.4) lets an
// endpoint put code in a close frame.
func sendableCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// TestFrame checks the server's frame encoder against gobwas/ws's decoder
// at every length-encoding boundary.
func TestFrame(t *testing.T) {
	for _, op := range []ws.OpCode{ws.OpText, ws.OpClose, ws.OpPong} {
		for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
			if op.IsControl() && n > 125 {
				continue
			}
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = byte(i*7 + 1)
			}
			out := frame(op, payload)
			r := bytes.NewReader(out)
			h, err := ws.ReadHeader(r)
			if err != nil {
				t.Fatalf("op %v, %d bytes: %v", op, n, err)
			}
			if h.OpCode != op || h.Length != int64(n) || !h.Fin || h.Masked || h.Rsv != 0 {
				t.Errorf("op %v, %d bytes: header %+v", op, n, h)
			}
			if hs := len(out) - n; hs != ws.HeaderSize(h) {
				t.Errorf("op %v, %d bytes: header of %d bytes, want the minimal %d", op, n, hs, ws.HeaderSize(h))
			}
			if rest, _ := io.ReadAll(r); !bytes.Equal(rest, payload) {
				t.Errorf("op %v, %d bytes: payload differs (%d bytes read back)", op, n, len(rest))
			}
		}
	}
}

func TestPingAndCloseFrames(t *testing.T) {
	h, err := ws.ReadHeader(bytes.NewReader(pingFrame))
	if err != nil || h.OpCode != ws.OpPing || h.Length != 0 || !h.Fin || h.Masked {
		t.Errorf("pingFrame: header %+v, %v", h, err)
	}
	for _, reason := range []string{"", "idle timeout", strings.Repeat("r", 200)} {
		out := closeFrame(CloseTryAgain, reason)
		r := bytes.NewReader(out)
		h, err := ws.ReadHeader(r)
		if err != nil || h.OpCode != ws.OpClose || !h.Fin || h.Length > 125 {
			t.Fatalf("closeFrame(%q): header %+v, %v", reason, h, err)
		}
		p, _ := io.ReadAll(r)
		if int64(len(p)) != h.Length || ws.StatusCode(binary.BigEndian.Uint16(p)) != CloseTryAgain || !strings.HasPrefix(reason, string(p[2:])) {
			t.Errorf("closeFrame(%q): payload %q", reason, p)
		}
	}
}

// fragmented is text of payload in fragments of size bytes, masked.
func fragmented(payload []byte, size int) []byte {
	var parts [][]byte
	for i := 0; i < len(payload); i += size {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		end := min(i+size, len(payload))
		parts = append(parts, clientFrame(op, end == len(payload), payload[i:end]))
	}
	return frameStream(parts...)
}

// A message in the most fragments allowed is joined in a buffer that grows
// geometrically: a few allocations, not one per fragment.
func TestFragmentedMessageAllocations(t *testing.T) {
	payload := bytes.Repeat([]byte("a"), maxFragments*1000)
	in := fragmented(payload, 1000)
	r := bytes.NewReader(in)
	fr := frameReader{r: r, maxBytes: 64 << 10, onPing: func([]byte) {}, onFrame: func() {}}
	allocs := testing.AllocsPerRun(20, func() {
		r.Reset(in)
		msg, _, err := fr.next()
		if err != nil || len(msg) != len(payload) {
			t.Fatalf("next: %d bytes, %v", len(msg), err)
		}
	})
	if allocs > 12 {
		t.Fatalf("a message in %d fragments took %v allocations", maxFragments, allocs)
	}
}

// BenchmarkFrameReaderFragments reads a 65,000-byte message sent in
// 65,000 one-byte fragments: the reader gives up at fragment 65.
func BenchmarkFrameReaderFragments(b *testing.B) {
	in := fragmented(bytes.Repeat([]byte(" "), 65000), 1)
	r := bytes.NewReader(in)
	fr := frameReader{r: r, maxBytes: 64 << 10, onPing: func([]byte) {}, onFrame: func() {}}
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		_, _, _ = fr.next()
	}
}

// BenchmarkFrameReader64Fragments reads a 64,000-byte message in the most
// fragments allowed, 64 of 1,000 bytes.
func BenchmarkFrameReader64Fragments(b *testing.B) {
	in := fragmented(bytes.Repeat([]byte(" "), 64000), 1000)
	r := bytes.NewReader(in)
	fr := frameReader{r: r, maxBytes: 64 << 10, onPing: func([]byte) {}, onFrame: func() {}}
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		if _, _, err := fr.next(); err != nil {
			b.Fatal(err)
		}
	}
}
