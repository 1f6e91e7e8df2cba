package sinks

import (
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
	// Recordings removes the stored files of the recordings' rows pruned
	// (recstore.Dir or recstore.S3); nil when no store is configured:
	// those rows are then kept, since they name the files to remove.
	Recordings interface {
		Remove(ctx context.Context, name string) error
	}
	// Zone is the zone the export reads the PBX's wall times in
	// (exporter.Exporter.RecordingsZone: WILDIX_TIMEZONE, else the UTC
	// offset learnt from call history; nil: UTC), to read the start of a
	// quarantined record that gives no offset, as the export read it.
	Zone *time.Location
	// Batch is the number of rows deleted per transaction (PostgreSQL);
	// 0 means pruneBatch.
	Batch int
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

// pendingStore keeps a PBX's pending prune (prune_limit.go): Postgres
// and CSV.
type pendingStore interface {
	pendingCut(ctx context.Context, pbx string) (time.Time, error)
	setPendingCut(ctx context.Context, pbx string, cut time.Time) error
}

// beginRecordings returns the cut the recordings' rows and files of a
// prune at cut go by: the later of cut and a pending prune's (completed,
// whatever the limit now), stored as pending before any file is removed;
// pending says it was stored (to clear once the prune succeeded). Without
// a recordings endpoint or a store nothing is removed: nothing stored.
func beginRecordings(ctx context.Context, ps pendingStore, pbx string, eps []record.Endpoint, cut time.Time, o PruneOptions) (rcut time.Time, note *PrunedCount, pending bool, err error) {
	if o.Recordings == nil || !slices.ContainsFunc(eps, func(e record.Endpoint) bool { return e.Files == "recordings" && record.RetentionColumn(&e) >= 0 }) {
		return cut, nil, false, nil
	}
	was, err := ps.pendingCut(ctx, pbx)
	if err != nil {
		return cut, nil, false, fmt.Errorf("prune: %w", err)
	}
	rcut = cut
	if was.After(cut) {
		rcut = was
		note = &PrunedCount{Table: "recordings", Detail: "completing the prune of the calls before " + was.UTC().Format(time.RFC3339) +
			" that a run stopped (killed or failed) after removing files: their rows named files no longer stored"}
	}
	if !was.Equal(rcut) {
		if err := ps.setPendingCut(ctx, pbx, rcut); err != nil {
			return cut, nil, false, fmt.Errorf("prune: %w", err)
		}
	}
	return rcut, note, true, nil
}

// finishPrune completes pbx's pending prune, if one is, with its cut,
// whatever EXPORT_RETENTION says now: prune (the sink's Prune) of the
// recordings endpoints of eps at that cut; the cut, zero when none was
// pending. Without a store it says the prune is left pending.
func finishPrune(ctx context.Context, ps pendingStore, prune func(context.Context, string, []record.Endpoint, time.Time, PruneOptions) (Pruned, error),
	pbx string, eps []record.Endpoint, o PruneOptions) (Pruned, time.Time, error) {
	cut, err := ps.pendingCut(ctx, pbx)
	if err != nil || cut.IsZero() {
		return nil, cut, err
	}
	var recs []record.Endpoint
	for _, e := range eps {
		if e.Files == "recordings" {
			recs = append(recs, e)
		}
	}
	if o.Recordings == nil {
		return Pruned{{Table: "recordings", Detail: "the prune of the calls before " + cut.UTC().Format(time.RFC3339) +
			" that a run stopped after removing files is not completed: no recordings store is configured to remove their files from"}}, cut, nil
	}
	got, err := prune(ctx, pbx, recs, cut, o)
	return got, cut, err
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
// naming a file is removed before it. Snapshots and states are not
// touched. A file an earlier prune read and found no call older than cut
// in, unchanged since (its manifest's sha256), is not read again
// (<endpoint>~times.json in the state folder, a cache). Run under the
// PBX's lock, after the run's batches.
//
// A pending prune (one stopped after removing recordings' files:
// beginRecordings) is completed: the recordings go by the later cut.
func (s *CSV) Prune(ctx context.Context, pbx string, eps []record.Endpoint, cut time.Time, o PruneOptions) (Pruned, error) {
	var out Pruned
	rcut, note, pending, err := beginRecordings(ctx, s, pbx, eps, cut, o)
	if err != nil {
		return nil, err
	}
	if note != nil {
		out = append(out, *note)
	}
	ends, cols := prunable(eps)
	for i, ep := range ends {
		c := cut
		if ep.Files == "recordings" {
			c = rcut
		}
		p := &csvPrune{s: s, pbx: pbx, ep: ep, col: ep.Columns[cols[i]].Name, ret: record.Retention{Cut: c}, times: s.readTimes(pbx, ep.Name),
			read: map[string]bool{}, oldest: map[string]time.Time{}}
		if ep.Files == "recordings" {
			if o.Recordings == nil {
				n, err := p.count(ctx)
				if err != nil {
					return out, fmt.Errorf("prune %s: %w", ep.Name, err)
				}
				if n > 0 {
					out = append(out, PrunedCount{Table: ep.Name, Detail: fmt.Sprintf("%d rows kept: no recordings store is configured to remove their files from", n)})
				}
				continue
			}
			n, err := p.removeRecordings(ctx, o)
			if n > 0 || err != nil {
				out = append(out, PrunedCount{Table: RecordingsStore, Rows: n})
			}
			if err != nil {
				return out, err
			}
		}
		res, err := p.edit(ctx, p.drop)
		if res.Dropped > 0 || err != nil {
			out = append(out, PrunedCount{Table: ep.Name, Rows: res.Dropped,
				Detail: fmt.Sprintf("%d files removed, %d rewritten", res.Removed, res.Rewritten)})
		}
		if err != nil {
			return out, fmt.Errorf("prune %s: %w", ep.Name, err)
		}
		if err := p.saveTimes(); err != nil {
			return out, fmt.Errorf("prune %s: %w", ep.Name, err)
		}
	}
	if pending {
		return out, s.setPendingCut(ctx, pbx, time.Time{})
	}
	return out, nil
}

// FinishPrune completes pbx's pending prune, if one is (a prune stopped
// after removing recordings' files), with its cut, whatever
// EXPORT_RETENTION says now: the cut, zero when none was pending.
func (s *CSV) FinishPrune(ctx context.Context, pbx string, eps []record.Endpoint, o PruneOptions) (Pruned, time.Time, error) {
	return finishPrune(ctx, s, s.Prune, pbx, eps, o)
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
		return RowEdit{Drop: true}, nil
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

// removeRecordings removes from the store the files of the recordings'
// rows drop will remove, reading the folder without changing it.
func (p *csvPrune) removeRecordings(ctx context.Context, o PruneOptions) (int64, error) {
	var names []string
	_, err := p.edit(ctx, func(header, row []string) (RowEdit, error) {
		t, ok, err := p.start(header, row)
		j, st := slices.Index(header, "object"), slices.Index(header, "status")
		if p.ret.Expired(t, ok) && j >= 0 && row[j] != "" && (st < 0 || fileStored(row[st])) {
			name := row[j]
			if p.s.opt.SafeFormulas && len(name) > 1 && name[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(name[1])) {
				name = name[1:] // as cell wrote it
			}
			names = append(names, name)
		}
		return RowEdit{}, err
	})
	if err != nil {
		return 0, fmt.Errorf("prune %s: find their files: %w", p.ep.Name, err)
	}
	var n int64
	for _, name := range names {
		if err := o.Recordings.Remove(ctx, name); err != nil {
			return n, fmt.Errorf("prune %s: %w", p.ep.Name, err)
		}
		n++
	}
	return n, nil
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
