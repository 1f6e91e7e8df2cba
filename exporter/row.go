package exporter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Row is one record converted for a sink.
type Row struct {
	// Key is the natural key, its fields joined by a tab.
	Key string
	// Values holds one value per catalog column: nil (NULL), int64,
	// string, time.Time (UTC), bool, Decimal, or json.RawMessage.
	Values []any
	// Extra is a JSON object of the fields the catalog does not know, or
	// nil when there are none.
	Extra json.RawMessage
	// Raw is the record as the PBX sent it (invalid UTF-8 replaced).
	Raw json.RawMessage
	// Cursor is the value of the endpoint's cursor field, when it has one.
	Cursor int64
	// Wall is the endpoint's time field as the PBX sent it (PBX-local).
	Wall string
}

// Decimal is an exact decimal number as text, e.g. "0.0123".
type Decimal string

// RecordError is a record that cannot be converted.
type RecordError struct {
	Index int    // position on its page
	Key   string // the natural key, when known
	Field string
	Err   error
}

func (e *RecordError) Error() string {
	who := fmt.Sprintf("record %d", e.Index)
	if e.Key != "" {
		who += fmt.Sprintf(" (key %s)", strings.ReplaceAll(e.Key, "\t", ","))
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: field %q: %v", who, e.Field, e.Err)
	}
	return fmt.Sprintf("%s: %v", who, e.Err)
}

// Converter turns PBX records into rows of an endpoint. The PBX sends
// times as PBX-local wall time with no zone ("2026-03-29 02:30:00"); see
// Instant for how they become UTC instants.
type Converter struct {
	Endpoint *Endpoint
	// Zone is the PBX's time zone (WILDIX_TIMEZONE), nil when unknown.
	Zone *time.Location
}

var decimalRe = regexp.MustCompile(`^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$`)

// Convert converts one record; index is its position on the page.
func (c *Converter) Convert(index int, raw json.RawMessage) (Row, error) {
	if !utf8.Valid(raw) {
		raw = bytes.ToValidUTF8(raw, []byte("\uFFFD"))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return Row{}, &RecordError{Index: index, Err: fmt.Errorf("not a JSON object: %w", err)}
	}
	e := c.Endpoint
	row := Row{Raw: raw, Values: make([]any, len(e.Columns))}

	keys := make([]string, len(e.Key))
	for i, k := range e.Key {
		v, ok, err := scalar(m[k])
		if err != nil || !ok || v == "" {
			return Row{}, &RecordError{Index: index, Field: k, Err: fmt.Errorf("the key field is missing or empty")}
		}
		keys[i] = v
	}
	row.Key = strings.Join(keys, "\t")
	if e.Cursor != "" {
		s, _, _ := scalar(m[e.Cursor])
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return Row{}, &RecordError{Index: index, Key: row.Key, Field: e.Cursor, Err: fmt.Errorf("cursor %q is not a whole number", s)}
		}
		row.Cursor = n
	}
	if e.TimeField != "" {
		row.Wall, _, _ = scalar(m[e.TimeField])
	}

	// The record's offset ("timezone": "+0100") pins its start time.
	var offset *int
	if s, ok, _ := scalar(m["timezone"]); ok && s != "" {
		if secs, ok := parseOffset(s); ok {
			offset = &secs
		}
	}
	var anchor time.Time
	known := map[string]bool{}
	for i, col := range e.Columns {
		known[col.Field] = true
		isAnchor := e.TimeField != "" && col.Field == e.TimeField
		hint := anchor
		if expr, ok := e.Expect[col.Field]; ok && !anchor.IsZero() {
			hint = expected(expr, m, anchor, e.TimeField)
		}
		v, err := c.value(col, m[col.Field], offset, hint, isAnchor)
		if isAnchor {
			if t, ok := v.(time.Time); ok {
				anchor = t
			}
		}
		if err != nil {
			return Row{}, &RecordError{Index: index, Key: row.Key, Field: col.Field, Err: err}
		}
		row.Values[i] = v
	}
	if len(m) > len(known) {
		extra := map[string]json.RawMessage{}
		for k, v := range m {
			if !known[k] {
				extra[k] = v
			}
		}
		if len(extra) > 0 {
			b, err := json.Marshal(extra)
			if err != nil {
				return Row{}, &RecordError{Index: index, Key: row.Key, Err: err}
			}
			row.Extra = b
		}
	}
	return row, nil
}

// scalar returns a JSON value as text: strings unquoted, numbers and
// booleans as written. ok is false for null or absent.
func scalar(raw json.RawMessage) (string, bool, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, err
		}
		return s, true, nil
	}
	return string(raw), true, nil
}

// expected evaluates an Endpoint.Expect expression; zero when it cannot.
func expected(expr string, m map[string]json.RawMessage, anchor time.Time, anchorField string) time.Time {
	terms, err := parseExpect(expr)
	if err != nil || terms[0].field != anchorField {
		return anchor
	}
	t := anchor
	for _, tm := range terms[1:] {
		s, _, _ := scalar(m[tm.field])
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return anchor
		}
		t = t.Add(time.Duration(tm.sign*n) * time.Second)
	}
	return t
}

func (c *Converter) value(col Column, raw json.RawMessage, offset *int, hint time.Time, isAnchor bool) (any, error) {
	if col.Type == JSON {
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
			return nil, nil
		}
		return json.RawMessage(raw), nil
	}
	s, ok, err := scalar(raw)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	if col.Type == Text {
		if len(raw) > 0 && (raw[0] == '{' || raw[0] == '[') {
			var b bytes.Buffer
			json.Compact(&b, raw)
			return b.String(), nil
		}
		return s, nil
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil // an empty string in a typed column is NULL
	}
	switch col.Type {
	case BigInt, Integer:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", s)
		}
		if col.Type == Integer && (n > 1<<31-1 || n < -1<<31) {
			return nil, fmt.Errorf("%d does not fit an integer column", n)
		}
		return n, nil
	case Numeric:
		if !decimalRe.MatchString(s) {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return Decimal(s), nil
	case Boolean:
		switch strings.ToLower(s) {
		case "1", "true", "yes", "on":
			return true, nil
		case "0", "false", "no", "off":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not a boolean", s)
	case Timestamp:
		if strings.HasPrefix(s, "0000-00-00") {
			return nil, nil // MySQL's zero date: no time
		}
		return c.Instant(s, offset, hint, isAnchor)
	}
	return nil, fmt.Errorf("unknown column type %q", col.Type)
}

const wallLayout = "2006-01-02 15:04:05"

// Instant turns a PBX-local wall time into a UTC instant. The rule:
//
//   - A time with its own offset (RFC 3339) is taken as it is.
//   - The record's anchor time (call history: start) uses the record's
//     timezone offset when it has one.
//   - Other times, and records without an offset, use the PBX's zone
//     (WILDIX_TIMEZONE); with no zone configured, the record's offset; with
//     neither, UTC.
//   - A wall time that occurs twice (the hour repeated when daylight-saving
//     time ends) is the occurrence nearest the hint: for call history, the
//     end nearest start+duration and the answer nearest
//     start+duration-billsec (Endpoint.Expect); without a hint, the first
//     occurrence.
//   - A wall time that does not exist (the hour skipped when daylight-saving
//     time starts) is read with the offset in force before the change, as
//     PostgreSQL does.
func (c *Converter) Instant(s string, offset *int, hint time.Time, isAnchor bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	layout := wallLayout
	if len(s) > 10 && s[10] == 'T' {
		layout = "2006-01-02T15:04:05"
	}
	naive, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a time of the form YYYY-MM-DD HH:MM:SS", s)
	}
	if offset != nil && (isAnchor || c.Zone == nil) {
		return naive.Add(-time.Duration(*offset) * time.Second).UTC(), nil
	}
	if c.Zone == nil {
		return naive, nil
	}
	return inZone(naive, c.Zone, hint), nil
}

// inZone finds the instants whose wall time in loc is naive's.
func inZone(naive time.Time, loc *time.Location, hint time.Time) time.Time {
	before := offsetAt(naive.Add(-12*time.Hour), loc)
	after := offsetAt(naive.Add(12*time.Hour), loc)
	var cands []time.Time
	for _, off := range []int{before, after} {
		t := naive.Add(-time.Duration(off) * time.Second)
		if offsetAt(t, loc) == off && (len(cands) == 0 || !cands[0].Equal(t)) {
			cands = append(cands, t)
		}
	}
	switch len(cands) {
	case 0: // skipped by the change: the offset before it
		return naive.Add(-time.Duration(before) * time.Second).UTC()
	case 1:
		return cands[0].UTC()
	}
	if cands[1].Before(cands[0]) {
		cands[0], cands[1] = cands[1], cands[0]
	}
	if !hint.IsZero() && hint.Sub(cands[0]).Abs() > hint.Sub(cands[1]).Abs() {
		return cands[1].UTC()
	}
	return cands[0].UTC()
}

func offsetAt(t time.Time, loc *time.Location) int {
	_, off := t.In(loc).Zone()
	return off
}

// parseOffset reads "+0100", "-04:00", "+01" or "Z" as seconds east of UTC.
func parseOffset(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if s == "Z" || s == "UTC" {
		return 0, true
	}
	if len(s) < 3 || (s[0] != '+' && s[0] != '-') {
		return 0, false
	}
	digits := strings.ReplaceAll(s[1:], ":", "")
	if len(digits) == 2 {
		digits += "00"
	}
	if len(digits) != 4 {
		return 0, false
	}
	h, err1 := strconv.Atoi(digits[:2])
	m, err2 := strconv.Atoi(digits[2:])
	if err1 != nil || err2 != nil || h > 14 || m > 59 {
		return 0, false
	}
	secs := h*3600 + m*60
	if s[0] == '-' {
		secs = -secs
	}
	return secs, true
}
