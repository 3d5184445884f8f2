package standalone

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/kit/testkit/wsclient"
)

// switchboardBinary builds cmd/switchboard once per test run.
func switchboardBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "switchboard")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/switchboard").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// process is the standalone binary running on dir.
type process struct {
	cmd      *exec.Cmd
	ws, nats string // addresses
}

func runSwitchboard(t *testing.T, bin, dir string, wsPort, natsPort int) *process {
	t.Helper()
	p := &process{ws: fmt.Sprintf("127.0.0.1:%d", wsPort), nats: fmt.Sprintf("127.0.0.1:%d", natsPort)}
	p.cmd = exec.Command(bin, "-data-dir", dir, "-listen", p.ws, "-nats-listen", p.nats,
		"-metrics-listen", "", "-jwt-secret", string(secret), "-log-level", "warn",
		"-limits", "message:send=100000/1s,default=100000/1s", "-max-upgrades-per-ip", "1000")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHBOARD_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	logs, err := os.Create(filepath.Join(t.TempDir(), "switchboard.log"))
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = logs, logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.kill()
		_ = logs.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logs.Name())
			t.Logf("switchboard log:\n%s", out)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := wsclient.DialToken(context.Background(), "ws://"+p.ws+"/ws", token("acme", "probe"))
		if err == nil {
			c.Kill()
			return p
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logs.Name())
			t.Fatalf("switchboard not serving after 30 s: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill is kill -9: no shutdown of any kind.
func (p *process) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

// The standalone binary is killed with SIGKILL while clients send, and
// started again on the same data dir. Clients resend everything with the
// same clientMsgIds: what was acked before the kill is answered as a
// duplicate at its original seq, everything is stored exactly once.
func TestFaultStandaloneKilledAndRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the switchboard binary")
	}
	bin := switchboardBinary(t)
	dir := t.TempDir()
	wsPort, natsPort := freePort(t), freePort(t)
	p := runSwitchboard(t, bin, dir, wsPort, natsPort)
	f := &fixture{t: t, endpoint: &endpoint{url: "ws://" + p.ws + "/ws"}}
	users := []string{"u0", "u1", "u2", "u3"}
	conv := f.dial("acme", "owner").create(users...)

	const n = 1000
	before := make([]sendResult, len(users))
	var wg sync.WaitGroup
	for i, u := range users {
		c := f.dial("acme", u)
		wg.Add(1)
		go func() {
			defer wg.Done()
			before[i] = sendWithRetries(c.Client, conv, fmt.Sprintf("s%d", i), n, nil)
		}()
	}
	time.Sleep(300 * time.Millisecond)
	p.kill()
	wg.Wait()
	ackedBefore := 0
	for _, r := range before {
		ackedBefore += len(r.acked)
	}
	if ackedBefore == 0 || ackedBefore == n*len(users) {
		t.Fatalf("%d of %d acked before the kill: the kill did not land mid-traffic", ackedBefore, n*len(users))
	}

	runSwitchboard(t, bin, dir, wsPort, natsPort)
	var clients []*client
	for _, u := range users {
		clients = append(clients, f.dial("acme", u))
	}
	after := runSenders(t, clients, conv, n, func() {})
	for i := range users {
		for cmid, seq := range before[i].acked {
			if got := after[i].acked[cmid]; got != seq {
				t.Errorf("%s acked at seq %d before the kill, at %d after", cmid, seq, got)
			}
		}
	}
	checkStoredOnce(t, historyOf(t, clients[0], conv), after)
	t.Logf("%d acked before the kill", ackedBefore)
}

// historyOf reads every message of conv through conversation:history,
// page by page.
func historyOf(t *testing.T, c *client, conv string) []storedMsg {
	t.Helper()
	var out []storedMsg
	var after uint64
	for {
		h := decode[struct {
			Events  []wsclient.Frame `json:"events"`
			HasMore bool             `json:"hasMore"`
		}](t, c.do("conversation:history", map[string]any{"conversationId": conv, "afterSeq": after, "limit": 200}))
		for _, e := range h.Events {
			m := decode[msgEvent](t, e.Data)
			if e.Type == "message:new" {
				out = append(out, storedMsg{m.ClientMsgID, m.Seq})
			}
			after = m.Seq
		}
		if !h.HasMore || len(h.Events) == 0 {
			return out
		}
	}
}
