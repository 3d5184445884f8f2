package ratelimit

import (
	"math"
	"time"

	"github.com/switchboard-chat/switchboard/kit/limits"
)

// epsilon absorbs floating-point error in token counts: a bucket within a
// billionth of a token of 1 has the token. Without it a bucket that refilled
// to exactly 1 in exact arithmetic could be denied for 1 ms.
const epsilon = 1e-9

// state is a token bucket as stored: tokens held at updatedMs (Unix
// milliseconds, the stored resolution). The zero state is a bucket that
// does not exist yet or expired: full.
type state struct {
	tokens    float64
	updatedMs int64
}

// decision is the outcome of one check.
type decision struct {
	allowed bool
	// remaining is the whole tokens left after the check.
	remaining uint32
	// retryAfter, when denied, is when one token will be there, rounded up
	// to the millisecond (at least 1 ms).
	retryAfter time.Duration
}

// take refills s up to now and takes one token if there is one. The bucket
// holds at most l.Capacity tokens and refills continuously at
// l.Capacity/l.Period. now is truncated to the millisecond so that the
// returned state is exactly what is stored; a retryAfter computed from the
// truncated time is at most 1 ms late, never early.
//
// A clock behind the last writer's (another instance's) counts as the
// writer's time: time never runs backwards in a bucket, or the next check
// on a correct clock would count the skew as refill.
func take(s state, l limits.Limit, now time.Time) (state, decision) {
	nowMs := now.UnixMilli()
	if s != (state{}) {
		nowMs = max(nowMs, s.updatedMs)
	}
	tokens := refill(s, l, nowMs)
	if tokens < 1-epsilon {
		return state{tokens: tokens, updatedMs: nowMs}, decision{retryAfter: timeToOne(tokens, l)}
	}
	tokens = max(tokens-1, 0)
	return state{tokens: tokens, updatedMs: nowMs}, decision{allowed: true, remaining: whole(tokens)}
}

// refill is the bucket's tokens at nowMs.
func refill(s state, l limits.Limit, nowMs int64) float64 {
	capacity := float64(l.Capacity)
	if s == (state{}) {
		return capacity
	}
	elapsed := time.Duration(nowMs-s.updatedMs) * time.Millisecond
	if elapsed >= l.Period {
		return capacity
	}
	// elapsed < Period keeps the product small enough to be exact.
	return min(capacity, s.tokens+float64(elapsed)*capacity/float64(l.Period))
}

// timeToOne is the time until a bucket with tokens (< 1) has one, rounded
// up to the millisecond, at least 1 ms. A result within a nanosecond of a
// whole millisecond is taken as that millisecond (floating-point error).
func timeToOne(tokens float64, l limits.Limit) time.Duration {
	ns := (1 - tokens) * float64(l.Period) / float64(l.Capacity)
	ms := math.Ceil(ns/float64(time.Millisecond) - 1e-6)
	return time.Duration(max(ms, 1)) * time.Millisecond
}

// whole is the whole tokens of a bucket.
func whole(tokens float64) uint32 {
	return uint32(min(math.Floor(tokens+epsilon), math.MaxUint32))
}

// ttl is how long an untouched bucket is kept: the time for an empty bucket
// to refill completely, in whole seconds (JetStream's TTL resolution), at
// least 1 s. A bucket that expired was full anyway.
func ttl(l limits.Limit) time.Duration {
	seconds := (l.Period + time.Second - 1) / time.Second
	return max(seconds, 1) * time.Second
}
