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
// Instant for how they become UTC instants. A Converter is not safe for
// concurrent use.
type Converter struct {
	Endpoint *Endpoint
	// Zone is the PBX's time zone (WILDIX_TIMEZONE), nil when unknown.
	Zone *time.Location

	index    map[string]int // PBX field → column
	keys     []int          // columns of the key fields
	cursor   int            // column of the cursor field, or -1
	anchor   int            // column of the time field, or -1
	expect   map[int][]term // column → its Expect expression
	raws     [][]byte       // this record's raw value per column
	timezone []byte         // this record's timezone field
	extra    []byte
}

var decimalRe = regexp.MustCompile(`^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$`)

func (c *Converter) init() {
	e := c.Endpoint
	c.index = make(map[string]int, len(e.Columns))
	for i, col := range e.Columns {
		c.index[col.Field] = i
	}
	c.keys = c.keys[:0]
	for _, k := range e.Key {
		c.keys = append(c.keys, c.index[k])
	}
	c.cursor, c.anchor = -1, -1
	if i, ok := c.index[e.Cursor]; ok && e.Cursor != "" {
		c.cursor = i
	}
	if i, ok := c.index[e.TimeField]; ok && e.TimeField != "" {
		c.anchor = i
	}
	c.expect = map[int][]term{}
	for f, expr := range e.Expect {
		if terms, err := parseExpect(expr); err == nil && terms[0].field == e.TimeField {
			c.expect[c.index[f]] = terms
		}
	}
	c.raws = make([][]byte, len(e.Columns))
}

// Convert converts one record; index is its position on the page. The row
// refers to raw's bytes.
func (c *Converter) Convert(index int, raw json.RawMessage) (Row, error) {
	return c.convert(index, raw, make([]any, len(c.Endpoint.Columns)))
}

// Rows converts a page of records, each record's values sharing one array.
// It builds its own state, so it is safe for concurrent use.
func (c *Converter) Rows(recs []json.RawMessage) ([]Row, error) {
	cc := &Converter{Endpoint: c.Endpoint, Zone: c.Zone}
	n := len(c.Endpoint.Columns)
	vals := make([]any, len(recs)*n)
	rows := make([]Row, len(recs))
	for i, rec := range recs {
		row, err := cc.convert(i, rec, vals[i*n:(i+1)*n:(i+1)*n])
		if err != nil {
			return nil, err
		}
		rows[i] = row
	}
	return rows, nil
}

func (c *Converter) convert(index int, raw json.RawMessage, values []any) (Row, error) {
	if c.index == nil {
		c.init()
	}
	if !utf8.Valid(raw) {
		raw = bytes.ToValidUTF8(raw, []byte("\uFFFD"))
	}
	for i := range c.raws {
		c.raws[i] = nil
	}
	c.timezone, c.extra = nil, c.extra[:0]
	err := scanObject(raw, func(name, value []byte) error {
		if i, ok := c.index[string(name)]; ok {
			c.raws[i] = value
			return nil
		}
		if string(name) == "timezone" {
			c.timezone = value
		}
		if len(c.extra) == 0 {
			c.extra = append(c.extra, '{')
		} else {
			c.extra = append(c.extra, ',')
		}
		q, _ := json.Marshal(string(name))
		c.extra = append(append(append(c.extra, q...), ':'), value...)
		return nil
	})
	if err != nil {
		return Row{}, &RecordError{Index: index, Err: err}
	}
	e := c.Endpoint
	row := Row{Raw: raw, Values: values}
	for n, i := range c.keys {
		v, ok, err := jsonText(c.raws[i])
		if err != nil || !ok || v == "" {
			return Row{}, &RecordError{Index: index, Field: e.Key[n], Err: fmt.Errorf("the key field is missing or empty")}
		}
		if n == 0 {
			row.Key = v
		} else {
			row.Key += "\t" + v
		}
	}
	if c.cursor >= 0 {
		s, _, _ := jsonText(c.raws[c.cursor])
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return Row{}, &RecordError{Index: index, Key: row.Key, Field: e.Cursor, Err: fmt.Errorf("cursor %q is not a whole number", s)}
		}
		row.Cursor = n
	}
	if c.anchor >= 0 {
		row.Wall, _, _ = jsonText(c.raws[c.anchor])
	}
	// The record's offset ("timezone": "+0100") pins its start time.
	var offset *int
	tz := c.timezone
	if i, ok := c.index["timezone"]; ok {
		tz = c.raws[i]
	}
	if s, ok, _ := jsonText(tz); ok && s != "" {
		if secs, ok := parseOffset(s); ok {
			offset = &secs
		}
	}
	// The anchor (start) first: other times may depend on it.
	var anchor time.Time
	if c.anchor >= 0 {
		v, err := c.value(e.Columns[c.anchor], c.raws[c.anchor], offset, time.Time{}, true)
		if err != nil {
			return Row{}, &RecordError{Index: index, Key: row.Key, Field: e.Columns[c.anchor].Field, Err: err}
		}
		row.Values[c.anchor] = v
		if t, ok := v.(time.Time); ok {
			anchor = t
		}
	}
	for i, col := range e.Columns {
		if i == c.anchor {
			continue
		}
		hint := anchor
		if terms, ok := c.expect[i]; ok && !anchor.IsZero() {
			hint = c.expected(terms, anchor)
		}
		v, err := c.value(col, c.raws[i], offset, hint, false)
		if err != nil {
			return Row{}, &RecordError{Index: index, Key: row.Key, Field: col.Field, Err: err}
		}
		row.Values[i] = v
	}
	if len(c.extra) > 0 {
		row.Extra = append(json.RawMessage(nil), append(c.extra, '}')...)
	}
	return row, nil
}

// expected evaluates an Endpoint.Expect expression for this record.
func (c *Converter) expected(terms []term, anchor time.Time) time.Time {
	t := anchor
	for _, tm := range terms[1:] {
		i, ok := c.index[tm.field]
		if !ok {
			return anchor
		}
		s, _, _ := jsonText(c.raws[i])
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return anchor
		}
		t = t.Add(time.Duration(tm.sign*n) * time.Second)
	}
	return t
}

func (c *Converter) value(col Column, raw []byte, offset *int, hint time.Time, isAnchor bool) (any, error) {
	if col.Type == JSON {
		if len(raw) == 0 || string(raw) == "null" {
			return nil, nil
		}
		return json.RawMessage(raw), nil
	}
	s, ok, err := jsonText(raw)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	if col.Type == Text {
		if raw[0] == '{' || raw[0] == '[' {
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
//   - Other times use the PBX's zone (WILDIX_TIMEZONE) when it is set,
//     else the record's offset; with neither, UTC.
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
