package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

func callEndpoint() *Endpoint {
	e := Builtin()[0]
	return &e
}

func TestConvertTypesAndValues(t *testing.T) {
	t.Parallel()
	c := &Converter{Endpoint: callEndpoint()}
	rec := `{"id":"42","start":"2026-01-10 10:00:00","answer":"","end":"2026-01-10 10:05:00","duration":"300","billsec":0,` +
		`"disposition":"NO ANSWER","from_name":"Line1\nLine2 \"q\" 😀","to_number":"+39021234","cost":"0.0123","timezone":"+0100",` +
		`"tags":["a","b"],"userfield":"","lastdata":12.5}`
	row, err := c.Convert(0, json.RawMessage(rec))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Endpoint
	get := func(name string) any { return row.Values[e.Column(name)] }
	want := map[string]any{
		"id": int64(42), "start_time": time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC), "answer_time": nil,
		"end_time": time.Date(2026, 1, 10, 9, 5, 0, 0, time.UTC), "duration": int64(300), "billsec": int64(0),
		"from_name": "Line1\nLine2 \"q\" 😀", "to_number": "+39021234", "cost": Decimal("0.0123"), "tz_offset": "+0100",
		"userfield": "", "lastdata": "12.5", "src": nil,
	}
	for k, v := range want {
		if got := get(k); !reflect.DeepEqual(got, v) {
			t.Errorf("%s = %#v, want %#v", k, got, v)
		}
	}
	if row.Key != "42" || row.Cursor != 42 || row.Wall != "2026-01-10 10:00:00" {
		t.Errorf("key %q cursor %d wall %q", row.Key, row.Cursor, row.Wall)
	}
	if string(row.Extra) != `{"tags":["a","b"]}` {
		t.Errorf("extra = %s", row.Extra)
	}
}

func TestConvertRefusesBadRecords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ rec, want string }{
		{`{"start":"2026-01-01 00:00:00"}`, `record 3: field "id": the key field is missing or empty`},
		{`{"id":""}`, `field "id": the key field is missing or empty`},
		{`{"id":"12a"}`, `record 3 (key 12a): field "id": cursor: "12a" is not a whole number`},
		{`{"id":"-1"}`, `record 3 (key -1): field "id": cursor -1 is below 1`},
		{`{"id":"0"}`, `cursor 0 is below 1`},
		{`{"id":"9223372036854775808"}`, `cursor: 9223372036854775808 does not fit a bigint column`},
		{`{"id":"1e400"}`, `cursor: 1e400 does not fit a bigint column`},
		{`{"id":"1.5"}`, `cursor: "1.5" is not a whole number`},
		{`{"id":"1e99999"}`, `cursor: "1e99999" is not a whole number`},
		{`{"id":"1","start":"2026-02-30 10:00:00"}`, `field "start": "2026-02-30 10:00:00" is not a time`},
		{`{"id":"1","start":"yesterday"}`, `is not a time`},
		{`{"id":"1","duration":"five"}`, `field "duration": "five" is not a whole number`},
		{`{"id":"1","duration":"99999999999"}`, `does not fit an integer column`},
		{`{"id":"1","cost":"1,50"}`, `field "cost": "1,50" is not a number`},
		{`"just a string"`, `record 3: not a JSON object`},
	} {
		_, err := (&Converter{Endpoint: callEndpoint()}).Convert(3, json.RawMessage(tc.rec))
		var re *RecordError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.rec, err, tc.want)
		}
	}
}

func TestConvertInvalidUTF8AndNUL(t *testing.T) {
	t.Parallel()
	rec := json.RawMessage("{\"id\":\"1\",\"from_name\":\"bad \xff\xfe byte\",\"to_name\":\"nul\\u0000here\"}")
	if _, err := (&Converter{Endpoint: callEndpoint()}).Convert(0, rec); err == nil || !strings.Contains(err.Error(), `key 1): field "to_name"`) {
		t.Fatalf("without Warnings: err %v, want the NUL refused naming key and field", err)
	}
	w := &Warnings{}
	c := &Converter{Endpoint: callEndpoint(), Warnings: w}
	row, err := c.Convert(0, rec)
	if err != nil {
		t.Fatal(err)
	}
	if got := row.Values[c.Endpoint.Column("from_name")]; got != "bad \uFFFD byte" { // a run of invalid bytes becomes one U+FFFD
		t.Errorf("from_name = %q", got)
	}
	if got := row.Values[c.Endpoint.Column("to_name")]; got != "nul\uFFFDhere" {
		t.Errorf("to_name = %q, want NUL as U+FFFD in every sink", got)
	}
	if !json.Valid(row.Raw) || strings.Contains(string(row.Raw), `\u0000`) {
		t.Errorf("raw %q: want valid JSON without \\u0000", row.Raw)
	}
	if w.Count(WarnEscape) != 1 {
		t.Errorf("warnings %q, want the NUL counted", w.Notes())
	}
}

// TestInstantDaylightSaving checks the documented rule on Rome's changes
// of 2026: 29 March 02:00→03:00 (skipped hour), 25 October 03:00→02:00
// (repeated hour).
func TestInstantDaylightSaving(t *testing.T) {
	t.Parallel()
	rome, _ := time.LoadLocation("Europe/Rome")
	utc := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	off := func(s int) *int { return &s }
	for _, tc := range []struct {
		name   string
		wall   string
		offset *int
		zone   *time.Location
		hint   time.Time
		anchor bool
		want   time.Time
		how    string // the warning kind of a documented choice
	}{
		{"winter", "2026-01-10 10:00:00", nil, rome, time.Time{}, false, utc("2026-01-10T09:00:00Z"), ""},
		{"summer", "2026-07-10 10:00:00", nil, rome, time.Time{}, false, utc("2026-07-10T08:00:00Z"), ""},
		{"skipped hour: offset before the change", "2026-03-29 02:30:00", nil, rome, time.Time{}, false, utc("2026-03-29T01:30:00Z"), WarnNonexistent},
		{"repeated hour: the earlier without a hint", "2026-10-25 02:30:00", nil, rome, time.Time{}, false, utc("2026-10-25T00:30:00Z"), WarnAmbiguous},
		{"repeated hour: nearest the hint", "2026-10-25 02:30:00", nil, rome, utc("2026-10-25T01:29:00Z"), false, utc("2026-10-25T01:30:00Z"), ""},
		{"record offset pins the anchor", "2026-10-25 02:30:00", off(3600), rome, time.Time{}, true, utc("2026-10-25T01:30:00Z"), ""},
		{"offset used when no zone", "2026-10-25 02:30:00", off(7200), nil, time.Time{}, false, utc("2026-10-25T00:30:00Z"), ""},
		{"RFC 3339 as it is", "2026-10-25T02:30:00+05:00", nil, rome, time.Time{}, false, utc("2026-10-24T21:30:00Z"), ""},
		{"RFC 3339 needs no zone", "2026-10-25T02:30:00Z", nil, nil, time.Time{}, false, utc("2026-10-25T02:30:00Z"), ""},
	} {
		c := &Converter{Zone: tc.zone}
		got, how, err := c.Instant(tc.wall, tc.offset, tc.hint, tc.anchor)
		if err != nil || !got.Equal(tc.want) || how != tc.how {
			t.Errorf("%s: %s → %v, %q (%v), want %v, %q", tc.name, tc.wall, got, how, err, tc.want, tc.how)
		}
	}
	// Neither a zone nor an offset: nothing is guessed.
	_, _, err := (&Converter{}).Instant("2026-10-25 02:30:00", nil, time.Time{}, true)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "set WILDIX_TIMEZONE to the PBX's time zone, e.g. Europe/Rome") {
		t.Errorf("no zone, no offset: err %v, want ErrConfig telling to set WILDIX_TIMEZONE", err)
	}
}

// TestTimezoneNeverGuessed: a call record without a timezone offset, or
// with one that is not an offset, never becomes UTC by default.
func TestTimezoneNeverGuessed(t *testing.T) {
	t.Parallel()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	const base = `{"id":"5","start":"2026-01-10 10:00:00","end":"2026-01-10 10:05:00","duration":"300","billsec":"0"`
	for _, tc := range []struct {
		name     string
		rec      string
		zone     *time.Location
		counted  bool   // with Warnings
		err      string // "" when it converts
		config   bool   // the error wraps ErrConfig
		start    string // RFC 3339, when it converts
		warnings int64
	}{
		{"offset, no zone", base + `,"timezone":"+0100"}`, nil, false, "", false, "2026-01-10T09:00:00Z", 0},
		{"no offset, no zone", base + `}`, nil, true, `record 0 (key 5): field "start": bad configuration: "2026-01-10 10:00:00" has no UTC offset`, true, "", 0},
		{"empty offset, no zone", base + `,"timezone":""}`, nil, true, "set WILDIX_TIMEZONE", true, "", 0},
		{"no offset, zone", base + `}`, rome, false, "", false, "2026-01-10T09:00:00Z", 0},
		{"bad offset, no zone", base + `,"timezone":"CET"}`, nil, true, `field "timezone": bad configuration: "CET" is not a UTC offset such as +0100 and WILDIX_TIMEZONE is not set`, true, "", 0},
		{"bad offset, zone, counted", base + `,"timezone":"+25:00"}`, rome, true, "", false, "2026-01-10T09:00:00Z", 1},
		{"bad offset, zone, not counted", base + `,"timezone":"+25:00"}`, rome, false, `field "timezone": "+25:00" is not a UTC offset such as +0100`, false, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &Converter{Endpoint: callEndpoint(), Zone: tc.zone}
			if tc.counted {
				c.Warnings = &Warnings{}
			}
			row, err := c.Convert(0, json.RawMessage(tc.rec))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || errors.Is(err, ErrConfig) != tc.config {
					t.Fatalf("err %v, want %q (ErrConfig: %v)", err, tc.err, tc.config)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := row.Values[c.Endpoint.Column("start_time")].(time.Time); got.Format(time.RFC3339) != tc.start {
				t.Fatalf("start = %v, want %s", got, tc.start)
			}
			if tc.counted && c.Warnings.Count(WarnTimezone) != tc.warnings {
				t.Fatalf("timezone warnings %d, want %d", c.Warnings.Count(WarnTimezone), tc.warnings)
			}
		})
	}
}

// TestStartResolvedByItsEnd: a start in the repeated autumn hour, without
// an offset, is the occurrence its end agrees with, the duration written
// in any form PHP uses.
func TestStartResolvedByItsEnd(t *testing.T) {
	t.Parallel()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	for _, dur := range []string{"3300", "3.3e3", "3300.0"} {
		w := &Warnings{}
		c := &Converter{Endpoint: callEndpoint(), Zone: rome, Warnings: w}
		row, err := c.Convert(0, json.RawMessage(`{"id":"1","start":"2026-10-25 02:10:00","end":"2026-10-25 02:05:00","duration":"`+dur+`","billsec":"0"}`))
		if err != nil {
			t.Fatal(err)
		}
		start, end := row.Values[c.Endpoint.Column("start_time")], row.Values[c.Endpoint.Column("end_time")]
		if start != time.Date(2026, 10, 25, 0, 10, 0, 0, time.UTC) || end != time.Date(2026, 10, 25, 1, 5, 0, 0, time.UTC) || w.Total() != 0 {
			t.Errorf("duration %s: start %v, end %v, warnings %v; want 00:10Z, 01:05Z, none", dur, start, end, w.Notes())
		}
	}
}

// TestWarningsInsteadOfErrors: with a Warnings, a value that cannot be
// taken as sent becomes NULL and is counted; the key, cursor and time
// fields still fail the record.
func TestWarningsInsteadOfErrors(t *testing.T) {
	t.Parallel()
	rec := `{"id":"9","start":"2026-01-10 10:00:00","duration":"five","billsec":"2.5","cost":"1,50","timezone":"+0100"}`
	_, err := (&Converter{Endpoint: callEndpoint()}).Convert(0, json.RawMessage(rec))
	if err == nil || !strings.Contains(err.Error(), `field "duration": "five" is not a whole number`) {
		t.Fatalf("without Warnings: err %v, want the value refused", err)
	}
	w := &Warnings{}
	c := &Converter{Endpoint: callEndpoint(), Warnings: w}
	row, err := c.Convert(0, json.RawMessage(rec))
	if err != nil {
		t.Fatal(err)
	}
	for _, col := range []string{"duration", "billsec", "cost"} {
		if v := row.Values[c.Endpoint.Column(col)]; v != nil {
			t.Errorf("%s = %#v, want NULL", col, v)
		}
	}
	if got := w.Count(WarnValue); got != 3 {
		t.Fatalf("counted %d, want 3: %v", got, w.Notes())
	}
	notes := w.Notes()
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "3 values not convertible") || !strings.Contains(notes[0], `key 9, field "`) {
		t.Fatalf("notes %q", notes)
	}
	for _, bad := range []string{`{"id":"x9","start":"2026-01-10 10:00:00"}`, `{"id":"9","start":"soon","timezone":"+0100"}`} {
		if _, err := c.Convert(0, json.RawMessage(bad)); err == nil {
			t.Errorf("%s: converted; a bad cursor or time field must fail the record", bad)
		}
	}
	if w.Total() != 3 {
		t.Fatalf("total %d, want 3", w.Total())
	}
}

// TestWallTimeAgreesWithTimeParse: the fast reader of PBX wall times gives
// what time.Parse gives, or leaves the string to it, over every month and
// day edge of common and leap years, every hour, minute and second edge,
// and malformed strings.
func TestWallTimeAgreesWithTimeParse(t *testing.T) {
	t.Parallel()
	var cases []string
	for _, y := range []string{"0000", "0001", "1900", "2000", "2024", "2026", "2100", "9999"} {
		for mo := 0; mo <= 13; mo++ {
			for d := 0; d <= 32; d++ {
				cases = append(cases, fmt.Sprintf("%s-%02d-%02d 12:30:45", y, mo, d))
			}
		}
	}
	for _, hms := range []string{"00:00:00", "23:59:59", "24:00:00", "23:60:00", "23:59:60", "12:30:60", "12:60:30", "-1:30:30", "9:05:05", "09:5:05", "0a:00:00"} {
		cases = append(cases, "2026-03-29 "+hms, "2026-10-25T"+hms)
	}
	cases = append(cases, "", "2026-03-29", "2026-03-29 02:30:00Z", "2026-03-29T02:30:00+01:00", "2026/03/29 02:30:00",
		"2026-03-29  2:30:00", "+026-03-29 02:30:00", "2026-03-29 02:30:00 ", "２026-03-29 02:30:00")
	checked := 0
	for _, s := range cases {
		got, ok := wallTime(s)
		layout := WallLayout
		if len(s) > 10 && s[10] == 'T' {
			layout = "2006-01-02T15:04:05"
		}
		want, err := time.Parse(layout, s)
		switch {
		case ok && (err != nil || !got.Equal(want) || got.Location() != time.UTC):
			t.Fatalf("wallTime(%q) = %v, but time.Parse gives %v, %v", s, got, want, err)
		case !ok && err == nil && strings.Count(s, " ") == 1 && !strings.ContainsAny(s, "+Z") && len(s) == 19:
			t.Fatalf("wallTime(%q) left to time.Parse a time it reads (%v)", s, want)
		case ok:
			checked++
		}
	}
	if checked < 2000 {
		t.Fatalf("only %d of %d strings read by wallTime: the test checks too little", checked, len(cases))
	}
}

// A row's key and wall time outlive its page (snapshots keep every key
// read, time windows the wall times of the look-back): they must not keep
// the PBX's answer they were read from alive, or memory grows with the
// range read instead of the page. Values may view the answer; those two
// may not.
func TestKeysAndTimesDoNotHoldTheirPage(t *testing.T) {
	t.Parallel()
	const pages, perPage = 20, 1000
	conv := &Converter{Endpoint: callEndpoint()}
	kept := map[string]string{}
	var bodies []weak.Pointer[byte]
	for p := range pages {
		var b strings.Builder
		b.WriteString(`{"type":"result","result":{"total":"20000","records":[`)
		for i := range perPage {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":"%d","start":"2026-01-10 10:%02d:%02d","end":"2026-01-10 11:00:00","duration":"60","timezone":"+0100","from_number":"2%05d"}`,
				p*perPage+i+1, i/60%60, i%60, i)
		}
		b.WriteString(`]}}`)
		body := []byte(b.String())
		bodies = append(bodies, weak.Make(&body[0]))
		page, err := pbx.ParseList(body)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := conv.Rows(page.Records)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			kept[row.Key] = row.Wall
		}
	}
	conv = nil
	runtime.GC()
	runtime.GC()
	alive := 0
	for _, w := range bodies {
		if w.Value() != nil {
			alive++
		}
	}
	if len(kept) != pages*perPage {
		t.Fatalf("%d keys kept, want %d", len(kept), pages*perPage)
	}
	if alive > 0 {
		t.Errorf("%d of %d answers still in memory after their keys and wall times were kept and the rest dropped", alive, pages)
	}
	runtime.KeepAlive(kept)
}

// TestTimesKeepWholeMicroseconds: a time with a fraction of a second keeps
// it to the microsecond, what PostgreSQL keeps, so that every sink holds
// the same instant.
func TestTimesKeepWholeMicroseconds(t *testing.T) {
	t.Parallel()
	c := &Converter{Endpoint: callEndpoint()}
	row, err := c.Convert(0, json.RawMessage(`{"id":"1","start":"2026-01-10T10:00:00.1234567Z","end":"2026-01-10 10:00:05.25","timezone":"+0100"}`))
	if err != nil {
		t.Fatal(err)
	}
	start, end := row.Values[c.Endpoint.Column("start_time")].(time.Time), row.Values[c.Endpoint.Column("end_time")].(time.Time)
	if start.Nanosecond() != 123456000 || end.Nanosecond() != 250000000 {
		t.Fatalf("start %v, end %v: want the fraction to the microsecond", start, end)
	}
}

// TestMessagesLeaveOutNumberKeys: a record's error and the note of its
// warnings name its key only when the key holds no number
// (pseudonym.ShownKey): a custom endpoint keyed by a phone number, or a
// call whose id reads as one, put the number in clear into the run
// ledger and the log, where forget does not reach (attack 4, F4).
func TestMessagesLeaveOutNumberKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ key, want string }{
		{"204", "key 204"},
		{"A-17\tx", "key A-17,x"},
		{"+393471110007", "key " + pseudonym.KeyNotNamed},
		{"347 111 0007", "key " + pseudonym.KeyNotNamed},
		{"shop\t0039 352 851 2784", "key " + pseudonym.KeyNotNamed},
	} {
		msg := (&RecordError{Index: 3, Key: tc.key, Field: "x", Err: errors.New("bad")}).Error()
		if want := "record 3 (" + tc.want + `): field "x": bad`; msg != want {
			t.Errorf("RecordError of key %q = %q, want %q", tc.key, msg, want)
		}
		w := &Warnings{}
		if err := (&Converter{Warnings: w}).warn(WarnValue, tc.key, "x", "bad"); err != nil {
			t.Fatal(err)
		}
		if notes := strings.Join(w.Notes(), ""); !strings.Contains(notes, "(first: "+tc.want+`, field "x": bad)`) {
			t.Errorf("notes of key %q = %q, want %q", tc.key, notes, tc.want)
		}
	}
}
