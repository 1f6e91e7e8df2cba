package privacy

import (
	"encoding/json"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// numberSuppressor erases the value "+390123456789" of the number column.
type numberSuppressor struct{}

func (numberSuppressor) Apply(ep *record.Endpoint, row *record.Row) int {
	i := ep.Column("number")
	if row.Values[i] == "+390123456789" {
		row.Values[i] = "erased"
		return 1
	}
	return 0
}

func TestSuppressesFile(t *testing.T) {
	t.Parallel()
	var ep record.Endpoint
	for _, e := range record.Builtin() {
		if e.Name == "recordings" {
			ep = e
		}
	}
	row := func(number string) record.Row {
		r := record.Row{Values: make([]any, len(ep.Columns)), Raw: json.RawMessage(`{}`)}
		r.Values[ep.Column("number")] = number
		return r
	}
	g := &Guard{Suppress: numberSuppressor{}}
	r := row("+390123456789")
	if !g.SuppressesFile(&ep, r) {
		t.Error("a recording of a forgotten number is not suppressed")
	}
	if r.Values[ep.Column("number")] != "+390123456789" {
		t.Error("SuppressesFile changed the row it was given")
	}
	if g.SuppressesFile(&ep, row("+390123456788")) {
		t.Error("a recording of another number is suppressed")
	}
	if (&Guard{}).SuppressesFile(&ep, r) {
		t.Error("a Guard without a list suppresses")
	}
}
