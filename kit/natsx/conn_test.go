package natsx_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/kit/natsembed"
	"github.com/switchboard-chat/switchboard/kit/natsx"
)

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// A service started before its NATS waits for it, and connects once it is up.
func TestConnectWaitsForNATS(t *testing.T) {
	addr := freeAddr(t)
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := natsx.Connect(natsx.ConnConfig{URL: "nats://" + addr, Name: "test", ConnectWait: 20 * time.Second})
		done <- result{nc, err}
	}()
	time.Sleep(time.Second)
	select {
	case r := <-done:
		t.Fatalf("Connect returned before NATS was up: %v", r.err)
	default:
	}
	ns, err := natsembed.Start(natsembed.Config{Dir: t.TempDir(), Listen: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("Connect after NATS came up: %v", r.err)
		}
		r.nc.Close()
	case <-time.After(15 * time.Second):
		t.Fatal("Connect did not connect within 15 s of NATS coming up")
	}
}

// The wait is bounded, and a refused credential is not retried.
func TestConnectGivesUp(t *testing.T) {
	t0 := time.Now()
	_, err := natsx.Connect(natsx.ConnConfig{URL: "nats://" + freeAddr(t), ConnectWait: time.Second})
	if err == nil || time.Since(t0) > 5*time.Second {
		t.Fatalf("Connect to nothing: %v after %v, want an error after about 1 s", err, time.Since(t0))
	}
	ns, err := natsembed.Start(natsembed.Config{Dir: t.TempDir(), ConfigString: `authorization { user: a, password: b }`})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	t0 = time.Now()
	_, err = natsx.Connect(natsx.ConnConfig{URL: ns.ClientURL(), User: "a", Password: "wrong", ConnectWait: 20 * time.Second})
	if !errors.Is(err, nats.ErrAuthorization) && (err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization")) {
		t.Fatalf("wrong password: %v, want an authorization error", err)
	}
	if time.Since(t0) > 5*time.Second {
		t.Fatalf("a refused credential was retried for %v", time.Since(t0))
	}
}
