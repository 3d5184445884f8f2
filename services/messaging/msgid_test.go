package messaging

import (
	"testing"

	"github.com/switchboard-chat/switchboard/kit/ids"
)

func TestMessageIDRoundTrip(t *testing.T) {
	for _, c := range []struct {
		ms  int64
		seq uint64
	}{{0, 0}, {1, 1}, {1764547200123, 42}, {1<<48 - 1, 1<<64 - 1}, {1764547200123, 1 << 40}} {
		id := messageID(c.ms, c.seq)
		if len(id) != 26 || !ids.Valid(id) {
			t.Fatalf("messageID(%d, %d) = %q: not a 26-character id", c.ms, c.seq, id)
		}
		ms, seq, ok := messageSeq(id)
		if !ok || ms != c.ms || seq != c.seq {
			t.Fatalf("messageSeq(%q) = %d, %d, %v; want %d, %d", id, ms, seq, ok, c.ms, c.seq)
		}
	}
	// Sortable like ULIDs: by time first.
	if a, b := messageID(1000, 99), messageID(1001, 1); a >= b {
		t.Fatalf("%q sorts after %q", a, b)
	}
}

func TestRandomULIDsAreRarelyMessageIDs(t *testing.T) {
	hits := 0
	for range 20000 {
		if _, _, ok := messageSeq(ids.New()); ok {
			hits++
		}
	}
	// One in 65,536 on average: 20,000 random ids give 0 or 1, rarely more.
	if hits > 3 {
		t.Fatalf("%d of 20,000 random ULIDs pass the check", hits)
	}
	for _, bad := range []string{"", "short", "0123456789ABCDEFGHJKMNPQRI", "01JD0000000000000000000000x"} {
		if _, _, ok := messageSeq(bad); ok {
			t.Fatalf("messageSeq(%q) ok", bad)
		}
	}
}
