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
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/kit/ids"
)

// AuthConfig says which tokens the edge accepts. At least one key is
// required; the accepted algorithms are exactly those of the keys given.
type AuthConfig struct {
	// Secret is the HS256 shared secret: at least MinSecretBytes. Every
	// HS256 token is checked against it, whatever its kid.
	Secret []byte
	// PublicKeys verify RS256 (*rsa.PublicKey), ES256 (*ecdsa.PublicKey on
	// P-256) and EdDSA (ed25519.PublicKey) tokens. They have no key id: a
	// token with a kid is never checked against them.
	PublicKeys []crypto.PublicKey
	// KeysByID are public keys by key id: a token whose header has a kid
	// is checked against the keys of that kid (and its algorithm) only,
	// and refused when there are none. A token without kid is checked
	// against every public key of its algorithm, these and PublicKeys.
	KeysByID map[string][]crypto.PublicKey
	// Issuer and Audience are checked when set.
	Issuer, Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 0.
	Leeway time.Duration
	// MaxLifetime, when positive, refuses tokens whose exp - iat is
	// longer, and tokens without iat (their lifetime is unknown).
	// Default 0: no bound.
	MaxLifetime time.Duration
}

// MinSecretBytes is the shortest HS256 secret accepted: a shorter one is
// found offline, by brute force, from any token it signed.
const MinSecretBytes = 32

// Identity is what a verified token says.
type Identity struct {
	Org, User string
	Expires   time.Time
}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	parser      *jwt.Parser
	secret      []byte                                       // nil: HS256 not accepted
	byAlg       map[string]jwt.VerificationKeySet            // every public key, by algorithm
	byID        map[string]map[string]jwt.VerificationKeySet // kid -> algorithm -> keys
	maxLifetime time.Duration
}

// ErrNoKey is returned by NewVerifier when no key is configured.
var ErrNoKey = errors.New("no JWT key configured (set SWITCHBOARD_JWT_SECRET or SWITCHBOARD_JWT_PUBLIC_KEYS)")

// ErrShortSecret is returned by NewVerifier for an HS256 secret shorter
// than MinSecretBytes.
var ErrShortSecret = fmt.Errorf("the HS256 secret (SWITCHBOARD_JWT_SECRET) must be at least %d bytes: a shorter one is found offline from any token it signed; make one with `openssl rand -hex 32`", MinSecretBytes)

// NewVerifier builds a Verifier for cfg.
func NewVerifier(cfg AuthConfig) (*Verifier, error) {
	v := &Verifier{byAlg: map[string]jwt.VerificationKeySet{}, byID: map[string]map[string]jwt.VerificationKeySet{}, maxLifetime: cfg.MaxLifetime}
	if n := len(cfg.Secret); n > 0 {
		if n < MinSecretBytes {
			return nil, fmt.Errorf("%w (%d given)", ErrShortSecret, n)
		}
		v.secret = cfg.Secret
	}
	for _, k := range cfg.PublicKeys {
		if err := v.addKey("", k); err != nil {
			return nil, err
		}
	}
	for id, keys := range cfg.KeysByID {
		if id == "" {
			return nil, errors.New("a key id is empty")
		}
		for _, k := range keys {
			if err := v.addKey(id, k); err != nil {
				return nil, fmt.Errorf("key %q: %w", id, err)
			}
		}
	}
	methods := make([]string, 0, len(v.byAlg)+1)
	for alg := range v.byAlg {
		methods = append(methods, alg)
	}
	if v.secret != nil {
		methods = append(methods, "HS256")
	}
	if len(methods) == 0 {
		return nil, ErrNoKey
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
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// addKey files a public key under its algorithm, and under id when set.
func (v *Verifier) addKey(id string, k crypto.PublicKey) error {
	alg, err := keyAlg(k)
	if err != nil {
		return err
	}
	set := v.byAlg[alg]
	set.Keys = append(set.Keys, k)
	v.byAlg[alg] = set
	if id != "" {
		if v.byID[id] == nil {
			v.byID[id] = map[string]jwt.VerificationKeySet{}
		}
		set := v.byID[id][alg]
		set.Keys = append(set.Keys, k)
		v.byID[id][alg] = set
	}
	return nil
}

// keyAlg is the one algorithm a public key verifies.
func keyAlg(k crypto.PublicKey) (string, error) {
	switch key := k.(type) {
	case *rsa.PublicKey:
		return "RS256", nil
	case *ecdsa.PublicKey:
		if key.Curve.Params().Name != "P-256" {
			return "", fmt.Errorf("ES256 needs a P-256 key, got %s", key.Curve.Params().Name)
		}
		return "ES256", nil
	case ed25519.PublicKey:
		return "EdDSA", nil
	}
	return "", fmt.Errorf("unsupported public key type %T", k)
}

type claims struct {
	jwt.RegisteredClaims
	Org string `json:"org"`
}

// Verify checks a token and returns who it names. The error says why for
// the log; clients only ever see 401 or unauthenticated.
func (v *Verifier) Verify(token string) (Identity, error) {
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.key); err != nil {
		return Identity{}, err
	}
	if !ids.Valid(c.Subject) {
		return Identity{}, errors.New("sub missing or not a valid id")
	}
	if !ids.Valid(c.Org) {
		return Identity{}, errors.New("org missing or not a valid id")
	}
	if v.maxLifetime > 0 {
		if c.IssuedAt == nil {
			return Identity{}, errors.New("iat missing: a maximum token lifetime is configured")
		}
		if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life > v.maxLifetime {
			return Identity{}, fmt.Errorf("token lifetime %v is longer than the maximum %v", life, v.maxLifetime)
		}
	}
	return Identity{Org: c.Org, User: c.Subject, Expires: c.ExpiresAt.Time}, nil
}

// key picks the keys to check t against. WithValidMethods already refused
// any algorithm without a key; the keys are those of the token's
// algorithm, so an HS256 token is never checked against a public key's
// bytes, and of its kid when it has one.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == "HS256" {
		return v.secret, nil
	}
	raw, ok := t.Header["kid"]
	if !ok {
		return v.byAlg[alg], nil
	}
	kid, ok := raw.(string)
	if !ok {
		return nil, errors.New("kid is not a string")
	}
	set, ok := v.byID[kid][alg]
	if !ok {
		return nil, fmt.Errorf("no %s key with kid %q", alg, kid)
	}
	return set, nil
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

// LoadKeyFiles reads the public keys of entries, each a PEM file name or
// kid=file: the keys of a file get the kid given, else the file's name
// without its extension (keys/2026-01.pem is kid 2026-01).
func LoadKeyFiles(entries ...string) (map[string][]crypto.PublicKey, error) {
	out := map[string][]crypto.PublicKey{}
	for _, e := range entries {
		kid, path, named := strings.Cut(e, "=")
		if !named {
			path = e
			kid = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		}
		if kid == "" || path == "" {
			return nil, fmt.Errorf("%q: want a PEM file or kid=file", e)
		}
		keys, err := LoadPublicKeys(path)
		if err != nil {
			return nil, err
		}
		out[kid] = append(out[kid], keys...)
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
