// Package paging reads a range of a PBX list endpoint's records whole,
// and proves it: one Lister request at a time, each answer checked before
// it is trusted. Each way of reading (a strategy) is a file with its
// proof beside it: keyset.go (by key, on a PBX that sorts), keyranges.go
// (ranges of keys each read whole, on one that ignores the sort),
// timewindows.go (windows of its time field, on one that ignores the key
// filter), offset.go (start/count, for snapshots and windows without
// keys); newest.go finds the newest key a run reads up to. ladder.go is
// the one place that chooses among them: the fallback order, by key → key
// ranges → time windows (incremental) or offset (backfill windows), as the
// PBX's answers show what it ignores (Learnt, IgnoredError).
//
// Nothing here writes: a reader hands proven spans or pages to its
// caller, which commits them.
package paging

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"

	"github.com/wildix-export/wildix-export/exporter/jsonscan"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// Lister is one request of a list endpoint: all paging asks of the PBX.
// A *pbx.Client is one, over HTTP; tests call the simulator's list logic
// in process. It counts each attempt in n.
type Lister interface {
	List(ctx context.Context, path string, q url.Values, n *pbx.Counts) (*pbx.ListPage, error)
}

// Counters count one endpoint's requests, pages, records dropped and
// conversion warnings. Safe for concurrent use.
type Counters struct {
	pbx.Counts
	Pages atomic.Int64
	// Filtered counts records the PBX sent outside the bounds asked of
	// it, dropped.
	Filtered atomic.Int64
	// Warnings counts what the endpoint's conversion worked around (a
	// value that cannot be stored, an ambiguous wall time) instead of
	// failing the run; they reach the log and the ledger as notes.
	Warnings record.Warnings
}

// Reader is what every way of reading an endpoint needs: the PBX, the
// endpoint, how to convert its records, and what was learnt about the PBX.
// Its readers keep no context.
type Reader struct {
	Lister   Lister
	Endpoint *record.Endpoint
	// Query holds further filters (a backfill window's time bounds).
	Query       url.Values
	Concurrency int // requests at once where ranges are read side by side; 1 or less reads one after another
	MaxPages    int // a read stops with an error past this many pages (EXPORT_MAX_PAGES)
	Counters    *Counters
	Log         *slog.Logger
	// Rows converts a page's records; it may run in several goroutines.
	Rows   func([]json.RawMessage) ([]record.Row, error)
	Learnt *Learnt
	// Note, when set, records a finding for people (the run ledger's
	// notes); findings are logged anyway.
	Note func(string)
}

func (r *Reader) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (r *Reader) note(text string) {
	if r.Note != nil {
		r.Note(text)
		return
	}
	r.log().Warn("paging detection", "note", text)
}

// Range is a closed range of keys [Lo, Hi].
type Range struct{ Lo, Hi int64 }

// Holds reports whether n distinct keys of r are all of its keys: a range
// read whole whatever the order or a cap.
func (r Range) Holds(n int) bool {
	return uint64(n) > uint64(r.Hi-r.Lo) // unsigned: no overflow near the edges of int64
}

// Span is a piece of a key range read in full: every record with a key in
// its range is in Rows, in key order.
type Span struct {
	Range
	Rows   []record.Row
	Total  int64 // the total the PBX announced on the span's first page, -1 if none
	Dups   int64 // records sent twice, dropped
	Splits int   // key ranges: how many times a range was halved to be read whole
	err    error
}

// Keys reads field from each record of a page.
func Keys(pg *pbx.ListPage, field string) ([]int64, error) {
	keys := make([]int64, 0, len(pg.Records))
	for _, rec := range pg.Records {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(rec, &m); err != nil {
			return nil, err
		}
		v, err := jsonscan.Int(m[field])
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", m[field])
		}
		keys = append(keys, v)
	}
	return keys, nil
}
