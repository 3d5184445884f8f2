// Command messaging runs messaging service instances against a NATS cluster.
// Any number of instances share the work through the queue group.
package main

import (
	"context"
	"flag"

	"github.com/switchboard-chat/switchboard/kit/cli"
	"github.com/switchboard-chat/switchboard/kit/files"
	"github.com/switchboard-chat/switchboard/services/messaging"
)

func main() {
	fs := flag.NewFlagSet("messaging", flag.ExitOnError)
	var common cli.Common
	common.Register(fs)
	retention := fs.Duration("retention", messaging.DefaultRetention, "how long conversation events are kept")
	maxContent := fs.Int("max-content-bytes", messaging.DefaultMaxContentBytes, "largest message content in bytes")
	streamMax := fs.Int64("stream-max-bytes", messaging.DefaultStreamMaxBytes, "size limit of the events stream and of the message state bucket, in bytes (-1: none)")
	kvMax := fs.Int64("kv-max-bytes", messaging.DefaultBucketMaxBytes, "size limit of each other bucket, in bytes (-1: none)")
	filesMax := fs.Int64("files-max-bytes", files.DefaultBucketMaxBytes, "size limit of the chat_files object store of uploads, in bytes (-1: none)")
	unattached := fs.Duration("file-unattached-ttl", files.DefaultUnattachedTTL, "uploads not attached to a message within this long are removed")
	cli.Main("messaging", fs, &common, func(ctx context.Context, env cli.Env) (func(context.Context) error, error) {
		s, err := messaging.New(ctx, env.NC, messaging.Config{
			Replicas:          env.Common.Replicas,
			Retention:         *retention,
			MaxContentBytes:   *maxContent,
			StreamMaxBytes:    *streamMax,
			BucketMaxBytes:    *kvMax,
			FilesMaxBytes:     *filesMax,
			FileUnattachedTTL: *unattached,
			Registerer:        env.Registry,
			Logger:            env.Log,
		})
		if err != nil {
			return nil, err
		}
		return s.Stop, nil
	})
}
