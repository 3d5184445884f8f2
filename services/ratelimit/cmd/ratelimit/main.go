// Command ratelimit runs ratelimit service instances against a NATS cluster.
// Any number of instances share the work through the queue group and agree
// through the chat_ratelimit bucket.
package main

import (
	"context"
	"flag"
	"strings"

	"github.com/switchboard-chat/switchboard/kit/cli"
	"github.com/switchboard-chat/switchboard/kit/limits"
	"github.com/switchboard-chat/switchboard/services/ratelimit"
)

func main() {
	fs := flag.NewFlagSet("ratelimit", flag.ExitOnError)
	var common cli.Common
	common.Register(fs)
	spec := fs.String("limits", "", "rate-limit overrides, comma-separated command=capacity/period (e.g. message:send=1000/1s)")
	file := fs.String("limits-file", "", "file of rate-limit overrides, one command=capacity/period a line")
	cli.Main("ratelimit", fs, &common, func(ctx context.Context, env cli.Env) (func(context.Context) error, error) {
		set, err := limits.Load(*spec, *file)
		if err != nil {
			return nil, err
		}
		l, err := ratelimit.New(ctx, env.NC, ratelimit.Config{
			Limits:     set,
			Replicas:   env.Common.Replicas,
			Registerer: env.Registry,
			Logger:     env.Log,
		})
		if err != nil {
			return nil, err
		}
		env.Log.Info("limits", "limits", describe(set))
		return l.Stop, nil
	})
}

// describe lists the limits for the start-up log line.
func describe(set limits.Set) string {
	parts := make([]string, 0, len(set))
	for _, c := range set.Commands() {
		parts = append(parts, c+"="+set[c].String())
	}
	return strings.Join(parts, ",")
}
