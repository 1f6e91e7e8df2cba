package exporter

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseList: any answer body either parses into a consistent page or
// is an error; never a panic.
func FuzzParseList(f *testing.F) {
	f.Add([]byte(`{"type":"result","result":{"total":"2","records":[{"id":"1"},{"id":"2"}]}}`))
	f.Add([]byte(`{"type":"result","result":{"total":6,"records":[]}}`))
	f.Add([]byte(`{"type":"error","reason":"404 Not Found","code":404}`))
	f.Add([]byte(`<html>502</html>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParseList(body)
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON: %q", body)
		}
		for i, r := range p.Records {
			if !json.Valid(r) {
				t.Fatalf("record %d is not valid JSON: %q", i, r)
			}
		}
		if p.Total >= 0 && int64(len(p.Records)) > p.Total {
			t.Fatalf("total %d < %d records accepted", p.Total, len(p.Records))
		}
	})
}

// FuzzConvert: the one-pass scanner agrees with encoding/json on every
// valid JSON object, and converting any record never panics.
func FuzzConvert(f *testing.F) {
	f.Add([]byte(`{"id":"8455","start":"2026-07-20 19:36:27","answer":"","end":"2026-07-20 19:40:54","duration":"267","billsec":"257","timezone":"-0400","cost":"0.5"}`))
	f.Add([]byte(`{"id":1,"vendor":{"name":"Wildix","x":[1,{"y":null}]},"note":"a\"b\\c\u00e9\n"}`))
	f.Add([]byte(`{"id":"1","start":"2026-10-25 02:30:00","end":"2026-10-25 02:10:00","duration":"2400","timezone":"+0200"}`))
	f.Add([]byte(`{"id":"1","a":"1","a":"2"}`))
	ep := Builtin()[0]
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &Converter{Endpoint: &ep}
		c.Convert(0, b) // must not panic
		if err := scanObject(b, func(_, _ []byte) error { return nil }); err == nil && !json.Valid(b) {
			t.Fatalf("scanner accepted invalid JSON: %q", b)
		}
		if !utf8.Valid(b) {
			return // Convert repairs UTF-8 before scanning: the scanner's precondition
		}
		var want map[string]json.RawMessage
		if json.Unmarshal(b, &want) != nil || want == nil || strings.Count(string(b), "[")+strings.Count(string(b), "{") > maxDepth {
			return
		}
		got := map[string]string{}
		if err := scanObject(b, func(n, v []byte) error { got[string(n)] = string(v); return nil }); err != nil {
			t.Fatalf("valid object refused: %v\n%s", err, b)
		}
		if len(got) != len(want) {
			t.Fatalf("members: scanner %d, encoding/json %d\n%s", len(got), len(want), b)
		}
		for k, v := range want {
			if got[k] != string(v) {
				t.Fatalf("member %q: scanner %s, encoding/json %s", k, got[k], v)
			}
		}
	})
}
