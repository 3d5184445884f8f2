package edge

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/kit/ids"
)

// fuzzKeys are the keys of one verifier of FuzzVerify.
type fuzzKeys struct {
	secret []byte
	ec     *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
}

func newFuzzKeys(tb testing.TB, secret string) fuzzKeys {
	tb.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return fuzzKeys{secret: []byte(secret), ec: ec, ed: ed}
}

func (k fuzzKeys) verifier(tb testing.TB) *Verifier {
	tb.Helper()
	v, err := NewVerifier(AuthConfig{
		Secret:      k.secret,
		PublicKeys:  []crypto.PublicKey{&k.ec.PublicKey},
		KeysByID:    map[string][]crypto.PublicKey{"ed1": {k.ed.Public()}},
		MaxLifetime: 48 * time.Hour,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// FuzzVerify feeds arbitrary strings to the JWT path of the upgrade and
// auth:refresh. A token it accepts names valid ids, has not expired, and
// is refused by a verifier of other keys: acceptance comes from our keys'
// signature, never from the token's say (alg none, alg confusion, a kid
// pointing elsewhere).
func FuzzVerify(f *testing.F) {
	ours := newFuzzKeys(f, "fuzz-secret-0123456789abcdef0123456789")
	theirs := newFuzzKeys(f, "another-secret-0123456789abcdef01234567")
	v, other := ours.verifier(f), theirs.verifier(f)
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "org": "acme", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(m, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	b64 := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		sign(jwt.SigningMethodHS256, ours.secret, "", claims(nil)),
		sign(jwt.SigningMethodHS256, ours.secret, "any", claims(nil)),
		sign(jwt.SigningMethodES256, ours.ec, "", claims(nil)),
		sign(jwt.SigningMethodEdDSA, ours.ed, "ed1", claims(nil)),
		sign(jwt.SigningMethodEdDSA, ours.ed, "", claims(nil)),
		sign(jwt.SigningMethodHS256, ours.secret, "", claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })),
		sign(jwt.SigningMethodHS256, ours.secret, "", claims(func(c jwt.MapClaims) { delete(c, "iat") })),
		sign(jwt.SigningMethodHS256, ours.secret, "", claims(func(c jwt.MapClaims) { c["org"] = "a.b" })),
		sign(jwt.SigningMethodHS256, ours.secret, "", claims(func(c jwt.MapClaims) { c["sub"] = 7 })),
		sign(jwt.SigningMethodHS256, theirs.secret, "", claims(nil)),
		b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(`{"sub":"alice","org":"acme","exp":9999999999}`)) + ".",
		b64([]byte(`{"alg":"HS256","kid":["ed1"]}`)) + "." + b64([]byte(`{"sub":"alice","org":"acme"}`)) + ".x",
		"eyJ.x.y", "...", "", "a.b", "\xff.\xfe.\xfd",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(token)
		if err != nil {
			return
		}
		if !ids.Valid(id.Org) || !ids.Valid(id.User) {
			t.Fatalf("accepted %q with identity %+v", token, id)
		}
		if !id.Expires.After(time.Now().Add(-time.Second)) {
			t.Fatalf("accepted %q expired at %v", token, id.Expires)
		}
		if _, err := other.Verify(token); err == nil {
			t.Fatalf("%q is accepted by the verifiers of two unrelated key sets", token)
		}
	})
}
