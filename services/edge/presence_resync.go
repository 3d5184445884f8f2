package edge

import (
	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/proto/names"
)

// followPresenceResync makes the janitor's next sweep report every live
// connection whenever a presence instance starts. Heartbeats are published
// without a reply, so that those sent while presence was down are lost
// without a trace; an instance that comes back asks for them instead
// (names.PresenceResync), and entries that expired during the outage are
// back within a sweep, before presence announces anyone offline.
func (s *Server) followPresenceResync() error {
	sub, err := s.nc.Subscribe(names.PresenceResync, func(*nats.Msg) {
		s.resync.Store(true)
		s.log.Info("presence restarted: reporting every connection")
	})
	s.resyncSub = sub
	return err
}
