package edge

import (
	"errors"
	"flag"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/kit/limits"
)

// DefaultListen is the edge's listener when none is given.
const DefaultListen = "127.0.0.1:8080"

// DefaultMetricsListen is where the edge binary and the standalone serve
// /metrics by default: loopback, never the public listener.
const DefaultMetricsListen = "127.0.0.1:9090"

// Flags are the edge's command-line flags (each also SWITCHBOARD_<NAME>),
// shared by the edge binary and the standalone one.
type Flags struct {
	Listen         string
	JWTSecret      string
	JWTPublicKeys  string
	JWTIssuer      string
	JWTAudience    string
	JWTLeeway      time.Duration
	JWTMaxLifetime time.Duration
	AllowedOrigins string
	IdleTimeout    time.Duration
	AwayAfter      time.Duration
	Limits         string
	LimitsFile     string

	MaxUpgradesPerIP      int
	MaxConnectionsPerUser int
	MaxConnections        int
	MaxJoinsPerConnection int
	MaxFileBytes          int64
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Listen, "listen", DefaultListen, "WebSocket and HTTP listener")
	fs.StringVar(&f.JWTSecret, "jwt-secret", "", "HS256 secret, at least 32 bytes")
	fs.StringVar(&f.JWTPublicKeys, "jwt-public-keys", "", "PEM file(s) of RS256/ES256/EdDSA public keys, comma-separated, each file or kid=file (kid: the file name without extension)")
	fs.StringVar(&f.JWTIssuer, "jwt-issuer", "", "required iss claim, when set")
	fs.StringVar(&f.JWTAudience, "jwt-audience", "", "required aud claim, when set")
	fs.DurationVar(&f.JWTLeeway, "jwt-leeway", 0, "clock skew allowed on exp, nbf and iat")
	fs.DurationVar(&f.JWTMaxLifetime, "jwt-max-lifetime", 0, "refuse tokens whose exp - iat is longer, or without iat (0: no bound)")
	fs.StringVar(&f.AllowedOrigins, "allowed-origins", "", "comma-separated Origin allow-list (empty: any)")
	fs.DurationVar(&f.IdleTimeout, "idle-timeout", DefaultIdleTimeout, "close connections silent for this long")
	fs.DurationVar(&f.AwayAfter, "away-after", DefaultAwayAfter, "a connection without commands for this long is away")
	fs.StringVar(&f.Limits, "limits", "", "rate-limit overrides: command=capacity/period, comma-separated")
	fs.StringVar(&f.LimitsFile, "limits-file", "", "rate-limit overrides, one command=capacity/period a line")
	fs.IntVar(&f.MaxUpgradesPerIP, "max-upgrades-per-ip", DefaultMaxUpgradesPerIP, "upgrade attempts per client address per second")
	fs.IntVar(&f.MaxConnectionsPerUser, "max-connections-per-user", DefaultMaxConnectionsPerUser, "live connections per user on one edge")
	fs.IntVar(&f.MaxConnections, "max-connections", DefaultMaxConnections, "live connections on one edge")
	fs.IntVar(&f.MaxJoinsPerConnection, "max-joins-per-connection", DefaultMaxJoinsPerConnection, "conversations joined at once by one connection")
	fs.Int64Var(&f.MaxFileBytes, "max-file-bytes", DefaultMaxFileBytes, "largest upload to POST /files, in bytes (a larger one gets 413)")
}

// HasKey reports whether any JWT key was configured.
func (f *Flags) HasKey() bool { return f.JWTSecret != "" || f.JWTPublicKeys != "" }

// Config turns the flags into a Config.
func (f *Flags) Config() (Config, error) {
	var cfg Config
	if !f.HasKey() {
		return cfg, ErrNoKey
	}
	if f.JWTMaxLifetime < 0 {
		return cfg, errors.New("jwt-max-lifetime must not be negative")
	}
	cfg.Auth = AuthConfig{Secret: []byte(f.JWTSecret), Issuer: f.JWTIssuer, Audience: f.JWTAudience, Leeway: f.JWTLeeway, MaxLifetime: f.JWTMaxLifetime}
	if f.JWTPublicKeys != "" {
		keys, err := LoadKeyFiles(splitList(f.JWTPublicKeys)...)
		if err != nil {
			return cfg, err
		}
		cfg.Auth.KeysByID = keys
	}
	if _, err := NewVerifier(cfg.Auth); err != nil {
		return cfg, err // a short secret, say: refused before anything starts
	}
	cfg.AllowedOrigins = splitList(f.AllowedOrigins)
	if f.IdleTimeout <= 0 {
		return cfg, errors.New("idle-timeout must be positive")
	}
	cfg.IdleTimeout = f.IdleTimeout
	cfg.AwayAfter = f.AwayAfter
	set, err := limits.Load(f.Limits, f.LimitsFile)
	if err != nil {
		return cfg, err
	}
	cfg.Limits = set
	cfg.MaxUpgradesPerIP, cfg.MaxConnectionsPerUser, cfg.MaxConnections = f.MaxUpgradesPerIP, f.MaxConnectionsPerUser, f.MaxConnections
	cfg.MaxJoinsPerConnection = f.MaxJoinsPerConnection
	if f.MaxFileBytes < 0 {
		return cfg, errors.New("max-file-bytes must not be negative")
	}
	cfg.MaxFileBytes = f.MaxFileBytes
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
