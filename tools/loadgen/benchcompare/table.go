package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// printTable prints the steps of every system and the summary of ratios.
func printTable(o *options, systems []system, res map[string]*result, load0, load1 string, took time.Duration) {
	base, head, raw := res["base"], res["head"], res["raw"]
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	p := func(cells ...string) { fmt.Fprintln(w, strings.Join(cells, "\t")+"\t") }

	fmt.Printf("bench-compare: base %s, head %s; %d cores, load average %s before, %s after, %s in all; %s sending per run, 100-byte messages\n",
		o.baseRev, o.headRev, runtime.NumCPU(), load0, load1, took.Round(time.Second), o.duration)
	fmt.Printf("fan-out: 10 rooms x 100 members, one socket each; a step passes with nothing missing, >= 95%% delivered and e2e p99 < %.0f ms (the first failed step is run once more; the ladder goes on until the system saturates: < 97%% delivered or p50 above the bound, at most %d steps past its first failure)\n\n", o.p99Limit, maxPastFail)

	head1 := []string{"delivered/s asked"}
	for _, s := range systems {
		head1 = append(head1, s.name+" delivered/s", "p50 ms", "p99 ms")
	}
	p(head1...)
	for i, d := range o.ladder {
		row := []string{fmt.Sprintf("%.0f", d)}
		any := false
		for _, s := range systems {
			steps := res[s.name].steps
			if i < len(steps) {
				r := steps[i]
				mark := ""
				if !r.passes(o.p99Limit) {
					mark = " x"
				}
				row = append(row, fmt.Sprintf("%.0f%s", r.DeliveredPerS, mark), f2(r.E2E.P50), f2(r.E2E.P99))
				any = true
			} else {
				row = append(row, "-", "-", "-")
			}
		}
		if any {
			p(row...)
		}
	}
	_ = w.Flush()
	fmt.Println()

	hdr := []string{""}
	for _, s := range systems {
		hdr = append(hdr, s.name)
	}
	p(append(hdr, "head/base", "head/raw")...)
	best := func(r *result) float64 {
		if r == nil || r.best == nil {
			return 0
		}
		return r.best.DeliveredPerS
	}
	row := func(name string, f func(*result) float64, format string) {
		cells := []string{name}
		for _, s := range systems {
			cells = append(cells, fmt.Sprintf(format, f(res[s.name])))
		}
		cells = append(cells, ratio(f(head), f(base)), ratio(f(head), f(raw)))
		p(cells...)
	}
	row("best delivered/s, p99 < limit", best, "%.0f")
	row("send ceiling acked/s (200 x 1, best step)", func(r *result) float64 { return r.sendCeil.AckedPerSec }, "%.0f")
	row("send ceiling ack p99 ms", func(r *result) float64 { return r.sendCeil.Ack.P99 }, "%.2f")
	row("light load p50 ms", func(r *result) float64 { return r.light.E2E.P50 }, "%.2f")
	row("light load p99 ms", func(r *result) float64 { return r.light.E2E.P99 }, "%.2f")
	perUnit := func(r *runResult, n float64) float64 {
		if r == nil || r.ServerCPUCores < 0 || n == 0 {
			return 0
		}
		return r.ServerCPUCores / n * 1e6
	}
	row("server µs CPU per delivery (best step)", func(r *result) float64 {
		if r.best == nil {
			return 0
		}
		return perUnit(r.best, r.best.DeliveredPerS)
	}, "%.1f")
	row(fmt.Sprintf("server µs CPU per delivery at %.0f/s", o.ladder[0]), func(r *result) float64 {
		if len(r.steps) == 0 {
			return 0
		}
		return perUnit(r.steps[0], r.steps[0].DeliveredPerS)
	}, "%.1f")
	row("server µs CPU per acked send (best send step)", func(r *result) float64 { return perUnit(r.sendCeil, r.sendCeil.AckedPerSec) }, "%.0f")
	memRow := func(name string, f func(*result) float64) {
		cells := []string{name}
		for _, s := range systems {
			if r := res[s.name]; r.idle != nil && r.joined != nil {
				cells = append(cells, fmt.Sprintf("%.2f", f(r)))
			} else {
				cells = append(cells, "-")
			}
		}
		if base.idle != nil && head.idle != nil {
			cells = append(cells, ratio(f(head), f(base)), "-")
		}
		p(cells...)
	}
	if base.idle != nil {
		memRow("idle heap KiB per conn (10,000)", func(r *result) float64 { return r.idle.heapPer / 1024 })
		memRow("idle live heap KiB per conn (10,000)", func(r *result) float64 { return r.idle.livePer / 1024 })
		memRow("joined heap KB per conn (100 x 100)", func(r *result) float64 { return r.joined.heapPer / 1000 })
		memRow("joined live heap KB per conn (100 x 100)", func(r *result) float64 { return r.joined.livePer / 1000 })
	}
	_ = w.Flush()
	fmt.Println()

	if base.firstFail != nil {
		d := base.firstFail.target
		hp := stepAt(head, d)
		fmt.Printf("at %.0f delivered/s asked, where base first fails: p99 base %.2f ms, head %s ms (%s lower)\n",
			d, base.firstFail.E2E.P99, optF(hp), optRatio(base.firstFail.E2E.P99, hp))
	}
	if base.saturated != nil {
		d := base.saturated.target
		hp := stepAt(head, d)
		fmt.Printf("at %.0f delivered/s asked, where base saturates (delivered %.0f/s, p50 %.2f ms): p99 base %.2f ms, head %s ms (%s lower)\n",
			d, base.saturated.DeliveredPerS, base.saturated.E2E.P50, base.saturated.E2E.P99, optF(hp), optRatio(base.saturated.E2E.P99, hp))
	} else {
		fmt.Printf("base did not saturate within the ladder (or within %d steps past its first failed one)\n", maxPastFail)
	}
	fmt.Printf("light load (%.0f delivered/s): p50 head - base = %+.2f ms\n", o.light, head.light.E2E.P50-base.light.E2E.P50)
	fmt.Printf("results: %s\n", o.out)
}

func stepAt(r *result, target float64) *runResult {
	for _, s := range r.steps {
		if s.target == target {
			return s
		}
	}
	return nil
}

func optF(r *runResult) string {
	if r == nil {
		return "(not reached)"
	}
	return f2(r.E2E.P99)
}

func optRatio(a float64, r *runResult) string {
	if r == nil || r.E2E.P99 == 0 {
		return "?x"
	}
	return fmt.Sprintf("%.1fx", a/r.E2E.P99)
}

func f2(v float64) string { return fmt.Sprintf("%.2f", v) }

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}
