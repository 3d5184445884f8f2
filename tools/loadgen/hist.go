package main

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// Hist is a log-linear histogram of non-negative values (nanoseconds here),
// in the manner of HdrHistogram: values below 2^sigBits are counted
// exactly; above, every power-of-two range is split into 2^(sigBits-1)
// equal buckets, so a bucket is at most 1/128 (0.8%) wide relative to its
// values. Record is lock-free and allocation-free, so many goroutines can
// share one Hist on the hot path.
type Hist struct {
	counts [histBuckets]atomic.Uint64
	count  atomic.Uint64
	sum    atomic.Uint64
	min    atomic.Int64 // valid when count > 0
	max    atomic.Int64
}

const (
	sigBits  = 8
	halfSub  = 1 << (sigBits - 1) // buckets per power of two
	histMaxV = int64(1)<<40 - 1   // about 18 minutes in ns; larger values are clamped
	// histBuckets is bucketOf(histMaxV)+1.
	histBuckets = (40-sigBits)*halfSub + 2*halfSub
)

// NewHist returns an empty histogram.
func NewHist() *Hist {
	h := &Hist{}
	h.min.Store(math.MaxInt64)
	return h
}

// bucketOf is the index of v's bucket.
func bucketOf(v int64) int {
	e := bits.Len64(uint64(v)) - sigBits
	if e < 0 {
		e = 0
	}
	return e*halfSub + int(v>>e)
}

// bucketRange is the lowest value of bucket i and its width.
func bucketRange(i int) (lower, width int64) {
	if i < 2*halfSub {
		return int64(i), 1
	}
	e := i/halfSub - 1
	m := int64(i - e*halfSub)
	return m << e, int64(1) << e
}

// Record adds one value; negative values count as 0 and values past about
// 18 minutes as that.
func (h *Hist) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if v > histMaxV {
		v = histMaxV
	}
	h.counts[bucketOf(v)].Add(1)
	h.count.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if v >= m || h.min.CompareAndSwap(m, v) {
			break
		}
	}
}

// Count is how many values were recorded.
func (h *Hist) Count() uint64 { return h.count.Load() }

// Max is the largest value recorded (0 when empty).
func (h *Hist) Max() int64 {
	if h.count.Load() == 0 {
		return 0
	}
	return h.max.Load()
}

// Min is the smallest value recorded (0 when empty).
func (h *Hist) Min() int64 {
	if h.count.Load() == 0 {
		return 0
	}
	return h.min.Load()
}

// Mean is the exact mean of the recorded values.
func (h *Hist) Mean() float64 {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n)
}

// Quantile returns the value at quantile q (0 < q <= 1): the highest value
// of the bucket holding the ceil(q*count)-th smallest value, clamped to the
// recorded min and max. It is 0 when empty. Read it once recording is over
// (during recording it is only approximately consistent).
func (h *Hist) Quantile(q float64) int64 {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if cum >= rank {
			lo, w := bucketRange(i)
			v := lo + w - 1
			return max(min(v, h.Max()), h.Min())
		}
	}
	return h.Max()
}

// LatencySummary is a histogram's digest in milliseconds.
type LatencySummary struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func ms(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }

// Summary digests h.
func (h *Hist) Summary() LatencySummary {
	return LatencySummary{
		Count: h.Count(),
		Min:   ms(h.Min()),
		Mean:  ms(int64(h.Mean())),
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
}
