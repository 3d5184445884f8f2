// Package jsonscan checks JSON text as json.Valid does and, in the same
// pass, hands over the members of a top-level object, for the read paths
// that see one small object per message (a client's command at the edge,
// a stream's ack to a publish) and want its few keys without the maps,
// copies and reflection of encoding/json. Every loop is bounded by the
// text's length; nesting is followed with a stack of one byte a level, at
// most MaxDepth.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// MaxDepth is encoding/json's nesting limit (its scanner's
// maxNestingDepth): text nested deeper is not JSON to it, nor to us.
const MaxDepth = 10000

// Kind is what a JSON text's top-level value is, as far as its readers
// care.
type Kind uint8

const (
	Invalid Kind = iota // not JSON text
	Object
	Null
	Other // an array, string, number or boolean
)

// Member is one member of a scanned object: Key is the key as written,
// quotes included, and Val the value's text, without surrounding space.
type Member struct {
	Key, Val []byte
	Form     KeyForm
}

// KeyForm says how a key is written.
type KeyForm uint8

const (
	KeyASCII   KeyForm = iota // ASCII, no escape: its text is its name
	KeyUTF8                   // valid UTF-8, not all ASCII, no escape: its text is its name
	KeyEscaped                // an escape or invalid UTF-8: its name must be decoded
)

// Plain says the key's text between its quotes is its name.
func (m Member) Plain() bool { return m.Form != KeyEscaped }

// Text is the key's text between its quotes.
func (m Member) Text() []byte { return m.Key[1 : len(m.Key)-1] }

// Name is the member's key as a string, unescaped as encoding/json does
// (invalid UTF-8 and lone surrogates become U+FFFD).
func (m Member) Name() string {
	if m.Plain() {
		return string(m.Text())
	}
	var s string
	_ = json.Unmarshal(m.Key, &s) // the key was scanned: it is a JSON string
	return s
}

// Is says whether the member's key is name (which is plain ASCII), without
// allocating when the key is plain.
func (m Member) Is(name string) bool {
	if m.Plain() {
		return string(m.Text()) == name
	}
	return m.Name() == name
}

// Scan checks that b is JSON text and says what its top-level value is;
// for an object it calls each with the object's members, in order and
// duplicates included, as it scans them: what each is given counts only
// once Scan said Object, the rest of the text may still be invalid. each
// must not keep the member's slices past the text's life.
func Scan(b []byte, each func(Member)) Kind {
	i := skipSpace(b, 0)
	if i == len(b) {
		return Invalid
	}
	if b[i] != '{' {
		end := skipValue(b, i, 0)
		if end < 0 || skipSpace(b, end) != len(b) {
			return Invalid
		}
		if string(b[i:end]) == "null" {
			return Null
		}
		return Other
	}
	end := scanMembers(b, i, each)
	if end < 0 || skipSpace(b, end) != len(b) {
		return Invalid
	}
	return Object
}

// scanMembers scans the object at b[i] ('{'), calling each with its
// members, and returns the index after it, or -1 when it is not valid.
func scanMembers(b []byte, i int, each func(Member)) int {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		keyEnd, next, form := keyThenColon(b, i)
		if next < 0 {
			return -1
		}
		m := Member{Key: b[i:keyEnd], Form: form}
		i = skipSpace(b, next)
		end := skipValue(b, i, 1)
		if end < 0 {
			return -1
		}
		m.Val = b[i:end:end]
		each(m)
		i = skipSpace(b, end)
		if i == len(b) {
			return -1
		}
		switch b[i] {
		case '}':
			return i + 1
		case ',':
			i = skipSpace(b, i+1)
		default:
			return -1
		}
	}
}

// keyThenColon scans a key at b[i] and the colon after it: it returns
// the index after the key, the index after the colon (-1 when either is
// not there) and how the key is written.
func keyThenColon(b []byte, i int) (keyEnd, next int, form KeyForm) {
	if i >= len(b) || b[i] != '"' {
		return -1, -1, KeyEscaped
	}
	end, esc, high := scanString(b, i)
	if end < 0 {
		return -1, -1, KeyEscaped
	}
	j := skipSpace(b, end)
	if j == len(b) || b[j] != ':' {
		return -1, -1, KeyEscaped
	}
	switch {
	case esc || high && !utf8.Valid(b[i+1:end-1]):
		form = KeyEscaped
	case high:
		form = KeyUTF8
	}
	return end, j + 1, form
}

// afterKey returns where the value after the key at b[i] starts, or -1
// when there is no key and colon.
func afterKey(b []byte, i int) int {
	if _, next, _ := keyThenColon(b, i); next >= 0 {
		return skipSpace(b, next)
	}
	return -1
}

// PlainString is the text between the quotes of val, a scanned JSON value,
// when it is a string without escapes and of valid UTF-8, which is then
// the string itself.
func PlainString(val []byte) ([]byte, bool) {
	if len(val) < 2 || val[0] != '"' || bytes.IndexByte(val, '\\') >= 0 || !utf8.Valid(val) {
		return nil, false
	}
	return val[1 : len(val)-1], true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString scans the string at b[i] ('"') and returns the index after
// its closing quote (-1 when it is not a valid JSON string), whether it
// has an escape, and whether it has a byte of 0x80 or more.
func scanString(b []byte, i int) (end int, esc, high bool) {
	for i++; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			return i + 1, esc, high
		case c == '\\':
			esc = true
			n := escapeLen(b, i)
			if n == 0 {
				return -1, esc, high
			}
			i += n
		case c < 0x20:
			return -1, esc, high
		default:
			high = high || c >= utf8.RuneSelf
			i++
		}
	}
	return -1, esc, high
}

// escapeLen is the length of the escape at b[i] ('\\'), 0 when it is not
// a valid one.
func escapeLen(b []byte, i int) int {
	if i+1 >= len(b) {
		return 0
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if i+6 > len(b) {
			return 0
		}
		for _, c := range b[i+2 : i+6] {
			if !isHex(c) {
				return 0
			}
		}
		return 6
	}
	return 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skipValue returns the index after the JSON value at b[i] (no space
// before it), or -1 when there is none; depth is the number of containers
// the value is in. Nested values are followed with a stack, not
// recursion.
func skipValue(b []byte, i, depth int) int {
	var buf [32]byte
	open := buf[:0] // the containers open in this value: '{' or '['
	for {
		// A value starts at i.
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; c {
		case '{', '[':
			if depth+len(open)+1 > MaxDepth {
				return -1
			}
			open = append(open, c)
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				open = open[:len(open)-1]
				i++
				break
			}
			if c == '{' {
				if i = afterKey(b, i); i < 0 {
					return -1
				}
			}
			continue
		case '"':
			if i, _, _ = scanString(b, i); i < 0 {
				return -1
			}
		case 't':
			i = literal(b, i, "true")
		case 'f':
			i = literal(b, i, "false")
		case 'n':
			i = literal(b, i, "null")
		default:
			i = number(b, i)
		}
		// A value ended at i (-1: it was not valid): close what it closes,
		// and find where the next one starts.
		for {
			if i < 0 {
				return -1
			}
			if len(open) == 0 {
				return i
			}
			i = skipSpace(b, i)
			if i == len(b) {
				return -1
			}
			top := open[len(open)-1]
			if b[i] == top+2 {
				open = open[:len(open)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return -1
			}
			i = skipSpace(b, i+1)
			if top == '{' {
				if i = afterKey(b, i); i < 0 {
					return -1
				}
			}
			break
		}
	}
}

// literal returns the index after lit at b[i], or -1 when it is not there.
func literal(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// number returns the index after the JSON number at b[i], or -1 when there
// is none: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func number(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digitsFrom(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if j := digitsFrom(b, i+1); j > i+1 {
			i = j
		} else {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digitsFrom(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// digitsFrom returns the index of the first byte at or after i that is not
// a decimal digit.
func digitsFrom(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}
