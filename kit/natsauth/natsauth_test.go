package natsauth

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-chat/switchboard/proto/names"
)

var update = flag.Bool("update", false, "rewrite deploy/nats/accounts.conf from Services and BackendUser")

const deployFile = "../../deploy/nats/accounts.conf"

const deployHeader = `# Switchboard's NATS account and the permissions of each user, included by
# every node's config (n1.conf, n2.conf, n3.conf).
#
# Generated from kit/natsauth, which the standalone's embedded server runs
# too: change the permissions there, then
#   cd kit && go test ./natsauth -run TestDeployAccounts -update
#
# The passwords are for a local cluster only. In production use nkeys or JWT
# credentials (SWITCHBOARD_NATS_CREDS) that keep these permissions, and one
# backend user per organization.
`

// deployConfig is deploy/'s accounts: every user's password is
// "<user>-local-only", and org "demo" has a backend user.
func deployConfig(t *testing.T) string {
	t.Helper()
	local := func(user string) string { return user + "-local-only" }
	users := append(Services(local), BackendUser("demo", local(Backend("demo"))))
	cfg, err := Config(users, local("sys"))
	if err != nil {
		t.Fatal(err)
	}
	return deployHeader + "\n" + cfg
}

// deploy/nats/accounts.conf is what this package generates: one source of
// the permissions for deploy/ and the standalone.
func TestDeployAccounts(t *testing.T) {
	want := deployConfig(t)
	if *update {
		if err := os.WriteFile(deployFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(deployFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from kit/natsauth's users; regenerate it with -update (and review the diff)", deployFile)
	}
}

// The generated configuration is one nats-server takes, with every user,
// its permissions and connection types.
func TestConfigLoads(t *testing.T) {
	users := append(Services(func(u string) string { return u + "-pw" }), BackendUser("acme", "$2a$11$abcdefghijklmnopqrstuv"))
	users[1].ConnectionTypes = []string{InProcess}
	cfg, err := Config(users, "")
	if err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigString(cfg); err != nil {
		t.Fatalf("%v\n%s", err, cfg)
	}
	byName := map[string]*server.User{}
	for _, u := range opts.Users {
		byName[u.Username] = u
	}
	if len(byName) != len(users) {
		t.Fatalf("%d users loaded, want %d", len(byName), len(users))
	}
	if p := byName[Admin].Permissions; p != nil {
		t.Fatalf("the admin has permissions %+v, want none (everything)", p)
	}
	edge := byName[Edge]
	if _, ok := edge.AllowedConnectionTypes[InProcess]; !ok || len(edge.AllowedConnectionTypes) != 1 {
		t.Fatalf("edge connection types %v", edge.AllowedConnectionTypes)
	}
	backend := byName[Backend("acme")]
	if got := backend.Permissions.Publish.Allow; len(got) != 1 || got[0] != "chat.sys.messaging.acme.*" {
		t.Fatalf("backend publishes %v", got)
	}
	if backend.Password != "$2a$11$abcdefghijklmnopqrstuv" || backend.Account.Name != Account {
		t.Fatalf("backend %+v", backend)
	}
	for _, u := range opts.Users {
		if u.Permissions == nil {
			continue
		}
		for _, s := range u.Permissions.Subscribe.Allow {
			if strings.HasPrefix(s, "_INBOX") && s != "_INBOX_"+u.Username+".>" {
				t.Errorf("%s may subscribe to %s, not only its own inbox", u.Username, s)
			}
		}
		for _, s := range u.Permissions.Publish.Allow {
			// The one exception: a file's chunks are purged from chat_files'
			// stream (filesAccess), by the users that write it.
			filesPurge := s == "$JS.API.STREAM.PURGE."+names.ObjectStream(names.BucketFiles) && (u.Username == Edge || u.Username == Messaging)
			if strings.HasPrefix(s, "$JS.API.STREAM.") && !strings.HasPrefix(s, "$JS.API.STREAM.INFO.") && !filesPurge {
				t.Errorf("%s may publish to %s", u.Username, s)
			}
			if s == "$JS.API.>" || s == ">" {
				t.Errorf("%s may publish to %s", u.Username, s)
			}
		}
	}
}

func TestConfigRefusesUnquotableValues(t *testing.T) {
	for _, pw := range []string{"", `a"b`, `a\b`, "a b", "a\nb"} {
		if _, err := Config([]User{BackendUser("acme", pw)}, ""); err == nil {
			t.Errorf("password %q accepted", pw)
		}
	}
}

func TestParseBackends(t *testing.T) {
	got, err := ParseBackends(strings.NewReader("# orgs\n\nacme s3cret\n  globex $2a$11$hash  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["acme"] != "s3cret" || got["globex"] != "$2a$11$hash" {
		t.Fatalf("got %v", got)
	}
	for _, bad := range []string{"acme", "acme a b", "ac.me pw", "acme pw\nacme pw2", `acme "pw"`} {
		if _, err := ParseBackends(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
