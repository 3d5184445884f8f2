package standalone

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
	"github.com/switchboard-chat/switchboard/services/messaging"
)

// actor is one NATS user's connection, with the permissions violations the
// server reports to it.
type actor struct {
	t    *testing.T
	name string
	nc   *nats.Conn
	v    violations
}

func newActor(t *testing.T, nodes []*server.Server, user string) *actor {
	v := make(violations, 10)
	return &actor{t: t, name: user, nc: connectAs(t, nodes, user, 0, v), v: v}
}

// refusedPublish publishes a request to subject and asserts that the server
// refused it: a permissions violation, and no answer.
func (a *actor) refusedPublish(subject string) {
	a.t.Helper()
	_, err := a.nc.Request(subject, []byte("{}"), 300*time.Millisecond)
	if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, nats.ErrNoResponders) {
		a.t.Errorf("%s publishing to %s: got an answer (%v)", a.name, subject, err)
	}
	a.violation("Publish to \"" + subject + "\"")
}

// refusedSubscribe subscribes to subject and asserts that the server
// refused it.
func (a *actor) refusedSubscribe(subject string) {
	a.t.Helper()
	sub, err := a.nc.SubscribeSync(subject)
	if err != nil {
		a.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = a.nc.Flush()
	a.violation("Subscription to \"" + subject + "\"")
}

func (a *actor) violation(what string) {
	a.t.Helper()
	select {
	case err := <-a.v:
		if !strings.Contains(err.Error(), "Permissions Violation for "+what) {
			a.t.Errorf("%s: %v, want a permissions violation for %s", a.name, err, what)
		}
	case <-time.After(2 * time.Second):
		a.t.Errorf("%s: no permissions violation for %s", a.name, what)
	}
}

// deploy/'s configuration refuses, for each user, what it must not do: no
// anonymous client, the edge writing chat.store or chat.sys or touching
// JetStream but chat_files, a backend or presence or ratelimit touching
// chat_files, a backend of org A posting to org B or on the edges' subjects,
// a service deleting or purging a stream (even its own) or touching
// another's state, one user reading another's inbox, a node without route
// credentials joining. The admin, and each user's allowed path, still work.
func TestDeployPermissions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	nodes := cluster(t)
	ctx := context.Background()
	cfg := Config{Messaging: messaging.Config{Replicas: 3}}
	admin := newActor(t, nodes, natsauth.Admin)
	retry(t, "setup", func() (struct{}, error) { return struct{}{}, Setup(ctx, admin.nc, cfg) })
	ms := retry(t, "messaging", func() (*messaging.Service, error) {
		return messaging.New(ctx, connectAs(t, nodes, natsauth.Messaging, 1, nil), messaging.Config{Logger: testLogger()})
	})
	t.Cleanup(func() { _ = ms.Stop(ctx) })

	t.Run("anonymous", func(t *testing.T) {
		for _, url := range []string{nodes[0].ClientURL(), fmt.Sprintf("nats://edge:wrong@%s", nodes[0].Addr())} {
			if nc, err := nats.Connect(url, nats.NoReconnect()); err == nil {
				nc.Close()
				t.Errorf("%s connected", url)
			} else if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
				t.Errorf("%s: %v", url, err)
			}
		}
	})
	t.Run("edge", func(t *testing.T) {
		edge := newActor(t, nodes, natsauth.Edge)
		edge.refusedPublish(names.Store("acme", "c1"))
		edge.refusedPublish(names.SystemCommand(names.Messaging, "acme", names.ActionSend))
		edge.refusedPublish("$JS.API.STREAM.NAMES")
		edge.refusedPublish(names.KVSubject(names.BucketConversations, names.ConversationKey("acme", "c1")))
		edge.refusedSubscribe(names.CommandWildcard(names.Messaging, names.ActionSend)) // answering as messaging
		edge.refusedSubscribe(names.InboxPrefix(natsauth.Messaging) + ".>")
		edge.refusedSubscribe("_INBOX.>")
		edge.refusedSubscribe("chat.store.>")
		// Files: chat_files only, and no consumer, no other stream's
		// reads or purges.
		edge.refusedPublish("$O.other_bucket.C.x")
		edge.refusedPublish("$JS.API.DIRECT.GET." + names.StreamEvents)
		edge.refusedPublish("$JS.API.STREAM.PURGE." + names.StreamEvents)
		edge.refusedPublish("$JS.API.CONSUMER.CREATE." + names.ObjectStream(names.BucketFiles) + ".x")
		edge.refusedPublish("$JS.API.STREAM.DELETE." + names.ObjectStream(names.BucketFiles))
	})
	t.Run("backend", func(t *testing.T) {
		demo := newActor(t, nodes, natsauth.Backend("demo"))
		send := func(subject string, p *chatv1.Principal) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return svc.Call(ctx, demo.nc, subject, &chatv1.SendRequest{Principal: p, ConversationId: "c1", Content: "x", ClientMsgId: "x"}, &chatv1.SendResponse{})
		}
		// Its own org on chat.sys reaches messaging (no such conversation).
		if err := send(names.SystemCommand(names.Messaging, "demo", names.ActionSend), &chatv1.Principal{Org: "demo", User: "bot", System: true}); !errs.Is(err, errs.CodeNotFound) {
			t.Fatalf("backend-demo in its org: %v, want not_found", err)
		}
		demo.refusedPublish(names.SystemCommand(names.Messaging, "acme", names.ActionSend))
		demo.refusedPublish(names.Command(names.Messaging, "demo", names.ActionSend))
		demo.refusedPublish("$JS.API.STREAM.NAMES")
		demo.refusedSubscribe(names.ConvEvents("*", "*"))
		demo.refusedSubscribe(names.InboxPrefix(natsauth.Edge) + ".>")
		// A backend reads no file and writes none.
		demo.refusedPublish("$JS.API.DIRECT.GET." + names.ObjectStream(names.BucketFiles))
		demo.refusedPublish("$O." + names.BucketFiles + ".M.x")
	})
	t.Run("services", func(t *testing.T) {
		own := map[string]string{
			natsauth.Messaging: names.StreamEvents,
			natsauth.Presence:  names.KVStream(names.BucketPresence),
			natsauth.RateLimit: names.KVStream(names.BucketRateLimit),
		}
		for user, stream := range own {
			a := newActor(t, nodes, user)
			for _, api := range []string{"DELETE", "PURGE", "UPDATE"} {
				a.refusedPublish("$JS.API.STREAM." + api + "." + stream)
				a.refusedPublish("$JS.API.STREAM." + api + "." + names.StreamEvents)
			}
			a.refusedPublish("$JS.API.STREAM.CREATE.X")
			a.refusedPublish("$JS.API.STREAM.NAMES")
			a.refusedSubscribe(names.InboxPrefix(natsauth.Edge) + ".>")
			a.refusedSubscribe(names.InboxPrefix(natsauth.Backend("demo")) + ".>")
		}
		messagingUser := newActor(t, nodes, natsauth.Messaging)
		messagingUser.refusedPublish(names.KVSubject(names.BucketPresence, "acme.alice.c1"))
		messagingUser.refusedPublish("$O." + names.BucketFiles + ".C.x") // metadata only, never chunks
		for _, other := range []*actor{newActor(t, nodes, natsauth.Presence), newActor(t, nodes, natsauth.RateLimit)} {
			other.refusedPublish("$JS.API.DIRECT.GET." + names.ObjectStream(names.BucketFiles))
			other.refusedPublish("$O." + names.BucketFiles + ".M.x")
			other.refusedPublish("$JS.API.STREAM.PURGE." + names.ObjectStream(names.BucketFiles))
		}
		presenceUser := newActor(t, nodes, natsauth.Presence)
		presenceUser.refusedPublish(names.Store("acme", "c1"))
		presenceUser.refusedPublish(names.KVSubject(names.BucketConversations, "acme.c1"))
		presenceUser.refusedSubscribe(names.CommandWildcard(names.Messaging, names.ActionSend))
		ratelimitUser := newActor(t, nodes, natsauth.RateLimit)
		ratelimitUser.refusedPublish(names.ConvEvents("acme", "c1"))
		ratelimitUser.refusedSubscribe(names.SystemCommandWildcard(names.Messaging, names.ActionSend))
	})
	t.Run("admin", func(t *testing.T) {
		js, err := jetstream.New(admin.nc)
		if err != nil {
			t.Fatal(err)
		}
		for _, stream := range []string{names.StreamEvents, names.KVStream(names.BucketPresence), names.KVStream(names.BucketRateLimit)} {
			if _, err := js.Stream(ctx, stream); err != nil {
				t.Errorf("%s after the refused deletes: %v", stream, err)
			}
		}
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SCRATCH", Subjects: []string{"scratch.>"}, Replicas: 3}); err != nil {
			t.Fatal(err)
		}
		if err := js.DeleteStream(ctx, "SCRATCH"); err != nil {
			t.Fatal(err)
		}
		admin.v.none(t)
	})
	t.Run("routes", func(t *testing.T) {
		routes := []int{freePort(t), freePort(t), freePort(t)}
		opts := deployNode(t, 0, routes)
		opts.ServerName, opts.Cluster.Username, opts.Cluster.Password = "rogue", "", ""
		for _, r := range opts.Routes {
			r.User = nil // without credentials, to the real cluster's route ports
			r.Host = nodes[0].ClusterAddr().String()
		}
		rogue := runNode(t, opts)
		// Whatever the rogue subscribes to, the cluster's traffic does not
		// reach it (its route attempts are refused and retried).
		nc, err := nats.Connect(rogue.ClientURL(), nats.UserInfo(natsauth.Admin, password(natsauth.Admin)))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		sub, err := nc.SubscribeSync("chat.>")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if err := admin.nc.Publish(names.ConvEvents("acme", "c1"), []byte("private")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if m, err := sub.NextMsg(500 * time.Millisecond); err == nil {
			t.Fatalf("a node without route credentials got %s", m.Subject)
		}
		rz, err := nodes[0].Routez(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rz.Routes {
			if r.RemoteName == "rogue" {
				t.Fatal("the cluster has a route to the rogue node")
			}
		}
		if len(rz.Routes) == 0 {
			t.Fatal("the cluster's own nodes are not routed")
		}
	})
	t.Run("monitoring", func(t *testing.T) {
		for i := range 3 {
			opts := deployNode(t, i, []int{1, 2, 3})
			if opts.HTTPHost != "127.0.0.1" || opts.Host != "127.0.0.1" || opts.Cluster.Host != "127.0.0.1" {
				t.Errorf("n%d listens on %q (client), %q (monitoring), %q (routes), want loopback", i+1, opts.Host, opts.HTTPHost, opts.Cluster.Host)
			}
			if opts.Cluster.Username == "" {
				t.Errorf("n%d takes routes without credentials", i+1)
			}
		}
	})
}
