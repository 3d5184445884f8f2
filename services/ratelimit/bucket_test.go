package ratelimit

import (
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/kit/limits"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// step is n checks at t0+at, each expected to answer the same.
type step struct {
	at         time.Duration
	n          int
	allowed    bool
	remaining  uint32 // after the last of the n checks
	retryAfter time.Duration
}

func TestTake(t *testing.T) {
	perMinute := limits.Limit{Capacity: 10, Period: time.Minute}
	thirds := limits.Limit{Capacity: 3, Period: time.Second}
	for _, tc := range []struct {
		name  string
		limit limits.Limit
		steps []step
	}{
		{"starts full", perMinute, []step{
			{at: 0, n: 1, allowed: true, remaining: 9},
		}},
		{"capacity exhausted", perMinute, []step{
			{at: 0, n: 10, allowed: true, remaining: 0},
			{at: 0, n: 1, allowed: false, retryAfter: 6 * time.Second},
			{at: time.Millisecond, n: 1, allowed: false, retryAfter: 5999 * time.Millisecond},
		}},
		{"partial refill", perMinute, []step{
			{at: 0, n: 10, allowed: true, remaining: 0},
			{at: 3 * time.Second, n: 1, allowed: false, retryAfter: 3 * time.Second}, // half a token
			{at: 6 * time.Second, n: 1, allowed: true, remaining: 0},
			{at: 6 * time.Second, n: 1, allowed: false, retryAfter: 6 * time.Second},
			{at: 30 * time.Second, n: 4, allowed: true, remaining: 0},
			{at: 30 * time.Second, n: 1, allowed: false, retryAfter: 6 * time.Second},
		}},
		{"refill stops at capacity", perMinute, []step{
			{at: 0, n: 3, allowed: true, remaining: 7},
			{at: time.Hour, n: 1, allowed: true, remaining: 9},
			{at: time.Hour, n: 9, allowed: true, remaining: 0},
			{at: time.Hour, n: 1, allowed: false, retryAfter: 6 * time.Second},
		}},
		{"retryAfter rounds up to the millisecond", thirds, []step{
			{at: 0, n: 3, allowed: true, remaining: 0},
			{at: 0, n: 1, allowed: false, retryAfter: 334 * time.Millisecond},                // 333.33 ms
			{at: 333 * time.Millisecond, n: 1, allowed: false, retryAfter: time.Millisecond}, // 0.33 ms
			{at: 334 * time.Millisecond, n: 1, allowed: true, remaining: 0},
			{at: 334 * time.Millisecond, n: 1, allowed: false, retryAfter: 333 * time.Millisecond}, // 0.002 tokens left
		}},
		{"a fraction of a millisecond is not refill", thirds, []step{
			{at: 0, n: 3, allowed: true, remaining: 0},
			{at: 333*time.Millisecond + 999*time.Microsecond, n: 1, allowed: false, retryAfter: time.Millisecond},
		}},
		{"fast bucket refills exactly one token a millisecond", limits.Limit{Capacity: 1000, Period: time.Second}, []step{
			{at: 0, n: 1000, allowed: true, remaining: 0},
			{at: 0, n: 1, allowed: false, retryAfter: time.Millisecond},
			{at: time.Millisecond, n: 1, allowed: true, remaining: 0},
			{at: time.Millisecond, n: 1, allowed: false, retryAfter: time.Millisecond},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s state
			for i, st := range tc.steps {
				var d decision
				for range st.n {
					var next state
					next, d = take(s, tc.limit, t0.Add(st.at))
					if d.allowed != st.allowed {
						t.Fatalf("step %d: allowed %v, want %v (tokens %v)", i, d.allowed, st.allowed, s.tokens)
					}
					if d.allowed {
						s = next // a denied check stores nothing
					}
				}
				if d.remaining != st.remaining || d.retryAfter != st.retryAfter {
					t.Fatalf("step %d: remaining %d retryAfter %v, want %d and %v", i, d.remaining, d.retryAfter, st.remaining, st.retryAfter)
				}
			}
		})
	}
}

// TestTakeNeverAdmitsMoreThanRefilled checks a flood, every millisecond for
// ten seconds: the bucket admits its capacity plus what refilled, and every
// denial's retryAfter is exactly when the next check is admitted.
func TestTakeNeverAdmitsMoreThanRefilled(t *testing.T) {
	l := limits.Limit{Capacity: 7, Period: 3 * time.Second}
	var s state
	admitted := 0
	var nextAllowed time.Duration = -1
	for ms := time.Duration(0); ms <= 10*time.Second; ms += time.Millisecond {
		next, d := take(s, l, t0.Add(ms))
		if d.allowed {
			if nextAllowed >= 0 && ms != nextAllowed {
				t.Fatalf("admitted at %v, retryAfter said %v", ms, nextAllowed)
			}
			nextAllowed = -1
			s = next
			admitted++
			continue
		}
		if d.retryAfter <= 0 {
			t.Fatalf("denied at %v with retryAfter %v", ms, d.retryAfter)
		}
		if nextAllowed < 0 {
			nextAllowed = ms + d.retryAfter
		}
	}
	// 7 at once, then one every 3/7 s: 7 + floor(10 s * 7/3 s) = 30.
	if admitted != 30 {
		t.Fatalf("admitted %d in 10 s, want 30", admitted)
	}
}

func TestTakeClockBehindWriter(t *testing.T) {
	l := limits.Limit{Capacity: 2, Period: time.Second}
	s, _ := take(state{}, l, t0)
	// Another instance's clock is 5 s behind. It takes the last token at
	// the writer's time, so that a correct clock does not refill those 5 s.
	s, d := take(s, l, t0.Add(-5*time.Second))
	if !d.allowed || s.updatedMs != t0.UnixMilli() {
		t.Fatalf("behind clock: %+v, stored at %d, want %d", d, s.updatedMs, t0.UnixMilli())
	}
	if _, d = take(s, l, t0.Add(-5*time.Second)); d.allowed || d.retryAfter != 500*time.Millisecond {
		t.Fatalf("behind clock on an empty bucket: %+v", d)
	}
	if _, d = take(s, l, t0.Add(time.Millisecond)); d.allowed || d.retryAfter != 499*time.Millisecond {
		t.Fatalf("correct clock after the behind one: %+v", d)
	}
}

func TestTTL(t *testing.T) {
	for _, tc := range []struct {
		limit limits.Limit
		want  time.Duration
	}{
		{limits.Limit{Capacity: 10, Period: time.Minute}, time.Minute},
		{limits.Limit{Capacity: 2, Period: time.Second}, time.Second},
		{limits.Limit{Capacity: 5, Period: 1500 * time.Millisecond}, 2 * time.Second},
		{limits.Limit{Capacity: 100, Period: 10 * time.Millisecond}, time.Second},
	} {
		if got := ttl(tc.limit); got != tc.want {
			t.Errorf("ttl(%v) = %v, want %v", tc.limit, got, tc.want)
		}
	}
}
