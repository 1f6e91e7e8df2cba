package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
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
	// Zone is WILDIX_TIMEZONE (nil when not set), to read the start of a
	// quarantined record that gives no offset, as the export read it.
	Zone *time.Location
	// Batch is the number of rows deleted per transaction (PostgreSQL);
	// 0 means pruneBatch.
	Batch int
}

// pruneBatch rows per transaction: long enough to be cheap, short
// enough that a reader or the next export never waits long.
const pruneBatch = 5000

// Pruned is what a prune removed, one count per table (CSV: per endpoint
// folder) in the order pruned, plus the recordings store's.
type Pruned []PrunedCount

// PrunedCount is the rows one place lost.
type PrunedCount struct {
	Table string // a table or endpoint folder, or "recordings store"
	Rows  int64  // rows removed (files, for the recordings store)
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

// prunable returns the endpoints holding rows of calls, with the index of
// their time column.
func prunable(eps []record.Endpoint) (out []*record.Endpoint, cols []int) {
	for i := range eps {
		e := &eps[i]
		if e.Mode != record.Incremental || e.TimeField == "" {
			continue
		}
		if c := timeColumn(e); c >= 0 && e.Columns[c].Type == record.Timestamp {
			out, cols = append(out, e), append(cols, c)
		}
	}
	return out, cols
}

// timeColumn is the index of e's time field's column, -1 if none.
func timeColumn(e *record.Endpoint) int {
	return slices.IndexFunc(e.Columns, func(c record.Column) bool { return c.Field == e.TimeField })
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
	i := timeColumn(e)
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
// touched. Run under the PBX's lock, after the run's batches.
func (s *CSV) Prune(ctx context.Context, pbx string, eps []record.Endpoint, cut time.Time, o PruneOptions) (Pruned, error) {
	var out Pruned
	ends, cols := prunable(eps)
	for i, ep := range ends {
		tc := ep.Columns[cols[i]].Name
		old := func(header, row []string) (bool, error) {
			j := slices.Index(header, tc)
			if j < 0 {
				return false, fmt.Errorf("no column %s", tc)
			}
			if row[j] == "" {
				return false, nil // a time the file could not hold: unknown, kept
			}
			t, err := time.Parse(time.RFC3339Nano, row[j])
			if err != nil {
				return false, fmt.Errorf("column %s: %w", tc, err)
			}
			return t.Before(cut), nil
		}
		if ep.Files == "recordings" {
			if o.Recordings == nil {
				var n int64
				if _, err := s.EditRows(ctx, pbx, ep, "retention", func(header, row []string) (RowEdit, error) {
					drop, err := old(header, row)
					if drop {
						n++
					}
					return RowEdit{}, err
				}); err != nil {
					return out, fmt.Errorf("prune %s: %w", ep.Name, err)
				}
				if n > 0 {
					out = append(out, PrunedCount{Table: ep.Name, Detail: fmt.Sprintf("%d rows kept: no recordings store is configured to remove their files from", n)})
				}
				continue
			}
			n, err := s.removeRecordings(ctx, pbx, ep, old, o)
			if n > 0 || err != nil {
				out = append(out, PrunedCount{Table: RecordingsStore, Rows: n})
			}
			if err != nil {
				return out, err
			}
		}
		res, err := s.EditRows(ctx, pbx, ep, "retention", func(header, row []string) (RowEdit, error) {
			drop, err := old(header, row)
			return RowEdit{Drop: drop}, err
		})
		if res.Dropped > 0 || err != nil {
			out = append(out, PrunedCount{Table: ep.Name, Rows: res.Dropped,
				Detail: fmt.Sprintf("%d files removed, %d rewritten", res.Removed, res.Rewritten)})
		}
		if err != nil {
			return out, fmt.Errorf("prune %s: %w", ep.Name, err)
		}
	}
	return out, nil
}

// removeRecordings removes from the store the files of the recordings'
// rows old picks, reading the folder without changing it.
func (s *CSV) removeRecordings(ctx context.Context, pbx string, ep *record.Endpoint, old func(header, row []string) (bool, error), o PruneOptions) (int64, error) {
	var names []string
	_, err := s.EditRows(ctx, pbx, ep, "retention", func(header, row []string) (RowEdit, error) {
		drop, err := old(header, row)
		if j := slices.Index(header, "object"); drop && j >= 0 && row[j] != "" {
			name := row[j]
			if s.opt.SafeFormulas && len(name) > 1 && name[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(name[1])) {
				name = name[1:] // as cell wrote it
			}
			names = append(names, name)
		}
		return RowEdit{}, err
	})
	if err != nil {
		return 0, fmt.Errorf("prune %s: find their files: %w", ep.Name, err)
	}
	var n int64
	for _, name := range names {
		if err := o.Recordings.Remove(ctx, name); err != nil {
			return n, fmt.Errorf("prune %s: %w", ep.Name, err)
		}
		n++
	}
	return n, nil
}
