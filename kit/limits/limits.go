// Package limits holds the per-user rate limits of docs/protocol.md: token
// buckets by command type, their defaults and their configuration syntax
// (command=capacity/period, comma-separated or one a line).
package limits

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Default is the bucket key of every command without a limit of its own:
// they share one bucket per user.
const Default = "default"

// Limit is a token bucket of Capacity tokens refilled evenly over Period.
type Limit struct {
	Capacity int
	Period   time.Duration
}

// RefillPerSecond is the bucket's refill rate.
func (l Limit) RefillPerSecond() float64 {
	return float64(l.Capacity) / l.Period.Seconds()
}

func (l Limit) String() string { return strconv.Itoa(l.Capacity) + "/" + l.Period.String() }

// Set maps command types (and Default) to their limits.
type Set map[string]Limit

// Defaults are the default limits of docs/protocol.md ("Rate limits").
func Defaults() Set {
	return Set{
		"message:send":   {10, time.Minute},
		"message:typing": {5, 10 * time.Second},
		"message:edit":   {3, time.Minute},
		"message:delete": {3, time.Minute},
		"message:react":  {30, time.Minute},
		// A create or an add of up to 1,000 participants costs a membership
		// index entry and a small user event per participant.
		"conversation:create": {10, time.Minute},
		"conversation:add":    {30, time.Minute},
		// Uploads over HTTP (POST /files), each up to 25 MiB.
		"file:upload": {10, time.Minute},
		Default:       {60, 10 * time.Second},
	}
}

// Bucket returns the bucket a command is counted in and its limit: the
// command's own, or the shared Default.
func (s Set) Bucket(command string) (string, Limit) {
	if l, ok := s[command]; ok {
		return command, l
	}
	return Default, s[Default]
}

// Commands lists the set's keys in order.
func (s Set) Commands() []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Parse reads overrides "command=capacity/period" separated by commas or
// newlines (blank lines and # comments ignored) on top of base.
func Parse(base Set, spec string) (Set, error) {
	out := Set{}
	for k, v := range base {
		out[k] = v
	}
	for _, line := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == '\n' }) {
		line = strings.TrimSpace(line)
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		cmd, l, err := parseOne(line)
		if err != nil {
			return nil, err
		}
		out[cmd] = l
	}
	return out, nil
}

func parseOne(s string) (string, Limit, error) {
	cmd, rate, ok := strings.Cut(s, "=")
	cmd, rate = strings.TrimSpace(cmd), strings.TrimSpace(rate)
	capS, perS, ok2 := strings.Cut(rate, "/")
	if !ok || !ok2 || cmd == "" {
		return "", Limit{}, fmt.Errorf("limit %q: want command=capacity/period", s)
	}
	capacity, err := strconv.Atoi(strings.TrimSpace(capS))
	if err != nil || capacity < 1 || capacity > math.MaxInt32 {
		return "", Limit{}, fmt.Errorf("limit %q: capacity must be a positive whole number", s)
	}
	period, err := time.ParseDuration(strings.TrimSpace(perS))
	if err != nil || period < time.Millisecond {
		return "", Limit{}, fmt.Errorf("limit %q: period must be a duration of at least 1ms (e.g. 1s, 10s, 1m)", s)
	}
	return cmd, Limit{capacity, period}, nil
}

// Load is the configured set: the defaults, then the file (if any), then
// the inline spec (if any).
func Load(spec, file string) (Set, error) {
	set := Defaults()
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var lines []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
		if set, err = Parse(set, strings.Join(lines, "\n")); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	return Parse(set, spec)
}
