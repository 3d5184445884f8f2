// Package ids validates the ids of docs/protocol.md and makes new ones.
//
// Every id (org, user, conversation, message, connection) matches Pattern.
// Ids become NATS subject tokens and KV key tokens, so Valid is also the
// injection guard: nothing else may reach a subject.
package ids

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// Pattern is the id pattern of docs/protocol.md, as clients see it in errors.
const Pattern = "^[A-Za-z0-9_-]{1,64}$"

// MaxLen is the longest valid id.
const MaxLen = 64

// Valid reports whether s matches Pattern.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Crockford's base32, as ULIDs use it: sortable as strings.
const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var gen struct {
	sync.Mutex
	lastMs uint64
	hi     uint16 // the top 16 of the 80 random bits
	lo     uint64 // the lower 64
}

// New returns a ULID: 26 characters, the first 10 the time in milliseconds,
// increasing within one process even inside one millisecond.
func New() string {
	ms := uint64(time.Now().UnixMilli())
	gen.Lock()
	if ms <= gen.lastMs {
		ms = gen.lastMs
		gen.lo++
		if gen.lo == 0 {
			gen.hi++
		}
	} else {
		var b [10]byte
		_, _ = rand.Read(b[:])
		gen.lastMs = ms
		gen.hi = binary.BigEndian.Uint16(b[:2])
		gen.lo = binary.BigEndian.Uint64(b[2:])
	}
	hi, lo := gen.hi, gen.lo
	gen.Unlock()

	var out [26]byte
	// 48 bits of time: 10 characters (the first holds 3 bits).
	for i := 9; i >= 0; i-- {
		out[i] = alphabet[ms&31]
		ms >>= 5
	}
	// 80 random bits: 16 characters, from the lowest.
	for i := 25; i >= 10; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | uint64(hi&31)<<59
		hi >>= 5
	}
	return string(out[:])
}
