package record

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wildix-export/wildix-export/exporter/jsonscan"
)

// FuzzConvert: the one-pass scanner agrees with encoding/json on every
// valid JSON object, and converting any record never panics.
func FuzzConvert(f *testing.F) {
	f.Add([]byte(`{"id":"8455","start":"2026-07-20 19:36:27","answer":"","end":"2026-07-20 19:40:54","duration":"267","billsec":"257","timezone":"-0400","cost":"0.5"}`))
	f.Add([]byte(`{"id":1,"vendor":{"name":"Wildix","x":[1,{"y":null}]},"note":"a\"b\\c\u00e9\n"}`))
	f.Add([]byte(`{"id":"1","start":"2026-10-25 02:30:00","end":"2026-10-25 02:10:00","duration":"2400","timezone":"+0200"}`))
	f.Add([]byte(`{"id":"1","a":"1","a":"2"}`))
	f.Add([]byte(`{"id":"1","src":"\udc00","x":[1e131072,{"k":"\ud800\u0041","k":1e-16384}],"cost":"\u0000"}`))
	f.Add([]byte(`{"id":"1","start":"2026-10-25 02:30:00","end":"2026-10-25 02:10:00","answer":"2026-10-25 02:05:00","duration":"2400","billsec":"300","cost":"2.5E-3"}`))
	ep := Builtin()[0]
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &Converter{Endpoint: &ep}
		c.Convert(0, b) // must not panic, strict
		lenient := &Converter{Endpoint: &ep, Zone: rome, Warnings: &Warnings{}}
		// nor counting warnings in a zone, and what it converts PostgreSQL
		// can store: repairing it again changes nothing
		if row, err := lenient.Convert(0, b); err == nil {
			for _, j := range []json.RawMessage{row.Raw, row.Extra} {
				if _, notes, err := repair(j); j != nil && (err != nil || len(notes) > 0 || !json.Valid(j)) {
					t.Fatalf("converted %q to %q: still to repair: %v %v", b, j, notes, err)
				}
			}
		}
		if err := jsonscan.Object(b, func(_, _ []byte) error { return nil }); err == nil && !json.Valid(b) {
			t.Fatalf("scanner accepted invalid JSON: %q", b)
		}
		if !utf8.Valid(b) {
			return // Convert repairs UTF-8 before scanning: the scanner's precondition
		}
		var want map[string]json.RawMessage
		if json.Unmarshal(b, &want) != nil || want == nil || strings.Count(string(b), "[")+strings.Count(string(b), "{") > jsonscan.MaxDepth {
			return
		}
		got := map[string]string{}
		if err := jsonscan.Object(b, func(n, v []byte) error { got[string(n)] = string(v); return nil }); err != nil {
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
