package sinks

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/safefile"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// Retention (EXPORT_RETENTION): after a successful run, the rows of calls
// that started before a cut are removed from every place a sink keeps
// them, the recordings' files first. Only endpoints read incrementally
// with a time field hold such rows (call_history, recordings, custom ones
// declaring a time field); snapshots (colleagues, contacts…) have no call
// time and are never pruned, nor are states or the run ledger. A row
// whose time is unknown (empty, unreadable) is kept.

// PruneOptions say what a prune may touch besides the sink's rows.
type PruneOptions struct {
	// Recordings is the store of the recordings' files (recstore.Dir or
	// recstore.S3); nil when none is configured: the recordings' rows
	// are then kept, since they name the files to remove.
	Recordings RecordingFiles
	// Store is the identity of Recordings as the run knows it: its kind
	// and where (a folder's path; an S3 bucket's host, bucket and
	// prefix), no credentials. A prune stores it with its pending
	// record, and a stopped prune is settled only against the same
	// store (settlePending).
	Store string
	// held, set by Prune when a stopped prune made with another store
	// is left pending, is why the recordings' rows are kept: pruning
	// them would replace its record.
	held string
	// Zone is the zone the export reads the PBX's wall times in
	// (exporter.Exporter.RecordingsZone: WILDIX_TIMEZONE, else the UTC
	// offset learnt from call history; nil: UTC), to read the start of a
	// quarantined record that gives no offset, as the export read it.
	Zone *time.Location
	// Batch is the number of rows deleted per transaction (PostgreSQL);
	// 0 means pruneBatch.
	Batch int
}

// RecordingFiles is what a prune asks of the recordings store
// (recstore.Dir, recstore.S3): to remove the files of the rows it
// removes and, settling a prune that stopped after removing some
// (settlePending), to say which are gone.
type RecordingFiles interface {
	// Remove removes the file stored under name; none is not an error.
	Remove(ctx context.Context, name string) error
	// Present reports whether each of names is stored; a name left out
	// of the map is unknown (Stat tells).
	Present(ctx context.Context, names []string) (map[string]bool, error)
	// Stat returns the file stored under name: an error matching
	// fs.ErrNotExist when there is none.
	Stat(ctx context.Context, name string) (recstore.Object, error)
}

// pruneBatch rows per transaction: long enough to be cheap, short
// enough that a reader or the next export never waits long.
const pruneBatch = 5000

// pruneFilesBatch rows per transaction for rows whose stored files are
// removed in it.
const pruneFilesBatch = 200

// Pruned is what a prune removed, one count per table (CSV: per endpoint
// folder) in the order pruned, plus the recordings store's.
type Pruned []PrunedCount

// PrunedCount is the rows one place lost.
type PrunedCount struct {
	Table string // a table or endpoint folder, or "recordings store"
	// Rows is the rows removed; for the recordings store, the names
	// removed, a name whose file was already gone (a prune killed after
	// removing it, before its row went) counted too: the stores do not
	// say (on S3 it would cost a request a name).
	Rows int64
	// Detail says more for people: the CSV files removed and rewritten,
	// rows kept and why.
	Detail string
	// Pending is set on the count of a stopped prune left pending
	// (Detail says why and what to do).
	Pending bool
	// Kept is the rows of calls before the cut kept (Detail says why and
	// what to do): recordings' rows whose files the prune could not
	// remove, with no recordings store, or not in it.
	Kept int64
}

// Held reports whether a stopped prune was left pending.
func (p Pruned) Held() bool {
	return slices.ContainsFunc(p, func(c PrunedCount) bool { return c.Pending })
}

// Incomplete reports whether the prune left something the limit removes
// (a stopped prune pending, rows kept): someone has to act (each count's
// Detail says how), and it stays so run after run until they do.
func (p Pruned) Incomplete() bool {
	return slices.ContainsFunc(p, func(c PrunedCount) bool { return c.Pending || c.Kept > 0 })
}

// Total is the number of rows removed (the recordings store's files not
// counted).
func (p Pruned) Total() int64 {
	var n int64
	for _, c := range p {
		if c.Table != RecordingsStore {
			n += c.Rows
		}
	}
	return n
}

// RecordingsStore is the Table of the recordings store's count in Pruned.
const RecordingsStore = "recordings store"

// fileStored reports whether a recording's row of status names a file
// the store holds: its object is the name its file would have had when
// the file vanished from the PBX or its path was refused, and nothing
// was stored there. Retention counts, and forget checks against the
// store, only the others (attack 1, B3 and L2); an erased row has no
// object.
func fileStored(status string) bool {
	return status != "vanished" && status != "refused"
}

// storedObjectSQL is fileStored in SQL: a recording row's object when
// its file was stored, else NULL.
const storedObjectSQL = "CASE WHEN status IN ('vanished', 'refused') THEN NULL ELSE object END"

// pendingStore keeps a PBX's pending prune (prune_limit.go) and finds
// and removes the rows it left naming files that are gone: Postgres and
// CSV.
type pendingStore interface {
	pending(ctx context.Context, pbx string) (*pendingPrune, error)
	setPending(ctx context.Context, pbx string, pp *pendingPrune) error
	// pendingObjects returns the stored files named by pbx's rows of ep
	// (a recordings endpoint, whose time column is col) that pp may have
	// removed: rows of calls started before its cut, naming one of its
	// names.
	pendingObjects(ctx context.Context, pbx string, ep *record.Endpoint, col string, pp *pendingPrune) ([]string, error)
	// otherObjects returns at most n stored files named by pbx's rows of
	// ep that pp did not remove (newer rows first where the sink can
	// tell): what the store holds when it is the right one.
	otherObjects(ctx context.Context, pbx string, ep *record.Endpoint, col string, pp *pendingPrune, n int) ([]string, error)
	// dropObjects removes pbx's rows of ep of calls started before cut
	// that name one of gone: the rows removed.
	dropObjects(ctx context.Context, pbx string, ep *record.Endpoint, col string, cut time.Time, gone []string) (int64, error)
	// pendingHint says how to store pp as pbx's pending prune by hand:
	// the statement or the file and its content.
	pendingHint(pbx string, pp pendingPrune) string
}

// settlePending settles pbx's pending prune, if one is (a prune stopped
// after removing some recordings' files, before their rows went): of the
// rows of the recordings endpoints of eps naming its files, those whose
// file the store no longer holds are removed, and nothing else (no file,
// no row whose file is stored, whatever EXPORT_RETENTION says now); then
// it is cleared. It returns what it removed and the pending prune's cut,
// zero when none was pending. It is left pending, and said so (a count
// with Pending set), without a store: only the store can tell which
// files are gone, and removing every row the prune was at would leave
// the files it had not reached yet stored with no row naming them, which
// no prune nor forget would ever find (review 6, R6-7); and against
// another store than the one it was made with (sameStore): every file
// would look gone from it, and its rows would go while the files stay in
// the first one, named by nothing (review 9, R9-6).
func settlePending(ctx context.Context, s pendingStore, pbx string, eps []record.Endpoint, o PruneOptions) (Pruned, time.Time, error) {
	pp, err := s.pending(ctx, pbx)
	if err != nil || pp == nil {
		return nil, time.Time{}, err
	}
	which := "the " + strconv.Itoa(len(pp.Names)) + " files it was removing"
	if pp.Names == nil {
		which = "its files"
	}
	what := "the prune of the recordings of calls started before " + pp.Cut.UTC().Format(time.RFC3339) + " that a run stopped after removing files"
	if o.Recordings == nil {
		return Pruned{{Table: "recordings", Pending: true, Detail: what + " is left pending: which of " + which +
			" are gone only the recordings store can tell, and none is configured; their rows are kept until a run with the store completes it " +
			"(removed without it, the rows of the files not removed yet would leave those files stored with no row naming them)"}}, pp.Cut, nil
	}
	found, err := pendingFiles(ctx, s, pbx, eps, o, pp)
	if err != nil {
		return nil, pp.Cut, err
	}
	held := sameStore(pp, o, found)
	if held == "" {
		held, err = storeLooksEmpty(ctx, s, pbx, o, pp, found)
		if err != nil {
			return nil, pp.Cut, err
		}
	}
	if held != "" {
		return Pruned{{Table: "recordings", Pending: true, Detail: what + " is left pending: " + held}}, pp.Cut, nil
	}
	var out Pruned
	for _, f := range found {
		var n int64
		if len(f.gone) > 0 {
			n, err = s.dropObjects(ctx, pbx, f.ep, f.col, pp.Cut, f.gone)
		}
		out = append(out, PrunedCount{Table: f.ep.Name, Rows: n, Detail: fmt.Sprintf("completing %s: the rows of the %d files gone, "+
			"%d rows whose file is stored kept", what, len(f.gone), len(f.names)-len(f.gone))})
		if err != nil {
			return out, pp.Cut, fmt.Errorf("settle the stopped prune of %s: %w", f.ep.Name, err)
		}
	}
	return out, pp.Cut, s.setPending(ctx, pbx, nil)
}

// foundFiles are, for a recordings endpoint, the stored files its rows
// name that a pending prune may have removed, and those of them gone
// from the store.
type foundFiles struct {
	ep          *record.Endpoint
	col         string // the time column
	names, gone []string
}

// pendingFiles looks up, for each recordings endpoint of eps, the files
// pp may have removed in o.Recordings, changing nothing. Its six
// parameters are one settlement's (the sink, the PBX, its endpoints, the
// options and the pending record), each read here once.
func pendingFiles(ctx context.Context, s pendingStore, pbx string, eps []record.Endpoint, o PruneOptions, pp *pendingPrune) ([]foundFiles, error) {
	var out []foundFiles
	ends, cols := prunable(eps)
	for i, ep := range ends {
		if ep.Files != "recordings" {
			continue
		}
		f := foundFiles{ep: ep, col: ep.Columns[cols[i]].Name}
		var err error
		if f.names, err = s.pendingObjects(ctx, pbx, ep, f.col, pp); err == nil {
			f.gone, err = goneFiles(ctx, o.Recordings, f.names)
		}
		if err != nil {
			return nil, fmt.Errorf("settle the stopped prune of %s: %w", ep.Name, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// sameStore returns why pp cannot be settled against o's store, "" when
// it can: when no row names a file it may have removed (nothing to
// remove), or the store is the one it was made with. A record of an
// earlier version (b065c36, 8c65ea7) does not say which store it was
// made with: the store is taken for it when it holds some of the files
// the rows name (another store holds none of these old files), not when
// every one is gone from it: they may be gone, or the store another
// one, and then the rows would go with their files kept in the first.
func sameStore(pp *pendingPrune, o PruneOptions, found []foundFiles) string {
	var names, gone int
	for _, f := range found {
		names, gone = names+len(f.names), gone+len(f.gone)
	}
	if names == 0 {
		return ""
	}
	record := "the pending record (" + pp.where + ")"
	keep := fmt.Sprintf(" Or delete %s: its rows are then kept as they are, those naming files it removed too (README, Retention)", record)
	switch {
	case pp.Store == "" && gone < names:
		return ""
	case pp.Store == "":
		return fmt.Sprintf("its record, written by an earlier version, does not say which recordings store it was made with, and none of the %d files "+
			"its rows name is in this run's (%s): they are gone, or this store is another one, and removing their rows would leave the files "+
			"in the first with no row naming them. If this is its store, set %s's \"store\" to %q and the next run removes those rows; "+
			"otherwise point EXPORT_RECORDINGS_* at its store for one run, which settles it.%s", names, o.Store, record, o.Store, keep)
	case pp.Store != o.Store:
		return fmt.Sprintf("it was made with the recordings store %s and this run's is %s: which of the %d files its rows name are gone only that store "+
			"can tell (from this one every file would look gone, and its row would be removed, its file left in the first store with no row naming it). "+
			"Point EXPORT_RECORDINGS_* at %s for one run, which settles it; if its files were moved to this store, set %s's \"store\" to %q.%s",
			pp.Store, cmp.Or(o.Store, "not known"), names, pp.Store, record, o.Store, keep)
	}
	return ""
}

// otherSample is how many files of the recordings a stopped prune did
// not remove storeLooksEmpty looks up.
const otherSample = 20

// storeLooksEmpty returns why pp, a record a prune wrote, is not settled
// against o's store although it is the one it was made with (sameStore):
// no file its rows name is in it, nor any of a sample of the PBX's other
// recordings' files. The store then looks empty: the folder a volume is
// mounted on while it is not, a bucket emptied or replaced; each file
// would look gone, and removing their rows would leave the files,
// wherever they are, named by nothing. "" when some file is there, or no
// other row names one (nothing to tell by). A record written by hand
// (its cut and store, no names: keptMissing) says the files are gone,
// and is taken at its word. Its six parameters are settlePending's
// own, with what pendingFiles found: one settlement, read here once.
func storeLooksEmpty(ctx context.Context, s pendingStore, pbx string, o PruneOptions, pp *pendingPrune, found []foundFiles) (string, error) {
	var names, gone int
	for _, f := range found {
		names, gone = names+len(f.names), gone+len(f.gone)
	}
	if pp.Names == nil || names == 0 || gone < names {
		return "", nil
	}
	var sample []string
	for _, f := range found {
		more, err := s.otherObjects(ctx, pbx, f.ep, f.col, pp, otherSample)
		if err != nil {
			return "", fmt.Errorf("settle the stopped prune of %s: %w", f.ep.Name, err)
		}
		sample = append(sample, more...)
	}
	missing, err := goneFiles(ctx, o.Recordings, sample)
	if err != nil || len(sample) == 0 || len(missing) < len(sample) {
		return "", err
	}
	return fmt.Sprintf("none of the %d files its rows name is in this run's recordings store (%s), the one it was made with, nor any of %d "+
		"other recordings' files: the store looks empty (a volume not mounted on that folder, a bucket emptied or replaced), and removing the "+
		"rows would leave their files, wherever they are, named by nothing. Check the store and EXPORT_RECORDINGS_*: the next run that finds "+
		"files in it settles the prune. If every file is gone for good, delete the pending record (%s): a prune then keeps the rows naming "+
		"files not in the store and says how to have them removed (README, Retention)", names, o.Store, len(sample), pp.where), nil
}

// holdRecordings is o for the rest of a prune after settled, what
// settlePending did: while a prune is left pending with a store, the
// recordings' rows are kept as without one, so that their prune does
// not replace its record.
func holdRecordings(settled Pruned, o PruneOptions) PruneOptions {
	if settled.Held() && o.Recordings != nil {
		o.Recordings, o.held = nil, "the stopped prune above is pending, and pruning them would replace its record"
	}
	return o
}

// keptWhy says why a prune keeps the recordings' rows (o.Recordings nil).
func keptWhy(o PruneOptions) string {
	return cmp.Or(o.held, "no recordings store is configured to remove their files from")
}

// inStore splits names, the stored files named by rows a prune is about
// to remove, into those st holds and those it does not. A row naming a
// file that is not there is kept (keptMissing): its file may be in
// another store, the one EXPORT_RECORDINGS_* named when it was copied,
// and removing the row would leave the file there named by nothing. A
// file a stopped prune removed is not among them: settlePending removed
// its row first.
func inStore(ctx context.Context, st RecordingFiles, names []string) (held, gone []string, err error) {
	if gone, err = goneFiles(ctx, st, names); err != nil || len(gone) == 0 {
		return names, nil, err
	}
	missing := make(map[string]bool, len(gone))
	for _, n := range gone {
		missing[n] = true
	}
	for _, n := range names {
		if !missing[n] {
			held = append(held, n)
		}
	}
	return held, gone, nil
}

// keptMissing says why a prune at cut keeps n rows of pbx naming files
// not in o's store, and what to do.
func keptMissing(s pendingStore, pbx string, cut time.Time, o PruneOptions, n int64) string {
	return fmt.Sprintf("%d rows kept: the files they name are not in this run's recordings store (%s). If EXPORT_RECORDINGS_* named another "+
		"folder, bucket or prefix when they were copied, the files are still there, and removing their rows would leave them with no row naming "+
		"them: move them into this store, names unchanged, or point EXPORT_RECORDINGS_* at that store for one run; the next prune removes "+
		"them with their rows. If they are gone from every store (deleted by hand, a bucket's lifecycle rule), %s: the next run then removes "+
		"the rows of calls before that cut whose files this store does not hold, and no other (README, Retention)",
		n, cmp.Or(o.Store, "not known"), s.pendingHint(pbx, pendingPrune{Cut: cut, Store: o.Store}))
}

// goneFiles returns those of names the store holds no file under.
func goneFiles(ctx context.Context, st RecordingFiles, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	have, err := st.Present(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("look up the files in the recordings store: %w", err)
	}
	var gone []string
	for _, name := range names {
		stored, known := have[name]
		if !known {
			_, err := st.Stat(ctx, name)
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				return nil, fmt.Errorf("look up a file in the recordings store: %w", err)
			default:
				stored = true
			}
		}
		if !stored {
			gone = append(gone, name)
		}
	}
	return gone, nil
}

// prunable returns the endpoints holding rows of calls, with the index of
// their time column: those record.RetentionColumn names, the ones the
// exporter's guard filters too.
func prunable(eps []record.Endpoint) (out []*record.Endpoint, cols []int) {
	for i := range eps {
		e := &eps[i]
		if c := record.RetentionColumn(e); c >= 0 {
			out, cols = append(out, e), append(cols, c)
		}
	}
	return out, cols
}

// recordStart reads the call start of a record as the PBX sent it (a
// quarantined one), as the export read it: nothing when it cannot.
func recordStart(ep *record.Endpoint, raw []byte, zone *time.Location) (time.Time, bool) {
	e := ep
	if len(ep.Shapes) > 0 {
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return time.Time{}, false
		}
		shape, err := ep.DetectShape(slices.Collect(maps.Keys(m)))
		if err != nil {
			return time.Time{}, false
		}
		d := ep.InShape(shape, record.TimeWall)
		e = &d
	}
	// The time field's column in the record's shape (text, a wall time
	// or Unix seconds, in some shapes).
	i := slices.IndexFunc(e.Columns, func(c record.Column) bool { return c.Field == e.TimeField })
	row, err := (&record.Converter{Endpoint: e, Zone: zone}).Convert(0, raw)
	if i < 0 || err != nil {
		return time.Time{}, false
	}
	switch v := row.Values[i].(type) {
	case time.Time:
		return v, true
	case string: // a shape's time, read as text: a wall time or Unix seconds
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			return time.Unix(n, 0), true
		}
		loc := zone
		if loc == nil {
			loc = time.UTC
		}
		if t, err := time.ParseInLocation(record.WallLayout, strings.TrimSpace(v), loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// Prune removes from the export folder the rows of pbx's calls that
// started before cut: each data file holding only such rows is removed
// with its manifest, each mixing them with newer ones is rewritten
// without them (EditRows: atomic per file, its manifest and the key index
// updated, completed on the next start after a crash). The recordings'
// stored files go first (a second read of their folder), so that no row
// naming a file is removed before it; their names are stored as pending
// just before (settlePending). Snapshots and states are not touched. A
// file an earlier prune read and found no call older than cut in,
// unchanged since (its manifest's sha256), is not read again
// (<endpoint>~times.json in the state folder, a cache). Run under the
// PBX's lock, after the run's batches.
//
// A pending prune (one stopped after removing recordings' files) is
// settled first.
func (s *CSV) Prune(ctx context.Context, pbx string, eps []record.Endpoint, cut time.Time, o PruneOptions) (Pruned, error) {
	out, _, err := settlePending(ctx, s, pbx, eps, o)
	if err != nil {
		return out, err
	}
	o = holdRecordings(out, o)
	ends, cols := prunable(eps)
	for i, ep := range ends {
		p := s.newPrune(pbx, ep, ep.Columns[cols[i]].Name, cut)
		var pending bool
		if ep.Files == "recordings" {
			if o.Recordings == nil {
				n, err := p.count(ctx)
				if err != nil {
					return out, fmt.Errorf("prune %s: %w", ep.Name, err)
				}
				if n > 0 {
					out = append(out, PrunedCount{Table: ep.Name, Kept: n, Detail: fmt.Sprintf("%d rows kept: %s", n, keptWhy(o))})
				}
				continue
			}
			var n int64
			n, pending, err = p.removeRecordings(ctx, o)
			if n > 0 || err != nil {
				out = append(out, PrunedCount{Table: RecordingsStore, Rows: n})
			}
			if err != nil {
				return out, err
			}
		}
		res, err := p.edit(ctx, p.drop)
		if res.Dropped > 0 || len(p.keep) > 0 || err != nil {
			c := PrunedCount{Table: ep.Name, Rows: res.Dropped, Kept: int64(p.kept),
				Detail: fmt.Sprintf("%d files removed, %d rewritten", res.Removed, res.Rewritten)}
			if p.kept > 0 {
				c.Detail += "; " + keptMissing(s, pbx, cut, o, int64(p.kept))
			}
			out = append(out, c)
		}
		if err != nil {
			return out, fmt.Errorf("prune %s: %w", ep.Name, err)
		}
		if pending {
			if err := s.setPending(ctx, pbx, nil); err != nil {
				return out, fmt.Errorf("prune %s: %w", ep.Name, err)
			}
		}
		if err := p.saveTimes(); err != nil {
			return out, fmt.Errorf("prune %s: %w", ep.Name, err)
		}
	}
	return out, nil
}

// FinishPrune settles pbx's pending prune, if one is (a prune stopped
// after removing recordings' files), whatever EXPORT_RETENTION says now:
// only the rows naming the files it removed go (settlePending). It
// returns the pending prune's cut, zero when none was pending.
func (s *CSV) FinishPrune(ctx context.Context, pbx string, eps []record.Endpoint, o PruneOptions) (Pruned, time.Time, error) {
	return settlePending(ctx, s, pbx, eps, o)
}

// pendingObjects is pendingStore's, read from ep's folder.
func (s *CSV) pendingObjects(ctx context.Context, pbx string, ep *record.Endpoint, col string, pp *pendingPrune) ([]string, error) {
	p, holds := s.newPrune(pbx, ep, col, pp.Cut), pp.holds()
	var names []string
	_, err := p.edit(ctx, func(header, row []string) (RowEdit, error) {
		name, ok, err := p.expiredObject(header, row)
		if ok && holds(name) {
			names = append(names, name)
		}
		return RowEdit{}, err
	})
	return names, err
}

// otherObjects is pendingStore's, read from ep's folder (every file:
// the order of the folder's files). Its six parameters are the
// interface's, pendingObjects' and a count.
func (s *CSV) otherObjects(ctx context.Context, pbx string, ep *record.Endpoint, col string, pp *pendingPrune, n int) ([]string, error) {
	p, holds := s.newPrune(pbx, ep, col, pp.Cut), pp.holds()
	var names []string
	all := func(ownFile) bool { return true } // newer calls' files too
	_, err := s.editFiles(ctx, csvEdit{pbx: pbx, ep: ep, reason: "retention", pick: all, edit: func(header, row []string) (RowEdit, error) {
		name, expired, err := p.storedObject(header, row)
		if name != "" && len(names) < n && !(expired && holds(name)) {
			names = append(names, name)
		}
		return RowEdit{}, err
	}})
	return names, err
}

// dropObjects is pendingStore's, an edit of ep's folder. Its six
// parameters are the interface's: the rows of one endpoint, below a cut,
// whose files are gone.
func (s *CSV) dropObjects(ctx context.Context, pbx string, ep *record.Endpoint, col string, cut time.Time, gone []string) (int64, error) {
	p := s.newPrune(pbx, ep, col, cut)
	drop := make(map[string]bool, len(gone))
	for _, n := range gone {
		drop[n] = true
	}
	res, err := p.edit(ctx, func(header, row []string) (RowEdit, error) {
		name, ok, err := p.expiredObject(header, row)
		return RowEdit{Drop: ok && drop[name]}, err
	})
	return res.Dropped, err
}

// csvPrune is one endpoint's prune in a CSV folder.
type csvPrune struct {
	s      *CSV
	pbx    string
	ep     *record.Endpoint
	col    string // the time column
	ret    record.Retention
	times  *pruneTimes          // what earlier prunes learnt of the files
	cur    string               // the file being read
	read   map[string]bool      // files read by this prune
	oldest map[string]time.Time // and the oldest start of the rows they keep
	// keep are the stored files named by rows drop keeps although their
	// calls started before the cut: not in the recordings store
	// (inStore); kept counts the rows it kept for them.
	keep map[string]bool
	kept int
}

// edit passes the rows of the files pick takes through fn.
func (p *csvPrune) edit(ctx context.Context, fn EditFunc) (EditResult, error) {
	return p.s.editFiles(ctx, csvEdit{pbx: p.pbx, ep: p.ep, reason: "retention", pick: p.pick, edit: fn})
}

// pick skips a file known to hold no call older than the cut.
func (p *csvPrune) pick(f ownFile) bool {
	if t, ok := p.times.Files[f.Name]; ok && f.SHA256 != "" && t.SHA256 == f.SHA256 && (t.Oldest == nil || !p.ret.Expired(*t.Oldest, true)) {
		return false
	}
	p.cur, p.read[f.Name] = f.Name, true
	delete(p.oldest, f.Name)
	return true
}

// start reads a row's call start; ok is false when its cell is empty (a
// time the file could not hold: unknown, kept).
func (p *csvPrune) start(header, row []string) (time.Time, bool, error) {
	j := slices.Index(header, p.col)
	if j < 0 {
		return time.Time{}, false, fmt.Errorf("no column %s", p.col)
	}
	if row[j] == "" {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, row[j])
	if err != nil {
		return time.Time{}, false, fmt.Errorf("column %s: %w", p.col, err)
	}
	return t, true, nil
}

// drop is the edit: the rows of calls started before the cut dropped.
func (p *csvPrune) drop(header, row []string) (RowEdit, error) {
	t, ok, err := p.start(header, row)
	if err != nil || !ok {
		return RowEdit{}, err
	}
	if p.ret.Expired(t, ok) {
		if len(p.keep) == 0 {
			return RowEdit{Drop: true}, nil
		}
		name, ok, err := p.expiredObject(header, row)
		if err != nil || !ok || !p.keep[name] {
			return RowEdit{Drop: err == nil}, err
		}
		p.kept++
	}
	if o, seen := p.oldest[p.cur]; !seen || t.Before(o) {
		p.oldest[p.cur] = t
	}
	return RowEdit{}, nil
}

// count counts the rows drop would remove, changing nothing.
func (p *csvPrune) count(ctx context.Context) (int64, error) {
	var n int64
	_, err := p.edit(ctx, func(header, row []string) (RowEdit, error) {
		t, ok, err := p.start(header, row)
		if p.ret.Expired(t, ok) {
			n++
		}
		return RowEdit{}, err
	})
	return n, err
}

// newPrune is the prune of ep's rows (time column col) at cut.
func (s *CSV) newPrune(pbx string, ep *record.Endpoint, col string, cut time.Time) *csvPrune {
	return &csvPrune{s: s, pbx: pbx, ep: ep, col: col, ret: record.Retention{Cut: cut}, times: s.readTimes(pbx, ep.Name),
		read: map[string]bool{}, oldest: map[string]time.Time{}, keep: map[string]bool{}}
}

// expiredObject returns the stored file a recording's row names when its
// call started before the cut (ok false otherwise, or when it names no
// stored file).
func (p *csvPrune) expiredObject(header, row []string) (name string, ok bool, err error) {
	name, expired, err := p.storedObject(header, row)
	if !expired {
		name = ""
	}
	return name, name != "", err
}

// storedObject returns the stored file a recording's row names ("" when
// none) and whether its call started before the cut.
func (p *csvPrune) storedObject(header, row []string) (name string, expired bool, err error) {
	t, known, err := p.start(header, row)
	j, st := slices.Index(header, "object"), slices.Index(header, "status")
	if err != nil || j < 0 || row[j] == "" || (st >= 0 && !fileStored(row[st])) {
		return "", false, err
	}
	name = row[j]
	if p.s.opt.SafeFormulas && len(name) > 1 && name[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(name[1])) {
		name = name[1:] // as cell wrote it
	}
	return name, p.ret.Expired(t, known), nil
}

// removeRecordings removes from the store the files of the recordings'
// rows drop will remove, reading the folder without changing it; their
// names are stored as pbx's pending prune just before the first goes
// (pending: to clear once the rows are gone). A file not in the store
// is not asked for, and drop keeps its rows (p.keep).
func (p *csvPrune) removeRecordings(ctx context.Context, o PruneOptions) (n int64, pending bool, err error) {
	var names []string
	_, err = p.edit(ctx, func(header, row []string) (RowEdit, error) {
		name, ok, err := p.expiredObject(header, row)
		if ok {
			names = append(names, name)
		}
		return RowEdit{}, err
	})
	if err != nil {
		return 0, false, fmt.Errorf("prune %s: find their files: %w", p.ep.Name, err)
	}
	names, gone, err := inStore(ctx, o.Recordings, names)
	if err != nil {
		return 0, false, fmt.Errorf("prune %s: %w", p.ep.Name, err)
	}
	for _, name := range gone {
		p.keep[name] = true
	}
	if len(names) == 0 {
		return 0, false, nil
	}
	if err := p.s.setPending(ctx, p.pbx, &pendingPrune{Cut: p.ret.Cut, Names: names, Store: o.Store}); err != nil {
		return 0, false, fmt.Errorf("prune %s: %w", p.ep.Name, err)
	}
	for _, name := range names {
		if err := o.Recordings.Remove(ctx, name); err != nil {
			return n, true, fmt.Errorf("prune %s: %w", p.ep.Name, err)
		}
		n++
	}
	return n, true, nil
}

// pruneTimes is what prunes learnt of an endpoint's data files: the
// oldest call start each keeps, by its content (its manifest's sha256),
// so that the next prune reads only the files that may hold calls older
// than its cut. A cache: missing, damaged or stale, a file is read.
type pruneTimes struct {
	Files map[string]fileTimes `json:"files"`
}

type fileTimes struct {
	SHA256 string     `json:"sha256"`
	Oldest *time.Time `json:"oldest,omitempty"` // nil: no row with a time
}

func (s *CSV) timesPath(pbx, endpoint string) string {
	return filepath.Join(s.stateDir(pbx), safeName(endpoint)+"~times.json")
}

func (s *CSV) readTimes(pbx, endpoint string) *pruneTimes {
	t := &pruneTimes{}
	if b, err := os.ReadFile(s.timesPath(pbx, endpoint)); err == nil {
		json.Unmarshal(b, t)
	}
	if t.Files == nil {
		t.Files = map[string]fileTimes{}
	}
	return t
}

// saveTimes keeps what this prune read of each file still there, and
// what earlier ones knew of the others.
func (p *csvPrune) saveTimes() error {
	dir := filepath.Join(p.s.opt.Dir, p.ep.Name)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	files, err := p.s.ownFiles(p.pbx, dir)
	if err != nil {
		return err
	}
	next := &pruneTimes{Files: map[string]fileTimes{}}
	for _, f := range files {
		t, known := p.times.Files[f.Name]
		switch {
		case f.SHA256 == "":
			continue
		case p.read[f.Name]:
			t = fileTimes{SHA256: f.SHA256}
			if o, ok := p.oldest[f.Name]; ok {
				t.Oldest = &o
			}
		case !known:
			continue
		}
		next.Files[f.Name] = t
	}
	if _, err := p.s.mkStateDir(p.pbx); err != nil {
		return err
	}
	b, _ := json.Marshal(next)
	return safefile.Write(p.s.timesPath(p.pbx, p.ep.Name), b, fileMode)
}
