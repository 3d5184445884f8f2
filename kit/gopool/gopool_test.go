package gopool

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
	}
}

// Every task given to Go runs, once, including those given while every
// worker is busy: Go starts a worker then and does not wait.
func TestEveryTaskRunsWithoutBlocking(t *testing.T) {
	var p Pool
	const n = 64
	gate := make(chan struct{})
	var ran atomic.Int32
	var wg sync.WaitGroup
	wg.Add(n)
	for range n { // each holds its worker until the gate opens
		p.Go(func() {
			<-gate
			ran.Add(1)
			wg.Done()
		})
	}
	if alive, idle := p.Workers(); alive != n || idle != 0 {
		t.Fatalf("%d tasks held: %d workers, %d idle; want %d, 0", n, alive, idle, n)
	}
	close(gate)
	wg.Wait()
	if got := ran.Load(); got != n {
		t.Fatalf("%d of %d tasks ran", got, n)
	}
	waitFor(t, time.Second, "the workers did not become idle", func() bool { _, idle := p.Workers(); return idle == n })
	// The caller bounds its tasks at n at once, as svc and the edge do.
	// A worker that ended its task is back in the stack a moment after the
	// caller may start the next (under a tight loop like this one, and
	// -race, up to about 2n are seen), as goroutines that are ending were
	// alive beside new ones before the pool; but not a worker per task.
	sem := make(chan struct{}, n)
	for range 100000 {
		sem <- struct{}{}
		wg.Add(1)
		p.Go(func() { ran.Add(1); <-sem; wg.Done() })
	}
	wg.Wait()
	if got := ran.Load(); got != n+100000 {
		t.Fatalf("%d of %d tasks ran", got, n+100000)
	}
	alive, _ := p.Workers()
	t.Logf("%d workers for 100000 tasks, at most %d at once", alive, n)
	if alive > 4*n {
		t.Fatalf("%d workers for at most %d tasks at once", alive, n)
	}
}

// A task given while a worker is idle runs on it: one at a time, a
// thousand tasks take one worker.
func TestIdleWorkerTakesTheTask(t *testing.T) {
	var p Pool
	done := make(chan struct{})
	for range 1000 {
		p.Go(func() { done <- struct{}{} })
		<-done
		waitFor(t, time.Second, "the worker did not become idle", func() bool { _, idle := p.Workers(); return idle == 1 })
	}
	if alive, _ := p.Workers(); alive != 1 {
		t.Fatalf("%d workers for one task at a time", alive)
	}
}

// Idle workers end after the idle period: the process is back to the
// goroutines it had before.
func TestIdleWorkersEnd(t *testing.T) {
	p := Pool{Idle: 50 * time.Millisecond}
	runtime.GC()
	base := runtime.NumGoroutine()
	const n = 32
	gate := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(n)
	for range n {
		p.Go(func() { <-gate; wg.Done() })
	}
	close(gate)
	wg.Wait()
	waitFor(t, 2*time.Second, "the idle workers did not end", func() bool { alive, _ := p.Workers(); return alive == 0 })
	waitFor(t, 2*time.Second, "the workers' goroutines did not end", func() bool { return runtime.NumGoroutine() <= base })
	var ran atomic.Bool // the pool works again after it emptied
	wg.Add(1)
	p.Go(func() { ran.Store(true); wg.Done() })
	wg.Wait()
	if !ran.Load() {
		t.Fatal("a task given after the workers ended did not run")
	}
}

// After a peak, a lighter load keeps only the workers it needs: the most
// recently idle worker takes the next task, so the others stay idle and
// end, even though a task comes far more often than the idle period.
func TestLightLoadAfterPeakKeepsFewWorkers(t *testing.T) {
	const idle = 100 * time.Millisecond
	p := Pool{Idle: idle}
	const peak = 32
	gate := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(peak)
	for range peak {
		p.Go(func() { <-gate; wg.Done() })
	}
	close(gate)
	wg.Wait()
	waitFor(t, time.Second, "the peak's workers did not become idle", func() bool { _, idle := p.Workers(); return idle == peak })
	done := make(chan struct{})
	for end := time.Now().Add(5 * idle); time.Now().Before(end); time.Sleep(time.Millisecond) {
		p.Go(func() { done <- struct{}{} })
		<-done
	}
	// One task at a time needs one worker (two while one is on its way
	// back to the stack).
	if alive, _ := p.Workers(); alive > 2 {
		t.Fatalf("%d workers alive after %v of one task at a time every millisecond", alive, 5*idle)
	}
}

// Tasks given while the reaper ends workers, round after round, all run:
// a worker is either handed a task or ended, never both or neither.
func TestTasksRunWhileWorkersEnd(t *testing.T) {
	p := Pool{Idle: time.Millisecond}
	var ran atomic.Int32
	var wg sync.WaitGroup
	for i := range 2000 {
		wg.Add(1)
		p.Go(func() { ran.Add(1); wg.Done() })
		if i%7 == 0 {
			time.Sleep(time.Millisecond) // around the idle period
		}
	}
	wg.Wait()
	if got := ran.Load(); got != 2000 {
		t.Fatalf("%d of 2000 tasks ran", got)
	}
	waitFor(t, time.Second, "the idle workers did not end", func() bool { alive, _ := p.Workers(); return alive == 0 })
}

// A task that ends its goroutine (runtime.Goexit, as t.FailNow does) ends
// its worker: it is not counted, and the next task gets another.
func TestGoexitEndsTheWorker(t *testing.T) {
	var p Pool
	done := make(chan struct{})
	p.Go(func() {
		defer close(done)
		runtime.Goexit()
	})
	<-done
	waitFor(t, time.Second, "a worker whose task called Goexit is still counted", func() bool { alive, _ := p.Workers(); return alive == 0 })
	ran := make(chan struct{})
	p.Go(func() { close(ran) })
	<-ran
}
