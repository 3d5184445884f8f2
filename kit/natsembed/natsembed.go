// Package natsembed starts a nats-server with JetStream inside the process.
// Only the standalone binary and tests import it: it links all of
// nats-server, which a service binary (kit/natsx) does without.
package natsembed

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultDir is the JetStream store directory when none is given.
const DefaultDir = "./data"

// Config configures an in-process nats-server with JetStream. Its
// zero value listens on a random loopback port with the store in DefaultDir.
type Config struct {
	// Dir is the JetStream store directory. Default DefaultDir.
	Dir string
	// Listen is the client listener, host:port. Default "127.0.0.1:-1"
	// (a random port).
	Listen string
	// NoListen keeps the server in process only: no client listener.
	NoListen bool
	// ServerName names the server (useful in a cluster). Default random.
	ServerName string
	// ConfigString is extra configuration in nats-server syntax (accounts,
	// permissions, cluster), applied before the fields above.
	ConfigString string
	// Logs makes the server log to stderr.
	Logs bool
}

// Start starts a nats-server with JetStream and waits until it accepts
// connections. The server is also a nats.InProcessConnProvider, for
// natsx.ConnConfig.InProcess.
func Start(cfg Config) (*server.Server, error) {
	opts := &server.Options{}
	if cfg.ConfigString != "" {
		if err := opts.ProcessConfigString(cfg.ConfigString); err != nil {
			return nil, fmt.Errorf("embedded nats config: %w", err)
		}
	}
	opts.JetStream = true
	opts.StoreDir = cfg.Dir
	if opts.StoreDir == "" {
		opts.StoreDir = DefaultDir
	}
	host, port, err := splitListen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	opts.Host, opts.Port = host, port
	opts.DontListen = cfg.NoListen
	opts.NoSigs = true
	if cfg.ServerName != "" {
		opts.ServerName = cfg.ServerName
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if cfg.Logs {
		ns.ConfigureLogger()
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats: not ready within 10s")
	}
	return ns, nil
}

func splitListen(listen string) (string, int, error) {
	if listen == "" {
		return "127.0.0.1", -1, nil
	}
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("embedded nats listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("embedded nats listen %q: bad port", listen)
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}
