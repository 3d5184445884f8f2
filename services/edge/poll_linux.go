//go:build linux

package edge

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// poller waits for readable sockets with one epoll instance, so that an
// idle connection has no goroutine at all: when a socket becomes readable a
// goroutine (a worker of the Server's pool, shared by every connection and
// ended once idle a while) reads one frame, runs it, and hands the socket
// back. Sockets are registered one-shot: one reader at a time per
// connection, which checks its commands in the order they came and hands
// them to their lanes (lanes.go).
type poller struct {
	epfd   int
	mu     sync.Mutex
	conns  map[int32]*conn // by file descriptor
	closed atomic.Bool
	done   chan struct{}
}

const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &poller{epfd: fd, conns: map[int32]*conn{}, done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// fdOf is the descriptor of a socket (ok false for a connection that has
// none, such as TLS: it then gets a reader goroutine).
func fdOf(nc net.Conn) (int, bool) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	fd := -1
	if raw.Control(func(f uintptr) { fd = int(f) }) != nil || fd < 0 {
		return 0, false
	}
	return fd, true
}

// add starts watching c (its descriptor is c.fd); its first readiness
// calls c.ready.
func (p *poller) add(c *conn) error {
	if p.closed.Load() {
		return errors.New("poller closed")
	}
	p.mu.Lock()
	p.conns[int32(c.fd)] = c
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: pollEvents, Fd: int32(c.fd), Pad: int32(c.seq)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.conns, int32(c.fd))
		p.mu.Unlock()
		return err
	}
	return nil
}

// rearm watches c again after a frame was handled.
func (p *poller) rearm(c *conn) error {
	ev := syscall.EpollEvent{Events: pollEvents, Fd: int32(c.fd), Pad: int32(c.seq)}
	return syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev)
}

// remove stops watching c; called before its socket is closed, so that the
// descriptor's next owner is never taken for c.
func (p *poller) remove(c *conn) {
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	p.mu.Lock()
	if p.conns[int32(c.fd)] == c {
		delete(p.conns, int32(c.fd))
	}
	p.mu.Unlock()
}

func (p *poller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 256)
	for !p.closed.Load() {
		// A timeout, so that close is noticed: closing the epoll
		// descriptor does not wake a waiting epoll_wait.
		n, err := syscall.EpollWait(p.epfd, events, 500)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		for i := range n {
			p.mu.Lock()
			c := p.conns[events[i].Fd]
			p.mu.Unlock()
			// Pad carries the connection's sequence: a descriptor reused by
			// a newer connection is not confused with the old one.
			if c != nil && int32(c.seq) == events[i].Pad {
				c.s.pool.Go(c.ready)
			}
		}
	}
}

func (p *poller) close() {
	if p.closed.CompareAndSwap(false, true) {
		<-p.done
		_ = syscall.Close(p.epfd)
	}
}
