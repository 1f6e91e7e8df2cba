package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/wildix-export/wildix-export/exporter/jsonscan"
)

// What PostgreSQL cannot store, and what the converter makes of it, so that
// one odd record never stops an export and both sinks get the same rows
// (docs/reliability.md, "poison values"). Measured on the server (jsonb and
// numeric input, PostgreSQL 15), it refuses:
//
//   - the escape \u0000 in jsonb, and NUL bytes in text: each becomes
//     U+FFFD;
//   - a UTF-16 surrogate escape that is not half of a pair ("\udc00",
//     "\ud800\u0041"): it becomes U+FFFD, as Go's decoder reads it;
//   - a number whose integer part has more than 131072 digits, that is
//     written with more than 16383 digits after the point once its
//     exponent is applied (even zeros: "0e-16384"), or whose exponent is
//     beyond ±1073741822: it is kept as a JSON string of its exact text,
//     so nothing is lost, and a typed column it was meant for is NULL.
//
// Of members named twice in one object, the last is kept, as PostgreSQL's
// jsonb keeps it. Each change is a warning naming the record's key and the
// field. Clean records are only looked at: conversion spots the bytes these
// need (badEscape, and the scan's look at numbers, nested objects and
// names) before doing any work.
const (
	maxIntegerDigits  = 131072    // numeric's 32768 base-10000 digits before the point
	maxFractionDigits = 16383     // numeric's largest display scale
	maxNumberExponent = 1<<30 - 2 // numeric's input refuses INT_MAX/2 and beyond
)

// The kinds of warning that containing a poison value counts.
const (
	WarnEscape    = "text escapes PostgreSQL cannot store (\\u0000, a lone UTF-16 surrogate), replaced by U+FFFD"
	WarnNumber    = "numbers beyond PostgreSQL's numeric range (131072 digits before the point, 16383 after), kept as strings of their exact text"
	WarnDuplicate = "members named twice in one object, the last kept (as PostgreSQL's jsonb keeps it)"
)

// badEscape reports whether b may hold an escape jsonb refuses: \u0000 or
// a surrogate (a pair is fine; repair tells).
func badEscape(b []byte) bool {
	for {
		i := bytes.Index(b, []byte(`\u`))
		if i < 0 || i+6 > len(b) {
			return false
		}
		if h := b[i+2 : i+6]; string(h) == "0000" || surrogate(h) != 0 {
			return true
		}
		b = b[i+2:]
	}
}

// surrogate reports whether the four hex digits h are a UTF-16 surrogate:
// 'h' for a high one (D800-DBFF), 'l' for a low one (DC00-DFFF), else 0.
func surrogate(h []byte) byte {
	if h[0] != 'd' && h[0] != 'D' {
		return 0
	}
	switch h[1] {
	case '8', '9', 'a', 'b', 'A', 'B':
		return 'h'
	case 'c', 'd', 'e', 'f', 'C', 'D', 'E', 'F':
		return 'l'
	}
	return 0
}

// stringHoldable reports whether the JSON string s (quoted) holds no
// escape jsonb refuses.
func stringHoldable(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++
		if s[i] != 'u' {
			continue
		}
		h := s[i+1 : i+5]
		i += 4
		switch surrogate(h) {
		case 0:
			if string(h) == "0000" {
				return false
			}
		case 'l':
			return false
		case 'h':
			if i+7 > len(s) || s[i+1] != '\\' || s[i+2] != 'u' || surrogate(s[i+3:i+7]) != 'l' {
				return false
			}
			i += 6
		}
	}
	return true
}

// numberHoldable reports whether the JSON number n (or a Decimal) fits
// PostgreSQL's numeric, and so jsonb.
func numberHoldable(n []byte) bool {
	if len(n) <= maxFractionDigits && bytes.IndexAny(n, "eE") < 0 {
		return true
	}
	m, e, _ := bytes.Cut(bytes.TrimLeft(n, "+-"), []byte("e"))
	if i := bytes.IndexAny(m, "E"); i >= 0 {
		m, e = m[:i], m[i+1:]
	}
	exp := 0
	if len(e) > 0 {
		digits := bytes.TrimLeft(bytes.TrimLeft(e, "+-"), "0")
		if len(digits) > 10 {
			return false
		}
		x, err := strconv.Atoi(string(bytes.TrimLeft(e, "+")))
		if err != nil || x > maxNumberExponent || x < -maxNumberExponent {
			return false
		}
		exp = x
	}
	whole, frac, _ := bytes.Cut(m, []byte("."))
	if len(frac)-exp > maxFractionDigits {
		return false
	}
	lead := bytes.IndexFunc(append(whole[:len(whole):len(whole)], frac...), func(r rune) bool { return r != '0' })
	return lead < 0 || len(whole)-lead+exp <= maxIntegerDigits
}

// repairNote is one change repair made.
type repairNote struct{ kind, field, detail string }

// repairer rewrites a record so that PostgreSQL can store it (see the
// top of this file); it runs only for records the scan found odd.
type repairer struct {
	out   []byte
	notes []repairNote
}

// repair returns the record raw (valid JSON, an object) made storable,
// and what was changed; out is raw itself when nothing was.
func repair(raw []byte) (out []byte, notes []repairNote, err error) {
	r := &repairer{out: make([]byte, 0, len(raw))}
	i := jsonscan.SkipSpace(raw, 0)
	if _, err := r.object(raw, i, 0, ""); err != nil {
		return nil, nil, err
	}
	if len(r.notes) == 0 {
		return raw, nil, nil
	}
	return r.out, r.notes, nil
}

func (r *repairer) note(kind, field, detail string) {
	r.notes = append(r.notes, repairNote{kind, field, detail})
}

// value appends the value at b[i], made storable, and returns the index
// just past it. field names it in notes ("vendor.x[1]").
func (r *repairer) value(b []byte, i, depth int, field string) (int, error) {
	switch b[i] {
	case '{':
		return r.object(b, i, depth, field)
	case '[':
		r.out = append(r.out, '[')
		n := 0
		end, err := jsonscan.WalkArray(b, i, depth, func(start int) (int, error) {
			if n > 0 {
				r.out = append(r.out, ',')
			}
			n++
			return r.value(b, start, depth+1, fmt.Sprintf("%s[%d]", field, n-1))
		})
		r.out = append(r.out, ']')
		return end, err
	case '"':
		end, err := jsonscan.StringEnd(b, i)
		if err != nil {
			return 0, err
		}
		r.out = r.str(b[i:end], field)
		return end, nil
	}
	end, err := jsonscan.ValueEnd(b, i, depth)
	if err != nil {
		return 0, err
	}
	lit := b[i:end]
	if lit[0] == '-' || (lit[0] >= '0' && lit[0] <= '9') {
		if !numberHoldable(lit) {
			r.note(WarnNumber, field, fmt.Sprintf("the number %s is kept as a string", jsonscan.Excerpt(lit)))
			r.out = append(append(append(r.out, '"'), lit...), '"')
			return end, nil
		}
	}
	r.out = append(r.out, lit...)
	return end, nil
}

// str appends the JSON string s to r.out: as it is, or, when it holds an
// escape jsonb refuses, as Go's decoder reads it with NUL as U+FFFD.
func (r *repairer) str(s []byte, field string) []byte {
	if stringHoldable(s) {
		return append(r.out, s...)
	}
	r.note(WarnEscape, field, fmt.Sprintf("%s holds \\u0000 or a lone UTF-16 surrogate", jsonscan.Excerpt(s)))
	var v string
	json.Unmarshal(s, &v) // s was scanned: valid
	return appendJSONString(r.out, strings.ReplaceAll(v, "\x00", "\uFFFD"))
}

// object appends the object at b[i], keeping of members named twice the
// last one, where it stands.
func (r *repairer) object(b []byte, i, depth int, field string) (int, error) {
	type member struct {
		name     string
		from, to int // in r.out, comma excluded
	}
	var members []member
	start := len(r.out)
	r.out = append(r.out, '{')
	end, err := jsonscan.WalkMembers(b, i, depth, func(written, name []byte, at int) (int, error) {
		if len(members) > 0 {
			r.out = append(r.out, ',')
		}
		fixed := strings.ReplaceAll(string(name), "\x00", "\uFFFD")
		from, path := len(r.out), joinField(field, fixed)
		r.out = r.str(written, path)
		r.out = append(r.out, ':')
		end, err := r.value(b, at, depth+1, path)
		members = append(members, member{fixed, from, len(r.out)})
		return end, err
	})
	if err != nil {
		return 0, err
	}
	r.out = append(r.out, '}')
	last := make(map[string]int, len(members))
	for n, m := range members {
		last[m.name] = n
	}
	if len(last) == len(members) {
		return end, nil
	}
	written := bytes.Clone(r.out[start:])
	r.out = append(r.out[:start], '{')
	kept := 0
	for n, m := range members {
		if last[m.name] != n {
			r.note(WarnDuplicate, joinField(field, m.name), "an earlier value was dropped")
			continue
		}
		if kept > 0 {
			r.out = append(r.out, ',')
		}
		kept++
		r.out = append(r.out, written[m.from-start:m.to-start]...)
	}
	r.out = append(r.out, '}')
	return end, nil
}

func joinField(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// appendJSONString appends s as a JSON string, HTML characters as they
// are.
func appendJSONString(out []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return append(out, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// plainValue reports whether a value that is not a string surely needs no
// repair: a literal, a number numeric holds, or an array that can hold
// neither an object nor a number with an exponent.
func plainValue(v []byte) bool {
	switch v[0] {
	case '{':
		return false
	case '[':
		return len(v) <= maxFractionDigits && bytes.IndexAny(v, "eE{") < 0
	case 't', 'f', 'n':
		return true
	}
	return numberHoldable(v)
}
