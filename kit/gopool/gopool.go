// Package gopool runs functions on reused goroutines. A goroutine started
// for each short task (a NATS request, a readable socket, a command) begins
// on the smallest stack and grows it, copying it each time it doubles,
// while it decodes JSON or protobuf and calls NATS; a worker of a Pool
// keeps the stack it grew for the next task. The pool has no bound: its
// callers bound their own concurrency, and it keeps only as many workers
// as were busy at once within about the last idle period.
package gopool

import (
	"sync"
	"time"
)

// DefaultIdle is how long a worker with no task waits before it ends
// (within a quarter more). Any load of more than one task a second per
// worker keeps its workers, whose start and stack growth are a few
// microseconds each; an idle worker holds its stack, a few KB, and no
// timer. A process that goes idle is back to no workers within 1.25 s of
// its last task.
const DefaultIdle = time.Second

// ticksPerIdle is how many times per idle period the reaper looks for
// workers to end while some are idle.
const ticksPerIdle = 4

// Pool runs each function given to Go on an idle worker, or on a new
// goroutine that becomes one when none is idle; it never blocks its
// caller. The idle workers are a stack, the most recently idle on top, so
// a load lighter than its last peak keeps taking the same few workers;
// those left at the bottom for the idle period are ended by the reaper, a
// timer armed only while some worker is idle.
//
// A function runs as on a goroutine of its own (go f()), except that the
// goroutine is reused: a panic in it crashes the process; it must leave
// no goroutine-local state (pprof labels) for the next task. The zero
// value is ready to use; a Pool must not be copied after first use. Safe
// for concurrent use.
type Pool struct {
	// Idle is how long a worker waits for a task before it ends (up to a
	// quarter more); zero is DefaultIdle. Set it before the first Go.
	Idle time.Duration

	mu      sync.Mutex  // guards the fields below
	free    []*worker   // the idle workers, the most recent last
	workers int         // workers alive, idle or not
	tick    uint64      // the reaper's rounds
	armed   bool        // the reaper's timer is set
	reaper  *time.Timer // nil until the first worker is idle
}

// worker is one goroutine of a Pool. Whoever takes it out of the pool's
// free stack (Go, or the reaper) sends it one task, or nil to end it.
type worker struct {
	task chan func() // capacity 1: handing a task never blocks
	tick uint64      // Pool.tick when it became idle
}

// Go runs f on an idle worker, or on a new goroutine that becomes one.
// Like a go statement, it panics in the caller when f is nil.
func (p *Pool) Go(f func()) {
	if f == nil {
		panic("gopool: Go of a nil func")
	}
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		w := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.mu.Unlock()
		w.task <- f
		return
	}
	p.workers++
	p.mu.Unlock()
	go p.work(f)
}

// work is a worker's goroutine: it runs f, then waits in the free stack
// for the next task until the reaper ends it (a nil task). A task that
// ends its goroutine (runtime.Goexit) ends the worker, which is then no
// longer counted.
func (p *Pool) work(f func()) {
	w := &worker{task: make(chan func(), 1)}
	defer func() {
		if f != nil { // not ended by the reaper, which counted it out
			p.mu.Lock()
			p.workers--
			p.mu.Unlock()
		}
	}()
	for f != nil {
		f()
		p.idle(w)
		f = <-w.task
	}
}

// idle puts w on top of the free stack and arms the reaper if it is not.
func (p *Pool) idle(w *worker) {
	p.mu.Lock()
	w.tick = p.tick
	p.free = append(p.free, w)
	if !p.armed {
		p.armed = true
		if p.reaper == nil {
			p.reaper = time.AfterFunc(p.period(), p.reap)
		} else {
			p.reaper.Reset(p.period())
		}
	}
	p.mu.Unlock()
}

// reap is the reaper's round: it ends the workers that have been idle
// since ticksPerIdle rounds ago or longer (the bottom of the stack: a
// worker is pushed with the current round), and arms itself again while
// some worker is idle. A worker pushed in round k ends in round
// k+ticksPerIdle+1: idle for more than Idle, at most a quarter more.
func (p *Pool) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tick++
	n := 0
	for n < len(p.free) && p.tick-p.free[n].tick > ticksPerIdle {
		p.free[n].task <- nil
		n++
	}
	if n > 0 {
		k := copy(p.free, p.free[n:])
		clear(p.free[k:])
		p.free = p.free[:k]
		p.workers -= n
	}
	if len(p.free) > 0 {
		p.reaper.Reset(p.period())
	} else {
		p.armed = false
	}
}

// period is the time between the reaper's rounds.
func (p *Pool) period() time.Duration {
	if p.Idle > 0 {
		return p.Idle / ticksPerIdle
	}
	return DefaultIdle / ticksPerIdle
}

// Workers is how many workers are alive now, and how many of them idle.
func (p *Pool) Workers() (alive, idle int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers, len(p.free)
}
