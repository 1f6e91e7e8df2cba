package privacy

import (
	"maps"
	"slices"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// StoredApplier applies the rule to rows of ep read back from a sink,
// written by a run under the rule was (the run ledger's spelling,
// pseudonym.Rule.String; "" when the ledger does not know the run): it
// returns them with their values replaced, one for each row given, in
// order (sinks.RuleApplier).
type StoredApplier func(ep *record.Endpoint, was string, rows []record.Row) ([]record.Row, error)

// ExtensionsRead reports whether the PBX's long extensions the run's
// start gave (SetExtensions) were read whole: false when the rule
// replaces numbers and the colleagues could not be read (SetExtensions
// with nil: the shape rule alone, which replaces every long extension).
// An irreversible rewrite of stored rows (Stored) must not run then: it
// would replace, for good, extensions an export keeps readable (review
// 17, R17-1).
func (g *Guard) ExtensionsRead() bool {
	if !g.Rule.Numbers {
		return true
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.ext != nil && g.ext.long != nil
}

// Stored returns the applier of the rule's replacement to rows read back
// from a sink, as Rows applies it to a batch (a display form added beside
// a number replaced), and nothing else: no row is left out for its age
// and the suppression list is not applied (a sink's rows were written
// through both). Rewriting a sink's rows under the rule (sinks'
// RewriteUnderRule) is its only use.
//
// It replaces only what the rule of the run that wrote the rows did not
// (stillToReplace): a row written under numbers keeps its numbers as that
// run left them, so a long extension it kept readable is never replaced
// now (review 17, R17-1); a name beside it, replaced when the rule adds
// names, is a colleague's only when the extension is among those kept
// readable (Rows reads extensions under a rule replacing numbers only),
// so a colleague's name beside the long extension of someone neither
// the PBX nor the sink's colleagues know is replaced. The
// extensions kept readable are those the
// run's start read (SetExtensions) and keep: the long extensions the sink
// itself holds (its colleagues' rows, deleted ones included: a colleague
// removed from the PBX since). A value already replaced (a p: or n:
// pseudonym, erased) stays as it is, so a row comes back unchanged from a
// second pass. A number column holding erased is not read (Rows adds its
// display form erased at every pass: the row stored has it already).
func (g *Guard) Stored(keep map[string]bool) StoredApplier {
	g.mu.RLock()
	long := maps.Clone(keep)
	if g.ext != nil && g.ext.long != nil {
		if long == nil {
			long = map[string]bool{}
		}
		maps.Copy(long, g.ext.long)
	}
	g.mu.RUnlock()
	return func(ep *record.Endpoint, was string, rows []record.Row) ([]record.Row, error) {
		rule := stillToReplace(g.Rule, was)
		if !rule.On() {
			return rows, nil
		}
		s := &Guard{Rule: rule, Keys: g.Keys, Display: g.Display}
		if long != nil {
			s.ext = &extensions{long: long, added: map[*record.Warnings]bool{}}
		}
		return s.stored(ep, rows)
	}
}

// stillToReplace is what rule replaces that was (a run's rule as the
// ledger spells it) did not: the whole rule when was is unknown ("", or
// not a rule) or none, or when rule replaces the staff's values and was
// did not (Staff goes with Numbers and Names: the whole rule applies).
func stillToReplace(rule pseudonym.Rule, was string) pseudonym.Rule {
	w, err := pseudonym.ParseRule(was)
	if err != nil || rule.Staff && !w.Staff {
		return rule
	}
	return pseudonym.Rule{Numbers: rule.Numbers && !w.Numbers, Names: rule.Names && !w.Names}
}

// stored is Stored's replacement, under g's rule, of rows of ep.
func (g *Guard) stored(ep *record.Endpoint, rows []record.Row) ([]record.Row, error) {
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
	out, err := g.Rows(ep, in, nil)
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
