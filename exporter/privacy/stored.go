package privacy

import (
	"maps"
	"regexp"
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
// now (review 17, R17-1), and the row is its own evidence of who is
// internal: a number it holds in clear was an extension then, the name
// beside it a colleague's, kept unless the rule is all; a number
// pseudonym says the party is external (review 23, R23-1 and R23-2). In
// a row written under none, or whose run the ledger does not know, the
// extensions kept readable are those the run's start read
// (SetExtensions) and keep: the long extensions the sink itself holds
// (its colleagues' rows, deleted ones included: a colleague removed from
// the PBX since); a 7-digit number neither knows is taken for external,
// as an export takes it. A value already replaced (a p: or n:
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
		rule, clear := stillToReplace(g.Rule, was, ep.Staff)
		if !rule.On() {
			return rows, nil
		}
		// A display form is a replaced number's: none when no number is.
		s := &Guard{Rule: rule, Keys: g.Keys, Display: g.Display && rule.Numbers, clearInternal: clear}
		if long != nil {
			s.ext = &extensions{long: long, added: map[*record.Warnings]bool{}}
		}
		return s.stored(ep, rows)
	}
}

// stillToReplace is what rule replaces that was (a run's rule as the
// ledger spells it) did not, in rows of an endpoint (staff: a staff
// endpoint's, record.Endpoint.Staff), and whether every number those rows
// hold in clear is internal (Guard.clearInternal).
//
// A row written under a rule replacing numbers is its own evidence: that
// run replaced every external number, so a number it left in clear was an
// extension (internal), whether or not the PBX or the sink still knows it,
// and a name beside it a colleague's; a number pseudonym beside a name
// says the party is external. Such a row gets only the names (and under
// all the colleagues' names too), never its numbers read again against
// today's extensions (review 23, R23-1 and R23-2). But a staff endpoint
// going to all: its colleagues' own numbers were left in clear as their
// own, not as internal, and it gets the whole rule.
//
// The whole rule, its numbers told by the extensions known (the run's
// start and the sink's colleagues), otherwise: when was is unknown ("",
// or not a rule) or none, or when rule replaces the staff's values and
// was replaced no number.
func stillToReplace(rule pseudonym.Rule, was string, staff bool) (pseudonym.Rule, bool) {
	w, err := pseudonym.ParseRule(was)
	addStaff := rule.Staff && !w.Staff
	switch {
	case err != nil:
		return rule, false
	case w.Numbers && !(staff && addStaff):
		return pseudonym.Rule{Names: rule.Names && (!w.Names || addStaff), Staff: addStaff}, true
	case addStaff:
		return rule, false
	}
	return pseudonym.Rule{Numbers: rule.Numbers && !w.Numbers, Names: rule.Names && !w.Names}, false
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

// external reports whether s holds an external number: one replaced
// (numbers), or with clear (its numbers in clear internal) a number
// pseudonym.
func (r *replacer) external(s string) bool {
	if r.clear {
		return numberPseudonym(s)
	}
	return r.numbers(s) != s
}

// numberPseudonymRE is a number pseudonym (pseudonym.NumberPrefix and 16
// letters and digits, or pseudonym.Merged) not glued to a word before it ("sip:trunk3362…" is
// none, "sip:p:…" is one).
var numberPseudonymRE = regexp.MustCompile(`(^|[^A-Za-z0-9])p:[a-z0-9]{16}`)

// numberPseudonym reports whether s holds a number pseudonym.
func numberPseudonym(s string) bool { return numberPseudonymRE.MatchString(s) }
