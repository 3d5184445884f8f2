package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// printTable prints one row per fault, then each failing row's reasons.
func printTable(w io.Writer, rs []phaseResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tacked\tlost\tdups to the app\terrors to senders\tother commands' errors\trecovered\tlongest interruption\tbound\tresult")
	for _, r := range rs {
		t := r.Tally
		result := "ok"
		if len(r.Failures) > 0 {
			result = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%d\t%.2f s\t%.0f s\t%s\n", r.Name, t.Acked, t.Lost, t.dups(),
			counts(t.SendErrors), counts(t.Other), t.Recovered, t.Longest.Seconds(), r.Bound.Seconds(), result)
	}
	_ = tw.Flush()
	for _, r := range rs {
		if len(r.Failures) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", r.Name)
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  - %s\n", f)
		}
		for _, e := range r.Tally.Examples {
			fmt.Fprintf(w, "    e.g. %s\n", e)
		}
	}
}

// counts renders a code->count map as "code n, code n", or "none".
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}

// writeMarkdown writes the table as Markdown (for docs/reliability.md).
func writeMarkdown(w io.Writer, rs []phaseResult) {
	fmt.Fprintln(w, "| fault | acked | lost | dups to the app | errors to senders | other commands' errors | recovered | longest interruption | bound | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		t := r.Tally
		result := "ok"
		if len(r.Failures) > 0 {
			result = "**FAIL**: " + strings.Join(r.Failures, "; ")
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s | %s | %d | %.2f s | %.0f s | %s |\n", r.Name, t.Acked, t.Lost, t.dups(),
			counts(t.SendErrors), counts(t.Other), t.Recovered, t.Longest.Seconds(), r.Bound.Seconds(), result)
	}
}
