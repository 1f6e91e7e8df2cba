package exporter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// scanObject walks the members of the JSON object b in one pass, calling fn
// with each member's name (unquoted) and raw value. It is the converter's
// fast path: no map, no reflection, no copy of the values. It rejects what
// is not an object, and stops at the first malformed byte with an error
// that says where.
func scanObject(b []byte, fn func(name, value []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errors.New("not a JSON object")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return fmt.Errorf("expected a member name at byte %d", i)
		}
		end, err := stringEnd(b, i)
		if err != nil {
			return err
		}
		name := b[i+1 : end-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			var s string
			if err := json.Unmarshal(b[i:end], &s); err != nil {
				return fmt.Errorf("member name at byte %d: %w", i, err)
			}
			name = []byte(s)
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return fmt.Errorf("expected ':' at byte %d", i)
		}
		i = skipSpace(b, i+1)
		vend, err := valueEnd(b, i, 0)
		if err != nil {
			return err
		}
		if err := fn(name, b[i:vend]); err != nil {
			return err
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return errors.New("object not closed")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return trailing(b, i+1)
		default:
			return fmt.Errorf("expected ',' or '}' at byte %d", i)
		}
	}
}

func trailing(b []byte, i int) error {
	if i = skipSpace(b, i); i != len(b) {
		return fmt.Errorf("unexpected data after the object at byte %d", i)
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("string at byte %d not closed", i)
}

// maxDepth bounds nesting, as deeply nested JSON is an attack, not data.
const maxDepth = 64

// valueEnd returns the index just past the JSON value starting at b[i].
func valueEnd(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("value missing")
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		if depth >= maxDepth {
			return 0, fmt.Errorf("nested deeper than %d levels at byte %d", maxDepth, i)
		}
		closer := byte('}')
		if b[i] == '[' {
			closer = ']'
		}
		j := skipSpace(b, i+1)
		if j < len(b) && b[j] == closer {
			return j + 1, nil
		}
		for {
			if b[i] == '{' {
				if j >= len(b) || b[j] != '"' {
					return 0, fmt.Errorf("expected a member name at byte %d", j)
				}
				end, err := stringEnd(b, j)
				if err != nil {
					return 0, err
				}
				j = skipSpace(b, end)
				if j >= len(b) || b[j] != ':' {
					return 0, fmt.Errorf("expected ':' at byte %d", j)
				}
				j = skipSpace(b, j+1)
			}
			end, err := valueEnd(b, j, depth+1)
			if err != nil {
				return 0, err
			}
			j = skipSpace(b, end)
			if j >= len(b) {
				return 0, fmt.Errorf("value at byte %d not closed", i)
			}
			if b[j] == closer {
				return j + 1, nil
			}
			if b[j] != ',' {
				return 0, fmt.Errorf("expected ',' at byte %d", j)
			}
			j = skipSpace(b, j+1)
		}
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
			return 0, fmt.Errorf("invalid value %q at byte %d", excerpt(lit), i)
		}
		return j, nil
	}
}

func isNumber(b []byte) bool {
	return json.Valid(b) && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9'))
}

// jsonText returns a raw JSON value as text: strings unquoted (fast when they
// hold no escapes), numbers and booleans as written; ok is false for null.
func jsonText(raw []byte) (s string, ok bool, err error) {
	if len(raw) == 0 || (raw[0] == 'n' && bytes.Equal(raw, []byte("null"))) {
		return "", false, nil
	}
	if raw[0] != '"' {
		return string(raw), true, nil
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
		return string(inner), true, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, err
	}
	return s, true, nil
}
