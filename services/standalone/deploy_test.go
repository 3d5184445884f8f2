package standalone

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// repoRoot is the repository's top directory, from this package's.
const repoRoot = "../.."

// clusterScript runs deploy/cluster.sh with every port moved by a free
// offset and its state (data/cluster/) under state, until it says it is
// ready. It returns the offset; t.Cleanup stops the whole run.
func clusterScript(t *testing.T, state string, env ...string) int {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("deploy/cluster.sh needs %s", tool)
		}
	}
	off := freeOffset(t)
	cmd := exec.Command("bash", filepath.Join(repoRoot, "deploy", "cluster.sh"))
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("SWITCHBOARD_CLUSTER_PORT_OFFSET=%d", off),
		"SWITCHBOARD_CLUSTER_STATE="+state,
		"SWITCHBOARD_JWT_SECRET="+string(secret))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	// Its own process group, so that nothing it started outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "cluster ready") {
				close(ready)
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { stopScript(t, cmd, exited) })
	select {
	case <-ready:
	case err := <-exited:
		exited <- err
		t.Fatalf("deploy/cluster.sh exited before it was ready: %v%s", err, clusterLogs(state))
	case <-time.After(5 * time.Minute): // it builds bin/ first
		t.Fatalf("deploy/cluster.sh not ready after 5 minutes%s", clusterLogs(state))
	}
	return off
}

// stopScript stops the script as Ctrl-C would and waits for it; its
// process group gets SIGKILL if it is still there after 30 seconds.
func stopScript(t *testing.T, cmd *exec.Cmd, exited chan error) {
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Errorf("deploy/cluster.sh still running 30s after SIGINT")
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// clusterLogs is the tail of every log a run left under state.
func clusterLogs(state string) string {
	files, _ := filepath.Glob(filepath.Join(state, "data", "cluster", "*.log"))
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		lines = lines[max(0, len(lines)-10):]
		fmt.Fprintf(&b, "\n--- %s\n%s", filepath.Base(f), strings.Join(lines, "\n"))
	}
	return b.String()
}

// clusterPorts are the ports deploy/cluster.sh binds with offset 0.
var clusterPorts = []int{4222, 4223, 4224, 6222, 6223, 6224, 8222, 8223, 8224, 8080, 8081, 9101, 9102, 9103, 9104, 9105, 9106}

// freeOffset finds an offset that puts every port of the script on a free
// one, below the ephemeral range (32768) where random ports come from.
func freeOffset(t *testing.T) int {
	t.Helper()
	for range 20 {
		off := 10000 + rand.IntN(13000)
		if portsFree(off) {
			return off
		}
	}
	t.Fatal("no free port offset for deploy/cluster.sh")
	return 0
}

func portsFree(off int) bool {
	for _, p := range clusterPorts {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+off))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}

// gitStatus lists what git sees as changed or new in the work tree
// (ignored paths left out); the test skips outside a git checkout.
func gitStatus(t *testing.T) map[string]bool {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	out, err := exec.Command("git", "-C", repoRoot, "status", "--porcelain", "--untracked-files=all").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" {
			lines[l] = true
		}
	}
	return lines
}

// A run of deploy/cluster.sh (servers, JetStream set up by the admin,
// services and edges with their own users) chats across its two edges,
// takes a post from org demo's backend user, sees no permissions
// violation, and leaves nothing in the work tree: the JetStream stores and
// logs land under the ignored data/.
func TestClusterScriptLeavesTreeClean(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs deploy/cluster.sh")
	}
	before := gitStatus(t)
	state := t.TempDir() // outlives the run, for its logs
	t.Run("run", func(t *testing.T) {
		off := clusterScript(t, state)
		edge1 := newFixture(t, nil, fmt.Sprintf("ws://127.0.0.1:%d/ws", 8080+off))
		edge2 := newFixture(t, nil, fmt.Sprintf("ws://127.0.0.1:%d/ws", 8081+off))
		alice, bob := edge1.dial("demo", "alice"), edge2.dial("demo", "bob")
		conv := alice.create("bob")
		alice.join(conv)
		bob.join(conv)
		sent := alice.send(conv, "across two edges")
		if m := decode[msgEvent](t, bob.event("message:new").Data); m.Seq != sent.Seq || m.Content != "across two edges" {
			t.Fatalf("bob got %+v, want seq %d", m, sent.Seq)
		}
		// Each edge's metrics are on its own loopback listener, not on its
		// WebSocket port.
		for i, port := range []int{9105, 9106} {
			if code, body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port+off)); code != 200 || !strings.Contains(body, `switchboard_edge_connections{org="demo"} 1`) {
				t.Errorf("edge %d's metrics listener: %d, connection gauge shown %v", i+1, code, strings.Contains(body, "switchboard_edge_connections"))
			}
			if code, _ := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", 8080+i+off)); code != 404 {
				t.Errorf("edge %d's WebSocket port serves /metrics: %d", i+1, code)
			}
		}

		user := natsauth.Backend("demo")
		backend, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", 4223+off), nats.UserInfo(user, password(user)),
			nats.CustomInboxPrefix(names.InboxPrefix(user)))
		if err != nil {
			t.Fatal(err)
		}
		defer backend.Close()
		err = svc.Call(context.Background(), backend, names.SystemCommand(names.Messaging, "demo", names.ActionSend), &chatv1.SendRequest{
			Principal: &chatv1.Principal{Org: "demo", User: "billing-bot", System: true}, ConversationId: conv, Content: "invoice", ClientMsgId: "inv-1",
		}, &chatv1.SendResponse{})
		if err != nil {
			t.Fatal(err)
		}
		if m := decode[msgEvent](t, bob.event("message:new").Data); m.SenderID != "billing-bot" {
			t.Fatalf("bob got %+v from the backend", m)
		}
	})
	logs, _ := filepath.Glob(filepath.Join(state, "data", "cluster", "n*.log"))
	if len(logs) != 3 {
		t.Errorf("the run left %d node logs, want 3", len(logs))
	}
	for _, f := range logs {
		data, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, "Violation") {
				t.Errorf("%s: %s", filepath.Base(f), l)
			}
		}
	}
	for l := range gitStatus(t) {
		if !before[l] {
			t.Errorf("deploy/cluster.sh left %q in the work tree", l)
		}
	}
}
