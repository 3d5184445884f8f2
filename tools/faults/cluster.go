package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// cluster is deploy/cluster.sh's layout as separate processes this
// harness owns: three nats-server nodes with deploy/nats's configs, every
// port moved by the offset; two of every service, each with its own NATS
// user; two edges. Edge 1 reaches NATS only through proxies the harness
// can cut.
type cluster struct {
	root, deploy, bin, natsServer string
	state, logs                   string
	off                           int
	secret                        string
	limits                        string

	nodes    []*proc // n1..n3
	services []*proc // messaging, messaging2, presence, presence2, ratelimit, ratelimit2
	edges    []*proc // edge1, edge2
	proxies  []*proxy
}

// Ports of deploy/cluster.sh, before the offset.
const (
	portClient  = 4221 // + node number
	portMonitor = 8221
	portRoute   = 6221
	portEdge    = 8080 // + edge index
	portMetrics = 9101
)

func (c *cluster) port(base int) int { return base + c.off }

// nodeURL is node n's client URL (n from 1) as user; with the deploy's
// per-service passwords (user-local-only).
func (c *cluster) nodeURL(user string, n int) string {
	return fmt.Sprintf("nats://%s:%s-local-only@127.0.0.1:%d", user, user, c.port(portClient+n))
}

// urls is every node's URL as user, node first first (from 1).
func (c *cluster) urls(user string, first int) string {
	var out []string
	for i := range 3 {
		out = append(out, c.nodeURL(user, (first-1+i)%3+1))
	}
	return strings.Join(out, ",")
}

func (c *cluster) monitorURL(n int) string {
	return fmt.Sprintf("http://127.0.0.1:%d", c.port(portMonitor+n))
}

// edgeURLs are the edges' WebSocket URLs.
func (c *cluster) edgeURLs() []string {
	return []string{
		fmt.Sprintf("ws://127.0.0.1:%d/ws", c.port(portEdge)),
		fmt.Sprintf("ws://127.0.0.1:%d/ws", c.port(portEdge+1)),
	}
}

// routeAuth returns the user:password@ the deploy's node configs put in
// their routes, if any, so the routes the harness passes on the command
// line (moved by the offset) authenticate the same way.
func routeAuth(conf string) (string, error) {
	b, err := os.ReadFile(conf)
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`nats://([^@\s/"]+@)127\.0\.0\.1:\d+`).FindSubmatch(b)
	if m == nil {
		return "", nil
	}
	return string(m[1]), nil
}

// buildNodes builds the three nats-server processes.
func (c *cluster) buildNodes() error {
	auth, err := routeAuth(filepath.Join(c.deploy, "nats", "n1.conf"))
	if err != nil {
		return err
	}
	var routes []string
	for i := 1; i <= 3; i++ {
		routes = append(routes, fmt.Sprintf("nats://%s127.0.0.1:%d", auth, c.port(portRoute+i)))
	}
	for n := 1; n <= 3; n++ {
		c.nodes = append(c.nodes, &proc{
			name: "n" + strconv.Itoa(n), path: c.natsServer, dir: c.state,
			args: []string{"-c", filepath.Join(c.deploy, "nats", fmt.Sprintf("n%d.conf", n)),
				"-p", strconv.Itoa(c.port(portClient + n)), "-m", strconv.Itoa(c.port(portMonitor + n)),
				"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", c.port(portRoute+n)),
				"--routes", strings.Join(routes, ","),
				// Clients learn no other node's address from a node, so
				// that edge 1 reaches NATS only through its proxies (and
				// every process uses the URLs it was given).
				"--no_advertise"},
			log:   logPath(c.logs, "n"+strconv.Itoa(n)),
			ready: c.monitorURL(n) + "/healthz",
		})
	}
	return nil
}

// service builds one service process.
func (c *cluster) service(bin, name, user, natsURL string, metrics int, extra ...string) *proc {
	env := []string{
		"SWITCHBOARD_NATS_URL=" + natsURL,
		"SWITCHBOARD_REPLICAS=3",
		"SWITCHBOARD_JWT_SECRET=" + c.secret,
		"SWITCHBOARD_METRICS_LISTEN=127.0.0.1:" + strconv.Itoa(c.port(metrics)),
		"SWITCHBOARD_LIMITS=" + c.limits, // the edges' and ratelimit's
	}
	return &proc{
		name: name, path: filepath.Join(c.bin, bin), dir: c.state, env: append(env, extra...),
		log:   logPath(c.logs, name),
		ready: fmt.Sprintf("http://127.0.0.1:%d/readyz", c.port(metrics)),
	}
}

func (c *cluster) buildServices() error {
	for i := range 3 {
		px, err := newProxy(fmt.Sprintf("127.0.0.1:%d", c.port(portClient+i+1)))
		if err != nil {
			return err
		}
		c.proxies = append(c.proxies, px)
	}
	var viaProxy []string
	for _, px := range c.proxies {
		viaProxy = append(viaProxy, "nats://edge:edge-local-only@"+px.addr())
	}
	c.services = []*proc{
		c.service("messaging", "messaging", "messaging", c.urls("messaging", 1), portMetrics),
		c.service("messaging", "messaging2", "messaging", c.urls("messaging", 2), portMetrics+1),
		c.service("presence", "presence", "presence", c.urls("presence", 2), portMetrics+2),
		c.service("presence", "presence2", "presence", c.urls("presence", 3), portMetrics+6),
		c.service("ratelimit", "ratelimit", "ratelimit", c.urls("ratelimit", 3), portMetrics+3),
		c.service("ratelimit", "ratelimit2", "ratelimit", c.urls("ratelimit", 1), portMetrics+7),
	}
	c.edges = []*proc{
		c.service("edge", "edge1", "edge", strings.Join(viaProxy, ","), portMetrics+4,
			"SWITCHBOARD_LISTEN=127.0.0.1:"+strconv.Itoa(c.port(portEdge))),
		c.service("edge", "edge2", "edge", c.urls("edge", 3), portMetrics+5,
			"SWITCHBOARD_LISTEN=127.0.0.1:"+strconv.Itoa(c.port(portEdge+1))),
	}
	return nil
}

// start starts the nodes, sets JetStream up, then the services and edges.
func (c *cluster) start() error {
	if err := os.MkdirAll(c.logs, 0o755); err != nil {
		return err
	}
	if err := c.buildNodes(); err != nil {
		return err
	}
	if err := c.buildServices(); err != nil {
		return err
	}
	for _, n := range c.nodes {
		if err := n.start(); err != nil {
			return err
		}
	}
	if err := waitAll(c.nodes, 60*time.Second); err != nil {
		return err
	}
	first := c.services[0]
	setup, err := c.setup()
	if err != nil {
		return err
	}
	if !setup {
		// As deploy/cluster.sh: the first messaging sets streams and
		// buckets up before the others start.
		if err := first.start(); err != nil {
			return err
		}
		if err := first.waitReady(90 * time.Second); err != nil {
			return err
		}
	}
	for _, p := range append(c.services, c.edges...) {
		if !p.running() {
			if err := p.start(); err != nil {
				return err
			}
		}
	}
	return c.healthy(120 * time.Second)
}

// setup runs `switchboard -setup` as the admin user when the binary has
// that step (deploy's least-privilege layout: only admin may create
// streams and buckets); it reports whether it did.
func (c *cluster) setup() (bool, error) {
	bin := filepath.Join(c.bin, "switchboard")
	help, _ := exec.Command(bin, "-h").CombinedOutput()
	if !strings.Contains(string(help), "-setup") {
		return false, nil
	}
	cmd := exec.Command(bin, "-setup")
	cmd.Dir = c.state
	cmd.Env = append(os.Environ(), "SWITCHBOARD_NATS_URL="+c.urls("admin", 1), "SWITCHBOARD_REPLICAS=3")
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(logPath(c.logs, "setup"), out, 0o644)
	if err != nil {
		return false, fmt.Errorf("switchboard -setup: %w (log %s)", err, logPath(c.logs, "setup"))
	}
	return true, nil
}

// healthy waits until every process runs and is ready: the nodes'
// /healthz (JetStream current), the services' and edges' /readyz.
func (c *cluster) healthy(d time.Duration) error {
	for _, group := range [][]*proc{c.nodes, c.services, c.edges} {
		for _, p := range group {
			if !p.running() {
				if err := p.start(); err != nil {
					return err
				}
			}
		}
	}
	return waitAll(append(append(append([]*proc{}, c.nodes...), c.services...), c.edges...), d)
}

func waitAll(ps []*proc, d time.Duration) error {
	deadline := time.Now().Add(d)
	for _, p := range ps {
		if err := p.waitReady(time.Until(deadline)); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return nil
}

// stop stops everything: edges and services first, then the nodes.
func (c *cluster) stop() {
	for _, p := range append(append([]*proc{}, c.edges...), c.services...) {
		p.stop()
	}
	for _, n := range c.nodes {
		n.stop()
	}
	for _, px := range c.proxies {
		px.close()
	}
}

// jsz is the part of a node's /jsz?accounts=true&streams=true this reads.
type jsz struct {
	AccountDetails []struct {
		Name    string `json:"name"`
		Streams []struct {
			Name    string `json:"name"`
			Cluster *struct {
				Leader string `json:"leader"`
			} `json:"cluster"`
		} `json:"stream_detail"`
	} `json:"account_details"`
}

// leaders maps every stream to the name of the node leading it (n1..n3),
// as the first node that answers tells.
func (c *cluster) leaders() (map[string]string, error) {
	cl := http.Client{Timeout: 3 * time.Second}
	var lastErr error
	for n := 1; n <= 3; n++ {
		if !c.nodes[n-1].running() {
			continue
		}
		resp, err := cl.Get(c.monitorURL(n) + "/jsz?accounts=true&streams=true")
		if err != nil {
			lastErr = err
			continue
		}
		var j jsz
		err = json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		out := map[string]string{}
		for _, a := range j.AccountDetails {
			for _, s := range a.Streams {
				if s.Cluster != nil && s.Cluster.Leader != "" {
					out[s.Name] = s.Cluster.Leader
				}
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		lastErr = fmt.Errorf("node n%d names no stream leader", n)
	}
	return nil, lastErr
}

// node returns the node process named name (n1..n3).
func (c *cluster) node(name string) *proc {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// leaderOf returns the node leading stream.
func (c *cluster) leaderOf(stream string) (*proc, error) {
	l, err := c.leaders()
	if err != nil {
		return nil, err
	}
	if p := c.node(l[stream]); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("no leader known for %s (leaders %v)", stream, l)
}

// idleNode returns a node that leads no stream, or the one leading the
// fewest; it says which streams that one leads.
func (c *cluster) idleNode() (*proc, []string, error) {
	l, err := c.leaders()
	if err != nil {
		return nil, nil, err
	}
	led := map[string][]string{}
	for s, n := range l {
		led[n] = append(led[n], s)
	}
	best := c.nodes[0]
	for _, n := range c.nodes {
		if len(led[n.name]) < len(led[best.name]) {
			best = n
		}
	}
	return best, led[best.name], nil
}
