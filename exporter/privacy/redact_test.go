package privacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// TestRedactorHandler: a number in a log line's message, a string, an
// error, a list of notes, a group or an attribute added with With comes
// out as its pseudonym, in text and JSON logs; a run id stays.
func TestRedactorHandler(t *testing.T) {
	t.Parallel()
	k := keyed(t)
	r := &Redactor{Keys: k}
	p := k.Number("+393331234567")
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var b bytes.Buffer
		log := slog.New(r.Handler(h(&b))).With("caller", "0039 333 1234567")
		log.WithGroup("g").Info("call from +393331234567 refused", "run_id", "20261207T024500Z-abc123",
			"err", fmt.Errorf("key 7, number %q: %w", "393331234567", fs.ErrInvalid),
			"notes", []string{"first: +39 333 1234567"}, "leg", slog.GroupValue(slog.String("dst", "(+39) 333 1234567")))
		out := b.String()
		for _, s := range []string{"3331234567", "333 1234567"} {
			if strings.Contains(out, s) {
				t.Errorf("%q in the log:\n%s", s, out)
			}
		}
		if strings.Count(out, p) < 5 || !strings.Contains(out, "20261207T024500Z-abc123") {
			t.Errorf("want the pseudonym in each of the 5 places and the run id as it is:\n%s", out)
		}
	}
	err := fmt.Errorf("export call_history: %w", fs.ErrNotExist)
	if r.Error(err) != err {
		t.Error("an error without a number is wrapped")
	}
	red := r.Error(fmt.Errorf("number +393331234567: %w", fs.ErrNotExist))
	if !errors.Is(red, fs.ErrNotExist) || strings.Contains(red.Error(), "3331234567") || !strings.Contains(red.Error(), p) {
		t.Errorf("redacted error %q: want the pseudonym, unwrapping to the cause", red)
	}
}

// TestRedactorLeavesOutValues: a conversion's error and warnings quote the
// record's value, which may be a name (review 30-pseudo-attack finding
// 6): through the Redactor they name the record's key, the field and what
// is wrong, without the value. (A key is shown as it is, its numbers
// replaced: it is how the record is found.)
func TestRedactorLeavesOutValues(t *testing.T) {
	t.Parallel()
	k := keyed(t)
	r := &Redactor{Keys: k}
	calls := endpoint(t, "call_history")
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	bad := func(r ...string) string { return strings.NewReplacer(r...).Replace(inbound) }
	// Errors: the record is refused.
	for _, raw := range []string{
		bad(`"start":"2026-12-01 10:00:00"`, `"start":"2026-01-01 Luca Timename"`),
		bad(`"timezone":"+0000"`, `"timezone":"Luca Zonename"`),
	} {
		c := &record.Converter{Endpoint: calls}
		_, err := c.Convert(0, json.RawMessage(raw))
		if err == nil {
			t.Fatalf("no error for %s", raw)
		}
		msg := r.Error(err).Error()
		if strings.Contains(msg, "Luca") || !strings.Contains(msg, "left out") || !strings.Contains(msg, `field "`) {
			t.Errorf("%v\nredacted: %s; want the field named and the value left out", err, msg)
		}
		if l := r.Text(fmt.Sprintf("page from id 1: %v", err)); strings.Contains(l, "Luca") {
			t.Errorf("wrapped: %s", l)
		}
	}
	// Warnings: the value is stored as NULL, or repaired.
	w := &record.Warnings{}
	c := &record.Converter{Endpoint: calls, Zone: rome, Warnings: w}
	for _, raw := range []string{
		bad(`"duration":"60"`, `"duration":"Luca Durname"`),
		bad(`"timezone":"+0000"`, `"timezone":"Luca Zonename"`),
		bad(`"userfield":""`, `"userfield":"nul\u0000 +39 352 8512784 Luca Nulname"`),
	} {
		if _, err := c.Convert(0, json.RawMessage(raw)); err != nil {
			t.Fatal(err)
		}
	}
	notes := w.Notes()
	if len(notes) != 3 {
		t.Fatalf("notes %q, want 3", notes)
	}
	for _, n := range notes {
		if red := r.Text(n); strings.Contains(red, "Luca") || strings.Contains(red, "8512784") || !strings.Contains(red, "key 7") || !strings.Contains(red, "left out") {
			t.Errorf("note %s\nredacted: %s; want the key and field, no value", n, red)
		}
	}
	if got := r.Text(`key 7, field "src": 2 rows`); got != `key 7, field "src": 2 rows` {
		t.Errorf("a message without a quoted value changed: %s", got)
	}
}

// TestRedactorKeepsOwnNumbers: a record's key and a size in bytes the
// program writes stay readable (review 30-pseudo-attack finding 9); a
// number in any phone form beside them is still replaced.
func TestRedactorKeepsOwnNumbers(t *testing.T) {
	t.Parallel()
	k := keyed(t)
	r := &Redactor{Keys: k}
	p := k.Number("+393331234567")
	for in, want := range map[string]string{
		"recordings: 182 listed, 182 copied (15506208 bytes), 0 failed": "recordings: 182 listed, 182 copied (15506208 bytes), 0 failed",
		"first: key 1234567, field \"src\"":                             "first: key 1234567, field \"src\"",
		"page from id 2345678: record 3 (key 2345680)":                  "page from id 2345678: record 3 (key 2345680)",
		"key 1234567 from 393331234567":                                 "key 1234567 from " + p,
		"key +393331234567":                                             "key " + p,
		"key 00393331234567":                                            "key " + p,
		"key 393-333-1234567":                                           "key " + k.Number("393-333-1234567"),
		"call 393331234567 of 1200000 bytes":                            "call " + p + " of 1200000 bytes",
	} {
		if got := r.Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRedactorLeavesOutPBXText: under a rule with names, the PBX's own
// error text (an APIError's quoted reason, a body excerpt ParseList
// quotes), which may name a person the redactor cannot find by shape, is
// left out of an error or a note, its status kept (attack 30 F7: "Mario
// Rossi" of a 400's reason was in the run's ledger under numbers,names);
// without names it stays, its numbers replaced.
func TestRedactorLeavesOutPBXText(t *testing.T) {
	t.Parallel()
	k := keyed(t)
	for _, tc := range []struct {
		in   string
		keep []string // what stays under names
	}{
		{`export call_history: page 3 (start=2000): GET /api/v1/PBX/CallHistory/: 400 Bad Request: "no caller Mario Rossi (+39 333 1234567)"`,
			[]string{"export call_history: page 3 (start=2000): GET /api/v1/PBX/CallHistory/: 400 Bad Request: ", "left out"}},
		{`GET /api/v1/Contacts/: 200 OK: "contact \"Mario Rossi\" is locked"; nothing was committed`,
			[]string{"GET /api/v1/Contacts/: 200 OK: ", "; nothing was committed"}},
		{`page 1: 503 Service Unavailable: "Mario Rossi's call is busy": retried 3 times`, []string{"503 Service Unavailable: ", ": retried 3 times"}},
		{`GET /api/v1/PBX/Colleagues: 403 Forbidden: "Mario Rossi may not read colleagues": the token's user may not read this`,
			[]string{"403 Forbidden: ", ": the token's user may not read this"}},
		{`page 2: expected a JSON object, got "<html>Mario Rossi…"`, []string{"page 2: expected a JSON object, got "}},
	} {
		names := (&Redactor{Keys: k, Names: true}).Text(tc.in)
		for _, s := range []string{"Mario", "Rossi", "1234567"} {
			if strings.Contains(names, s) {
				t.Errorf("under names, %q\n  gave %q, which holds %q", tc.in, names, s)
			}
		}
		for _, s := range tc.keep {
			if !strings.Contains(names, s) {
				t.Errorf("under names, %q\n  gave %q, which lost %q", tc.in, names, s)
			}
		}
		if numbers := (&Redactor{Keys: k}).Text(tc.in); !strings.Contains(numbers, "Mario Rossi") {
			t.Errorf("under numbers, %q\n  gave %q: the PBX's text is kept, its numbers replaced", tc.in, numbers)
		}
	}
}

// TestRedactorKeepsOwnFileNames: the CSV sink's own file names (sinks
// csv.go: the PBX id, then a run id and a sequence number, or a backfill
// window's dates; their temporary and manifest names) stay readable in a
// log line (attack 30 L4: the port and the run id's date, joined by "_",
// became one pseudonym), but a number in the PBX id part is still
// replaced, and a name of that shape whose date is no date is not kept.
func TestRedactorKeepsOwnFileNames(t *testing.T) {
	t.Parallel()
	k := keyed(t)
	for _, r := range []*Redactor{{Keys: k}, {Keys: k, Names: true}, {}} {
		for _, name := range []string{
			"127.0.0.1%3A18080_20261207T081953Z-0a1b2c_0001.csv",
			"/out/call_history/acme.wildixin.com_20261207T081953Z-0a1b2c_12345.csv.gz",
			"/out/call_history/127.0.0.1%3A18080_backfill_20260101T000000_20260102T000000.csv",
			"/out/contacts/.127.0.0.1%3A18080~127.0.0.1%3A18080_20261207T081953Z-0a1b2c_0001.tmp-1a2b3c4d",
			"127.0.0.1%3A18080_20261207T081953Z-0a1b2c_0001.manifest.json",
		} {
			in := fmt.Sprintf(`{"level":"DEBUG","msg":"data file edited","endpoint":"call_history","file":%q,"rows":3}`, name)
			if got := r.Text(in); got != in {
				t.Errorf("keys %v: Text(%q)\n  = %q: want the file name as it is", r.Keys != nil, in, got)
			}
		}
		for _, in := range []string{
			"pbx+393519990005_20261207T081953Z-0a1b2c_0001.csv",        // a number in the PBX id
			"file +39 351_99990005T081953Z-0a1b2c_0001.csv",            // no date: a number's end
			"2026.01.01-03.25.54-258-393761714455-d1548fcd-2.wav",      // a recording's, not the sink's
			"from 3519990005_20261207T081953Z-0a1b2c_0001.csv onwards", // 7 digits or more before the date
			"acme_20261207T081953Z-abcdef_393519990005.csv",            // a number where the sequence number goes
		} {
			got := r.Text(in)
			for _, s := range []string{"3519990005", "99990005", "393761714455", "9990005"} {
				if strings.Contains(got, s) {
					t.Errorf("keys %v: Text(%q) = %q holds %q", r.Keys != nil, in, got, s)
				}
			}
		}
	}
}

// TestRedactorWithoutKey: with pseudonymisation asked for but no key to
// make pseudonyms with (a bad EXPORT_PSEUDONYM_KEY: attack 30 L3), each
// number is left out, the rest kept, the program's own numbers too.
func TestRedactorWithoutKey(t *testing.T) {
	t.Parallel()
	r := &Redactor{}
	for in, want := range map[string]string{
		`usage error: --from "+393519990005": expected a date YYYY-MM-DD`: `usage error: --from "(a number, left out)": expected a date YYYY-MM-DD`,
		`EXPORT_RETENTION="0039 351 999 0005 days": expected 400d`:        `EXPORT_RETENTION="(a number, left out) days": expected 400d`,
		"key 1234567, 1200000 bytes, on 2026-12-07":                       "key 1234567, 1200000 bytes, on 2026-12-07",
	} {
		if got := r.Text(in); got != want {
			t.Errorf("Text(%q)\n  = %q\nwant %q", in, got, want)
		}
	}
}

// TestRedactorNationalAndBareCodeForms: a PBX's error reason, a log
// line's value and a note holding a national number whose last group
// begins "00" ("347 111 0007", "02 1234 0009") or a country code written
// without "+" before groups ("39 347 111 0011") come out with no digit of
// it readable, with and without a key: the log, the ledger's error, check
// and the failure notification all showed "caller 347 111 0007 … see 02
// 1234 0009" in clear, and "39 347 111 0011" as the pseudonym of
// 39347111 and its tail (attack 4, F1, F2).
func TestRedactorNationalAndBareCodeForms(t *testing.T) {
	t.Parallel()
	k := keyed(t)
	reason := `export call_history: page 1: GET /api/v1/PBX/CallHistory/: 400 Bad Request: "Invalid filter: caller 347 111 0007 or +39 347 111 0107, see 02 1234 0009"`
	for _, tc := range []struct {
		in   string
		gone []string // digits that must not be left
		want []string // what Text writes, with a key
	}{
		{reason, []string{"347 111 0007", "02 1234 0009", "0107", "0007", "0009"},
			[]string{k.Number("3471110007"), k.Number("+393471110107"), k.Number("0212340009"), "400 Bad Request"}},
		{`recording copied recording="347-111-0082"`, []string{"0082", "347-111"}, []string{k.Number("3471110082")}},
		{"callback 39-347-111-0011, then 39 347 111 0007 2 missed", []string{"0011", "0007", "347"},
			[]string{k.Number("+393471110011"), k.Number("+393471110007") + " 2 missed"}},
		{"cb 020 7946 0018 or 44 7911 123 004", []string{"0018", "004", "7946"}, []string{k.Number("02079460018"), k.Number("+447911123004")}},
		// A bare country code read as one only when it gives a whole
		// number (review 5, R5-5): "43 1187" is too short, so the groups
		// are one national run; a count that may be the tail is read with it.
		{"callback 43 1187 0235; cb 44 738 3797 446 asap; 00 1 212 5551 012 on 01.12.2026",
			[]string{"1187", "0235", "3797", "446", "5551", "012 "},
			[]string{k.Number("4311870235"), k.Number("+447383797446") + " asap", k.Number("+12125551012") + " on 01.12.2026"}},
	} {
		for _, r := range []*Redactor{{Keys: k}, {}} {
			got := r.Text(tc.in)
			for _, g := range tc.gone {
				if strings.Contains(got, g) {
					t.Errorf("Text(%q) (key %v)\n  = %q: %q left", tc.in, r.Keys != nil, got, g)
				}
			}
			if r.Keys == nil {
				continue
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("Text(%q)\n  = %q, want %q in it", tc.in, got, w)
				}
			}
			if e := r.Error(errors.New(tc.in)).Error(); e != got {
				t.Errorf("Error(%q) = %q, want as Text %q", tc.in, e, got)
			}
		}
	}
}
