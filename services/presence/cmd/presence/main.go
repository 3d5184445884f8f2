// Command presence runs presence service instances against a NATS cluster.
// Any number of instances share the work through the queue group; each
// keeps a view of every live connection.
package main

import (
	"context"
	"flag"

	"github.com/switchboard-chat/switchboard/kit/cli"
	"github.com/switchboard-chat/switchboard/services/presence"
)

func main() {
	fs := flag.NewFlagSet("presence", flag.ExitOnError)
	var common cli.Common
	common.Register(fs)
	ttl := fs.Duration("presence-ttl", presence.DefaultTTL, "a connection without a heartbeat for this long is offline")
	grace := fs.Duration("presence-grace", presence.DefaultGrace, "how long a user without connections stays shown before offline")
	cli.Main("presence", fs, &common, func(ctx context.Context, env cli.Env) (func(context.Context) error, error) {
		s, err := presence.New(ctx, env.NC, presence.Config{
			TTL: *ttl, Grace: *grace, Replicas: env.Common.Replicas, Registerer: env.Registry, Logger: env.Log,
		})
		if err != nil {
			return nil, err
		}
		return s.Stop, nil
	})
}
