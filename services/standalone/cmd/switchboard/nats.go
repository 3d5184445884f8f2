package main

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/kit/natsauth"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/services/standalone"
)

// setupOnly is -setup: the streams and buckets of cfg's services on an
// external NATS, as a user that may manage JetStream.
func setupOnly(natsURL, creds string, cfg standalone.Config) error {
	if natsURL == "" {
		return errors.New("-setup needs -nats-url (SWITCHBOARD_NATS_URL) and an admin user")
	}
	nc, err := natsx.Connect(natsx.ConnConfig{URL: natsURL, Creds: creds, Name: "switchboard-setup"})
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return standalone.Setup(ctx, nc, cfg)
}

// loadBackends reads -nats-backends-file; none without one.
func loadBackends(path string) (map[string]string, error) {
	if path == "" {
		return map[string]string{}, nil
	}
	return natsauth.LoadBackends(path)
}

// backendURL is the NATS URL with org's backend credential ("" without a
// listener or a backend).
func backendURL(natsURL, org, password string) string {
	u, err := url.Parse(natsURL)
	if natsURL == "" || password == "" || err != nil {
		return ""
	}
	u.User = url.UserPassword(natsauth.Backend(org), password)
	return u.String()
}

// redactURLs is a comma-separated list of NATS URLs with their passwords
// masked, for logs.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
