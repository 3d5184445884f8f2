package natsx_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/natsembed"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// server starts an embedded server with Switchboard's users and returns a
// JetStream context as user.
func server(t *testing.T) func(user string) jetstream.JetStream {
	t.Helper()
	pw := func(user string) string { return user + "-pw" }
	accounts, err := natsauth.Config(natsauth.Services(pw), "")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsembed.Start(natsembed.Config{Dir: t.TempDir(), ConfigString: accounts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return func(user string) jetstream.JetStream {
		t.Helper()
		nc, err := natsx.Connect(natsx.ConnConfig{InProcess: ns, User: user, Password: pw(user),
			InboxPrefix: names.InboxPrefix(user), Name: user, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
}

func bucket(desc string) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: names.BucketRateLimit, Description: desc, History: 1}
}

// A service's user opens its bucket but cannot create it: the admin sets
// it up, and only Update changes it.
func TestOpenAndUpdate(t *testing.T) {
	as := server(t)
	ctx := context.Background()
	service := as(natsauth.RateLimit)
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := natsx.KV(short, service, bucket("v1"), natsx.Open); !errors.Is(err, natsx.ErrNotSetUp) {
		t.Fatalf("opening a missing bucket without the right to create it: %v, want ErrNotSetUp", err)
	}
	admin := as(natsauth.Admin)
	if _, err := natsx.KV(ctx, admin, bucket("v1"), natsx.Update); err != nil {
		t.Fatal(err)
	}
	kv, err := natsx.KV(ctx, service, bucket("v2"), natsx.Open)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "acme.alice.send", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if desc := description(t, admin); desc != "v1" {
		t.Fatalf("Open changed the bucket: %q", desc)
	}
	if _, err := natsx.KV(ctx, admin, bucket("v2"), natsx.Update); err != nil {
		t.Fatal(err)
	}
	if desc := description(t, admin); desc != "v2" {
		t.Fatalf("Update left the bucket at %q", desc)
	}
}

func description(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	st, err := js.Stream(context.Background(), names.KVStream(names.BucketRateLimit))
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().Config.Description
}

// A user that may manage JetStream (a test's, a development server's) gets
// a missing stream created by Open, and a second Open finds it.
func TestOpenCreatesWhenAllowed(t *testing.T) {
	js := server(t)(natsauth.Admin)
	ctx := context.Background()
	cfg := jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}
	for range 2 {
		if _, err := natsx.Stream(ctx, js, cfg, natsx.Open); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Stream(ctx, "S"); err != nil {
		t.Fatal(err)
	}
}
