//go:build !linux

package edge

import (
	"errors"
	"net"
)

// poller is Linux-only (epoll); elsewhere every connection has a reader
// goroutine.
type poller struct{}

var errNoPoller = errors.New("no epoll")

func newPoller() (*poller, error)   { return nil, errNoPoller }
func fdOf(net.Conn) (int, bool)     { return 0, false }
func (p *poller) add(*conn) error   { return errNoPoller }
func (p *poller) rearm(*conn) error { return errNoPoller }
func (p *poller) remove(*conn)      {}
func (p *poller) close()            {}
