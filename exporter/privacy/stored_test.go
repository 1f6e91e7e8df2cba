package privacy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

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
// colleague's, beside an extension kept readable by the whole rule); a row the
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
		// A colleague's name beside an extension kept stays; not under
		// names alone, which reads no extension (README, Privacy).
		want := any("Mario Rossi")
		if c.was == "numbers" || c.number != "2000299" && c.was != "names" {
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
