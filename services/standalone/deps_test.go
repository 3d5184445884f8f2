package standalone

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Only the standalone embeds nats-server: a service binary reaches NATS over
// the network and must not link the server (kit/natsx does not import it;
// kit/natsembed and kit/testkit do). Nor does any binary link test helpers.
func TestServiceBinariesDoNotLinkNatsServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go tool")
	}
	binaries := map[string]string{ // module directory: main package
		"services/edge":       "./cmd/edge",
		"services/messaging":  "./cmd/messaging",
		"services/presence":   "./cmd/presence",
		"services/ratelimit":  "./cmd/ratelimit",
		"services/standalone": "./cmd/switchboard",
		"tools/loadgen":       ".",
	}
	for dir, pkg := range binaries {
		cmd := exec.Command(goTool, "list", "-deps", pkg)
		cmd.Dir = filepath.Join(repoRoot, dir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s in %s: %v", pkg, dir, err)
		}
		deps := strings.Fields(string(out))
		for _, d := range deps {
			server := d == "github.com/nats-io/nats-server/v2/server"
			if server && dir != "services/standalone" {
				t.Errorf("%s links nats-server (%d packages)", dir, len(deps))
			}
			if strings.Contains(d, "/kit/testkit/") {
				t.Errorf("%s links the test helper %s", dir, d)
			}
		}
	}
}
