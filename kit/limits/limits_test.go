package limits

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	set, err := Parse(Defaults(), "message:send=1000/1s, message:typing=50/10s")
	if err != nil {
		t.Fatal(err)
	}
	if l := set["message:send"]; l.Capacity != 1000 || l.Period != time.Second || l.RefillPerSecond() != 1000 {
		t.Fatalf("message:send = %+v", l)
	}
	if k, l := set.Bucket("conversation:join"); k != Default || l.Capacity != 60 {
		t.Fatalf("join bucket %s %+v", k, l)
	}
	// Membership changes have buckets of their own.
	if k, l := set.Bucket("conversation:create"); k != "conversation:create" || l != (Limit{10, time.Minute}) {
		t.Fatalf("create bucket %s %+v", k, l)
	}
	if k, l := set.Bucket("conversation:add"); k != "conversation:add" || l != (Limit{30, time.Minute}) {
		t.Fatalf("add bucket %s %+v", k, l)
	}
	if k, l := set.Bucket("message:react"); k != "message:react" || l != (Limit{30, time.Minute}) {
		t.Fatalf("react bucket %s %+v", k, l)
	}
	for _, bad := range []string{"x", "message:send=10", "message:send=0/1s", "message:send=5/soon", "=5/1s", "a=1/0s"} {
		if _, err := Parse(Defaults(), bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestLoadFileThenSpec(t *testing.T) {
	f := filepath.Join(t.TempDir(), "limits")
	if err := os.WriteFile(f, []byte("# ours\nmessage:send=20/1m\n\nmessage:edit=9/1m # more edits\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := Load("message:send=30/1m", f)
	if err != nil {
		t.Fatal(err)
	}
	if set["message:send"].Capacity != 30 || set["message:edit"].Capacity != 9 || set["message:delete"].Capacity != 3 {
		t.Fatalf("loaded %v", set)
	}
}
