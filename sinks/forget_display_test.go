package sinks

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestForgetErasesDisplayForms: with EXPORT_PSEUDONYM_DISPLAY, a stored
// row keeps beside a number column its display form in extra ("+39 •••
// ••• 84": the country code and the last two digits). Forget erasing the
// number makes it erased too, and the same call exported again through
// the suppression list gives the same extra: the number's display is
// erased, another number's stays. Fails with forget leaving the display
// form (the brief's point 4) or the guard writing none for an erased
// number.
func TestForgetErasesDisplayForms(t *testing.T) {
	t.Parallel()
	f, k := testForgotten(t, "+39 352 8512784")
	var e record.Endpoint
	for _, x := range record.Builtin() {
		if x.Name == "call_history" {
			e = x
		}
	}
	rule, err := pseudonym.ParseRule("numbers")
	if err != nil {
		t.Fatal(err)
	}
	record1 := `{"id":"9","start":"2026-12-01 10:00:00","end":"2026-12-01 10:01:00","duration":"60","billsec":"55",
"src":"+39 352 8512784","dst":"+44 20 7946 0958","from_number":"0039 352 8512784","to_number":"+44 20 7946 0958","x_note":"vip"}`
	export := func(g *privacy.Guard) record.Row {
		t.Helper()
		c := &record.Converter{Endpoint: &e, Zone: time.UTC, Warnings: &record.Warnings{}}
		row, err := c.Convert(0, json.RawMessage(record1))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := g.Rows(&e, []record.Row{row}, &record.Warnings{})
		if err != nil {
			t.Fatal(err)
		}
		return rows[0]
	}
	stored := export(&privacy.Guard{Rule: rule, Keys: k, Display: true})
	if !strings.Contains(string(stored.Extra), `"from_number_display":"+39 ••• ••• 84"`) {
		t.Fatalf("extra %s: want the display form, or the test proves nothing", stored.Extra)
	}

	sh := endpointShape(&e, false)
	cells := make([]string, len(sh.names))
	for i, c := range e.Columns {
		if s, ok := stored.Values[i].(string); ok {
			cells[slices.Index(sh.names, c.Name)] = s
		}
	}
	cells[slices.Index(sh.names, "extra")] = string(stored.Extra)
	if n := sh.erase(cells, f.match); n != 2 {
		t.Errorf("forget erased %d occurrences, want 2 (src, from_number): the display forms are not counted", n)
	}
	forgot := cells[slices.Index(sh.names, "extra")]

	l := &Suppression{}
	if _, _, err := l.addAll(f, k, time.Now()); err != nil {
		t.Fatal(err)
	}
	sup, err := l.Suppressor(k)
	if err != nil {
		t.Fatal(err)
	}
	again := export(&privacy.Guard{Rule: rule, Keys: k, Display: true, Suppress: sup})
	var got map[string]any
	if err := json.Unmarshal([]byte(forgot), &got); err != nil {
		t.Fatal(err)
	}
	if got["src_display"] != Erased || got["from_number_display"] != Erased || got["to_number_display"] != "+44 ••• ••• 58" {
		t.Errorf("after forget extra is %s: want the number's display forms erased, the other number's kept", forgot)
	}
	if forgot != string(again.Extra) {
		t.Errorf("forget left extra\n%s\nthe suppression list writes\n%s", forgot, again.Extra)
	}
}
