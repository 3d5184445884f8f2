package messaging

// A message's id is a ULID (docs/protocol.md) made from its creation time
// and its seq: the time in the 48 time bits, and in the 80 "random" ones a
// 16-bit check of both and the seq. The stored message_new event carries no
// id (decodeEvent fills it in), and the id leads back to the event, which
// holds the sender: a send writes nothing but the stream. Events stored
// before carry a random ULID of their own, and their state in
// chat_messages.

// Crockford's base32, as ULIDs use it.
const ulidAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// messageID is the id of the message created at ms (unix milliseconds)
// with seq.
func messageID(ms int64, seq uint64) string {
	var out [26]byte
	t := uint64(ms)
	for i := 9; i >= 0; i-- {
		out[i] = ulidAlphabet[t&31]
		t >>= 5
	}
	hi, lo := idCheck(uint64(ms), seq), seq
	for i := 25; i >= 10; i-- {
		out[i] = ulidAlphabet[lo&31]
		lo = lo>>5 | uint64(hi&31)<<59
		hi >>= 5
	}
	return string(out[:])
}

// messageSeq is the creation time and seq a messageID holds; ok is false
// for any other id (a random ULID passes the check once in 65,536 times:
// the event it names then does not match).
func messageSeq(id string) (ms int64, seq uint64, ok bool) {
	if len(id) != 26 {
		return 0, 0, false
	}
	var t uint64
	for i := 0; i < 10; i++ {
		v, ok := ulidValue(id[i])
		if !ok {
			return 0, 0, false
		}
		t = t<<5 | v
	}
	var hi uint16
	var lo uint64
	for i := 10; i < 26; i++ {
		v, ok := ulidValue(id[i])
		if !ok {
			return 0, 0, false
		}
		hi = hi<<5 | uint16(lo>>59)
		lo = lo<<5 | v
	}
	if t >= 1<<48 || hi != idCheck(t, lo) {
		return 0, 0, false
	}
	return int64(t), lo, true
}

func ulidValue(c byte) (uint64, bool) {
	for i := 0; i < len(ulidAlphabet); i++ {
		if ulidAlphabet[i] == c {
			return uint64(i), true
		}
	}
	return 0, false
}

// idCheck mixes the time and seq into 16 bits (splitmix64's finalizer).
func idCheck(ms, seq uint64) uint16 {
	z := ms*0x9e3779b97f4a7c15 ^ seq
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return uint16(z ^ z>>31)
}
