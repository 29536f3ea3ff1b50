package apply

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// StateDigestOfJSON is the StateDigest of the object whose JSON encoding raw is, without
// decoding it into a map: the state fields are re-encoded as encoding/json encodes the map
// json.Unmarshal makes of them (members sorted by key, the last of duplicate keys kept,
// numbers as float64, strings escaped as encoding/json escapes them). Verifying a settled
// child this way skipped the decoding that was a fifth of what a restarted operator
// allocated.
//
// A formatting that differed from encoding/json's would only make an equal state look
// changed (one write too many, which the tests that count writes show), never a changed state
// look equal: the encoding keeps every value.
func StateDigestOfJSON(raw []byte) (string, error) {
	c := canonicalizer{in: raw}
	c.skipSpace()
	if c.pos >= len(c.in) || c.in[c.pos] != '{' {
		return "", errors.New("the object's JSON is not an object")
	}
	state, err := c.object(true)
	if err != nil {
		return "", fmt.Errorf("reading the object's JSON at byte %d: %w", c.pos, err)
	}
	if c.skipSpace(); c.pos != len(c.in) {
		return "", fmt.Errorf("reading the object's JSON: data after it at byte %d", c.pos)
	}
	sum := sha256.Sum256(state)
	return hex.EncodeToString(sum[:]), nil
}

// canonicalizer re-encodes JSON as encoding/json encodes what json.Unmarshal decodes of it
// into an any.
type canonicalizer struct {
	in  []byte
	pos int
}

var errSyntax = errors.New("invalid JSON")

func (c *canonicalizer) skipSpace() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// value returns the canonical encoding of the value at pos. A scalar already in canonical
// form is returned as a slice of the input.
func (c *canonicalizer) value() ([]byte, error) {
	c.skipSpace()
	if c.pos >= len(c.in) {
		return nil, errSyntax
	}
	switch b := c.in[c.pos]; {
	case b == '{':
		return c.object(false)
	case b == '[':
		return c.array()
	case b == '"':
		_, encoded, err := c.string()
		return encoded, err
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	default:
		return c.number()
	}
}

func (c *canonicalizer) literal(word string) ([]byte, error) {
	if !bytes.HasPrefix(c.in[c.pos:], []byte(word)) {
		return nil, errSyntax
	}
	c.pos += len(word)
	return c.in[c.pos-len(word) : c.pos], nil
}

type member struct {
	key     string
	encoded []byte // the key's encoding
	value   []byte
}

// object reads the object at pos; onlyState keeps only the fields StateDigest covers (not
// apiVersion, kind, metadata or status).
func (c *canonicalizer) object(onlyState bool) ([]byte, error) {
	c.pos++ // {
	var members []member
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		return []byte("{}"), nil
	}
	for {
		c.skipSpace()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return nil, errSyntax
		}
		key, encodedKey, err := c.string()
		if err != nil {
			return nil, err
		}
		if c.skipSpace(); c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return nil, errSyntax
		}
		c.pos++
		value, err := c.value()
		if err != nil {
			return nil, err
		}
		if !onlyState || isStateField(key) {
			members = append(members, member{key: key, encoded: encodedKey, value: value})
		}
		c.skipSpace()
		if c.pos >= len(c.in) {
			return nil, errSyntax
		}
		c.pos++
		if c.in[c.pos-1] == '}' {
			break
		}
		if c.in[c.pos-1] != ',' {
			return nil, errSyntax
		}
	}
	// Sorted by key; of equal keys the last, as decoding into a map keeps it.
	slices.SortStableFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	size := 2
	for _, m := range members {
		size += len(m.encoded) + len(m.value) + 2
	}
	out := make([]byte, 0, size)
	out = append(out, '{')
	first := true
	for i, m := range members {
		if i+1 < len(members) && members[i+1].key == m.key {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, m.encoded...)
		out = append(out, ':')
		out = append(out, m.value...)
	}
	return append(out, '}'), nil
}

func isStateField(key string) bool {
	switch key {
	case "apiVersion", "kind", "metadata", "status":
		return false
	}
	return true
}

func (c *canonicalizer) array() ([]byte, error) {
	c.pos++ // [
	out := []byte{'['}
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		return append(out, ']'), nil
	}
	for {
		value, err := c.value()
		if err != nil {
			return nil, err
		}
		out = append(out, value...)
		c.skipSpace()
		if c.pos >= len(c.in) {
			return nil, errSyntax
		}
		c.pos++
		switch c.in[c.pos-1] {
		case ']':
			return append(out, ']'), nil
		case ',':
			out = append(out, ',')
		default:
			return nil, errSyntax
		}
	}
}

// string reads the string at pos: its value and its canonical encoding. A string of printable
// ASCII that encoding/json does not escape (no quote, backslash, <, > or &) is its own
// encoding; any other is decoded and encoded by encoding/json itself.
func (c *canonicalizer) string() (string, []byte, error) {
	start := c.pos
	plain := true
	c.pos++
	for ; c.pos < len(c.in); c.pos++ {
		switch b := c.in[c.pos]; {
		case b == '"':
			c.pos++
			literal := c.in[start:c.pos]
			if plain {
				return string(literal[1 : len(literal)-1]), literal, nil
			}
			var s string
			if err := json.Unmarshal(literal, &s); err != nil {
				return "", nil, err
			}
			encoded, err := json.Marshal(s)
			return s, encoded, err
		case b == '\\':
			plain = false
			c.pos++ // the escaped byte, which may be a quote
		case b < 0x20 || b >= 0x7f || b == '<' || b == '>' || b == '&':
			plain = false
		}
	}
	return "", nil, errSyntax
}

// number reads the number at pos. An integer of at most 15 digits is what a float64 holds
// exactly and encoding/json writes as it is; any other is decoded and encoded by encoding/json.
func (c *canonicalizer) number() ([]byte, error) {
	start := c.pos
	for c.pos < len(c.in) {
		b := c.in[c.pos]
		if (b < '0' || b > '9') && b != '-' && b != '+' && b != '.' && b != 'e' && b != 'E' {
			break
		}
		c.pos++
	}
	literal := c.in[start:c.pos]
	digits := bytes.TrimPrefix(literal, []byte("-"))
	integer := len(digits) > 0 && len(digits) <= 15 && (digits[0] != '0' || len(digits) == 1)
	for _, b := range digits {
		integer = integer && b >= '0' && b <= '9'
	}
	if integer {
		return literal, nil
	}
	var f float64
	if err := json.Unmarshal(literal, &f); err != nil {
		return nil, err
	}
	return json.Marshal(f)
}
