package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// scenario is one fault of the table: what it does to the layout, how
// long the workload runs around it, and the longest interruption a client
// may see (docs/reliability.md explains each bound).
type scenario struct {
	name    string // short, part of user ids
	title   string
	sendFor time.Duration
	bound   time.Duration
	fault   func(ctx context.Context) error
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// restart starts p again and waits until it is ready.
func restart(p *proc, d time.Duration) error {
	if err := p.start(); err != nil {
		return err
	}
	return p.waitReady(d)
}

// down kills ps with sig, holds them down for d, then restarts them.
func down(ctx context.Context, sig syscall.Signal, d time.Duration, ps ...*proc) error {
	var names []string
	for _, p := range ps {
		names = append(names, fmt.Sprintf("%s (pid %d)", p.name, p.pid()))
		p.signal(sig, 30*time.Second)
	}
	logf("  %s %s, down for %s", sig, strings.Join(names, ", "), d)
	if err := sleepCtx(ctx, d); err != nil {
		return err
	}
	for _, p := range ps {
		if err := p.start(); err != nil {
			return err
		}
	}
	for _, p := range ps {
		if err := p.waitReady(3 * time.Minute); err != nil {
			return fmt.Errorf("%s after restart: %w", p.name, err)
		}
	}
	return nil
}

// clusterScenarios are the faults run against the cluster layout.
func clusterScenarios(c *cluster) []scenario {
	kill := syscall.SIGKILL
	nodeKill := func(pick func() (*proc, error), sig syscall.Signal) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			n, err := pick()
			if err != nil {
				return err
			}
			return down(ctx, sig, 10*time.Second, n)
		}
	}
	leader := func(stream string) func() (*proc, error) {
		return func() (*proc, error) {
			n, err := c.leaderOf(stream)
			if err == nil {
				logf("  %s is led by %s", stream, n.name)
			}
			return n, err
		}
	}
	return []scenario{
		{name: "msg-kill", title: "kill -9 one messaging instance, 6 times (alternating)", sendFor: 60 * time.Second, bound: 15 * time.Second,
			fault: func(ctx context.Context) error {
				for i := range 6 {
					if err := down(ctx, kill, 3*time.Second, c.services[i%2]); err != nil {
						return err
					}
					if err := sleepCtx(ctx, 4*time.Second); err != nil {
						return err
					}
				}
				return nil
			}},
		{name: "edge-kill", title: "kill -9 one edge, 4 times (alternating; clients move)", sendFor: 55 * time.Second, bound: 15 * time.Second,
			fault: func(ctx context.Context) error {
				for i := range 4 {
					if err := down(ctx, kill, 5*time.Second, c.edges[i%2]); err != nil {
						return err
					}
					if err := sleepCtx(ctx, 5*time.Second); err != nil {
						return err
					}
				}
				return nil
			}},
		{name: "presence-kill", title: "kill -9 both presence instances for 15 s", sendFor: 35 * time.Second, bound: 10 * time.Second,
			fault: func(ctx context.Context) error { return down(ctx, kill, 15*time.Second, c.services[2], c.services[3]) }},
		{name: "rl-kill", title: "kill -9 both ratelimit instances for 15 s", sendFor: 35 * time.Second, bound: 10 * time.Second,
			fault: func(ctx context.Context) error { return down(ctx, kill, 15*time.Second, c.services[4], c.services[5]) }},
		{name: "nats-idle", title: "kill -9 a NATS node leading no stream (leaders moved away first)", sendFor: 40 * time.Second, bound: 30 * time.Second,
			fault: nodeKill(func() (*proc, error) {
				n, led, err := c.idleNode()
				if err != nil {
					return nil, err
				}
				logf("  %s leads %v: moving those leaders away", n.name, led)
				still, err := c.clearLeadership(n)
				if err != nil {
					return nil, err
				}
				logf("  %s still leads %v", n.name, still)
				return n, nil
			}, kill)},
		{name: "nats-kv", title: "kill -9 the NATS node leading KV_chat_messages", sendFor: 40 * time.Second, bound: 30 * time.Second,
			fault: nodeKill(leader("KV_chat_messages"), kill)},
		{name: "nats-events", title: "kill -9 the NATS node leading CHAT_EVENTS", sendFor: 40 * time.Second, bound: 30 * time.Second,
			fault: nodeKill(leader("CHAT_EVENTS"), kill)},
		{name: "nats-term", title: "graceful stop (SIGTERM) of the CHAT_EVENTS leader", sendFor: 40 * time.Second, bound: 30 * time.Second,
			fault: nodeKill(leader("CHAT_EVENTS"), syscall.SIGTERM)},
		{name: "nats-two", title: "kill -9 two of three NATS nodes for 15 s", sendFor: 50 * time.Second, bound: 45 * time.Second,
			fault: func(ctx context.Context) error {
				l, err := c.leaderOf("CHAT_EVENTS")
				if err != nil {
					return err
				}
				other := c.nodes[0]
				if other == l {
					other = c.nodes[1]
				}
				return down(ctx, kill, 15*time.Second, l, other)
			}},
		{name: "edge-cut", title: "cut edge 1 from NATS for 10 s (TCP proxies closed)", sendFor: 35 * time.Second, bound: 30 * time.Second,
			fault: func(ctx context.Context) error {
				logf("  cutting edge1's NATS proxies")
				for _, px := range c.proxies {
					px.setCut(true)
				}
				err := sleepCtx(ctx, 10*time.Second)
				for _, px := range c.proxies {
					px.setCut(false)
				}
				logf("  edge1's NATS proxies restored")
				return err
			}},
	}
}

// standaloneScenario kills the standalone 3 times, restarting it on the
// same data each time.
func standaloneScenario(p *proc) scenario {
	return scenario{name: "sa-kill", title: "kill -9 the standalone 3 times, restart on the same data", sendFor: 40 * time.Second, bound: 30 * time.Second,
		fault: func(ctx context.Context) error {
			for range 3 {
				if err := down(ctx, syscall.SIGKILL, time.Second, p); err != nil {
					return err
				}
				if err := sleepCtx(ctx, 6*time.Second); err != nil {
					return err
				}
			}
			return nil
		}}
}
