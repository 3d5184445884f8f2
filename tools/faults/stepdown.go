package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// stepDown asks the leader of stream to step down, speaking the NATS
// client protocol as user (it must be allowed to publish
// $JS.API.STREAM.LEADER.STEPDOWN.<stream>) at addr. The harness needs no
// NATS client library for this one request.
func stepDown(addr, user, stream string) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "INFO ") {
		return fmt.Errorf("no INFO from %s: %q %v", addr, line, err)
	}
	connect, _ := json.Marshal(map[string]any{"user": user, "pass": user + "-local-only", "verbose": false, "pedantic": false, "headers": true, "no_responders": true})
	inbox := "_INBOX.stepdown" // today's service users and admin may subscribe there
	msg := fmt.Sprintf("CONNECT %s\r\nSUB %s 1\r\nPUB $JS.API.STREAM.LEADER.STEPDOWN.%s %s 0\r\n\r\nPING\r\n", connect, inbox, stream, inbox)
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(line, "-ERR"):
			return fmt.Errorf("%s as %s: %s", addr, user, strings.TrimSpace(line))
		case strings.HasPrefix(line, "PING"):
			_, _ = c.Write([]byte("PONG\r\n"))
		case strings.HasPrefix(line, "MSG ") || strings.HasPrefix(line, "HMSG "):
			body, err := readPayload(r, line)
			if err != nil {
				return err
			}
			if strings.Contains(body, `"error"`) || strings.Contains(body, "503") {
				return fmt.Errorf("step down %s: %s", stream, body)
			}
			return nil
		}
	}
}

// readPayload reads the payload of a MSG or HMSG line (its last field is
// the total size).
func readPayload(r *bufio.Reader, line string) (string, error) {
	f := strings.Fields(line)
	var n int
	if _, err := fmt.Sscan(f[len(f)-1], &n); err != nil {
		return "", err
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b[:n]), nil
}

// clearLeadership moves every stream led by node n elsewhere (step-downs
// as admin, else as messaging: the users of deploy/nats that may), so that
// n leads none; it returns what n still leads after a few rounds.
func (c *cluster) clearLeadership(n *proc) ([]string, error) {
	var led []string
	for round := 0; round < 5; round++ {
		l, err := c.leaders()
		if err != nil {
			return nil, err
		}
		led = led[:0]
		for s, who := range l {
			if who == n.name {
				led = append(led, s)
			}
		}
		if len(led) == 0 {
			return nil, nil
		}
		addr := fmt.Sprintf("127.0.0.1:%d", c.port(portClient+int(n.name[1]-'0')))
		for _, s := range led {
			var err error
			for _, user := range []string{"admin", "messaging"} {
				if err = stepDown(addr, user, s); err == nil {
					break
				}
			}
			if err != nil {
				logf("  step down %s: %v", s, err)
			}
		}
		time.Sleep(2 * time.Second)
	}
	return led, nil
}
