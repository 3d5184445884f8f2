package standalone

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/kit/natsauth"

	"github.com/switchboard-chat/switchboard/services/messaging"
	"github.com/switchboard-chat/switchboard/services/presence"
	"github.com/switchboard-chat/switchboard/services/ratelimit"
)

// On an empty store, the admin's setup runs against a 3-node cluster that
// has just come up, and the instances of every service then start at
// once: all within seconds.
func TestClusterColdStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	nodes := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := testLogger()
	start := time.Now()
	cfg := Config{Messaging: messaging.Config{Replicas: 3}, Presence: presence.Config{Replicas: 3},
		RateLimit: ratelimit.Config{Replicas: 3, Limits: generous()}}
	if err := Setup(ctx, connectAs(t, nodes, natsauth.Admin, 0, nil), cfg); err != nil {
		t.Fatal(err)
	}
	setup := time.Since(start)
	t.Logf("setup done after %v", setup.Round(time.Millisecond))
	if setup > 20*time.Second {
		t.Errorf("setup took %v on a cold cluster", setup)
	}
	start = time.Now()
	var wg sync.WaitGroup
	took := make([]time.Duration, 4)
	errs := make([]error, 4)
	run := func(i int, f func() (interface{ Stop(context.Context) error }, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := f()
			took[i], errs[i] = time.Since(start), err
			if err == nil {
				t.Cleanup(func() { _ = s.Stop(context.Background()) })
			}
		}()
	}
	for i := range 2 {
		run(i, func() (interface{ Stop(context.Context) error }, error) {
			return messaging.New(ctx, connectAs(t, nodes, natsauth.Messaging, i, nil), messaging.Config{Logger: log})
		})
	}
	run(2, func() (interface{ Stop(context.Context) error }, error) {
		return presence.New(ctx, connectAs(t, nodes, natsauth.Presence, 1, nil), presence.Config{Logger: log})
	})
	run(3, func() (interface{ Stop(context.Context) error }, error) {
		return ratelimit.New(ctx, connectAs(t, nodes, natsauth.RateLimit, 2, nil), ratelimit.Config{Limits: generous(), Logger: log})
	})
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("service %d: %v", i, err)
		}
		t.Logf("service %d ready after %v", i, took[i].Round(time.Millisecond))
	}
	for i, d := range took {
		if d > 10*time.Second {
			t.Errorf("service %d took %v to be ready on a cold cluster", i, d)
		}
	}
}
