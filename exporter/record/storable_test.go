package record

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/jsonscan"
	"github.com/wildix-export/wildix-export/internal/pgtest"
)

// TestHoldableAgreesWithPostgreSQL holds numberHoldable and stringHoldable
// to what the real server's jsonb and numeric accept, at both edges of
// each limit.
func TestHoldableAgreesWithPostgreSQL(t *testing.T) {
	t.Parallel()
	_, pool := pgtest.Schema(t)
	ctx := context.Background()
	digits := func(n int) string { return "1" + strings.Repeat("0", n-1) }
	numbers := []string{"0", "-12.5", "1e131071", "1e131072", "-1e131072", "9.9e131071", "0.1e131072", "100e131070",
		"1e-16383", "1e-16384", "1.5e-16383", "0e-16384", "0e131072", "0e999999", "1E+131071", "1e0000000000000131071",
		"1e2147483647", "0e1073741822", "0e1073741823", "0e-1073741823", "0.00001e-16379", "2.5E-3",
		digits(131072), digits(131073), "0." + strings.Repeat("0", 16382) + "1", "0." + strings.Repeat("0", 16383) + "1",
		"1." + strings.Repeat("0", 16383), "1." + strings.Repeat("0", 16384)}
	for _, n := range numbers {
		var ok bool
		_, err := pool.Exec(ctx, `SELECT $1::text::jsonb`, n)
		ok = err == nil
		if got := numberHoldable([]byte(n)); got != ok {
			t.Errorf("%.40s (%d bytes): numberHoldable %v, jsonb accepts: %v (%v)", n, len(n), got, ok, err)
		}
		if d, err := jsonscan.DecimalText(n); err == nil {
			_, err := pool.Exec(ctx, `SELECT $1::text::numeric`, string(d))
			if got := numberHoldable([]byte(d)); got != (err == nil) {
				t.Errorf("%.40s as a Decimal: numberHoldable %v, numeric accepts: %v", n, got, err)
			}
		}
	}
	for _, s := range []string{`"a"`, `"\u0000"`, `"\\u0000"`, `"\\\u0000"`, `"\udc00"`, `"\ud800\u0041"`, `"\ud800"`, `"\ud800\udc00"`,
		`"\uDBFF\uDFFF"`, `"\ud800\ud800\udc00"`, `"x\ud83d\ude00y"`, `"\u00e9\u0001"`, `"\ud800\\udc00"`} {
		_, err := pool.Exec(ctx, `SELECT $1::text::jsonb`, s)
		if got := stringHoldable([]byte(s)); got != (err == nil) {
			t.Errorf("%s: stringHoldable %v, jsonb accepts: %v", s, got, err)
		}
		if !stringHoldable([]byte(s)) && !badEscape([]byte(s)) {
			t.Errorf("%s: refused but badEscape would not look", s)
		}
	}
}

// TestConvertContainsPoison: each value PostgreSQL cannot store, in a
// declared field, an undeclared one and a nested one, is made storable
// (checked on the real server), counted with the key and the field, and
// the rest of the record is as sent.
func TestConvertContainsPoison(t *testing.T) {
	t.Parallel()
	_, pool := pgtest.Schema(t)
	ctx := context.Background()
	long := "1" + strings.Repeat("0", 131072)
	for _, tc := range []struct {
		name, field, value string
		kind               string
		col                string // the declared column, if any
		want               any    // its value
	}{
		{"low surrogate in text", "src", `"\udc00"`, WarnEscape, "src", "\uFFFD"},
		{"high surrogate then a letter", "dst", `"\ud800\u0041"`, WarnEscape, "dst", "\uFFFDA"},
		{"NUL in text", "lastdata", `"a\u0000b"`, WarnEscape, "lastdata", "a\uFFFDb"},
		{"huge exponent in numeric", "cost", `1e131072`, WarnNumber, "cost", nil},
		{"tiny exponent in numeric", "cost", `1e-16384`, WarnNumber, "cost", nil},
		{"huge integer in numeric", "cost", long, WarnNumber, "cost", nil},
		{"huge integer in text", "userfield", long, WarnNumber, "userfield", long},
		{"huge integer as a string in numeric", "cost", `"` + long + `"`, WarnValue, "cost", nil},
		{"huge exponent undeclared", "vendor_score", `1e131072`, WarnNumber, "", nil},
		{"surrogate undeclared", "vendor_note", `"\udc00"`, WarnEscape, "", nil},
		{"NUL undeclared", "vendor_note", `"\u0000"`, WarnEscape, "", nil},
		{"NUL in a name", "vendor\u0000x", `"1"`, WarnEscape, "", nil},
		{"nested", "vendor", `{"a":[1,{"b":"\udc00","n":1e-16384}]}`, WarnEscape, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, _ := json.Marshal(tc.field)
			rec := `{"id":"77","start":"2026-01-10 10:00:00","timezone":"+0100","from_name":"Zoë",` + string(name) + `:` + tc.value + `}`
			w := &Warnings{}
			c := &Converter{Endpoint: callEndpoint(), Warnings: w}
			row, err := c.Convert(0, json.RawMessage(rec))
			if err != nil {
				t.Fatal(err)
			}
			if w.Count(tc.kind) == 0 {
				t.Fatalf("warnings %q, want one of %q", w.Notes(), tc.kind)
			}
			field := strings.ReplaceAll(tc.field, "\x00", "\uFFFD")
			if notes := strings.Join(w.Notes(), "\n"); !strings.Contains(notes, "key 77, field \""+field) {
				t.Errorf("notes %q: want key 77 and field %q named", notes, field)
			}
			if tc.col != "" {
				if got := row.Values[c.Endpoint.Column(tc.col)]; got != tc.want {
					t.Errorf("%s = %.40v, want %.40v", tc.col, got, tc.want)
				}
			}
			if got := row.Values[c.Endpoint.Column("from_name")]; got != "Zoë" {
				t.Errorf("from_name = %q: the rest of the record must be as sent", got)
			}
			for what, j := range map[string]json.RawMessage{"raw": row.Raw, "extra": row.Extra} {
				if j == nil {
					continue
				}
				if _, err := pool.Exec(ctx, `SELECT $1::text::jsonb`, string(j)); err != nil {
					t.Errorf("%s %.80s: PostgreSQL refuses it: %v", what, j, err)
				}
			}
			if _, err := pool.Exec(ctx, `SELECT $1::text`, row.Values[c.Endpoint.Column("src")]); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestConvertPoisonKeptExactly: an unholdable number becomes a string of
// its exact text, in raw and extra alike.
func TestConvertPoisonKeptExactly(t *testing.T) {
	t.Parallel()
	c := &Converter{Endpoint: callEndpoint(), Warnings: &Warnings{}}
	row, err := c.Convert(0, json.RawMessage(`{"id":"5","x":1e-16384,"cost":1E+131072}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(row.Extra) != `{"x":"1e-16384"}` {
		t.Errorf("extra %s", row.Extra)
	}
	if string(row.Raw) != `{"id":"5","x":"1e-16384","cost":"1E+131072"}` {
		t.Errorf("raw %s", row.Raw)
	}
}

// TestConvertDuplicateNames: of members named twice, the last is kept in
// the column, in extra and in raw (as jsonb would keep it), and counted.
func TestConvertDuplicateNames(t *testing.T) {
	t.Parallel()
	w := &Warnings{}
	c := &Converter{Endpoint: callEndpoint(), Warnings: w}
	row, err := c.Convert(0, json.RawMessage(`{"id":"3","src":"a","x":1,"src":"b","x":{"k":1,"k":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := row.Values[c.Endpoint.Column("src")]; got != "b" {
		t.Errorf("src = %q, want the last", got)
	}
	if string(row.Extra) != `{"x":{"k":2}}` || string(row.Raw) != `{"id":"3","src":"b","x":{"k":2}}` {
		t.Errorf("extra %s, raw %s", row.Extra, row.Raw)
	}
	if w.Count(WarnDuplicate) != 3 {
		t.Errorf("notes %q, want 3 duplicates counted", w.Notes())
	}
	for _, rec := range []string{`{"id":"3","src":"a","src":"b"}`, `{"id":"3","x":"a","x":"b"}`} {
		row, err := c.Convert(0, json.RawMessage(rec))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(string(row.Raw), `"a"`) != 0 || w.Count(WarnDuplicate) != 4+int64(strings.Count(rec, "x")/2) {
			t.Errorf("%s: raw %s, notes %q: want the first dropped and counted", rec, row.Raw, w.Notes())
		}
	}
	if notes := strings.Join(w.Notes(), ""); !strings.Contains(notes, `key 3, field "x.k"`) {
		t.Errorf("notes %q, want key and field named", notes)
	}
}

// TestConvertCleanRecordUntouched: escapes jsonb takes (é, an emoji as a
// surrogate pair), exponents it holds, nested values and arrays leave the
// record's bytes as sent, with no warning.
func TestConvertCleanRecordUntouched(t *testing.T) {
	t.Parallel()
	w := &Warnings{}
	c := &Converter{Endpoint: callEndpoint(), Warnings: w}
	for _, rec := range []string{
		`{"id":"3","src":"Zo\u00eb \ud83d\ude00","cost":2.5E-3,"x":[1,2],"y":{"k":"e","n":1e5}}`,
		`{"id":"4","src":"\\u0000 is text here","cost":"1e1000"}`,
	} {
		raw := json.RawMessage(rec)
		row, err := c.Convert(0, raw)
		if err != nil {
			t.Fatal(err)
		}
		if &row.Raw[0] != &raw[0] || len(row.Raw) != len(raw) {
			t.Errorf("%s: raw rewritten as %s", rec, row.Raw)
		}
	}
	if w.Total() != 0 {
		t.Errorf("warnings %q on clean records", w.Notes())
	}
}
