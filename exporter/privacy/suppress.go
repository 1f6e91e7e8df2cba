package privacy

import (
	"slices"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// SuppressesFile reports whether the row of a recording (ep its endpoint)
// names a forgotten number, or is older than the retention: the exporter
// then does not copy its file, the voice of a person who asked to be
// forgotten or of a call no longer kept, and writes its row erased (an
// old one is then left out by Rows). row is not changed.
func (g *Guard) SuppressesFile(ep *record.Endpoint, row record.Row) bool {
	if g.expired(ep, row) {
		return true
	}
	if g.Suppress == nil {
		return false
	}
	row.Values = slices.Clone(row.Values)
	return g.Suppress.Apply(ep, &row) > 0
}
