package privacy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/jsonscan"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestStoredOnceOnly: a stored row of the call history, in clear, gets
// its numbers replaced and their display forms under Stored as under
// Rows; the row it gives, passed again, comes back as it is (a second
// rewrite changes nothing): a number erased by the suppression list
// included, whose display form Rows would add at each pass. A row older
// than the retention limit is not left out.
func TestStoredOnceOnly(t *testing.T) {
	k, err := pseudonym.New([]byte("stored-rows-key-0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	ep := endpoint(t, "call_history")
	g := &Guard{Rule: pseudonym.Rule{Numbers: true}, Keys: k, Display: true, Retention: 24 * time.Hour}
	old := row(ep, "1", time.Now().Add(-48*time.Hour))
	old.Values[ep.Column("from_number")] = "+39 352 851 2784"
	old.Values[ep.Column("to_number")] = erased
	old.Extra = json.RawMessage(`{"to_number_display":"erased"}`)
	out, err := g.Stored(nil)(ep, "none", slices.Clone([]record.Row{old}))
	if err != nil || len(out) != 1 {
		t.Fatalf("Stored: %d rows, %v; want the one row (no retention)", len(out), err)
	}
	if got := out[0].Values[ep.Column("from_number")]; got != k.Number("+393528512784") {
		t.Errorf("from_number %v: want its pseudonym", got)
	}
	if !strings.Contains(string(out[0].Extra), `"from_number_display":"+39`) {
		t.Errorf("extra %s: want from_number's display form", out[0].Extra)
	}
	again, err := g.Stored(nil)(ep, "none", out)
	if err != nil || len(again) != 1 {
		t.Fatalf("Stored again: %d rows, %v", len(again), err)
	}
	if !slices.Equal(again[0].Values, out[0].Values) || !bytes.Equal(again[0].Extra, out[0].Extra) {
		t.Errorf("a second pass changed the row:\n%v %s\n%v %s", out[0].Values, out[0].Extra, again[0].Values, again[0].Extra)
	}
}

// TestStoredReplacesOnlyWhatTheRunDidNot is review 17's R17-1: a stored
// row keeps every value the rule of the run that wrote it covered (a
// row written under numbers keeps the long extension that run kept
// readable, which the rewrite's own set does not hold: a colleague
// removed since), and gets what that rule did not (names: but a
// colleague's, beside the extension that run kept readable); a row the
// ledger does not know the run of, or written under none, gets the whole
// rule, the long extensions given (the sink's colleagues) kept readable.
func TestStoredReplacesOnlyWhatTheRunDidNot(t *testing.T) {
	k, err := pseudonym.New([]byte("stored-rows-key-0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	ep := endpoint(t, "call_history")
	g := &Guard{Rule: pseudonym.Rule{Numbers: true, Names: true}, Keys: k}
	g.SetExtensions(map[string]bool{}, nil) // read whole: 2000299 is no colleague of the PBX now
	if !g.ExtensionsRead() {
		t.Fatal("ExtensionsRead false after a whole read")
	}
	in := row(ep, "1", time.Now())
	in.Values[ep.Column("from_number")] = "2000299"
	in.Values[ep.Column("from_name")] = "Mario Rossi"
	for _, c := range []struct {
		was    string
		keep   map[string]bool
		number any // from_number after
	}{
		{"numbers", nil, "2000299"},
		{"numbers,names", nil, "2000299"},
		{"", map[string]bool{"2000299": true}, "2000299"},
		{"none", map[string]bool{"2000299": true}, "2000299"},
		{"none", nil, k.Number("2000299")},
		{"names", nil, k.Number("2000299")},
	} {
		out, err := g.Stored(c.keep)(ep, c.was, []record.Row{in})
		if err != nil || len(out) != 1 {
			t.Fatalf("was %q: %d rows, %v", c.was, len(out), err)
		}
		if got := out[0].Values[ep.Column("from_number")]; got != c.number {
			t.Errorf("was %q, keep %v: from_number %v, want %v", c.was, c.keep, got, c.number)
		}
		// A colleague's name beside an extension kept stays (under
		// numbers: the run kept it, so it was one; review 23, R23-1);
		// not under names alone, which reads no extension (README,
		// Privacy).
		want := any("Mario Rossi")
		if c.number != "2000299" && c.was != "names" {
			want = k.Name("Mario Rossi")
		}
		if got := out[0].Values[ep.Column("from_name")]; got != want {
			t.Errorf("was %q: from_name %v, want %v", c.was, got, want)
		}
	}
	g.SetExtensions(nil, nil)
	if g.ExtensionsRead() {
		t.Error("ExtensionsRead true after a read that failed (SetExtensions nil)")
	}
}

// TestStoredKeepsWhatTheRunKeptInternal is review 23's R23-1 and R23-2: a
// row written under a rule replacing numbers is rewritten under a wider
// rule as an export that knew the extensions of that time gives it,
// whatever the extensions known now: its numbers left in clear were that
// run's extensions and stay, the names beside them are colleagues' (kept
// but under all), a name beside a number pseudonym is an external party's
// (replaced), a caller id is read alike. A row written under none, or by
// a run the ledger does not know, or a staff endpoint's own numbers going
// to all, still get the whole rule.
func TestStoredKeepsWhatTheRunKeptInternal(t *testing.T) {
	k, err := pseudonym.New([]byte("stored-rows-key-0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"2000299": true, "2000300": true, "2000205": true, "2000211": true}
	call := endpoint(t, "call_history")
	// raw holds a caller id (clid) and a party's object (x_party):
	// an external party's name in it is replaced under names.
	clear := func(key, from, fromName, to, toName, clid, party string) record.Row {
		r := row(call, key, time.Now())
		r.Values[call.Column("from_number")] = from
		r.Values[call.Column("from_name")] = fromName
		r.Values[call.Column("to_number")] = to
		r.Values[call.Column("to_name")] = toName
		r.Raw = json.RawMessage(`{"clid":` + string(jsonscan.Quote(clid)) + `,"x_party":` + party + `}`)
		return r
	}
	calls := []record.Row{
		clear("1", "2000299", "Mario Rossi", "+39 352 851 2784", "Luigi Verdi", `"Mario Rossi" <2000299>`, `{"number":"2000299","name":"Mario Rossi"}`),
		clear("2", "2000205", "Anna Bianchi", "2000211", "Carlo Neri", `"Anna Bianchi" <2000205>`, `{"number":"2000211","name":"Carlo Neri"}`),
		clear("3", "2000299", "2000300", "+39 352 851 2785", "Paola Gialli", `"Paola Gialli" <+39 352 851 2785>`, `{"number":"+39 352 851 2785","name":"Paola Gialli"}`),
		clear("4", "201", "Sara Blu", "0312 345678", "Ugo Viola", `Ugo Viola <sip:0312345678@pbx>`, `{"number":"0312 345678","name":"Ugo Viola"}`),
	}
	rule := func(s string) pseudonym.Rule {
		r, err := pseudonym.ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// export is the rows as a run under rule r writes them, the PBX's
	// long extensions read whole as long.
	export := func(ep *record.Endpoint, r string, long map[string]bool, rows []record.Row) []record.Row {
		g := &Guard{Rule: rule(r), Keys: k}
		g.SetExtensions(long, nil)
		out, err := g.Rows(ep, slices.Clone(rows), nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, c := range []struct {
		name     string
		ep       *record.Endpoint
		was, now string
		wasKnown map[string]bool // the extensions the writing run read
		nowKnown map[string]bool // those read now (the sink's colleagues: none)
	}{
		{"R23-1 numbers to numbers,names", call, "numbers", "numbers,names", known, known},
		{"R23-1 numbers to numbers,names, extensions gone since", call, "numbers", "numbers,names", known, map[string]bool{}},
		{"R23-2 numbers,names to all, extensions gone since", call, "numbers,names", "all", known, map[string]bool{}},
		{"R23-2 numbers to all, extensions gone since", call, "numbers", "all", known, map[string]bool{}},
		{"none to numbers,names", call, "none", "numbers,names", known, known},
		{"none to all", call, "none", "all", known, known},
		{"unknown run to numbers,names", call, "", "numbers,names", known, known},
	} {
		t.Run(c.name, func(t *testing.T) {
			stored := export(c.ep, c.was, c.wasKnown, calls)
			want := export(c.ep, c.now, c.wasKnown, calls)
			g := &Guard{Rule: rule(c.now), Keys: k}
			g.SetExtensions(c.nowKnown, nil)
			got, err := g.Stored(nil)(c.ep, c.was, stored)
			if err != nil || len(got) != len(want) {
				t.Fatalf("Stored: %d rows, %v", len(got), err)
			}
			for i := range want {
				if !slices.Equal(got[i].Values, want[i].Values) || !bytes.Equal(got[i].Raw, want[i].Raw) {
					t.Errorf("row %s:\n got %v %s\nwant %v %s (an export under %s)", want[i].Key, got[i].Values, got[i].Raw, want[i].Values, want[i].Raw, c.now)
				}
			}
		})
	}
}

// TestStoredStaffGoingToAll: a colleague's own numbers, left in clear by
// a run under numbers,names (they are the colleague's own, not internal
// by that rule), are replaced when the rule becomes all: the evidence a
// call's row gives (TestStoredKeepsWhatTheRunKeptInternal) is no
// colleague's.
func TestStoredStaffGoingToAll(t *testing.T) {
	k, err := pseudonym.New([]byte("stored-rows-key-0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	ep := endpoint(t, "colleagues")
	var num string
	for _, c := range ep.Columns {
		if ep.Personal[c.Name].Kind == record.PersonalNumber {
			num = c.Name
			break
		}
	}
	if num == "" {
		t.Fatal("colleagues declares no number column")
	}
	r := row(ep, "1", nil)
	r.Values[ep.Column(num)] = "+39 352 851 2786"
	g := &Guard{Rule: pseudonym.Rule{Numbers: true, Names: true, Staff: true}, Keys: k}
	g.SetExtensions(map[string]bool{}, nil)
	got, err := g.Stored(nil)(ep, "numbers,names", []record.Row{r})
	if err != nil || len(got) != 1 {
		t.Fatalf("Stored: %d rows, %v", len(got), err)
	}
	if v := got[0].Values[ep.Column(num)]; v != k.Number("+39 352 851 2786") {
		t.Errorf("colleagues' %s %v under all after numbers,names: want its pseudonym", num, v)
	}
}
