package exporter

import (
	"encoding/json"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"
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

// FuzzDecimalText: whatever the PBX sends for a number, decimalText either
// refuses it or returns plain decimal text of exactly the same value
// (math/big as the oracle), and wholeNumber agrees with it; never a panic.
func FuzzDecimalText(f *testing.F) {
	for _, s := range []string{"1e2", "2.5E-3", "-1.5e+3", "0.0123", ".5", "5.", "+7", "-0e5", "1e1000", "1e-1000", "9223372036854775807", "9.3e18", "1.5e", "0x10", "NAN"} {
		f.Add(s)
	}
	plain := regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := decimalText(s)
		n, werr := wholeNumber(s, 64)
		if err != nil {
			if werr == nil {
				t.Fatalf("%q: a whole number %d but not a decimal: %v", s, n, err)
			}
			return
		}
		if !plain.MatchString(string(d)) {
			t.Fatalf("%q → %q: not plain decimal text", s, d)
		}
		want, ok := new(big.Rat).SetString(s)
		got, ok2 := new(big.Rat).SetString(string(d))
		if !ok || !ok2 || want.Cmp(got) != 0 {
			t.Fatalf("%q → %q: value changed (oracle ok %v)", s, d, ok)
		}
		switch {
		case werr == nil && (!got.IsInt() || got.Num().Cmp(big.NewInt(n)) != 0):
			t.Fatalf("%q: whole number %d, decimal %s", s, n, d)
		case werr != nil && got.IsInt() && got.Num().IsInt64():
			t.Fatalf("%q: whole and in range (%s) but refused: %v", s, d, werr)
		}
	})
}
