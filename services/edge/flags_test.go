package edge

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
)

// flagsConfig parses args as the edge's flags and returns their Config.
func flagsConfig(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	var f Flags
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f.Config()
}

func TestFlagsRefuseAShortSecret(t *testing.T) {
	for _, secret := range []string{"s", "loadsecret", string(testSecret[:MinSecretBytes-1])} {
		_, err := flagsConfig(t, "-jwt-secret", secret)
		if !errors.Is(err, ErrShortSecret) {
			t.Fatalf("a %d-byte secret: %v, want ErrShortSecret", len(secret), err)
		}
		if !strings.Contains(err.Error(), "at least 32 bytes") || len(secret) > 1 && strings.Contains(err.Error(), secret) {
			t.Fatalf("unclear, or the secret shown: %v", err)
		}
	}
	if _, err := flagsConfig(t, "-jwt-secret", string(testSecret[:MinSecretBytes])); err != nil {
		t.Fatalf("a 32-byte secret: %v", err)
	}
}

// Key ids come from kid=file, else from the file's name.
func TestFlagsKeyIDs(t *testing.T) {
	k := newTestKeys(t)
	dir := t.TempDir()
	write := func(name string, pem []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	byName := write("2026-01.pem", k.rsaPubPEM)
	named := write("other.pem", k.rsaCertPEM) // rsa2's
	cfg, err := flagsConfig(t, "-jwt-public-keys", byName+", custom="+named+","+write("ec.pem", k.ecPubPEM), "-jwt-max-lifetime", "2h")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.MaxLifetime != 2*time.Hour {
		t.Errorf("MaxLifetime %v, want 2h", cfg.Auth.MaxLifetime)
	}
	v := mustVerifier(t, cfg.Auth)
	for _, tc := range []struct {
		key any
		m   jwt.SigningMethod
		kid any
		ok  bool
	}{
		{k.rsa, jwt.SigningMethodRS256, "2026-01", true},
		{k.rsa2, jwt.SigningMethodRS256, "custom", true},
		{k.ec, jwt.SigningMethodES256, "ec", true},
		{k.rsa2, jwt.SigningMethodRS256, nil, true},
		{k.rsa, jwt.SigningMethodRS256, "custom", false},
		{k.rsa2, jwt.SigningMethodRS256, "other", false}, // the kid given replaces the file's name
		{k.rsa, jwt.SigningMethodRS256, "2026-01.pem", false},
	} {
		_, err := v.Verify(signKid(t, tc.m, tc.key, tc.kid, claimsOf(nil)))
		if (err == nil) != tc.ok {
			t.Errorf("%s token with kid %v: error %v, want accepted %v", tc.m.Alg(), tc.kid, err, tc.ok)
		}
	}
	for _, bad := range []string{"=" + byName, "k1=", "k1=" + filepath.Join(dir, "nope.pem")} {
		if _, err := flagsConfig(t, "-jwt-public-keys", bad); err == nil {
			t.Errorf("-jwt-public-keys %q accepted", bad)
		}
	}
	if _, err := flagsConfig(t, "-jwt-secret", string(testSecret), "-jwt-max-lifetime", "-1h"); err == nil {
		t.Error("a negative -jwt-max-lifetime accepted")
	}
}

// An edge that checks neither iss nor aud says so when it starts.
func TestStartWarnsWithoutIssuerOrAudience(t *testing.T) {
	nc := natstest.Conn(t, natstest.Server(t))
	for _, tc := range []struct {
		auth AuthConfig
		warn bool
	}{
		{AuthConfig{Secret: testSecret}, true},
		{AuthConfig{Secret: testSecret, Issuer: "https://id.example.com"}, false},
		{AuthConfig{Secret: testSecret, Audience: "switchboard"}, false},
	} {
		var logs bytes.Buffer
		s, err := New(nc, Config{Auth: tc.auth, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Shutdown(context.Background())
		if got := strings.Contains(logs.String(), "level=WARN msg=\"no JWT issuer nor audience configured"); got != tc.warn {
			t.Errorf("issuer %q audience %q: warned %v, want %v; logs:\n%s", tc.auth.Issuer, tc.auth.Audience, got, tc.warn, &logs)
		}
	}
}
