package natsx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// setupTimeout bounds the retries of setting up a stream or bucket: a
// cluster that is still electing its JetStream leader, or several instances
// creating the same bucket at once, answer late or not at all for a while.
const setupTimeout = 30 * time.Second

// EnsureStream creates the stream or updates it to cfg.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return retrySetup(ctx, "stream "+cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, cfg)
	})
}

// EnsureKV creates the bucket or updates it to cfg.
func EnsureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return retrySetup(ctx, "bucket "+cfg.Bucket, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, cfg)
	})
}

func retrySetup[T any](ctx context.Context, what string, f func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(setupTimeout)
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := f(actx)
		cancel()
		if err == nil || !transient(err) || time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return v, fmt.Errorf("%s: %w", what, err)
			}
			return v, nil
		}
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}

// transient errors are worth another try during setup.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 10008: JetStream temporarily unavailable; 10058: name in use
		// (another instance is creating it right now).
		return apiErr.ErrorCode == 10008 || apiErr.ErrorCode == jetstream.JSErrCodeStreamNameInUse
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

// Follow calls fn with every entry w delivers (the nil that ends the
// initial values is skipped) until ctx ends or w closes, then stops w. A
// watcher's channel blocks its consumer when full: fn must be quick.
func Follow(ctx context.Context, w jetstream.KeyWatcher, fn func(jetstream.KeyValueEntry)) {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				fn(e)
			}
		}
	}
}
