// Package privacy applies the privacy settings (issue 30; README, Privacy)
// to every row on its way to a sink: rows older than the retention limit
// are dropped, so that no export, look-back or backfill brings them back;
// numbers forgotten on request (the suppression list) are erased; and,
// under a pseudonymisation rule, the personal values the catalog declares
// are replaced by keyed pseudonyms. The exporter calls it through its
// RowGuard, in the one place every policy's rows pass (the committer).
//
// Like every package in this module, it is not a supported Go API.
package privacy

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// Suppressor is the suppression list: the numbers erased on request
// (`wildix-export forget`; sinks.Suppressor), which a record read again
// from the PBX must not bring back. It must be safe for concurrent use.
// One that also has Len() int and says 0 is not applied: with privacy
// otherwise off, rows then pass without being copied.
type Suppressor interface {
	// Apply erases, in row of ep, each forgotten number and the name
	// beside it, replacing them by erased (sinks.Erased), and returns how
	// many it erased. It changes row in place.
	Apply(ep *record.Endpoint, row *record.Row) int
}

// erased is sinks.Erased, what a Suppressor writes: it is not a name or
// a number to pseudonymise.
const erased = "erased"

// Guard holds the privacy settings. The zero Guard passes rows as they
// are. Set its fields before the first call; it is then safe for
// concurrent use.
type Guard struct {
	// Rule is what is replaced by pseudonyms (EXPORT_PSEUDONYMIZE).
	Rule pseudonym.Rule
	// Keys makes the pseudonyms; required when Rule is on.
	Keys *pseudonym.Keyed
	// Retention drops rows whose time column (the endpoint's TimeField)
	// is older than now less it; 0 keeps every row. Only the endpoints
	// record.RetentionColumn names are dropped from (never snapshots).
	Retention time.Duration
	// Now is the clock, time.Now when nil. A run sets it to return its
	// start, the instant its prune's cut is computed from.
	Now func() time.Time
	// Display, with Rule.Numbers, keeps beside each number column it
	// replaces a display form (pseudonym.Display: "+39 ••• ••• 12"), in
	// the row's extra as "<column>_display" (EXPORT_PSEUDONYM_DISPLAY).
	Display bool
	// Suppress, when set, is the suppression list, applied to every row
	// before its values are pseudonymised (a list made under its own key
	// knows the numbers in clear only).
	Suppress Suppressor

	// ext is the PBX's own long extensions and what their reading found
	// (SetExtensions), set at each run's start: the only field written
	// while the Guard is in use.
	mu  sync.RWMutex
	ext *extensions
	// clearInternal: every number the rows hold in clear is internal (a
	// row read back from a sink, written by a run whose rule replaced
	// every external number: Stored). Only Stored sets it.
	clearInternal bool
}

// extensions is what SetExtensions gave: the set, the run notes, and the
// notes they were added to already (once per endpoint's notes).
type extensions struct {
	long  map[string]bool
	notes []RunNote
	added map[*record.Warnings]bool
}

// RunNote is a finding of a run's start (the reading of the PBX's own
// extensions) that the Guard adds, Count times under Kind with Example,
// once to the notes of each endpoint whose numbers it replaces: the run
// ledger and the log then say it where the numbers are.
type RunNote struct {
	Kind, Example string
	Count         int
}

// SetExtensions sets, for the rows to come, the PBX's own extensions of
// more than 6 digits: the canonical digits (pseudonym.Canonical) of the
// extensions of its colleagues, read at the run's start before any row
// is pseudonymised. Such a number, not written internationally, is
// internal and stays readable (internal), in a number column and inside
// free text (a channel SIP/2012345-…); every other number of 7 digits or
// more is replaced as before (a local number of 7 digits is not an
// extension). nil keeps extensions to the shape rule (at most 6 digits):
// the safe direction, when the colleagues could not be read. notes are
// added to each endpoint's notes whose numbers are replaced.
func (g *Guard) SetExtensions(long map[string]bool, notes []RunNote) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ext = &extensions{long: long, notes: notes, added: map[*record.Warnings]bool{}}
}

// extensions returns the set SetExtensions gave (nil: none), adding its
// run notes to notes of ep once, when ep's numbers are replaced.
func (g *Guard) extensions(ep *record.Endpoint, notes *record.Warnings) map[string]bool {
	g.mu.RLock()
	e := g.ext
	g.mu.RUnlock()
	if e == nil {
		return nil
	}
	if notes != nil && len(e.notes) > 0 && g.Rule.Numbers && (!ep.Staff || g.Rule.Staff) && hasNumberColumn(ep) {
		g.mu.Lock()
		first := !e.added[notes]
		e.added[notes] = true
		g.mu.Unlock()
		for _, n := range e.notes {
			for i := 0; first && i < n.Count; i++ {
				notes.Add(n.Kind, n.Example)
			}
		}
	}
	return e.long
}

// hasNumberColumn reports whether ep declares a phone number column.
func hasNumberColumn(ep *record.Endpoint) bool {
	for _, p := range ep.Personal {
		if p.Kind == record.PersonalNumber {
			return true
		}
	}
	return false
}

// The kinds of notes Rows counts.
const (
	NoteRetention = "records older than EXPORT_RETENTION, not written"
	NoteErased    = "forgotten numbers (and the names beside them) erased by the suppression list"
	// NoteLongExtension: a colleague's extension of more than 6 digits
	// that is not among the extensions read at the run's start
	// (SetExtensions: the colleagues could not be read, or it was added
	// since) is taken for an external number, pseudonymised wherever a
	// number is, and its calls count as external: said, never silent
	// (README, Privacy).
	NoteLongExtension = "colleagues whose extension has more than 6 digits and was not read at the run's start (added since, or the colleagues endpoint could not be read): it is taken for an external number, replaced by its pseudonym in the call history under EXPORT_PSEUDONYMIZE, and its calls count as external in the views; the next run keeps it readable, and `wildix-export backfill --force` over the days concerned rewrites the rows written meanwhile"
)

// Rows returns the rows of endpoint ep as they may be written: those
// older than the retention left out, the others' forgotten numbers erased
// and personal values replaced as the rule says; it counts what it did in
// notes (which may be nil). The rows given are not changed: a row that
// changes is a copy. The error names what could not be done; the batch
// must then not be written.
//
// It stays one function (about 60 lines): retention, suppression and the
// rule's replacement are applied to each row in that order, and reading
// the loop whole is the proof that no row reaches a sink without all
// three. Its per-row body is the first cut when it grows.
func (g *Guard) Rows(ep *record.Endpoint, rows []record.Row, notes *record.Warnings) ([]record.Row, error) {
	if g.Rule.On() && g.Keys == nil {
		return nil, fmt.Errorf("pseudonymisation rule %s without a key", g.Rule)
	}
	var long map[string]bool
	if g.Rule.Numbers {
		long = g.extensions(ep, notes)
	}
	if g.Rule.Numbers && notes != nil {
		noteLongExtensions(ep, rows, long, notes)
	}
	in := len(rows)
	rows = g.retain(ep, rows)
	if n := in - len(rows); n > 0 && notes != nil {
		notes.Add(NoteRetention, fmt.Sprintf("%d of a batch of %d, before %s", n, in, g.Cutoff().UTC().Format(time.RFC3339)))
	}
	suppress := g.Suppress != nil
	if l, ok := g.Suppress.(interface{ Len() int }); ok && l.Len() == 0 {
		suppress = false // an empty list: no row copied for it
	}
	if !suppress && !g.Rule.On() {
		return rows, nil
	}
	var p *plan
	if g.Rule.On() {
		p = newPlan(ep)
		if ep.Staff && !g.Rule.Staff {
			p.staffOwn()
		}
	}
	// A staff endpoint's plan says, under a rule without all, what is the
	// colleagues' own (staffOwn): the replacer treats it as any other.
	r := &replacer{g: g, long: long, clear: g.clearInternal}
	out := rows
	copied := false
	for i := range rows {
		row := rows[i]
		row.Values = slices.Clone(row.Values)
		changed := false
		if suppress {
			if n := g.Suppress.Apply(ep, &row); n > 0 {
				changed = true
				if notes != nil {
					notes.Add(NoteErased, fmt.Sprintf("%d in %s", n, recordOfKey(row.Key)))
				}
			}
		}
		if p != nil {
			r.pseudonymise(p, &row)
			changed = true
		}
		if !changed {
			continue
		}
		if !copied {
			out, copied = slices.Clone(rows), true
		}
		out[i] = row
	}
	return out, nil
}

// Cutoff is the oldest time a row may have, zero when every row is kept:
// record.RetentionAt of Now. A run fixes Now to its start, so that every
// batch, every recording's file and the run's prune share one cut.
func (g *Guard) Cutoff() time.Time {
	return g.retention().Cut
}

func (g *Guard) retention() record.Retention {
	if g.Retention <= 0 {
		return record.Retention{}
	}
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	return record.RetentionAt(now(), g.Retention)
}

// retain leaves out the rows older than the cut (record.Retention.Drops:
// a row without a time, NULL, is kept: its age is not known, and dropping
// it would lose it).
func (g *Guard) retain(ep *record.Endpoint, rows []record.Row) []record.Row {
	ret := g.retention()
	if ret.Cut.IsZero() || record.RetentionColumn(ep) < 0 {
		return rows
	}
	var kept []record.Row
	for i, r := range rows {
		if !ret.Drops(ep, r) {
			if kept != nil {
				kept = append(kept, r)
			}
			continue
		}
		if kept == nil {
			kept = append(make([]record.Row, 0, len(rows)-1), rows[:i]...)
		}
	}
	if kept == nil {
		return rows
	}
	return kept
}

// expired reports whether row is older than the retention (see retain).
func (g *Guard) expired(ep *record.Endpoint, row record.Row) bool {
	return g.retention().Drops(ep, row)
}

// noteLongExtensions counts in notes the colleagues (rows of a Staff
// endpoint's extension column) whose extension internal does not take
// for one (long, the extensions read at the run's start, does not hold
// it), naming the first by its record's key (recordOfKey).
func noteLongExtensions(ep *record.Endpoint, rows []record.Row, long map[string]bool, notes *record.Warnings) {
	col := ep.Column("extension")
	if !ep.Staff || col < 0 {
		return
	}
	for _, r := range rows {
		v, _ := r.Values[col].(string)
		if _, ok := pseudonym.Canonical(v); ok && !internal(v, long) {
			notes.Add(NoteLongExtension, recordOfKey(r.Key))
		}
	}
}

// recordOfKey names the record of key in a note: by its key, unless the
// key holds a number (pseudonym.HoldsNumber: a custom endpoint keyed by a
// phone number). Keys are never pseudonymised, so such a note carried
// the number in clear, or under pseudonymisation its pseudonym, into the
// run ledger, and after forget of the number it came back with each run
// reading the record again, where forget had erased it (attack 4, F4).
func recordOfKey(key string) string {
	if pseudonym.HoldsNumber(key) {
		return "a record whose key holds a number (not named)"
	}
	return "the record of key " + strings.ReplaceAll(key, "\t", ",")
}

// staffOwn narrows the plan of a staff endpoint (colleagues, devices:
// record.Endpoint.Staff) to what a rule without all replaces there
// (README, Privacy): the colleagues' own numbers (their office, mobile
// and fax numbers: columns of kind number) stay as they are, and so do
// their names, e-mail addresses, logins and a device's description
// (kinds name and note) but for a number inside them, replaced under
// numbers as in any free text (attack 30 B1: "Desk of …, mobile
// 0039351…" stayed in clear); every other text column is free text as
// elsewhere. Their extensions stay readable as every extension does
// (internal: up to 6 digits, longer ones read at the run's start).
func (p *plan) staffOwn() {
	own := func(k record.Personal) record.Personal {
		switch k.Kind {
		case record.PersonalNumber:
			return record.Personal{}
		case record.PersonalName, record.PersonalNote:
			return anyText
		}
		return k
	}
	for i := range p.cols {
		p.cols[i] = own(p.cols[i])
		p.raw[i] = own(p.raw[i])
		p.of[i] = nil
	}
	if len(p.declared) > 0 {
		declared := make(map[string]record.Personal, len(p.declared))
		for f, k := range p.declared {
			declared[f] = own(k)
		}
		p.declared = declared
	}
}
