package conf

import (
	"flag"
	"testing"
	"time"
)

func TestParseEnvAndFlagPrecedence(t *testing.T) {
	env := map[string]string{
		"SWITCHBOARD_NATS_URL":     "nats://env:4222",
		"SWITCHBOARD_LISTEN":       "127.0.0.1:9999",
		"SWITCHBOARD_IDLE_TIMEOUT": "5s",
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	url := fs.String("nats-url", "", "")
	listen := fs.String("listen", "127.0.0.1:8080", "")
	idle := fs.Duration("idle-timeout", time.Minute, "")
	other := fs.String("other", "default", "")
	if err := Parse(fs, []string{"-listen", "127.0.0.1:1"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *url != "nats://env:4222" || *listen != "127.0.0.1:1" || *idle != 5*time.Second || *other != "default" {
		t.Fatalf("got url=%q listen=%q idle=%v other=%q", *url, *listen, *idle, *other)
	}
}

func TestParseBadEnvValue(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Duration("idle-timeout", time.Minute, "")
	err := Parse(fs, nil, func(k string) string {
		if k == "SWITCHBOARD_IDLE_TIMEOUT" {
			return "soon"
		}
		return ""
	})
	if err == nil {
		t.Fatal("a bad duration in the environment was accepted")
	}
}
