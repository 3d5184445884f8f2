package natsauth

import (
	"errors"
	"fmt"
	"strings"
)

// Config is the accounts configuration, in nats-server syntax, of users in
// the SWITCHBOARD account (with JetStream). With a sysPassword, a "sys"
// user of the system account is added (for the nats CLI's server
// reports). No user is anonymous: a client without credentials is refused.
func Config(users []User, sysPassword string) (string, error) {
	var b strings.Builder
	b.WriteString("accounts {\n  " + Account + " {\n    jetstream: enabled\n    users: [\n")
	for _, u := range users {
		if err := writeUser(&b, u); err != nil {
			return "", err
		}
	}
	b.WriteString("    ]\n  }\n")
	if sysPassword != "" {
		if err := checkValue(sysPassword); err != nil {
			return "", fmt.Errorf("sys password: %w", err)
		}
		fmt.Fprintf(&b, "  SYS { users: [ { user: \"sys\", password: %q } ] }\n}\nsystem_account: SYS\n", sysPassword)
	} else {
		b.WriteString("}\n")
	}
	return b.String(), nil
}

func writeUser(b *strings.Builder, u User) error {
	for _, v := range append([]string{u.Name, u.Password}, append(u.Publish, u.Subscribe...)...) {
		if err := checkValue(v); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	if u.About != "" {
		fmt.Fprintf(b, "      # %s\n", u.About)
	}
	fmt.Fprintf(b, "      { user: %q, password: %q", u.Name, u.Password)
	if u.Publish == nil && u.Subscribe == nil && len(u.ConnectionTypes) == 0 {
		b.WriteString(" }\n")
		return nil
	}
	b.WriteString("\n")
	if u.Publish != nil || u.Subscribe != nil {
		b.WriteString("        permissions: {\n")
		fmt.Fprintf(b, "          publish: { allow: %s }\n", list(u.Publish))
		fmt.Fprintf(b, "          subscribe: { allow: %s }\n", list(u.Subscribe))
		if u.AllowResponses {
			b.WriteString("          allow_responses: true\n")
		}
		b.WriteString("        }\n")
	}
	if len(u.ConnectionTypes) > 0 {
		fmt.Fprintf(b, "        allowed_connection_types: %s\n", list(u.ConnectionTypes))
	}
	b.WriteString("      }\n")
	return nil
}

// list writes subjects one a line, so that the file reads (and diffs) well.
func list(items []string) string {
	if len(items) == 0 {
		return "[]"
	}
	var b strings.Builder
	b.WriteString("[\n")
	for _, s := range items {
		fmt.Fprintf(&b, "            %q\n", s)
	}
	b.WriteString("          ]")
	return b.String()
}

// errValue is a name, password or subject that the configuration cannot
// hold as a plain quoted string.
var errValue = errors.New("empty, or holds a quote, a backslash, a space or a control character")

func checkValue(v string) error {
	if v == "" || strings.ContainsAny(v, "\"\\ ") {
		return errValue
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return errValue
		}
	}
	return nil
}
