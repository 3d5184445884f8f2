package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// wsConn is one lean client connection. Its reader goroutine reads frames
// straight from a bufio.Reader (payloads are looked at in place, not
// copied), answers pings, and hands text frames to the run's counters
// with the cheap parsing of parse.go. Writes (commands from the sender,
// pongs from the reader) are serialized by wmu and masked into one reused
// buffer.
type wsConn struct {
	idx  int
	user string
	room int
	r    *run

	nc   net.Conn
	br   *bufio.Reader
	hbuf [ws.MaxHeaderSize - 2]byte

	wmu  sync.Mutex
	wbuf []byte

	// Reader-owned.
	frag     []byte // a fragmented message being joined
	lastSeq  uint64 // newest durable seq of the room seen
	primed   bool   // lastSeq is known (from the join ack)
	gotSess  bool
	sessSeen chan struct{} // closed on the session event
	replies  chan []byte   // replies to setup commands (copies)
	done     chan struct{} // closed when the reader ends

	delivered  atomic.Int64 // message:new frames received
	closeCode  atomic.Int32 // the server's close code; -1: lost without one
	closedByUs atomic.Bool
}

// dialer holds what every dial shares.
type dialer struct {
	url     string
	timeout time.Duration
	bufSize int
	srcIPs  int // spread over 127.0.0.1..127.0.0.N (IPv4 loopback only)
	mint    func(user string) string
}

// dial opens connection idx as user and waits for its session event.
func (d *dialer) dial(r *run, idx int, user string) (*wsConn, error) {
	tok := d.mint(user)
	var local net.Addr
	if d.srcIPs > 1 {
		local = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+idx%d.srcIPs))}
	}
	wd := ws.Dialer{
		Timeout:        d.timeout,
		Header:         ws.HandshakeHeaderString("Authorization: Bearer " + tok + "\r\n"),
		ReadBufferSize: d.bufSize,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return loopbackDial(ctx, network, addr, local)
		},
	}
	nc, br, _, err := wd.Dial(context.Background(), d.url)
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReaderSize(nc, d.bufSize)
	}
	c := &wsConn{
		idx: idx, user: user, r: r, nc: nc, br: br,
		sessSeen: make(chan struct{}), replies: make(chan []byte, 4), done: make(chan struct{}),
	}
	go c.readLoop()
	select {
	case <-c.sessSeen:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("closed before the session event (code %d)", c.closeCode.Load())
	case <-time.After(d.timeout):
		c.kill()
		return nil, errors.New("no session event in time")
	}
}

// loopbackDial dials addr only if every address it names is a loopback one.
func loopbackDial(ctx context.Context, network, addr string, local net.Addr) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := resolveLoopback(ctx, host)
	if err != nil {
		return nil, err
	}
	ip := ips[0]
	for _, x := range ips {
		if x.To4() != nil {
			ip = x
			break
		}
	}
	nd := net.Dialer{}
	if local != nil && ip.To4() != nil {
		nd.LocalAddr = local
	}
	return nd.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
}

// resolveLoopback resolves host and refuses anything but loopback
// addresses (127.0.0.0/8, ::1).
func resolveLoopback(ctx context.Context, host string) ([]net.IP, error) {
	if err := checkLoopbackHost(host); err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s resolves to nothing", host)
	}
	out := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return nil, fmt.Errorf("refusing %s: it resolves to %s, not a loopback address", host, a.IP)
		}
		out = append(out, a.IP)
	}
	return out, nil
}

// checkLoopbackHost accepts only "localhost" and literal loopback IPs.
func checkLoopbackHost(host string) error {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing %q: the load generator only targets loopback addresses (127.0.0.0/8, ::1, localhost)", host)
	}
	return nil
}

// writeFrame sends one masked, final frame.
func (c *wsConn) writeFrame(op ws.OpCode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n := len(payload)
	b := c.wbuf[:0]
	b = append(b, 0x80|byte(op))
	switch {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	b = append(b, mask[:]...)
	h := len(b)
	b = append(b, payload...)
	ws.Cipher(b[h:], mask, 0)
	c.wbuf = b
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

// request sends a setup command with id and waits for its reply.
func (c *wsConn) request(id string, payload []byte, timeout time.Duration) ([]byte, error) {
	if err := c.writeFrame(ws.OpText, payload); err != nil {
		return nil, err
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case p := <-c.replies:
			if gotID, _, _ := envelope(p); string(gotID) == id {
				return p, nil
			}
		case <-c.done:
			return nil, fmt.Errorf("connection closed (code %d)", c.closeCode.Load())
		case <-deadline.C:
			return nil, fmt.Errorf("no reply to %s in %s", id, timeout)
		}
	}
}

// close sends a normal close and closes the socket.
func (c *wsConn) close() {
	c.closedByUs.Store(true)
	_ = c.writeFrame(ws.OpClose, []byte{0x03, 0xe8})
	_ = c.nc.Close()
}

func (c *wsConn) kill() {
	c.closedByUs.Store(true)
	_ = c.nc.Close()
}

func (c *wsConn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func (c *wsConn) readLoop() {
	defer close(c.done)
	defer func() { _ = c.nc.Close() }()
	for {
		h, err := ws.ReadHeaderBuffer(c.br, c.hbuf[:])
		if err != nil {
			c.lost(err)
			return
		}
		n := int(h.Length)
		var p []byte
		inPlace := n <= c.br.Size()
		if inPlace {
			if p, err = c.br.Peek(n); err != nil {
				c.lost(err)
				return
			}
		} else {
			p = make([]byte, n)
			if _, err = io.ReadFull(c.br, p); err != nil {
				c.lost(err)
				return
			}
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		stop := c.frame(h, p)
		if inPlace {
			_, _ = c.br.Discard(n)
		}
		if stop {
			return
		}
	}
}

// frame handles one frame; it reports whether the connection ended.
func (c *wsConn) frame(h ws.Header, p []byte) bool {
	switch h.OpCode {
	case ws.OpPing:
		_ = c.writeFrame(ws.OpPong, p)
		return false
	case ws.OpPong:
		return false
	case ws.OpClose:
		code := 1005
		if len(p) >= 2 {
			code = int(binary.BigEndian.Uint16(p))
		}
		c.closeCode.Store(int32(code))
		if !c.closedByUs.Load() {
			c.r.st.serverClose(code, string(p[min(2, len(p)):]))
			_ = c.writeFrame(ws.OpClose, p[:min(2, len(p))])
		}
		return true
	case ws.OpBinary:
		c.r.st.countEvent("(binary frame)")
		return false
	}
	if !h.Fin || h.OpCode == ws.OpContinuation {
		c.frag = append(c.frag, p...)
		if !h.Fin {
			return false
		}
		p = c.frag
		c.frag = nil
	}
	c.r.text(c, p)
	return false
}

// lost records a socket that ended without a close frame.
func (c *wsConn) lost(err error) {
	if c.closedByUs.Load() {
		return
	}
	if c.closeCode.CompareAndSwap(0, -1) {
		c.r.st.serverClose(-1, err.Error())
	}
}
