package edge

import (
	"sync"
	"sync/atomic"
	"syscall"
)

// writers write every socket's queued frames: a fixed pool of goroutines fed
// by a queue of connections that have frames. A writer takes a
// connection's whole queue and writes it with one system call (the frames
// copied into the writer's buffer), without waiting: a frame queued on an
// idle connection leaves at once, and under load the batches grow by
// themselves, since frames gather in the queues of connections waiting for
// a writer. No goroutine is started per write and no deadline set: a
// socket whose buffer is full (a slow client, a burst) gets a goroutine of
// its own that waits (slowFlush), guarded by the janitor (conn.tick).
type writers struct {
	ready chan *conn // connections whose writing role is waiting for a writer
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

const (
	// writerBuffer is each writer's buffer: one write takes at most this
	// much (or one larger frame alone).
	writerBuffer = 64 << 10
	// readyQueue bounds the connections waiting for a writer; past it a
	// connection is written by a goroutine of its own.
	readyQueue = 1 << 14
)

func newWriters(n int) *writers {
	p := &writers{ready: make(chan *conn, readyQueue), stop: make(chan struct{})}
	for range n {
		w := &writer{p: p, buf: make([]byte, 0, writerBuffer)}
		w.fn = w.rawWrite
		p.wg.Add(1)
		go w.run()
	}
	return p
}

// schedule hands c, which holds the writing role and has frames queued, to
// a writer. It never blocks.
func (p *writers) schedule(c *conn) {
	select {
	case <-p.stop:
	default:
		select {
		case p.ready <- c:
			return
		default:
		}
	}
	batch, last := c.take()
	go c.slowFlush(batch, last)
}

// close ends the writers; connections scheduled afterwards are written by
// goroutines of their own.
func (p *writers) close() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

// writer is one of the pool's goroutines and what it owns.
type writer struct {
	p   *writers
	buf []byte
	// The write in progress, for rawWrite.
	out []byte
	n   int
	err error
	fn  func(fd uintptr) // rawWrite, made once
	m   *metrics
}

func (w *writer) run() {
	defer w.p.wg.Done()
	for {
		select {
		case <-w.p.stop:
			return
		case c := <-w.p.ready:
			w.flush(c)
		}
	}
}

// flush writes what c has queued. Frames that came meanwhile send c to the
// back of the ready queue: other sockets go first, and c's next batch is
// larger.
func (w *writer) flush(c *conn) {
	batch, last := c.take()
	rc := c.writeState().raw
	if rc == nil {
		go c.slowFlush(batch, last) // no descriptor (TLS): blocking writes
		return
	}
	w.m = c.s.metrics
	rest, err := w.write(rc, batch)
	switch {
	case err != nil || (last && rest == nil):
		clear(batch)
		c.writeFailed()
	case rest != nil:
		go c.slowFlush(rest, last)
	case c.written(batch):
		c.s.writers.schedule(c)
	}
}

// write writes batch without waiting for the socket, in as few system
// calls as the buffer allows. When the socket's buffer fills up it returns
// what is left, a tail of batch whose first frame may be cut (only the
// slice header in batch is changed: frames are shared).
func (w *writer) write(rc syscall.RawConn, batch [][]byte) ([][]byte, error) {
	for i := 0; i < len(batch); {
		j := i + 1
		w.out = batch[i]
		if j < len(batch) && len(batch[i])+len(batch[j]) <= cap(w.buf) {
			w.out = append(w.buf[:0], batch[i]...)
			for ; j < len(batch) && len(w.out)+len(batch[j]) <= cap(w.buf); j++ {
				w.out = append(w.out, batch[j]...)
			}
		}
		w.n, w.err = 0, nil
		// Control, not Write: the descriptor stays valid (not closed nor
		// reused) while fn runs, which is all a write that never waits
		// needs; Write would also take the descriptor's write lock and
		// reset its poller state, for every frame. Only the holder of the
		// connection's writing role writes, so writes never interleave.
		if err := rc.Control(w.fn); err != nil {
			return nil, err
		}
		if w.err != nil {
			return nil, w.err
		}
		if n := w.n; n < len(w.out) {
			for k := i; k < j; k++ {
				if n < len(batch[k]) {
					batch[k] = batch[k][n:]
					return batch[k:], nil
				}
				n -= len(batch[k])
			}
		}
		i = j
	}
	return nil, nil
}

// rawWrite writes w.out[w.n:] to the descriptor until it is written or the
// socket's buffer is full; it never asks the runtime to wait.
func (w *writer) rawWrite(fd uintptr) {
	for w.n < len(w.out) {
		n, err := syscall.Write(int(fd), w.out[w.n:])
		w.m.writes.Inc()
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return
		case err != nil:
			w.err = err
			return
		case n <= 0:
			return
		}
		w.n += n
	}
}

// writeState is what a connection's writers keep, made once.
type writeState struct {
	raw syscall.RawConn // the descriptor, for writes that do not wait; nil: none (TLS)
	// since is when a blocking write (slowFlush) began, 0 when none is in
	// progress: the janitor closes a socket stuck for WriteTimeout.
	since atomic.Int64
}

// writeState returns c's, making it the first time. Called by the holder
// of the writing role.
func (c *conn) writeState() *writeState {
	if w := c.wst.Load(); w != nil {
		return w
	}
	w := &writeState{}
	if sc, ok := c.nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			w.raw = rc
		}
	}
	c.wst.Store(w)
	return w
}
