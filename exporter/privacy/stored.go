package privacy

import (
	"slices"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// Stored returns rows of endpoint ep, read back from a sink, with the
// rule's replacement applied as Rows applies it to a batch (the PBX's
// long extensions SetExtensions gave kept readable, a display form added
// beside a number replaced), and nothing else: no row is left out for
// its age and the suppression list is not applied (a sink's rows were
// written through both). Rewriting a sink's rows under the rule
// (`backfill --force`, sinks' RewriteUnderRule) is its only use: a value
// already replaced (a p: or n: pseudonym, erased) stays as it is, so a
// row written under the rule comes back unchanged. A number column
// holding erased is not read (Rows adds its display form erased at every
// pass: the row stored has it already).
func (g *Guard) Stored(ep *record.Endpoint, rows []record.Row) ([]record.Row, error) {
	s := &Guard{Rule: g.Rule, Keys: g.Keys, Display: g.Display}
	g.mu.RLock()
	if g.ext != nil {
		s.ext = &extensions{long: g.ext.long, added: map[*record.Warnings]bool{}}
	}
	g.mu.RUnlock()
	var gone [][]int // per row, its number columns holding erased
	in := make([]record.Row, len(rows))
	for k, r := range rows {
		r.Values = slices.Clone(r.Values)
		var cols []int
		for i, c := range ep.Columns {
			if ep.Personal[c.Name].Kind == record.PersonalNumber && r.Values[i] == any(erased) {
				r.Values[i] = nil
				cols = append(cols, i)
			}
		}
		gone = append(gone, cols)
		in[k] = r
	}
	out, err := s.Rows(ep, in, nil)
	if err != nil {
		return nil, err
	}
	for k := range out {
		for _, i := range gone[k] {
			out[k].Values[i] = erased
		}
	}
	return out, nil
}
