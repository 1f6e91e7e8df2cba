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
	out, err := g.Stored(ep, slices.Clone([]record.Row{old}))
	if err != nil || len(out) != 1 {
		t.Fatalf("Stored: %d rows, %v; want the one row (no retention)", len(out), err)
	}
	if got := out[0].Values[ep.Column("from_number")]; got != k.Number("+393528512784") {
		t.Errorf("from_number %v: want its pseudonym", got)
	}
	if !strings.Contains(string(out[0].Extra), `"from_number_display":"+39`) {
		t.Errorf("extra %s: want from_number's display form", out[0].Extra)
	}
	again, err := g.Stored(ep, out)
	if err != nil || len(again) != 1 {
		t.Fatalf("Stored again: %d rows, %v", len(again), err)
	}
	if !slices.Equal(again[0].Values, out[0].Values) || !bytes.Equal(again[0].Extra, out[0].Extra) {
		t.Errorf("a second pass changed the row:\n%v %s\n%v %s", out[0].Values, out[0].Extra, again[0].Values, again[0].Extra)
	}
}
