// Package natstest is for tests only: it starts real nats-servers with
// JetStream, one embedded server on t.TempDir() shut down by t.Cleanup. No
// binary imports it.
package natstest

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/kit/natsembed"
	"github.com/switchboard-chat/switchboard/kit/natsx"
)

// Server starts an embedded nats-server with JetStream on a random port.
func Server(t testing.TB) *server.Server {
	t.Helper()
	ns, err := natsembed.Start(natsembed.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// Conn connects to ns over TCP, closed by t.Cleanup.
func Conn(t testing.TB, ns *server.Server) *nats.Conn {
	t.Helper()
	nc, err := natsx.Connect(natsx.ConnConfig{URL: ns.ClientURL(), Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
