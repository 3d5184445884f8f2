package gopool

import (
	"sync/atomic"
	"testing"
)

// deep uses about 1 KB of stack per level.
//
//go:noinline
func deep(n int) byte {
	var buf [1000]byte
	buf[n] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return deep(n-1) + buf[n]
}

var sink atomic.Int32

// benchTasks runs b.N tasks at most 8 at once, as the pool's callers bound
// theirs, started by start; each task uses levels KB of stack (0: none
// beyond a call).
func benchTasks(b *testing.B, levels int, start func(func())) {
	sem := make(chan struct{}, 8)
	b.ReportAllocs()
	for b.Loop() {
		sem <- struct{}{}
		start(func() {
			if levels > 0 {
				sink.Add(int32(deep(levels - 1)))
			}
			<-sem
		})
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
}

// BenchmarkGoroutine is a task on a goroutine of its own (go f()): 8KB
// uses about 8 KB of stack (the goroutine starts on 2 KB and grows it
// twice), none only calls.
func BenchmarkGoroutine(b *testing.B) {
	b.Run("8KB", func(b *testing.B) { benchTasks(b, 8, func(f func()) { go f() }) })
	b.Run("none", func(b *testing.B) { benchTasks(b, 0, func(f func()) { go f() }) })
}

// BenchmarkPool is the same tasks on a Pool's workers.
func BenchmarkPool(b *testing.B) {
	b.Run("8KB", func(b *testing.B) { var p Pool; benchTasks(b, 8, p.Go) })
	b.Run("none", func(b *testing.B) { var p Pool; benchTasks(b, 0, p.Go) })
}
