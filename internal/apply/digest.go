package apply

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/apirule-operator/apirule-operator/internal/manifest"
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
	return stateDigestOfJSON(raw, false)
}

// StoredStateDigestOfJSON is the StateDigest of a stored object, whose JSON encoding raw is, as
// the API server's JSON decodes into unstructured (k8s.io/apimachinery's JSON: an integer
// without a "." that fits an int64 is an int64, written back exactly), without decoding it:
// the cache's digests of the generated kinds are these. Read the StateDigestOfJSON way, two
// integers beyond a float64's precision could look equal; read this way they never do.
func StoredStateDigestOfJSON(raw []byte) (string, error) {
	return stateDigestOfJSON(raw, true)
}

// canonicalizers keeps the buffers of finished digests for the next: every child's digest is
// computed at every reconcile and every stored one as the cache receives it.
var canonicalizers = sync.Pool{New: func() any { return &canonicalizer{} }}

// maxPooledBuffer is the largest buffer kept for reuse; a larger one (a rare, huge object) is
// left to the collector.
const maxPooledBuffer = 1 << 20

func stateDigestOfJSON(raw []byte, preserveInts bool) (string, error) {
	c := canonicalizers.Get().(*canonicalizer)
	defer func() {
		if cap(c.out) <= maxPooledBuffer && cap(c.scratch) <= maxPooledBuffer {
			// The members' keys point into the input: none is kept.
			clear(c.members[:cap(c.members)])
			*c = canonicalizer{out: c.out[:0], scratch: c.scratch[:0], members: c.members[:0]}
			canonicalizers.Put(c)
		}
	}()
	c.in, c.preserveInts = raw, preserveInts
	c.skipSpace()
	if c.pos >= len(c.in) || c.in[c.pos] != '{' {
		return "", errors.New("the object's JSON is not an object")
	}
	if err := c.object(true); err != nil {
		return "", fmt.Errorf("reading the object's JSON at byte %d: %w", c.pos, err)
	}
	if c.skipSpace(); c.pos != len(c.in) {
		return "", fmt.Errorf("reading the object's JSON: data after it at byte %d", c.pos)
	}
	sum := sha256.Sum256(c.out)
	return hex.EncodeToString(sum[:]), nil
}

// ObjectStateDigest is the StateDigest of a typed object, read from its encoding
// (manifest.Encode) as the applier reads a desired object's.
func ObjectStateDigest(obj manifest.Object) (string, error) {
	raw, err := manifest.Encode(obj)
	if err != nil {
		return "", err
	}
	return StateDigestOfJSON(raw)
}

// canonicalizer re-encodes JSON as encoding/json encodes what json.Unmarshal decodes of it
// into an any. It appends to one output buffer: an object's members are written as they come
// and, unless they came in order, put in order through a scratch buffer, so re-encoding
// allocates little beyond the two buffers.
type canonicalizer struct {
	in      []byte
	pos     int
	out     []byte
	scratch []byte
	// members holds the members of the objects being read, innermost last.
	members []member
	depth   int
	// preserveInts writes an integer as the int64 the API server's JSON decodes it into.
	preserveInts bool
}

// maxDepth is the nesting encoding/json refuses beyond.
const maxDepth = 10000

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

// value appends the canonical encoding of the value at pos.
func (c *canonicalizer) value() error {
	c.skipSpace()
	if c.pos >= len(c.in) {
		return errSyntax
	}
	switch c.in[c.pos] {
	case '{':
		return c.object(false)
	case '[':
		return c.array()
	case '"':
		_, err := c.string()
		return err
	case 't':
		return c.literal("true")
	case 'f':
		return c.literal("false")
	case 'n':
		return c.literal("null")
	default:
		return c.number()
	}
}

func (c *canonicalizer) literal(word string) error {
	if !bytes.HasPrefix(c.in[c.pos:], []byte(word)) {
		return errSyntax
	}
	c.pos += len(word)
	c.out = append(c.out, word...)
	return nil
}

// member is one member of an object: its key, and where its encoding ("key":value) is in the
// output.
type member struct {
	key        []byte
	start, end int
}

func (c *canonicalizer) enter() error {
	if c.depth++; c.depth > maxDepth {
		return errors.New("nested too deeply")
	}
	return nil
}

// object reads the object at pos; onlyState keeps only the fields StateDigest covers (not
// apiVersion, kind, metadata or status).
func (c *canonicalizer) object(onlyState bool) error {
	if err := c.enter(); err != nil {
		return err
	}
	defer func() { c.depth-- }()
	c.pos++ // {
	start := len(c.out)
	c.out = append(c.out, '{')
	base := len(c.members)
	defer func() { c.members = c.members[:base] }()
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		c.out = append(c.out, '}')
		return nil
	}
	inOrder := true // the members so far are kept in strictly increasing key order
	for {
		c.skipSpace()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return errSyntax
		}
		separator := len(c.out)
		if len(c.members) > base {
			c.out = append(c.out, ',')
		}
		memberStart := len(c.out)
		key, err := c.string()
		if err != nil {
			return err
		}
		if c.skipSpace(); c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return errSyntax
		}
		c.pos++
		c.out = append(c.out, ':')
		if err := c.value(); err != nil {
			return err
		}
		if onlyState && !isStateField(key) {
			c.out = c.out[:separator]
		} else {
			if len(c.members) > base && bytes.Compare(c.members[len(c.members)-1].key, key) >= 0 {
				inOrder = false
			}
			c.members = append(c.members, member{key: key, start: memberStart, end: len(c.out)})
		}
		c.skipSpace()
		if c.pos >= len(c.in) {
			return errSyntax
		}
		c.pos++
		if c.in[c.pos-1] == '}' {
			break
		}
		if c.in[c.pos-1] != ',' {
			return errSyntax
		}
	}
	if inOrder {
		// Written as encoding/json would: nothing to reorder or drop.
		c.out = append(c.out, '}')
		return nil
	}
	// Sorted by key; of equal keys the last, as decoding into a map keeps it.
	members := c.members[base:]
	slices.SortStableFunc(members, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	c.scratch = append(c.scratch[:0], c.out[start:]...)
	c.out = append(c.out[:start], '{')
	first := true
	for i, m := range members {
		if i+1 < len(members) && bytes.Equal(members[i+1].key, m.key) {
			continue
		}
		if !first {
			c.out = append(c.out, ',')
		}
		first = false
		c.out = append(c.out, c.scratch[m.start-start:m.end-start]...)
	}
	c.out = append(c.out, '}')
	return nil
}

func isStateField(key []byte) bool {
	switch string(key) {
	case "apiVersion", "kind", "metadata", "status":
		return false
	}
	return true
}

func (c *canonicalizer) array() error {
	if err := c.enter(); err != nil {
		return err
	}
	defer func() { c.depth-- }()
	c.pos++ // [
	c.out = append(c.out, '[')
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		c.out = append(c.out, ']')
		return nil
	}
	for {
		if err := c.value(); err != nil {
			return err
		}
		c.skipSpace()
		if c.pos >= len(c.in) {
			return errSyntax
		}
		c.pos++
		switch c.in[c.pos-1] {
		case ']':
			c.out = append(c.out, ']')
			return nil
		case ',':
			c.out = append(c.out, ',')
		default:
			return errSyntax
		}
	}
}

// string appends the canonical encoding of the string at pos and returns its value. A string
// of printable ASCII that encoding/json does not escape (no quote, backslash, <, > or &) is
// its own encoding; any other is decoded and encoded by encoding/json itself.
func (c *canonicalizer) string() ([]byte, error) {
	start := c.pos
	plain := true
	c.pos++
	for ; c.pos < len(c.in); c.pos++ {
		switch b := c.in[c.pos]; {
		case b == '"':
			c.pos++
			literal := c.in[start:c.pos]
			if plain {
				c.out = append(c.out, literal...)
				return literal[1 : len(literal)-1], nil
			}
			var s string
			if err := json.Unmarshal(literal, &s); err != nil {
				return nil, err
			}
			encoded, err := json.Marshal(s)
			c.out = append(c.out, encoded...)
			return []byte(s), err
		case b == '\\':
			plain = false
			c.pos++ // the escaped byte, which may be a quote
		case b < 0x20 || b >= 0x7f || b == '<' || b == '>' || b == '&':
			plain = false
		}
	}
	return nil, errSyntax
}

// number appends the canonical encoding of the number at pos. An integer of at most 15 digits
// is what a float64 holds exactly and encoding/json writes as it is; any other is decoded and
// encoded by encoding/json. With preserveInts, a number without a "." that parses as an int64
// is written as that int64, as encoding/json writes one.
func (c *canonicalizer) number() error {
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
	integer := len(digits) > 0 && (digits[0] != '0' || len(digits) == 1)
	for _, b := range digits {
		integer = integer && b >= '0' && b <= '9'
	}
	if integer && c.preserveInts {
		if i, err := strconv.ParseInt(string(literal), 10, 64); err == nil {
			c.out = strconv.AppendInt(c.out, i, 10)
			return nil
		}
	}
	if integer && len(digits) <= 15 {
		c.out = append(c.out, literal...)
		return nil
	}
	var f float64
	if err := json.Unmarshal(literal, &f); err != nil {
		return err
	}
	encoded, err := json.Marshal(f)
	c.out = append(c.out, encoded...)
	return err
}
