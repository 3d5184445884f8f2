package main

import (
	"strings"
	"testing"
)

func TestRedactURLs(t *testing.T) {
	got := redactURLs("nats://admin:s3cret@127.0.0.1:4222,nats://admin:s3cret@127.0.0.1:4223,nats://127.0.0.1:4224")
	if strings.Contains(got, "s3cret") || strings.Count(got, "admin:") != 2 || !strings.Contains(got, "127.0.0.1:4224") {
		t.Fatalf("redactURLs: %q", got)
	}
}
