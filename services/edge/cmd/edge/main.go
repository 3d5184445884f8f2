// Command edge runs an edge against a NATS cluster: it terminates client
// WebSockets and talks to the services over NATS. Run as many as you like
// behind a load balancer; they hold no durable state.
package main

import (
	"context"
	"flag"
	"net"

	"github.com/switchboard-chat/switchboard/kit/cli"
	"github.com/switchboard-chat/switchboard/services/edge"
)

func main() {
	fs := flag.NewFlagSet("edge", flag.ExitOnError)
	// Metrics are on their own listener, on loopback by default: the
	// public one has none.
	common := cli.Common{MetricsListen: edge.DefaultMetricsListen}
	common.Register(fs)
	var flags edge.Flags
	flags.Register(fs)
	cli.Main("edge", fs, &common, func(ctx context.Context, env cli.Env) (func(context.Context) error, error) {
		cfg, err := flags.Config()
		if err != nil {
			return nil, err
		}
		cfg.Registerer, cfg.Logger = env.Registry, env.Log
		s, err := edge.New(env.NC, cfg)
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", flags.Listen)
		if err != nil {
			return nil, err
		}
		env.Log.Info("edge listening", "addr", ln.Addr().String())
		go func() {
			if err := s.Serve(ln); err != nil {
				env.Log.Error("serve", "err", err)
			}
		}()
		return s.Shutdown, nil
	})
}
