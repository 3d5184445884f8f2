package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// standalone is the standalone binary (bin/switchboard) as a process of
// the harness, its store under state, its ports moved by off.
func standalone(o options, state, secret string) *proc {
	metrics := "127.0.0.1:" + strconv.Itoa(9190+o.off)
	return &proc{
		name: "switchboard", path: filepath.Join(o.bin, "switchboard"), dir: state,
		args: []string{
			"-data-dir", filepath.Join(state, "standalone"),
			"-listen", "127.0.0.1:" + strconv.Itoa(8090+o.off),
			"-nats-listen", "127.0.0.1:" + strconv.Itoa(4290+o.off),
			"-metrics-listen", metrics,
		},
		env:   []string{"SWITCHBOARD_JWT_SECRET=" + secret, "SWITCHBOARD_LIMITS=" + limits},
		log:   logPath(state, "switchboard"),
		ready: "http://" + metrics + "/readyz",
	}
}

func standaloneURL(o options) string {
	return fmt.Sprintf("ws://127.0.0.1:%d/ws", 8090+o.off)
}

// runStandaloneFaults runs the standalone's scenario.
func runStandaloneFaults(o options, state, secret, runID string) ([]phaseResult, error) {
	p := standalone(o, state, secret)
	logf("starting the standalone")
	if err := restart(p, 90*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("standalone: %w", err)
	}
	defer p.stop()
	healthy := func(d time.Duration) error {
		if !p.running() {
			if err := p.start(); err != nil {
				return err
			}
		}
		return p.waitReady(d)
	}
	return runScenarios(o, []scenario{standaloneScenario(p)}, []string{standaloneURL(o)}, secret, runID, healthy), nil
}
