// Package devtoken mints HS256 tokens for development starts, tests and
// the load generator. Production tokens come from the application's own
// identity provider.
package devtoken

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Mint returns an HS256 token for user of org that expires after ttl.
func Mint(secret []byte, org, user string, ttl time.Duration) string {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user,
		"org": org,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	})
	s, err := tok.SignedString(secret)
	if err != nil {
		panic(err) // HS256 with a byte key does not fail
	}
	return s
}

// Secret returns a new random secret (64 hex characters).
func Secret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
