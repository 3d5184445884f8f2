package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
)

// scaling runs the head alone: the same delivered rate over rooms of 10,
// 100 and 1,000 members (1,000 connections), and over 1,000 to 19,000
// connections in rooms of 100 (the open-file limit here is 20,000 per
// process; the server and the load generator each have their own).
func scaling(o *options) error {
	sys := system{name: "head", binary: o.head}
	srv, err := startServer(o, sys)
	if err != nil {
		return err
	}
	defer srv.stop()
	c := &contender{sys: sys, srv: srv}
	const delivered = 20000
	type shape struct{ conns, members int }
	var shapes []shape
	for _, m := range []int{10, 100, 1000} {
		shapes = append(shapes, shape{1000, m})
	}
	for _, c := range []int{5000, 10000, 19000} {
		shapes = append(shapes, shape{c, 100})
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	p := func(cells ...string) { fmt.Fprintln(w, strings.Join(cells, "\t")+"\t") }
	fmt.Printf("\nscaling (head): %d delivered/s asked, 100-byte messages\n", delivered)
	p("connections", "members/room", "rooms", "sends/s", "delivered/s", "p50 ms", "p99 ms", "server cores", "µs per delivery")
	for _, sh := range shapes {
		rooms := sh.conns / sh.members
		rate := float64(delivered) / float64(sh.members)
		r, err := c.lg(o, fmt.Sprintf("scale-%d-%d", sh.conns, sh.members), sh.conns, rooms, rate)
		if err != nil {
			return err
		}
		us := "-"
		if r.ServerCPUCores >= 0 && r.DeliveredPerS > 0 {
			us = fmt.Sprintf("%.1f", r.ServerCPUCores/r.DeliveredPerS*1e6)
		}
		p(fmt.Sprint(sh.conns), fmt.Sprint(sh.members), fmt.Sprint(rooms), fmt.Sprintf("%.0f", rate),
			fmt.Sprintf("%.0f", r.DeliveredPerS), f2(r.E2E.P50), f2(r.E2E.P99), fmt.Sprintf("%.2f", r.ServerCPUCores), us)
	}
	return w.Flush()
}
