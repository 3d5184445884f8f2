package edge

import (
	"net"
	"strconv"
	"time"

	"github.com/gobwas/ws"
)

// hurryTimeout bounds the last writes to a socket closed for being slow.
const hurryTimeout = time.Second

// send queues a frame for the socket. It never blocks: a connection whose
// queue is full is closed with 1013 (it resumes with sinceSeq) and the
// frame is dropped. The same frame bytes may be queued on many sockets;
// nobody writes to them. It reports whether the frame was queued.
func (c *conn) send(frame []byte) bool {
	if c.sio != nil {
		frame = c.sio.outgoing(frame)
	}
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return false
	}
	if len(c.queue) >= c.s.cfg.SendQueueFrames || c.queued+len(frame) > c.s.cfg.SendQueueBytes {
		c.qmu.Unlock()
		c.s.metrics.overflows.Inc()
		c.close(CloseTryAgain, "send queue overflow", true)
		return false
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	start := !c.writing
	c.writing = true
	c.qmu.Unlock()
	if start {
		c.s.writers.schedule(c)
	}
	return true
}

// close queues a close frame with code as the last frame and ends the
// connection once it is written. With drop, queued frames are discarded
// and the write deadline is cut short, so that a stuck socket does not hold
// its writer (a slow client). Later calls do nothing.
func (c *conn) close(code ws.StatusCode, reason string, drop bool) {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return
	}
	c.closing = true
	if drop {
		clear(c.queue)
		c.queue, c.queued = c.queue[:0], 0
		c.hurry = true
		// Once per slow client, not per write: a blocked write (slowFlush)
		// ends within hurryTimeout. A write that does not wait (writer.go)
		// ignores it: it takes what the socket has room for, or hands the
		// rest to slowFlush.
		_ = c.nc.SetWriteDeadline(time.Now().Add(hurryTimeout))
	}
	if c.sio != nil {
		c.queue = c.sio.notice(c.queue, code, reason)
	}
	c.queue = append(c.queue, closeFrame(code, reason))
	start := !c.writing
	c.writing = true
	c.qmu.Unlock()
	c.s.metrics.closes.WithLabelValues(strconv.Itoa(int(code))).Inc()
	if start {
		c.s.writers.schedule(c)
	}
}

// isClosing reports whether a close frame is queued: nothing more is
// sent.
func (c *conn) isClosing() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.closing
}

// take hands the writer that holds the writing role the whole queue. last
// reports that the close frame is in it.
func (c *conn) take() (batch [][]byte, last bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	batch = c.queue
	c.queue, c.spare = c.spare[:0], nil
	c.queued = 0
	return batch, c.closing
}

// written gives a written batch's slice back for reuse and reports whether
// more frames came meanwhile; if none did, the writing role ends.
func (c *conn) written(batch [][]byte) (more bool) {
	clear(batch)
	c.qmu.Lock()
	defer c.qmu.Unlock()
	c.spare = batch[:0]
	if len(c.queue) > 0 {
		return true
	}
	c.writing = false
	return false
}

// writeFailed ends a connection whose socket failed (or that wrote its
// close frame): nothing more is queued or written.
func (c *conn) writeFailed() {
	c.qmu.Lock()
	c.closing = true
	c.writing = false
	clear(c.queue)
	c.queue = c.queue[:0]
	c.qmu.Unlock()
	c.closeNow()
}

// slowFlush writes with blocking writes, on a goroutine of its own: first
// batch (what a writer could not write without waiting; last: the close
// frame is in it), then whatever is queued, until the queue is empty. It
// holds the writing role. A write that does not finish within WriteTimeout
// is ended by the janitor (tick), one to a connection closed for being slow
// by its deadline (hurryTimeout).
func (c *conn) slowFlush(batch [][]byte, last bool) {
	w := c.writeState()
	for {
		c.s.metrics.blocked.Inc()
		w.since.Store(time.Now().UnixNano())
		var err error
		if len(batch) == 1 {
			_, err = c.nc.Write(batch[0])
		} else {
			bufs := net.Buffers(batch)
			_, err = bufs.WriteTo(c.nc)
		}
		w.since.Store(0)
		if err != nil || last {
			clear(batch)
			c.writeFailed()
			return
		}
		if !c.written(batch) {
			return
		}
		batch, last = c.take()
	}
}

// stuck reports whether a blocking write began more than timeout before
// now (unix nanos).
func (c *conn) stuck(now int64, timeout time.Duration) bool {
	w := c.wst.Load()
	if w == nil {
		return false
	}
	since := w.since.Load()
	return since != 0 && now-since > int64(timeout)
}
