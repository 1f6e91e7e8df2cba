// Package jsonscan reads JSON as the PBX writes it, in one pass and
// without copies: the members of an object, the elements of an array, a
// value's end, a value as text, and numbers as PHP prints them (exponent
// form, "42.0"). It checks what it walks over (valid JSON, bounded
// nesting) and says where it stopped. pbx reads answers with it, record
// reads records. Rewrite copies a JSON text with member names and values
// replaced as a policy says: privacy pseudonymises with it, and sinks'
// forget erases.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unsafe"
)

// Object walks the members of the JSON object b in one pass, calling fn
// with each member's name (unquoted) and raw value. It is the converter's
// fast path: no map, no reflection, no copy of the values. It rejects what
// is not valid JSON or not an object, and stops at the first malformed byte
// with an error that says where.
func Object(b []byte, fn func(name, value []byte) error) error {
	i := SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errors.New("not a JSON object")
	}
	end, err := WalkMembers(b, i, 0, func(_, name []byte, start int) (int, error) {
		end, err := ValueEnd(b, start, 1)
		if err != nil {
			return 0, err
		}
		return end, fn(name, b[start:end])
	})
	if err != nil {
		return err
	}
	return Trailing(b, end)
}

// WalkObject walks the object at b[i] == '{', calling member with each
// member's name and the index where its value starts; member returns the
// index just past the value, so it may parse the value itself. It returns
// the index just past the object.
func WalkObject(b []byte, i, depth int, member func(name []byte, start int) (int, error)) (int, error) {
	return WalkMembers(b, i, depth, func(_, name []byte, start int) (int, error) { return member(name, start) })
}

// WalkMembers is WalkObject passing each member's name also as it was
// written (quoted, escapes and all), for what must tell them apart.
func WalkMembers(b []byte, i, depth int, member func(written, name []byte, start int) (int, error)) (int, error) {
	if depth >= MaxDepth {
		return 0, fmt.Errorf("nested deeper than %d levels at byte %d", MaxDepth, i)
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, fmt.Errorf("expected a member name at byte %d", i)
		}
		start := i
		end, err := StringEnd(b, i)
		if err != nil {
			return 0, err
		}
		name := b[i+1 : end-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			var s string
			if err := json.Unmarshal(b[i:end], &s); err != nil {
				return 0, fmt.Errorf("member name at byte %d: %w", i, err)
			}
			name = []byte(s)
		}
		i = SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return 0, fmt.Errorf("expected ':' at byte %d", i)
		}
		i = SkipSpace(b, i+1)
		if i >= len(b) {
			return 0, errors.New("value missing")
		}
		if i, err = member(b[start:end], name, i); err != nil {
			return 0, err
		}
		var closed bool
		if i, closed, err = separator(b, i, '}', "object"); closed || err != nil {
			return i, err
		}
	}
}

// WalkArray walks the array at b[i] == '[', calling elem with the index
// where each element starts; elem returns the index just past it.
func WalkArray(b []byte, i, depth int, elem func(start int) (int, error)) (int, error) {
	if depth >= MaxDepth {
		return 0, fmt.Errorf("nested deeper than %d levels at byte %d", MaxDepth, i)
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		if i >= len(b) {
			return 0, errors.New("array not closed")
		}
		end, err := elem(i)
		if err != nil {
			return 0, err
		}
		var closed bool
		if i, closed, err = separator(b, end, ']', "array"); closed || err != nil {
			return i, err
		}
	}
}

// separator reads what follows a member or an element at b[i]: a ',' (it
// returns where the next one starts) or closer (closed, and the index
// just past it). what names the container in errors.
func separator(b []byte, i int, closer byte, what string) (int, bool, error) {
	i = SkipSpace(b, i)
	if i >= len(b) {
		return 0, false, errors.New(what + " not closed")
	}
	switch b[i] {
	case ',':
		return SkipSpace(b, i+1), false, nil
	case closer:
		return i + 1, true, nil
	default:
		return 0, false, fmt.Errorf("expected ',' or '%c' at byte %d", closer, i)
	}
}

func Trailing(b []byte, i int) error {
	if i = SkipSpace(b, i); i != len(b) {
		return fmt.Errorf("unexpected data after the object at byte %d", i)
	}
	return nil
}

func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// StringEnd returns the index just past the string starting at b[i] == '"',
// checking its escapes and that it holds no control characters.
func StringEnd(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c < 0x20:
			return 0, fmt.Errorf("control character in the string at byte %d", j)
		case c == '\\':
			if j+1 >= len(b) {
				return 0, fmt.Errorf("string at byte %d not closed", i)
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if j+5 >= len(b) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) || !isHex(b[j+5]) {
					return 0, fmt.Errorf("invalid \\u escape at byte %d", j)
				}
				j += 5
			default:
				return 0, fmt.Errorf("invalid escape at byte %d", j)
			}
		}
	}
	return 0, fmt.Errorf("string at byte %d not closed", i)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// MaxDepth bounds nesting, as deeply nested JSON is an attack, not data.
const MaxDepth = 64

// ValueEnd returns the index just past the JSON value starting at b[i].
func ValueEnd(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("value missing")
	}
	switch b[i] {
	case '"':
		return StringEnd(b, i)
	case '{':
		return WalkObject(b, i, depth, func(_ []byte, start int) (int, error) { return ValueEnd(b, start, depth+1) })
	case '[':
		return WalkArray(b, i, depth, func(start int) (int, error) { return ValueEnd(b, start, depth+1) })
	default:
		j := i
		for j < len(b) && !bytes.ContainsRune([]byte(",}] \t\r\n"), rune(b[j])) {
			j++
		}
		if j == i {
			return 0, fmt.Errorf("value missing at byte %d", i)
		}
		lit := b[i:j]
		if !bytes.Equal(lit, []byte("null")) && !bytes.Equal(lit, []byte("true")) && !bytes.Equal(lit, []byte("false")) && !isNumber(lit) {
			return 0, fmt.Errorf("invalid value %q at byte %d", Excerpt(lit), i)
		}
		return j, nil
	}
}

// view is b as a string, sharing b's bytes, which must never change
// afterwards (Text says why they do not).
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func isNumber(b []byte) bool {
	return json.Valid(b) && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9'))
}

// Text returns a raw JSON value as text: strings unquoted (fast when they
// hold no escapes), numbers and booleans as written; ok is false for null.
//
// Without escapes, the text is raw's own bytes, not a copy (view): three
// quarters of a record's conversion was copying its values into strings.
// raw is always a slice of a PBX answer's body, which nothing writes to
// once it is read, and which each row keeps (Row.Raw) as long as its
// values.
func Text(raw []byte) (s string, ok bool, err error) {
	if len(raw) == 0 || (raw[0] == 'n' && bytes.Equal(raw, []byte("null"))) {
		return "", false, nil
	}
	if raw[0] != '"' {
		return view(raw), true, nil
	}
	inner := raw[1 : len(raw)-1]
	plain := true
	for _, c := range inner {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
	}
	if plain {
		return view(inner), true, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, err
	}
	return s, true, nil
}

func Excerpt(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}
