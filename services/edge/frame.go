package edge

import (
	"encoding/binary"
	"errors"
	"io"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Close codes of docs/protocol.md section 5, and RFC 6455's for protocol
// faults.
const (
	CloseNormal         ws.StatusCode = 1000
	CloseProtocolError  ws.StatusCode = 1002
	CloseUnsupported    ws.StatusCode = 1003
	CloseInvalidPayload ws.StatusCode = 1007
	ClosePolicy         ws.StatusCode = 1008
	CloseTooBig         ws.StatusCode = 1009
	CloseRestart        ws.StatusCode = 1012
	CloseTryAgain       ws.StatusCode = 1013
	CloseTokenExpired   ws.StatusCode = 4001
	CloseAuthFailures   ws.StatusCode = 4003
)

// closeError ends a connection with a close code.
type closeError struct {
	code   ws.StatusCode
	reason string
}

func (e *closeError) Error() string { return e.reason }

func closeWith(code ws.StatusCode, reason string) error { return &closeError{code, reason} }

// errPeerClosed is a clean close started by the client.
var errPeerClosed = errors.New("closed by peer")

// pingFrame is the server's keep-alive ping, the same bytes for everyone.
var pingFrame = []byte{0x80 | byte(ws.OpPing), 0}

// frame returns an unmasked, final server frame of op with payload.
func frame(op ws.OpCode, payload []byte) []byte {
	n := len(payload)
	var hdr [10]byte
	hdr[0] = 0x80 | byte(op)
	h := 2
	switch {
	case n <= 125:
		hdr[1] = byte(n)
	case n <= 0xffff:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
		h = 4
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
		h = 10
	}
	out := make([]byte, h+n)
	copy(out, hdr[:h])
	copy(out[h:], payload)
	return out
}

// textFrame is a text frame holding payload.
func textFrame(payload []byte) []byte { return frame(ws.OpText, payload) }

// closeFrame is a close frame with code and a reason (cut to fit 125 bytes).
func closeFrame(code ws.StatusCode, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	copy(p[2:], reason)
	return frame(ws.OpClose, p)
}

// maxFragments is the most frames one client message may arrive in; more
// closes the connection with 1008.
const maxFragments = 64

// frameReader reads client messages from a connection: it unmasks, joins
// fragments, enforces the size and fragment limits and answers control
// frames through the callbacks. It holds no buffer between messages.
type frameReader struct {
	r        io.Reader
	maxBytes int
	// onPing gets a ping's payload (to answer with a pong); onFrame is
	// called for every frame read (activity).
	onPing  func(payload []byte)
	onFrame func()
	// onBinary, when set, is called for each binary message, which is
	// read and dropped (a Socket.IO attachment); its error ends the
	// connection. Without it a binary frame closes with 1003.
	onBinary func() error
	// yield makes next return (nil, 0, nil) after a control frame instead
	// of reading on: the poller's goroutine then gives the socket back
	// rather than wait for a message that may not come.
	yield bool
	hdr   [ws.MaxHeaderSize - 2]byte
}

// next returns the next complete text message. Every fault is a
// *closeError with the code to close with, errPeerClosed for a client's
// close frame (whose code it returns), or a read error.
func (fr *frameReader) next() ([]byte, ws.StatusCode, error) {
	var msg []byte
	fragmented, binary := false, false
	fragments := 0
	for {
		h, err := ws.ReadHeaderBuffer(fr.r, fr.hdr[:])
		if err != nil {
			if errors.Is(err, ws.ErrHeaderLengthUnexpected) || errors.Is(err, ws.ErrHeaderLengthMSB) {
				return nil, 0, closeWith(CloseProtocolError, "bad frame header")
			}
			return nil, 0, err
		}
		fr.onFrame()
		if !h.Masked {
			return nil, 0, closeWith(CloseProtocolError, "client frames must be masked")
		}
		if h.Rsv != 0 {
			return nil, 0, closeWith(CloseProtocolError, "no extension was negotiated")
		}
		if h.OpCode.IsControl() {
			if !h.Fin || h.Length > 125 {
				return nil, 0, closeWith(CloseProtocolError, "bad control frame")
			}
			if h.OpCode.IsReserved() {
				return nil, 0, closeWith(CloseProtocolError, "unknown opcode")
			}
			p, err := fr.payload(h, nil, 0)
			if err != nil {
				return nil, 0, err
			}
			switch h.OpCode {
			case ws.OpPing:
				fr.onPing(p)
			case ws.OpClose:
				return nil, peerCloseCode(p), errPeerClosed
			}
			if fr.yield && !fragmented {
				return nil, 0, nil
			}
			continue
		}
		switch {
		case h.OpCode == ws.OpBinary && fr.onBinary == nil:
			return nil, 0, closeWith(CloseUnsupported, "binary frames are not accepted")
		case h.OpCode == ws.OpContinuation && !fragmented:
			return nil, 0, closeWith(CloseProtocolError, "continuation without a message")
		case (h.OpCode == ws.OpText || h.OpCode == ws.OpBinary) && fragmented:
			return nil, 0, closeWith(CloseProtocolError, "new message inside a fragmented one")
		case h.OpCode != ws.OpText && h.OpCode != ws.OpBinary && h.OpCode != ws.OpContinuation:
			return nil, 0, closeWith(CloseProtocolError, "unknown opcode")
		}
		if fragments++; fragments > maxFragments {
			return nil, 0, closeWith(ClosePolicy, "message in more than 64 fragments")
		}
		binary = binary || h.OpCode == ws.OpBinary
		if h.Length > int64(fr.maxBytes-len(msg)) {
			return nil, 0, closeWith(CloseTooBig, "message too big")
		}
		if msg, err = fr.payload(h, msg, fr.maxBytes); err != nil {
			return nil, 0, err
		}
		if !h.Fin {
			fragmented = true
			continue
		}
		if binary {
			if err := fr.onBinary(); err != nil {
				return nil, 0, err
			}
			msg, fragmented, binary, fragments = nil, false, false, 0
			if fr.yield {
				return nil, 0, nil
			}
			continue
		}
		if !utf8.Valid(msg) {
			return nil, 0, closeWith(CloseInvalidPayload, "text is not valid UTF-8")
		}
		return msg, 0, nil
	}
}

// payload reads h's payload, unmasked, appended to buf. A buffer too small
// grows to at least twice its capacity (but not past limit), so that the
// fragments of a message are copied a few times in all, not each time: an
// unfragmented message still gets a buffer of exactly its size.
func (fr *frameReader) payload(h ws.Header, buf []byte, limit int) ([]byte, error) {
	start := len(buf)
	if n := start + int(h.Length); cap(buf) < n {
		nb := make([]byte, start, max(n, min(2*cap(buf), limit)))
		copy(nb, buf)
		buf = nb
	}
	buf = buf[:start+int(h.Length)]
	if _, err := io.ReadFull(fr.r, buf[start:]); err != nil {
		return nil, err
	}
	ws.Cipher(buf[start:], h.Mask, 0)
	return buf, nil
}

// peerCloseCode is the code to echo for a client's close frame: a body of
// one byte, or a reason that is not UTF-8, fails the connection (RFC 6455
// sections 5.5.1 and 8.1).
func peerCloseCode(p []byte) ws.StatusCode {
	switch {
	case len(p) == 0:
		return CloseNormal
	case len(p) == 1:
		return CloseProtocolError
	case !utf8.Valid(p[2:]):
		return CloseInvalidPayload
	}
	code := ws.StatusCode(binary.BigEndian.Uint16(p))
	switch {
	case code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006:
		return code
	case code >= 3000 && code <= 4999:
		return code
	}
	return CloseProtocolError
}
