package edge

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/kit/ids"
)

// AuthConfig says which tokens the edge accepts. At least one key is
// required; the accepted algorithms are exactly those of the keys given.
type AuthConfig struct {
	// Secret is the HS256 shared secret.
	Secret []byte
	// PublicKeys verify RS256 (*rsa.PublicKey), ES256 (*ecdsa.PublicKey on
	// P-256) and EdDSA (ed25519.PublicKey) tokens.
	PublicKeys []crypto.PublicKey
	// Issuer and Audience are checked when set.
	Issuer, Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 0.
	Leeway time.Duration
}

// Identity is what a verified token says.
type Identity struct {
	Org, User string
	Expires   time.Time
}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	parser *jwt.Parser
	keys   map[string]any // alg -> key or jwt.VerificationKeySet
}

// ErrNoKey is returned by NewVerifier when no key is configured.
var ErrNoKey = errors.New("no JWT key configured (set SWITCHBOARD_JWT_SECRET or SWITCHBOARD_JWT_PUBLIC_KEYS)")

// NewVerifier builds a Verifier for cfg.
func NewVerifier(cfg AuthConfig) (*Verifier, error) {
	keys := map[string]any{}
	if len(cfg.Secret) > 0 {
		keys["HS256"] = cfg.Secret
	}
	sets := map[string]*jwt.VerificationKeySet{}
	for _, k := range cfg.PublicKeys {
		var alg string
		switch key := k.(type) {
		case *rsa.PublicKey:
			alg = "RS256"
		case *ecdsa.PublicKey:
			if key.Curve.Params().Name != "P-256" {
				return nil, fmt.Errorf("ES256 needs a P-256 key, got %s", key.Curve.Params().Name)
			}
			alg = "ES256"
		case ed25519.PublicKey:
			alg = "EdDSA"
		default:
			return nil, fmt.Errorf("unsupported public key type %T", k)
		}
		if sets[alg] == nil {
			sets[alg] = &jwt.VerificationKeySet{}
		}
		sets[alg].Keys = append(sets[alg].Keys, k)
	}
	for alg, set := range sets {
		keys[alg] = *set
	}
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	methods := make([]string, 0, len(keys))
	for alg := range keys {
		methods = append(methods, alg)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &Verifier{parser: jwt.NewParser(opts...), keys: keys}, nil
}

type claims struct {
	jwt.RegisteredClaims
	Org string `json:"org"`
}

// Verify checks a token and returns who it names. The error says why for
// the log; clients only ever see 401 or unauthenticated.
func (v *Verifier) Verify(token string) (Identity, error) {
	var c claims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refused any other algorithm; the key is
		// the one of the token's algorithm, so an HS256 token is never
		// checked against a public key.
		if k, ok := v.keys[t.Method.Alg()]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("algorithm %s not accepted", t.Method.Alg())
	})
	if err != nil {
		return Identity{}, err
	}
	if !ids.Valid(c.Subject) {
		return Identity{}, errors.New("sub missing or not a valid id")
	}
	if !ids.Valid(c.Org) {
		return Identity{}, errors.New("org missing or not a valid id")
	}
	return Identity{Org: c.Org, User: c.Subject, Expires: c.ExpiresAt.Time}, nil
}

// LoadPublicKeys reads PEM public keys (PKIX "PUBLIC KEY", PKCS#1 "RSA
// PUBLIC KEY" or certificates) from files; each file may hold several.
func LoadPublicKeys(paths ...string) ([]crypto.PublicKey, error) {
	var out []crypto.PublicKey
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		n := len(out)
		for {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				break
			}
			k, err := parsePEMKey(block)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			out = append(out, k)
		}
		if len(out) == n {
			return nil, fmt.Errorf("%s: no PEM public key", p)
		}
	}
	return out, nil
}

func parsePEMKey(b *pem.Block) (crypto.PublicKey, error) {
	switch b.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	}
	return nil, fmt.Errorf("unsupported PEM block %q", b.Type)
}
