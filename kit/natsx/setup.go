package natsx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// setupTimeout bounds the retries of setting up a stream or bucket: a
// cluster that is still electing its JetStream leader, short of peers to
// place replicas on (10005), or several instances creating the same bucket
// at once, answer late or not at all for a while.
const setupTimeout = 60 * time.Second

// Each attempt waits attemptFirst, then twice as long, up to attemptMax.
// On a fresh cluster the first JetStream request, and often both of two
// instances' concurrent creates of one bucket, get no answer at all, though
// the bucket is made (with one 10 s wait per attempt, messaging took 50 s
// to set up six): a short first wait bounds that loss, longer ones later
// leave room for a slow but live cluster. A create takes ~0.1 s.
const (
	attemptFirst = 500 * time.Millisecond
	attemptMax   = 8 * time.Second
)

// Mode says what a Stream or KV call may do to JetStream state.
type Mode int

const (
	// Open looks the stream or bucket up, and creates it only when it is
	// missing; it never changes one. A service opens its state: its NATS
	// user may read and write its streams and buckets but not manage them
	// (an admin sets them up), and a user that may (tests, a development
	// server) gets them created on first use.
	Open Mode = iota
	// Update creates the stream or bucket or updates it to the config:
	// setup, by a user that may manage JetStream.
	Update
)

// Stream opens or updates (mode) the stream cfg describes.
func Stream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, mode Mode) (jetstream.Stream, error) {
	if mode == Update {
		return retrySetup(ctx, "stream "+cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
			return js.CreateOrUpdateStream(ctx, cfg)
		})
	}
	return retrySetup(ctx, "stream "+cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
		st, err := js.Stream(ctx, cfg.Name)
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return st, err
		}
		if st, err = js.CreateStream(ctx, cfg); errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return js.Stream(ctx, cfg.Name) // another instance was first
		}
		return st, missing(err)
	})
}

// KV opens or updates (mode) the bucket cfg describes.
func KV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, mode Mode) (jetstream.KeyValue, error) {
	if mode == Update {
		return retrySetup(ctx, "bucket "+cfg.Bucket, func(ctx context.Context) (jetstream.KeyValue, error) {
			return js.CreateOrUpdateKeyValue(ctx, cfg)
		})
	}
	return retrySetup(ctx, "bucket "+cfg.Bucket, func(ctx context.Context) (jetstream.KeyValue, error) {
		kv, err := js.KeyValue(ctx, cfg.Bucket)
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return kv, err
		}
		if kv, err = js.CreateKeyValue(ctx, cfg); errors.Is(err, jetstream.ErrBucketExists) {
			return js.KeyValue(ctx, cfg.Bucket) // another instance was first
		}
		return kv, missing(err)
	})
}

// ObjectStore opens or updates (mode) the object store cfg describes.
func ObjectStore(ctx context.Context, js jetstream.JetStream, cfg jetstream.ObjectStoreConfig, mode Mode) (jetstream.ObjectStore, error) {
	if mode == Update {
		return retrySetup(ctx, "bucket "+cfg.Bucket, func(ctx context.Context) (jetstream.ObjectStore, error) {
			return js.CreateOrUpdateObjectStore(ctx, cfg)
		})
	}
	return retrySetup(ctx, "bucket "+cfg.Bucket, func(ctx context.Context) (jetstream.ObjectStore, error) {
		obs, err := js.ObjectStore(ctx, cfg.Bucket)
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return obs, err
		}
		if obs, err = js.CreateObjectStore(ctx, cfg); errors.Is(err, jetstream.ErrBucketExists) {
			return js.ObjectStore(ctx, cfg.Bucket) // another instance was first
		}
		return obs, missing(err)
	})
}

// ErrNotSetUp is a stream or bucket that is missing and that this NATS
// user could not create: run the setup with an admin user first.
var ErrNotSetUp = errors.New("missing, and this NATS user could not create it (set JetStream up with an admin user: switchboard -setup)")

// missing turns a create that got no answer, as a NATS user without the
// permission gets, into ErrNotSetUp, which is not retried.
func missing(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return fmt.Errorf("%w: %v", ErrNotSetUp, err)
	}
	return err
}

func retrySetup[T any](ctx context.Context, what string, f func(context.Context) (T, error)) (T, error) {
	start := time.Now()
	wait, attempt := 100*time.Millisecond, attemptFirst
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, attempt)
		v, err := f(actx)
		cancel()
		if err == nil {
			if n > 1 {
				slog.Info("nats setup done", "what", what, "attempts", n, "took", time.Since(start).Round(time.Millisecond))
			}
			return v, nil
		}
		if !transient(err) || time.Since(start) > setupTimeout || ctx.Err() != nil {
			return v, fmt.Errorf("%s: %w", what, err)
		}
		slog.Warn("nats setup: retrying", "what", what, "attempt", n, "err", err, "next_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return v, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		wait = min(2*wait, 2*time.Second)
		attempt = min(2*attempt, attemptMax)
	}
}

// transient errors are worth another try during setup: NATS not answering
// (IsUnavailable: timeouts, no responders, no JetStream leader, 10005 no
// suitable peers while nodes start) or 10058, name in use (another
// instance is creating it right now).
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamNameInUse {
		return true
	}
	return IsUnavailable(err)
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
