package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestCacheIsBounded(t *testing.T) {
	st := &stripe{m: map[string]entry{}}
	const limit = 8
	now := t0
	for i := range 100 {
		st.put(fmt.Sprint("k", i), entry{rev: uint64(i), expires: now.Add(time.Minute)}, now, limit)
		if len(st.m) > limit {
			t.Fatalf("after %d puts the stripe holds %d entries, limit %d", i+1, len(st.m), limit)
		}
	}
	if e, ok := st.get("k99", now); !ok || e.rev != 99 {
		t.Fatalf("the newest entry was dropped: %v %v", e, ok)
	}
}

func TestCacheDropsExpiredFirst(t *testing.T) {
	st := &stripe{m: map[string]entry{}}
	const limit = 4
	st.put("live", entry{rev: 1, expires: t0.Add(time.Minute)}, t0, limit)
	for i := range limit - 1 {
		st.put(fmt.Sprint("old", i), entry{expires: t0.Add(time.Second)}, t0, limit)
	}
	later := t0.Add(2 * time.Second)
	st.put("new", entry{rev: 2, expires: later.Add(time.Minute)}, later, limit)
	if len(st.m) != 2 {
		t.Fatalf("stripe holds %v, want only the live and the new entry", st.m)
	}
	if _, ok := st.get("live", later); !ok {
		t.Fatal("a live entry was dropped while expired ones could go")
	}
	// An expired entry is never served, even when the stripe is not full.
	st.put("short", entry{expires: later.Add(time.Second)}, later, limit)
	if _, ok := st.get("short", later.Add(time.Second)); ok {
		t.Fatal("expired entry served")
	}
	if _, ok := st.m["short"]; ok {
		t.Fatal("expired entry kept after a lookup")
	}
}
