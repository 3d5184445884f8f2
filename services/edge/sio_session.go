package edge

import (
	"encoding/json"
	"sync/atomic"

	"github.com/switchboard-chat/switchboard/kit/errs"
)

// sioSession is the Socket.IO side of a conn: the conn reads, runs
// commands, queues frames and closes as any other, and the session turns
// its Engine.IO packets into commands (handleSocketIO) and its frames into
// packets (outgoing, in sio_render.go).
type sioSession struct {
	x *socketIO

	// Keep-alive: the janitor queues pings, the reader sees pongs.
	pingAt atomic.Int64 // unix nanos of the last ping queued; 0: none yet
	ponged atomic.Bool  // a pong came after it

	drop int // owned by the reader: attachments of a refused binary packet still to come
}

// sioClientLeft ends a session the client disconnected (41, or Engine.IO's
// close 1): code 1000 sends no notice back.
var sioClientLeft = closeWith(CloseNormal, "closed by client")

// attach makes c a Socket.IO session: from here on its frames are
// packets, and the first is the connect reply, whose sid is the
// connection id (socket.id is the session event's connectionId). There is
// no pid: the server keeps no state for connection-state recovery, and
// with a pid the client would take every event's last string argument for
// an offset. Called by open before anything else is queued or read.
func (ss *sioSession) attach(c *conn) {
	c.sio = ss
	c.fr.onBinary = ss.binary
	c.send(textFrame([]byte(`40{"sid":"` + c.id + `"}`)))
}

// binary takes one binary message: an attachment of a refused binary
// packet, dropped; any other closes the session as at /ws (1003).
func (ss *sioSession) binary() error {
	if ss.drop == 0 {
		return closeWith(CloseUnsupported, "binary frames are not accepted")
	}
	ss.drop--
	return nil
}

// handleSocketIO runs one Engine.IO packet of a connected session. Events
// become commands and take the path of every command (run): the same
// checks, limits and replies, rendered as packets on the way out.
func (c *conn) handleSocketIO(msg []byte) error {
	ss := c.sio
	if ss.drop > 0 {
		return closeWith(ClosePolicy, "a text packet among the attachments of a binary one")
	}
	if len(msg) == 0 {
		return closeWith(ClosePolicy, "empty Engine.IO packet")
	}
	switch msg[0] {
	case '3':
		ss.ponged.Store(true)
		return nil
	case '2':
		c.send(sioPongFrame) // Engine.IO 3 clients ping; answering costs nothing
		return nil
	case '1':
		return sioClientLeft
	case '4':
	default:
		return closeWith(ClosePolicy, "not an Engine.IO packet of a websocket session")
	}
	p, err := parseSIO(msg[1:])
	if err != nil {
		return err
	}
	if p.nsp != "/" {
		if p.typ == sioConnect {
			c.send(sioInvalidNamespace(p.nsp))
			return nil
		}
		return closeWith(ClosePolicy, "a packet for a namespace not connected")
	}
	switch p.typ {
	case sioConnect:
		return nil // connected already
	case sioDisconnect:
		return sioClientLeft
	case sioEvent:
		return c.run(sioCommand(p))
	case sioBinaryEvent:
		ss.drop = p.attachments
		cmd, _ := sioCommand(p)
		return c.run(cmd, errs.Invalid(errs.Field{Field: "", Reason: "binary events are not accepted"}))
	case sioAck, sioBinaryAck:
		ss.drop = p.attachments // the server asks for no acks: nothing to do
		return nil
	}
	return closeWith(ClosePolicy, "a client does not send connect errors")
}

// sioCommand is the command of an event: its name is the type, its one
// argument the data, its ack id the command id.
func sioCommand(p sioPacket) (command, error) {
	cmd := command{ID: p.id}
	var f errs.Fields
	switch {
	case json.Unmarshal(p.args[0], &cmd.Type) != nil:
		f.Add("type", "must be a string (the event name)")
	case commands[cmd.Type] == nil:
		f.Add("type", "unknown command type")
	}
	if len(p.args) > 1 {
		cmd.Data = p.args[1]
	}
	if len(p.args) > 2 {
		f.Add("", "a command has one argument, its data")
	}
	return cmd, f.Err()
}

// pinged records a ping queued at n (unix nanos). While the last ping is
// unanswered its time stands: a ping sent meanwhile does not move the
// pong's deadline.
func (ss *sioSession) pinged(n int64) {
	if ss.pingAt.Load() != 0 && !ss.ponged.Load() {
		return
	}
	ss.ponged.Store(false)
	ss.pingAt.Store(n)
}

// lost reports whether the client stopped answering at n: no pong within
// pingTimeout of a ping, or nothing at all for the idle timeout.
func (ss *sioSession) lost(c *conn, n int64) bool {
	if n-c.lastRead.Load() > int64(c.s.cfg.IdleTimeout) {
		return true
	}
	at := ss.pingAt.Load()
	return at != 0 && !ss.ponged.Load() && n-at > int64(ss.x.pingTimeout())
}
