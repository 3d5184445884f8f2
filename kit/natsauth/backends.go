package natsauth

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/switchboard-chat/switchboard/kit/ids"
)

// LoadBackends reads a backends file: one "<org> <password>" a line, the
// password plain or a bcrypt hash (nats-server checks both), blank lines
// and lines starting with # ignored. It returns org -> password.
func LoadBackends(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	backends, err := ParseBackends(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return backends, nil
}

// ParseBackends is LoadBackends on r.
func ParseBackends(r io.Reader) (map[string]string, error) {
	backends := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: want \"<org> <password>\"", n)
		}
		org, password := fields[0], fields[1]
		if !ids.Valid(org) {
			return nil, fmt.Errorf("line %d: %q is not a valid org id", n, org)
		}
		if err := checkValue(password); err != nil {
			return nil, fmt.Errorf("line %d: password %w", n, err)
		}
		if _, dup := backends[org]; dup {
			return nil, fmt.Errorf("line %d: org %q again", n, org)
		}
		backends[org] = password
	}
	return backends, sc.Err()
}
