package exporter

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestScanObject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string // name=value pairs
		err  string
	}{
		{`{}`, nil, ""},
		{` { "a" : "1" , "b":2,"c":null,"d":true, "e":{"x":[1,"]",{"y":"}"}]},"f":[] } `,
			[]string{`a="1"`, `b=2`, `c=null`, `d=true`, `e={"x":[1,"]",{"y":"}"}]}`, `f=[]`}, ""},
		{`{"q\"uote":"a\"b","\u00e9":"é"}`, []string{`q"uote="a\"b"`, `é="é"`}, ""},
		{`[1,2]`, nil, "not a JSON object"},
		{`{"a":1`, nil, "not closed"},
		{`{"a" 1}`, nil, "expected ':'"},
		{`{"a":1}x`, nil, "unexpected data"},
		{`{"a":tru}`, nil, "invalid value"},
		{`{"a":"unterminated}`, nil, "not closed"},
		{`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, nil, "nested deeper"},
	} {
		var got []string
		err := scanObject([]byte(tc.in), func(n, v []byte) error {
			got = append(got, string(n)+"="+string(v))
			return nil
		})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

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
		{`{"id":"12a"}`, `record 3 (key 12a): field "id": cursor "12a" is not a whole number`},
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
	c := &Converter{Endpoint: callEndpoint()}
	row, err := c.Convert(0, json.RawMessage("{\"id\":\"1\",\"from_name\":\"bad \xff\xfe byte\",\"to_name\":\"nul\\u0000here\"}"))
	if err != nil {
		t.Fatal(err)
	}
	if got := row.Values[c.Endpoint.Column("from_name")]; got != "bad \uFFFD byte" { // a run of invalid bytes becomes one U+FFFD
		t.Errorf("from_name = %q", got)
	}
	if got := row.Values[c.Endpoint.Column("to_name")]; got != "nul\x00here" {
		t.Errorf("to_name = %q (the sink decides about NUL)", got)
	}
	if !json.Valid(row.Raw) {
		t.Errorf("raw is not valid JSON: %q", row.Raw)
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
	}{
		{"winter", "2026-01-10 10:00:00", nil, rome, time.Time{}, false, utc("2026-01-10T09:00:00Z")},
		{"summer", "2026-07-10 10:00:00", nil, rome, time.Time{}, false, utc("2026-07-10T08:00:00Z")},
		{"skipped hour: offset before the change", "2026-03-29 02:30:00", nil, rome, time.Time{}, false, utc("2026-03-29T01:30:00Z")},
		{"repeated hour: first occurrence without a hint", "2026-10-25 02:30:00", nil, rome, time.Time{}, false, utc("2026-10-25T00:30:00Z")},
		{"repeated hour: nearest the hint", "2026-10-25 02:30:00", nil, rome, utc("2026-10-25T01:29:00Z"), false, utc("2026-10-25T01:30:00Z")},
		{"record offset pins the anchor", "2026-10-25 02:30:00", off(3600), rome, time.Time{}, true, utc("2026-10-25T01:30:00Z")},
		{"offset used when no zone", "2026-10-25 02:30:00", off(7200), nil, time.Time{}, false, utc("2026-10-25T00:30:00Z")},
		{"neither: UTC", "2026-10-25 02:30:00", nil, nil, time.Time{}, false, utc("2026-10-25T02:30:00Z")},
		{"RFC 3339 as it is", "2026-10-25T02:30:00+05:00", nil, rome, time.Time{}, false, utc("2026-10-24T21:30:00Z")},
	} {
		c := &Converter{Zone: tc.zone}
		got, err := c.Instant(tc.wall, tc.offset, tc.hint, tc.anchor)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%s: %s → %v (%v), want %v", tc.name, tc.wall, got, err, tc.want)
		}
	}
}

func TestParseList(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body  string
		total int64
		n     int
		err   string
	}{
		{`{"type":"result","result":{"total":"2","records":[{"id":"1"},{"id":"2"}]}}`, 2, 2, ""},
		{`{"type":"result","result":{"total":6,"records":[]}}`, 6, 0, ""},
		{`{"type":"result","result":{"records":[{"id":"1"}]}}`, -1, 1, ""},
		{`{"type":"result","result":{"total":null,"records":[]}}`, -1, 0, ""},
		{`<html>oops</html>`, 0, 0, "expected a JSON object"},
		{`{"type":"result","result":{"total":"2","records":[`, 0, 0, "malformed JSON"},
		{`{"type":"error","reason":"Permission denied"}`, 0, 0, `200 OK: "Permission denied"`},
		{`{"type":"result","result":"Success"}`, 0, 0, "result is not a list object"},
		{`{"type":"result","result":{"total":"2"}}`, 0, 0, "no records array"},
		{`{"type":"result","result":{"total":"2","records":{"a":1}}}`, 0, 0, "result is not a list object"},
		{`{"type":"result","result":{"total":"lots","records":[]}}`, 0, 0, `result.total "lots" is not a count`},
		{`{"type":"result","result":{"total":"-1","records":[]}}`, 0, 0, "is not a count"},
		{`{"type":"result","result":{"total":"1","records":[{},{}]}}`, 0, 0, "smaller than the 2 records"},
		{`{"type":"surprise","result":{}}`, 0, 0, `expected "type":"result"`},
	} {
		p, err := ParseList([]byte(tc.body))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.body, err, tc.err)
			}
			continue
		}
		if err != nil || p.Total != tc.total || len(p.Records) != tc.n {
			t.Errorf("%s: %+v %v", tc.body, p, err)
		}
	}
}
