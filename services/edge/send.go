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
		go c.flushFn()
	}
	return true
}

// close queues a close frame with code as the last frame and ends the
// connection once it is written. With drop, queued frames are discarded
// and the write deadline is cut short, so that a stuck socket does not hold
// its goroutine (a slow client). Later calls do nothing.
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
		go c.flushFn()
	}
}

// flush writes queued frames, in batches (writev), until the queue is
// empty; after the close frame it closes the socket.
func (c *conn) flush() {
	for {
		c.qmu.Lock()
		if len(c.queue) == 0 {
			c.writing = false
			c.qmu.Unlock()
			return
		}
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		c.queued = 0
		last := c.closing // the close frame is in this batch
		timeout := c.s.cfg.WriteTimeout
		if c.hurry {
			timeout = hurryTimeout
		}
		c.qmu.Unlock()

		_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
		var err error
		if len(batch) == 1 {
			_, err = c.nc.Write(batch[0])
		} else {
			bufs := net.Buffers(batch)
			_, err = bufs.WriteTo(c.nc)
		}
		clear(batch)
		c.qmu.Lock()
		c.spare = batch[:0]
		c.qmu.Unlock()
		if err != nil || last {
			c.qmu.Lock()
			c.closing = true
			c.writing = false
			clear(c.queue)
			c.queue = c.queue[:0]
			c.qmu.Unlock()
			c.closeNow()
			return
		}
	}
}
