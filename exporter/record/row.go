// Package record knows what a PBX's records mean: the catalog of
// endpoints (their paths, keys, cursors, time fields and typed columns)
// and the conversion of a record, as the PBX sends it (every value a
// string, PBX-local wall times), into a typed Row for a sink, counting
// what it works around (Warnings). It makes no request.
package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wildix-export/wildix-export/exporter/jsonscan"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// Row is one record converted for a sink.
type Row struct {
	// Key is the natural key, its fields joined by a tab.
	Key string
	// Values holds one value per catalog column: nil (NULL), int64,
	// string, time.Time (UTC, whole microseconds as PostgreSQL keeps
	// them), bool, Decimal, or json.RawMessage. Each is one PostgreSQL can
	// store (storable.go).
	Values []any
	// Extra is a JSON object of the fields the catalog does not know, or
	// nil when there are none.
	Extra json.RawMessage
	// Raw is the record as the PBX sent it (invalid UTF-8 replaced), or,
	// when it held a value PostgreSQL cannot store or a member named
	// twice, as repaired (storable.go), the change counted in Warnings.
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
		who += fmt.Sprintf(" (key %s)", pseudonym.ShownKey(e.Key))
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: field %q: %v", who, e.Field, e.Err)
	}
	return fmt.Sprintf("%s: %v", who, e.Err)
}

// Unwrap returns the cause, so that errors.Is finds ErrConfig through it.
func (e *RecordError) Unwrap() error { return e.Err }

// Converter turns PBX records into rows of an endpoint. The PBX sends
// times as PBX-local wall time with no zone ("2026-03-29 02:30:00"); see
// Instant for how they become UTC instants. A Converter is not safe for
// concurrent use; Rows is.
//
// The key, cursor and time fields must convert, or the record is an error.
// A value of another column that cannot be taken as sent (a word in an
// integer column, a time repeated by a daylight-saving change with nothing
// to tell which, a timezone field that is not an offset) is an error too,
// unless Warnings is set: then the value is stored as NULL, or the
// documented choice is made, and the warning counted there; the raw record
// keeps what was sent. Nothing is dropped or guessed without a count.
type Converter struct {
	Endpoint *Endpoint
	// Zone is the PBX's time zone (WILDIX_TIMEZONE), nil when unknown.
	// Without it, a wall time of a record that has no timezone offset is
	// an error wrapping ErrConfig.
	Zone *time.Location
	// Warnings, when set, counts what conversion worked around instead
	// of failing.
	Warnings *Warnings

	index    map[string]int // PBX field → column
	keys     []int          // columns of the key fields
	cursor   int            // column of the cursor field, or -1
	anchor   int            // column of the time field, or -1
	expect   map[int][]term // column → its Expect expression
	raws     [][]byte       // this record's raw value per column
	timezone []byte         // this record's timezone field
	extra    []byte
	names    [][]byte // this record's undeclared field names
	odd      bool     // this record may need repair (storable.go)
}

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
	cc := &Converter{Endpoint: c.Endpoint, Zone: c.Zone, Warnings: c.Warnings}
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

// convert reads one record in four steps, each a method: scan the fields
// into c.raws, identify the record (key, cursor, wall time), read its UTC
// offset, then fill the typed values, the anchor (start) first.
func (c *Converter) convert(index int, raw json.RawMessage, values []any) (Row, error) {
	if c.index == nil {
		c.init()
	}
	if !utf8.Valid(raw) {
		raw = bytes.ToValidUTF8(raw, []byte("\uFFFD"))
	}
	raw, notes, err := c.contain(raw)
	if err != nil {
		return Row{}, &RecordError{Index: index, Err: err}
	}
	row := Row{Raw: raw, Values: values}
	if err := c.identify(index, &row); err != nil {
		return Row{}, err
	}
	for _, n := range notes {
		if err := c.warn(n.kind, row.Key, n.field, n.detail); err != nil {
			return Row{}, &RecordError{Index: index, Key: row.Key, Field: n.field, Err: err}
		}
	}
	offset, err := c.offset(index, row.Key)
	if err != nil {
		return Row{}, err
	}
	if err := c.fill(index, &row, offset); err != nil {
		return Row{}, err
	}
	if len(c.extra) > 0 {
		row.Extra = append(json.RawMessage(nil), append(c.extra, '}')...)
	}
	return row, nil
}

// contain scans raw into the converter. A record the scan finds odd (an
// escape, a number, a nested object or a name twice that PostgreSQL may
// not store as sent) is repaired, and scanned again: see storable.go.
func (c *Converter) contain(raw json.RawMessage) (json.RawMessage, []repairNote, error) {
	c.odd = badEscape(raw)
	if err := c.scan(raw); err != nil || !c.odd {
		return raw, nil, err
	}
	fixed, notes, err := repair(raw)
	if err != nil || len(notes) == 0 {
		return raw, nil, err
	}
	return fixed, notes, c.scan(fixed)
}

// scan sets c.raws to the declared fields' raw values, c.timezone to the
// record's offset field and c.extra to the undeclared fields, as JSON; it
// sets c.odd when a value or a name twice may need repair.
func (c *Converter) scan(raw json.RawMessage) error {
	for i := range c.raws {
		c.raws[i] = nil
	}
	c.timezone, c.extra, c.names = nil, c.extra[:0], c.names[:0]
	return jsonscan.Object(raw, func(name, value []byte) error {
		if value[0] != '"' && !plainValue(value) {
			c.odd = true
		}
		if i, ok := c.index[string(name)]; ok {
			c.odd = c.odd || c.raws[i] != nil
			c.raws[i] = value
			return nil
		}
		for _, n := range c.names {
			c.odd = c.odd || bytes.Equal(n, name)
		}
		c.names = append(c.names, name)
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
}

// identify sets the row's key, cursor and wall time.
func (c *Converter) identify(index int, row *Row) error {
	e := c.Endpoint
	for n, i := range c.keys {
		v, ok, err := jsonscan.Text(c.raws[i])
		if err != nil || !ok || v == "" {
			return &RecordError{Index: index, Field: e.Key[n], Err: fmt.Errorf("the key field is missing or empty")}
		}
		if n == 0 {
			row.Key = v
		} else {
			row.Key += "\t" + v
		}
	}
	if len(c.keys) == 1 {
		// Its own bytes, not a view of the answer (see Text): keys and
		// wall times outlive the page (the keys a snapshot has read, the
		// look-back of time windows), and a view would keep each page.
		row.Key = strings.Clone(row.Key)
	}
	if c.cursor >= 0 {
		s, _, _ := jsonscan.Text(c.raws[c.cursor])
		n, err := jsonscan.WholeNumber(strings.TrimSpace(s), 64)
		switch {
		case err != nil:
			return &RecordError{Index: index, Key: row.Key, Field: e.Cursor, Err: fmt.Errorf("cursor: %w", err)}
		case n < 1:
			// Cursors are read from 1 up: such a record could never be
			// exported, and dropping it would lose it without a word.
			return &RecordError{Index: index, Key: row.Key, Field: e.Cursor, Err: fmt.Errorf("cursor %d is below 1; incremental export reads cursors from 1 up", n)}
		}
		row.Cursor = n
	}
	if c.anchor >= 0 {
		w, _, _ := jsonscan.Text(c.raws[c.anchor])
		row.Wall = strings.Clone(w)
	}
	return nil
}

// offset reads the record's offset ("timezone": "+0100"), which pins its
// times; nil when the record has none.
func (c *Converter) offset(index int, key string) (*int, error) {
	tz := c.timezone
	if i, ok := c.index["timezone"]; ok {
		tz = c.raws[i]
	}
	s, ok, _ := jsonscan.Text(tz)
	if !ok || strings.TrimSpace(s) == "" {
		return nil, nil
	}
	if secs, ok := parseOffset(s); ok {
		return &secs, nil
	}
	if c.Zone == nil {
		return nil, &RecordError{Index: index, Key: key, Field: "timezone", Err: fmt.Errorf(
			"%w: %q is not a UTC offset such as +0100 and WILDIX_TIMEZONE is not set; set WILDIX_TIMEZONE to the PBX's time zone, e.g. Europe/Rome", ErrConfig, s)}
	}
	if err := c.warn(WarnTimezone, key, "timezone", fmt.Sprintf("%q is not a UTC offset such as +0100", jsonscan.Excerpt([]byte(s)))); err != nil {
		return nil, &RecordError{Index: index, Key: key, Field: "timezone", Err: err}
	}
	return nil, nil
}

// fill converts the declared fields into row.Values: the anchor (start)
// first, since other times may depend on it.
func (c *Converter) fill(index int, row *Row, offset *int) error {
	e := c.Endpoint
	var anchor time.Time
	if c.anchor >= 0 {
		col := e.Columns[c.anchor]
		v, note, err := c.value(col, c.raws[c.anchor], offset, time.Time{}, true)
		if err == nil && note == WarnAmbiguous {
			if t, ok := c.resolveAnchor(); ok {
				v, note = t, ""
			}
		}
		if err == nil && note != "" {
			err = c.warn(note, row.Key, col.Field, c.timeDetail(note, c.raws[c.anchor]))
		}
		if err != nil {
			return &RecordError{Index: index, Key: row.Key, Field: col.Field, Err: err}
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
		v, note, err := c.value(col, c.raws[i], offset, hint, false)
		if err == nil && note != "" {
			err = c.warn(note, row.Key, col.Field, c.timeDetail(note, c.raws[i]))
		}
		if err != nil && !errors.Is(err, ErrConfig) && c.Warnings != nil && !c.critical(i) {
			v, err = nil, c.warn(WarnValue, row.Key, col.Field, err.Error())
		}
		if err != nil {
			return &RecordError{Index: index, Key: row.Key, Field: col.Field, Err: err}
		}
		row.Values[i] = v
	}
	return nil
}

// expected evaluates an Endpoint.Expect expression for this record.
func (c *Converter) expected(terms []term, anchor time.Time) time.Time {
	t := anchor
	for _, tm := range terms[1:] {
		i, ok := c.index[tm.field]
		if !ok {
			return anchor
		}
		s, _, _ := jsonscan.Text(c.raws[i])
		n, err := jsonscan.WholeNumber(strings.TrimSpace(s), 64)
		if err != nil || n > 1<<31 || n < -1<<31 { // beyond 68 years, the product would overflow
			return anchor
		}
		t = t.Add(time.Duration(tm.sign*n) * time.Second)
	}
	return t
}

// timeDetail says what is wrong with a wall time taken by a documented
// choice.
func (c *Converter) timeDetail(note string, raw []byte) string {
	s, _, _ := jsonscan.Text(raw)
	if note == WarnNonexistent {
		return fmt.Sprintf("%q does not exist in %s (the hour skipped when daylight-saving time starts); is WILDIX_TIMEZONE the PBX's zone?", s, c.Zone)
	}
	return fmt.Sprintf("%q occurs twice in %s (the hour repeated when daylight-saving time ends) and the record has no timezone offset to tell which", s, c.Zone)
}

// critical reports whether column i is one that paging or the natural key
// depends on, so that it can never be replaced by NULL.
func (c *Converter) critical(i int) bool {
	return i == c.cursor || i == c.anchor || slices.Contains(c.keys, i)
}

// value converts one raw value for col. note is a warning kind when the
// value was taken by a documented choice (WarnAmbiguous, WarnNonexistent).
func (c *Converter) value(col Column, raw []byte, offset *int, hint time.Time, isAnchor bool) (v any, note string, err error) {
	if col.Type == JSON {
		if len(raw) == 0 || string(raw) == "null" {
			return nil, "", nil
		}
		return json.RawMessage(raw), "", nil
	}
	s, ok, err := jsonscan.Text(raw)
	if err != nil {
		return nil, "", err
	}
	if !ok {
		return nil, "", nil
	}
	if col.Type == Text {
		if raw[0] == '{' || raw[0] == '[' {
			var b bytes.Buffer
			json.Compact(&b, raw)
			return b.String(), "", nil
		}
		return s, "", nil
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, "", nil // an empty string in a typed column is NULL
	}
	switch col.Type {
	case BigInt:
		n, err := jsonscan.WholeNumber(s, 64)
		return n, "", err
	case Integer:
		n, err := jsonscan.WholeNumber(s, 32)
		return n, "", err
	case Numeric:
		d, err := jsonscan.DecimalText(s)
		if err == nil && len(d) > maxFractionDigits && !numberHoldable([]byte(d)) {
			return nil, "", fmt.Errorf("%s is beyond PostgreSQL's numeric range (%d digits before the point, %d after)", jsonscan.Excerpt([]byte(s)), maxIntegerDigits, maxFractionDigits)
		}
		return Decimal(d), "", err
	case Boolean:
		switch strings.ToLower(s) {
		case "1", "true", "yes", "on":
			return true, "", nil
		case "0", "false", "no", "off":
			return false, "", nil
		}
		return nil, "", fmt.Errorf("%q is not a boolean", jsonscan.Excerpt([]byte(s)))
	case Timestamp:
		if strings.HasPrefix(s, "0000-00-00") {
			return nil, "", nil // MySQL's zero date: no time
		}
		t, how, err := c.Instant(s, offset, hint, isAnchor)
		if t.Nanosecond()%1000 != 0 {
			t = t.Truncate(time.Microsecond) // what PostgreSQL keeps, so that CSV keeps the same
		}
		return t, how, err
	}
	return nil, "", fmt.Errorf("unknown column type %q", col.Type)
}

// resolveAnchor settles a wall time of the anchor (start) that a
// daylight-saving change repeats, for a record without an offset, by the
// other times Endpoint.Expect ties to it: of its two instants, keep the one
// every such time (end = start+duration, …) agrees with. It reports false
// when both or neither agree.
func (c *Converter) resolveAnchor() (time.Time, bool) {
	wall, _, _ := jsonscan.Text(c.raws[c.anchor])
	naive, err := time.Parse(WallLayout, strings.TrimSpace(wall))
	if err != nil {
		return time.Time{}, false
	}
	var fits []time.Time
	for _, start := range wallInstants(naive, c.Zone) {
		agree, used := true, false
		for i, terms := range c.expect {
			s, present, err := jsonscan.Text(c.raws[i])
			if err != nil || !present {
				continue
			}
			naive, err := time.Parse(WallLayout, strings.TrimSpace(s))
			if err != nil {
				continue
			}
			used = true
			if !slices.ContainsFunc(wallInstants(naive, c.Zone), c.expected(terms, start).Equal) {
				agree = false
			}
		}
		if agree && used {
			fits = append(fits, start)
		}
	}
	if len(fits) == 1 {
		return fits[0], true
	}
	return time.Time{}, false
}

const WallLayout = "2006-01-02 15:04:05"

// wallTime reads "YYYY-MM-DD HH:MM:SS" (or with a T), as time.Parse with
// WallLayout would, at a tenth of its cost: three such times a call record.
// It reports false for anything else, which time.Parse then reads or
// refuses.
func wallTime(s string) (time.Time, bool) {
	if len(s) != 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	ok := true
	num := func(from, to int) int {
		n := 0
		for i := from; i < to; i++ {
			if s[i] < '0' || s[i] > '9' {
				ok = false
			}
			n = n*10 + int(s[i]-'0')
		}
		return n
	}
	y, mo, d, h, mi, sec := num(0, 4), num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19)
	if !ok || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
	if t.Day() != d { // 30 February and the like
		return time.Time{}, false
	}
	return t, true
}

// Instant turns a PBX-local wall time into a UTC instant. The rule:
//
//   - A time with its own offset (RFC 3339) is taken as it is.
//   - The record's anchor time (call history: start) uses the record's
//     timezone offset when it has one.
//   - Other times use the PBX's zone (WILDIX_TIMEZONE) when it is set,
//     else the record's offset.
//   - With neither a zone nor an offset, nothing is guessed: the error
//     wraps ErrConfig and says to set WILDIX_TIMEZONE.
//   - A wall time that occurs twice (the hour repeated when daylight-saving
//     time ends) is the occurrence nearest the hint: for call history, the
//     end nearest start+duration and the answer nearest
//     start+duration-billsec (Endpoint.Expect); a start without an offset
//     is the occurrence its end and answer agree with. When nothing tells,
//     the earlier occurrence is taken and how reports WarnAmbiguous.
//   - A wall time that does not exist (the hour skipped when daylight-saving
//     time starts) is read with the offset in force before the change, as
//     PostgreSQL does, and how reports WarnNonexistent: the PBX cannot have
//     written it, so WILDIX_TIMEZONE may be wrong.
func (c *Converter) Instant(s string, offset *int, hint time.Time, isAnchor bool) (t time.Time, how string, err error) {
	naive, ok := wallTime(s)
	if !ok {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t.UTC(), "", nil
		}
		layout := WallLayout
		if len(s) > 10 && s[10] == 'T' {
			layout = "2006-01-02T15:04:05"
		}
		if naive, err = time.Parse(layout, s); err != nil {
			return time.Time{}, "", fmt.Errorf("%q is not a time of the form YYYY-MM-DD HH:MM:SS", jsonscan.Excerpt([]byte(s)))
		}
	}
	if offset != nil && (isAnchor || c.Zone == nil) {
		return naive.Add(-time.Duration(*offset) * time.Second).UTC(), "", nil
	}
	if c.Zone == nil {
		return time.Time{}, "", fmt.Errorf("%w: %q has no UTC offset (the record has no timezone field) and WILDIX_TIMEZONE is not set; set WILDIX_TIMEZONE to the PBX's time zone, e.g. Europe/Rome", ErrConfig, s)
	}
	cands := wallInstants(naive, c.Zone)
	switch {
	case len(cands) == 0: // skipped by the change: the offset before it
		before := offsetAt(naive.Add(-12*time.Hour), c.Zone)
		return naive.Add(-time.Duration(before) * time.Second).UTC(), WarnNonexistent, nil
	case len(cands) == 1:
		return cands[0], "", nil
	case !hint.IsZero():
		if hint.Sub(cands[0]).Abs() > hint.Sub(cands[1]).Abs() {
			return cands[1], "", nil
		}
		return cands[0], "", nil
	}
	return cands[0], WarnAmbiguous, nil
}

// wallInstants returns the instants, earlier first, whose wall time in loc
// is naive's: none in a skipped hour, two in a repeated one.
func wallInstants(naive time.Time, loc *time.Location) []time.Time {
	before := offsetAt(naive.Add(-12*time.Hour), loc)
	after := offsetAt(naive.Add(12*time.Hour), loc)
	var cands []time.Time
	for _, off := range []int{before, after} {
		t := naive.Add(-time.Duration(off) * time.Second).UTC()
		if offsetAt(t, loc) == off && (len(cands) == 0 || !cands[0].Equal(t)) {
			cands = append(cands, t)
		}
	}
	if len(cands) == 2 && cands[1].Before(cands[0]) {
		cands[0], cands[1] = cands[1], cands[0]
	}
	return cands
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

// The kinds of warning a Converter counts.
const (
	WarnValue       = "values not convertible to their column's type, stored as NULL (the raw record keeps them)"
	WarnTimezone    = "timezone fields that are not a UTC offset, read in WILDIX_TIMEZONE instead"
	WarnAmbiguous   = "wall times repeated by a daylight-saving change with nothing to tell which, read as the earlier"
	WarnNonexistent = "wall times that do not exist in WILDIX_TIMEZONE (skipped by a daylight-saving change; is WILDIX_TIMEZONE the PBX's zone?), read with the offset before the change"
)

// Warnings counts, by kind, what conversion worked around instead of
// failing, keeping the first example of each. The zero value is ready;
// it is safe for concurrent use.
type Warnings struct {
	mu      sync.Mutex
	counts  map[string]int64
	example map[string]string
}

// warn counts a warning, or returns detail as an error when nobody counts.
func (c *Converter) warn(kind, key, field, detail string) error {
	if c.Warnings == nil {
		return errors.New(detail)
	}
	c.Warnings.Add(kind, fmt.Sprintf("key %s, field %q: %s", pseudonym.ShownKey(key), field, detail))
	return nil
}

func (w *Warnings) Add(kind, example string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts == nil {
		w.counts, w.example = map[string]int64{}, map[string]string{}
	}
	if w.counts[kind] == 0 {
		w.example[kind] = example
	}
	w.counts[kind]++
}

// Count returns how many warnings of kind were counted.
func (w *Warnings) Count(kind string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[kind]
}

// Total returns how many warnings were counted.
func (w *Warnings) Total() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, c := range w.counts {
		n += c
	}
	return n
}

// Notes returns one line per kind counted, with its first example, sorted:
// for the log and the run ledger (EndpointResult.Notes).
func (w *Warnings) Notes() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for kind, n := range w.counts {
		out = append(out, fmt.Sprintf("%d %s (first: %s)", n, kind, w.example[kind]))
	}
	slices.Sort(out)
	return out
}
