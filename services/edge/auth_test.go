package edge

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testSecret is the HS256 secret of every test edge: long enough
// (MinSecretBytes) to be accepted.
var testSecret = []byte("edge-test-secret-0123456789abcdef")

// testKeys are the keys of one test run, generated fresh.
type testKeys struct {
	secret     []byte
	rsa, rsa2  *rsa.PrivateKey
	ec         *ecdsa.PrivateKey
	ec384      *ecdsa.PrivateKey
	ed, ed2    ed25519.PrivateKey
	rsaPubPEM  []byte // PKIX PEM of rsa's public key
	rsaPKCS1   []byte // PKCS#1 PEM of rsa's public key
	ecPubPEM   []byte
	edPubPEM   []byte
	rsaCertPEM []byte // a self-signed certificate of rsa2's public key
}

func newTestKeys(t *testing.T) *testKeys {
	t.Helper()
	k := &testKeys{secret: testSecret}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.ed2, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	k.rsaPubPEM = pkixPEM(t, &k.rsa.PublicKey)
	k.rsaPKCS1 = pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	k.ecPubPEM = pkixPEM(t, &k.ec.PublicKey)
	k.edPubPEM = pkixPEM(t, k.ed.Public())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.rsa2.PublicKey, k.rsa2)
	if err != nil {
		t.Fatal(err)
	}
	k.rsaCertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return k
}

func pkixPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// claimsOf are valid claims for alice of acme, expiring in an hour.
func claimsOf(mod func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": "alice", "org": "acme", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if mod != nil {
		mod(c)
	}
	return c
}

func signWith(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	return signKid(t, m, key, nil, c)
}

// signKid signs c with a kid header (none when kid is nil).
func signKid(t *testing.T, m jwt.SigningMethod, key any, kid any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != nil {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// unsignedToken builds an alg "none" token by hand: no library would.
func unsignedToken(t *testing.T, header string, c jwt.MapClaims) string {
	t.Helper()
	body, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(body) + "."
}

func mustVerifier(t *testing.T, cfg AuthConfig) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func TestVerifier(t *testing.T) {
	k := newTestKeys(t)
	all := AuthConfig{Secret: k.secret, PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey, &k.ec.PublicKey, k.ed.Public()}}
	hsOnly := AuthConfig{Secret: k.secret}
	rsaOnly := AuthConfig{PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}}
	hsAndRSA := AuthConfig{Secret: k.secret, PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}}
	withIssAud := AuthConfig{Secret: k.secret, Issuer: "https://id.example.com", Audience: "switchboard"}
	byID := AuthConfig{KeysByID: map[string][]crypto.PublicKey{"k1": {&k.rsa.PublicKey}, "k2": {&k.rsa2.PublicKey}, "e1": {&k.ec.PublicKey}}}
	maxHour := AuthConfig{Secret: k.secret, MaxLifetime: time.Hour}
	rs := func(key *rsa.PrivateKey, kid any) string {
		return signKid(t, jwt.SigningMethodRS256, key, kid, claimsOf(nil))
	}
	hs := func(mod func(jwt.MapClaims)) string {
		return signWith(t, jwt.SigningMethodHS256, k.secret, claimsOf(mod))
	}
	set := func(name string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[name] = v } }
	del := func(name string) func(jwt.MapClaims) { return func(c jwt.MapClaims) { delete(c, name) } }
	now := time.Now()

	cases := []struct {
		name  string
		cfg   AuthConfig
		token string
		ok    bool
	}{
		{"HS256 ok", hsOnly, hs(nil), true},
		{"HS256 ok with every key configured", all, hs(nil), true},
		{"RS256 ok", all, signWith(t, jwt.SigningMethodRS256, k.rsa, claimsOf(nil)), true},
		{"RS256 ok with only the RSA key", rsaOnly, signWith(t, jwt.SigningMethodRS256, k.rsa, claimsOf(nil)), true},
		{"ES256 ok", all, signWith(t, jwt.SigningMethodES256, k.ec, claimsOf(nil)), true},
		{"EdDSA ok", all, signWith(t, jwt.SigningMethodEdDSA, k.ed, claimsOf(nil)), true},
		{"RS256 ok with the second of two RSA keys", AuthConfig{PublicKeys: []crypto.PublicKey{&k.rsa2.PublicKey, &k.rsa.PublicKey}}, signWith(t, jwt.SigningMethodRS256, k.rsa, claimsOf(nil)), true},
		{"nbf and iat in the past ok", hsOnly, hs(func(c jwt.MapClaims) {
			c["nbf"] = now.Add(-time.Minute).Unix()
			c["iat"] = now.Add(-time.Minute).Unix()
		}), true},
		{"ids of 64 characters ok", hsOnly, hs(func(c jwt.MapClaims) { c["sub"] = strings.Repeat("u", 64); c["org"] = "A-z_09" }), true},

		{"expired", all, hs(set("exp", now.Add(-time.Second).Unix())), false},
		{"expired RS256", all, signWith(t, jwt.SigningMethodRS256, k.rsa, claimsOf(set("exp", now.Add(-time.Minute).Unix()))), false},
		{"nbf in the future", all, hs(set("nbf", now.Add(time.Minute).Unix())), false},
		{"iat in the future", all, hs(set("iat", now.Add(time.Minute).Unix())), false},
		{"wrong HS256 secret", all, signWith(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef"), claimsOf(nil)), false},
		{"RS256 by another key", all, signWith(t, jwt.SigningMethodRS256, k.rsa2, claimsOf(nil)), false},
		{"ES256 by another key", all, signWith(t, jwt.SigningMethodES256, otherP256(t), claimsOf(nil)), false},
		{"EdDSA by another key", all, signWith(t, jwt.SigningMethodEdDSA, k.ed2, claimsOf(nil)), false},
		{"payload changed after signing", all, tamper(t, hs(nil), set("sub", "mallory")), false},
		{"signature cut off", all, strings.TrimRightFunc(hs(nil), func(r rune) bool { return r != '.' }), false},
		{"alg none", all, unsignedToken(t, `{"alg":"none","typ":"JWT"}`, claimsOf(nil)), false},
		{"alg None", all, unsignedToken(t, `{"alg":"None","typ":"JWT"}`, claimsOf(nil)), false},
		{"alg none with a signature", all, unsignedToken(t, `{"alg":"none","typ":"JWT"}`, claimsOf(nil)) + "c2ln", false},
		{"HS512 with the right secret (algorithm not configured)", all, signWith(t, jwt.SigningMethodHS512, k.secret, claimsOf(nil)), false},
		{"RS512 with the right key (algorithm not configured)", all, signWith(t, jwt.SigningMethodRS512, k.rsa, claimsOf(nil)), false},
		{"PS256 with the right key (algorithm not configured)", all, signWith(t, jwt.SigningMethodPS256, k.rsa, claimsOf(nil)), false},
		{"RS256 when only HS256 is configured", hsOnly, signWith(t, jwt.SigningMethodRS256, k.rsa, claimsOf(nil)), false},
		{"HS256 when only RS256 is configured", rsaOnly, hs(nil), false},
		{"HS/RS confusion: RSA key only, HS256 signed with its PEM", rsaOnly, signWith(t, jwt.SigningMethodHS256, k.rsaPubPEM, claimsOf(nil)), false},
		{"HS/RS confusion: RSA key only, HS256 signed with its PKCS#1 PEM", rsaOnly, signWith(t, jwt.SigningMethodHS256, k.rsaPKCS1, claimsOf(nil)), false},
		{"HS/RS confusion: secret and RSA key, HS256 signed with the PEM", hsAndRSA, signWith(t, jwt.SigningMethodHS256, k.rsaPubPEM, claimsOf(nil)), false},
		{"HS/RS confusion: secret and RSA key, HS256 signed with the DER", hsAndRSA, signWith(t, jwt.SigningMethodHS256, x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey), claimsOf(nil)), false},
		{"missing sub", all, hs(del("sub")), false},
		{"empty sub", all, hs(set("sub", "")), false},
		{"missing org", all, hs(del("org")), false},
		{"empty org", all, hs(set("org", "")), false},
		{"org not a string", all, hs(set("org", 42)), false},
		{"sub a.b", all, hs(set("sub", "a.b")), false},
		{"sub a*", all, hs(set("sub", "a*")), false},
		{"sub a>", all, hs(set("sub", "a>")), false},
		{"sub with a space", all, hs(set("sub", "a b")), false},
		{"sub of 65 characters", all, hs(set("sub", strings.Repeat("u", 65))), false},
		{"org a.b", all, hs(set("org", "a.b")), false},
		{"org a*", all, hs(set("org", "a*")), false},
		{"org of 65 characters", all, hs(set("org", strings.Repeat("o", 65))), false},
		{"missing exp", all, hs(del("exp")), false},
		{"exp not a number", all, hs(set("exp", "tomorrow")), false},
		{"not a JWT", all, "not-a-token", false},
		{"empty", all, "", false},
		{"three empty parts", all, "..", false},

		{"right iss and aud", withIssAud, hs(func(c jwt.MapClaims) { c["iss"] = "https://id.example.com"; c["aud"] = "switchboard" }), true},
		{"right aud in a list", withIssAud, hs(func(c jwt.MapClaims) {
			c["iss"] = "https://id.example.com"
			c["aud"] = []string{"other", "switchboard"}
		}), true},
		{"wrong iss", withIssAud, hs(func(c jwt.MapClaims) { c["iss"] = "https://evil.example.com"; c["aud"] = "switchboard" }), false},
		{"missing iss", withIssAud, hs(func(c jwt.MapClaims) { c["aud"] = "switchboard" }), false},
		{"wrong aud", withIssAud, hs(func(c jwt.MapClaims) { c["iss"] = "https://id.example.com"; c["aud"] = "other" }), false},
		{"missing aud", withIssAud, hs(func(c jwt.MapClaims) { c["iss"] = "https://id.example.com" }), false},
		{"iss and aud ignored when not configured", hsOnly, hs(func(c jwt.MapClaims) { c["iss"] = "anyone"; c["aud"] = "anything" }), true},

		{"kid selects its key", byID, rs(k.rsa, "k1"), true},
		{"kid selects the second RSA key", byID, rs(k.rsa2, "k2"), true},
		{"kid of ES256 key", byID, signKid(t, jwt.SigningMethodES256, k.ec, "e1", claimsOf(nil)), true},
		{"no kid: every key of the algorithm is tried", byID, rs(k.rsa2, nil), true},
		{"kid of another key of the algorithm", byID, rs(k.rsa, "k2"), false},
		{"unknown kid", byID, rs(k.rsa, "k9"), false},
		{"empty kid", byID, rs(k.rsa, ""), false},
		{"kid not a string", byID, rs(k.rsa, 1), false},
		{"kid of a key of another algorithm", byID, rs(k.rsa, "e1"), false},
		{"kid with only keys without kid", rsaOnly, rs(k.rsa, "k1"), false},
		{"HS256 with a kid: checked against the secret", hsOnly, signKid(t, jwt.SigningMethodHS256, k.secret, "anything", claimsOf(nil)), true},

		{"lifetime of exactly the maximum", maxHour, hs(nil), true},
		{"lifetime over the maximum", maxHour, hs(set("iat", now.Add(-time.Minute).Unix())), false},
		{"lifetime under the maximum", maxHour, hs(func(c jwt.MapClaims) {
			c["iat"] = now.Add(-30 * time.Second).Unix()
			c["exp"] = now.Add(59*time.Minute + 20*time.Second).Unix()
		}), true},
		{"no iat with a maximum lifetime", maxHour, hs(del("iat")), false},
		{"no iat without a maximum lifetime", hsOnly, hs(del("iat")), true},
		{"long lifetime without a maximum", hsOnly, hs(set("iat", now.Add(-30*24*time.Hour).Unix())), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := mustVerifier(t, tc.cfg)
			id, err := v.Verify(tc.token)
			if !tc.ok {
				if err == nil {
					t.Fatalf("accepted: %+v", id)
				}
				if id != (Identity{}) {
					t.Fatalf("refused with %v but returned an identity %+v", err, id)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			wantUser, wantOrg := "alice", "acme"
			if strings.HasPrefix(tc.name, "ids of 64") {
				wantUser, wantOrg = strings.Repeat("u", 64), "A-z_09"
			}
			if id.User != wantUser || id.Org != wantOrg {
				t.Fatalf("identity %+v, want user %s org %s", id, wantUser, wantOrg)
			}
			if d := time.Until(id.Expires); d < 59*time.Minute || d > time.Hour+time.Second {
				t.Fatalf("Expires %v is not the token's exp (in an hour)", id.Expires)
			}
		})
	}
}

// otherP256 is a P-256 key that is not the configured one.
func otherP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return other
}

// tamper replaces a token's payload, keeping header and signature.
func tamper(t *testing.T, token string, mod func(jwt.MapClaims)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	body, err := json.Marshal(claimsOf(mod))
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(body)
	return strings.Join(parts, ".")
}

func TestVerifierLeeway(t *testing.T) {
	v := mustVerifier(t, AuthConfig{Secret: testSecret, Leeway: time.Minute})
	tok := signWith(t, jwt.SigningMethodHS256, testSecret, claimsOf(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-30 * time.Second).Unix() }))
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("a token expired 30s ago refused with a 1m leeway: %v", err)
	}
	tok = signWith(t, jwt.SigningMethodHS256, testSecret, claimsOf(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }))
	if _, err := v.Verify(tok); err == nil {
		t.Fatal("a token expired 2m ago accepted with a 1m leeway")
	}
}

func TestNewVerifierRefusesBadConfig(t *testing.T) {
	k := newTestKeys(t)
	cases := []struct {
		name string
		cfg  AuthConfig
		is   error
	}{
		{"no key", AuthConfig{}, ErrNoKey},
		{"empty secret and no key", AuthConfig{Secret: []byte{}}, ErrNoKey},
		{"a 1-byte secret", AuthConfig{Secret: []byte("s")}, ErrShortSecret},
		{"a 31-byte secret", AuthConfig{Secret: testSecret[:MinSecretBytes-1]}, ErrShortSecret},
		{"a 31-byte secret with a good public key", AuthConfig{Secret: testSecret[:MinSecretBytes-1], PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}}, ErrShortSecret},
		{"an empty key id", AuthConfig{KeysByID: map[string][]crypto.PublicKey{"": {&k.rsa.PublicKey}}}, nil},
		{"a bad key under a key id", AuthConfig{KeysByID: map[string][]crypto.PublicKey{"k1": {&k.ec384.PublicKey}}}, nil},
		{"ES256 needs P-256", AuthConfig{PublicKeys: []crypto.PublicKey{&k.ec384.PublicKey}}, nil},
		{"a private key is not a public key", AuthConfig{PublicKeys: []crypto.PublicKey{k.rsa}}, nil},
		{"unsupported key type", AuthConfig{PublicKeys: []crypto.PublicKey{"not a key"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(tc.cfg)
			if err == nil {
				t.Fatalf("NewVerifier accepted %+v: %v", tc.cfg, v)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
		})
	}
}

func TestSecretOfMinimumLength(t *testing.T) {
	secret := testSecret[:MinSecretBytes]
	v := mustVerifier(t, AuthConfig{Secret: secret})
	if _, err := v.Verify(signWith(t, jwt.SigningMethodHS256, secret, claimsOf(nil))); err != nil {
		t.Fatalf("a token of a %d-byte secret refused: %v", len(secret), err)
	}
}

func TestLoadPublicKeys(t *testing.T) {
	k := newTestKeys(t)
	dir := t.TempDir()
	write := func(name string, parts ...[]byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		var all []byte
		for _, b := range parts {
			all = append(all, b...)
		}
		if err := os.WriteFile(p, all, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rsaPKIX := write("rsa.pem", k.rsaPubPEM)
	rsaPKCS1 := write("rsa-pkcs1.pem", k.rsaPKCS1)
	ec := write("ec.pem", k.ecPubPEM)
	ed := write("ed.pem", k.edPubPEM)
	bundle := write("bundle.pem", []byte("# keys of the identity provider\n"), k.ecPubPEM, k.edPubPEM, k.rsaCertPEM)
	cert := write("cert.pem", k.rsaCertPEM)

	okCases := []struct {
		name   string
		paths  []string
		n      int
		signer jwt.SigningMethod
		key    any
	}{
		{"PKIX RSA", []string{rsaPKIX}, 1, jwt.SigningMethodRS256, k.rsa},
		{"PKCS#1 RSA", []string{rsaPKCS1}, 1, jwt.SigningMethodRS256, k.rsa},
		{"PKIX EC P-256", []string{ec}, 1, jwt.SigningMethodES256, k.ec},
		{"PKIX Ed25519", []string{ed}, 1, jwt.SigningMethodEdDSA, k.ed},
		{"certificate", []string{cert}, 1, jwt.SigningMethodRS256, k.rsa2},
		{"several files", []string{rsaPKIX, ec, ed}, 3, jwt.SigningMethodES256, k.ec},
		{"several keys in one file, EdDSA", []string{bundle}, 3, jwt.SigningMethodEdDSA, k.ed},
		{"several keys in one file, RS256 from the certificate", []string{bundle}, 3, jwt.SigningMethodRS256, k.rsa2},
	}
	for _, tc := range okCases {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := LoadPublicKeys(tc.paths...)
			if err != nil {
				t.Fatalf("LoadPublicKeys: %v", err)
			}
			if len(keys) != tc.n {
				t.Fatalf("got %d keys, want %d", len(keys), tc.n)
			}
			v := mustVerifier(t, AuthConfig{PublicKeys: keys})
			if _, err := v.Verify(signWith(t, tc.signer, tc.key, claimsOf(nil))); err != nil {
				t.Fatalf("a %s token of the loaded key refused: %v", tc.signer.Alg(), err)
			}
			// A loaded public key never becomes an HMAC secret.
			for _, p := range tc.paths {
				pemBytes, _ := os.ReadFile(p)
				if _, err := v.Verify(signWith(t, jwt.SigningMethodHS256, pemBytes, claimsOf(nil))); err == nil {
					t.Fatalf("an HS256 token signed with the bytes of %s accepted", filepath.Base(p))
				}
			}
		})
	}

	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	badCases := []struct {
		name  string
		paths []string
	}{
		{"missing file", []string{filepath.Join(dir, "nope.pem")}},
		{"no PEM in the file", []string{write("empty.pem", []byte("not a key\n"))}},
		{"a private key", []string{write("priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}},
		{"a corrupt key", []string{write("corrupt.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("garbage")}))}},
		{"a good file then a bad one", []string{rsaPKIX, filepath.Join(dir, "empty.pem")}},
	}
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			if keys, err := LoadPublicKeys(tc.paths...); err == nil {
				t.Fatalf("LoadPublicKeys accepted it: %d keys", len(keys))
			}
		})
	}
}
