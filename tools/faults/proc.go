package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// proc is one process the harness started: it can be killed (only by the
// pid it started), stopped and started again with the same arguments,
// environment and log file.
type proc struct {
	name  string
	path  string
	args  []string
	env   []string
	dir   string
	log   string
	ready string // URL that answers 200 once the process serves, if any

	mu   sync.Mutex // guards cmd and done
	cmd  *exec.Cmd
	done chan struct{}
}

// started lists every proc the harness started, for the watchdog.
var started struct {
	sync.Mutex
	procs []*proc
}

// killAll kills every process the harness started (by its pid).
func killAll() {
	started.Lock()
	ps := started.procs
	started.Unlock()
	for _, p := range ps {
		p.kill9()
	}
}

func (p *proc) start() error {
	started.Lock()
	if !slices.Contains(started.procs, p) {
		started.procs = append(started.procs, p)
	}
	started.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s already running", p.name)
	}
	lf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(lf, "\n=== %s start %s\n", time.Now().UTC().Format(time.RFC3339Nano), p.name)
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); lf.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// signal sends sig to the process and, for a stop, waits for it to end
// (SIGKILL after wait).
func (p *proc) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
}

// kill9 kills the process with SIGKILL.
func (p *proc) kill9() { p.signal(syscall.SIGKILL, 5*time.Second) }

// stop asks the process to end (SIGTERM) and waits up to 30 s.
func (p *proc) stop() { p.signal(syscall.SIGTERM, 30*time.Second) }

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitReady waits for the process's ready URL to answer 200.
func (p *proc) waitReady(d time.Duration) error {
	if p.ready == "" {
		return nil
	}
	return waitHTTP(p.ready, d)
}

func waitHTTP(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	cl := http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := cl.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w", url, d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logPath is dir/name.log.
func logPath(dir, name string) string { return filepath.Join(dir, name+".log") }
