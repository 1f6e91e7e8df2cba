package paging

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// ProbeCount is the count the probe's order checks ask for; one page of
// the configured page size then looks for a cap above it.
const ProbeCount = 3

// probeBudget bounds the pages a probe reads by key.
const probeBudget = 16

// errEnough ends a probe's read once one span is proven.
var errEnough = errors.New("enough seen")

// Finding is what a probe found about how an incremental endpoint is
// read on this PBX.
type Finding struct {
	Empty bool     // the PBX holds no record to probe with
	Way   Strategy // the rung: ByKey, ByKeyCapped, ByKeyRanges or ByTimeWindows
	None  bool     // no way is usable: the time filter is ignored too (or there is none)
	Cap   int64    // with ByKeyCapped: the most records a page holds
	// Ignored is what the PBX ignores, 0 for nothing.
	Ignored Param
	// TimeSeen, with None: the time of the record the PBX sent for a
	// window in 1970.
	TimeSeen string
}

// Probe is the ladder with a budget of requests: it finds the newest key
// (newest.go), reads that key alone (a key outside it: the key filter is
// ignored), then the range from the first key down the ladder in pages of
// ProbeCount until one span is proven (keys out of order: the sort is
// ignored, and the rest is read by key ranges; records after a short
// page: a cap), then one page of pageSize from the first key (short
// while more remain: a cap an export would meet). Past the key rungs, one
// request for a time window that holds no record tells time windows from
// none. l.Learnt should start at ProbeCount. An error is a request that
// failed, not a finding.
func (l *Ladder) Probe(ctx context.Context, pageSize int64) (Finding, error) {
	l.Last, l.MaxPages = ByTimeWindows, probeBudget
	upper, found, err := l.Newest(ctx, 0)
	switch {
	case err == nil && !found:
		return Finding{Empty: true}, nil
	case err == nil:
		if _, err = l.Read(ctx, Range{upper, upper}, func(Span) error { return nil }); err == nil {
			_, err = l.Read(ctx, Range{1, upper}, func(Span) error { return errEnough })
		}
	}
	if errors.Is(err, errEnough) {
		err = nil
	}
	if err == nil && l.Learnt.Strategy() == ByKey && pageSize > ProbeCount {
		err = l.probeCap(ctx, upper, pageSize)
	}
	var ie *IgnoredError
	switch {
	case errors.As(err, &ie):
		return l.probeTime(ctx, ie.Param)
	case err != nil:
		return Finding{}, err
	}
	f := Finding{Way: l.Learnt.Strategy()}
	if f.Way == ByKeyRanges {
		f.Ignored = SortParam
	}
	f.Cap, _ = l.Learnt.Capped()
	if f.Way != ByKeyCapped {
		f.Cap = 0
	}
	return f, nil
}

// probeTime asks for a time window in 1970, which holds no call: a record
// in the answer means the PBX ignores the time filter too.
func (l *Ladder) probeTime(ctx context.Context, p Param) (Finding, error) {
	f := Finding{Way: ByTimeWindows, Ignored: p}
	tf := l.Endpoint.TimeField
	if tf == "" {
		f.None = true
		return f, nil
	}
	a, b := "1970-01-01 00:00:00", "1970-01-01 00:00:01"
	q := l.Endpoint.TimeQuery(a, b)
	q.Set("start", "0")
	q.Set("count", strconv.Itoa(ProbeCount))
	pg, err := l.Lister.List(ctx, l.Endpoint.Path, q, &l.Counters.Counts)
	if err != nil {
		return Finding{}, fmt.Errorf("window %s to %s: %w", a, b, err)
	}
	rows, err := l.Rows(pg.Records)
	if err != nil {
		return Finding{}, fmt.Errorf("window %s to %s: %w", a, b, err)
	}
	for _, row := range rows {
		if row.Wall < a || row.Wall > b {
			f.None, f.TimeSeen = true, row.Wall
			return f, nil
		}
	}
	return f, nil
}

// probeCap asks for a page of ask records from the first key: fewer while
// more remain (the total says so or, without one, a record after the
// page's last key) is a cap, recorded in Learnt.
func (l *Ladder) probeCap(ctx context.Context, upper, ask int64) error {
	k := &keyPages{Reader: l.Reader}
	k.pages.Store(1) // not a first request: asked with room past upper
	a, err := k.page(ctx, 1, upper, ask, true)
	if err != nil {
		return err
	}
	got := int64(len(a.pg.Records))
	switch {
	case got >= ask || len(a.rows) == 0:
		return nil
	case a.pg.Total >= 0:
		if a.pg.Total > got {
			l.capAt(ask, got)
		}
		return nil
	}
	last := a.rows[len(a.rows)-1].Cursor
	if last >= upper {
		return nil
	}
	next, err := k.page(ctx, last+1, upper, 1, true)
	if err != nil || len(next.pg.Records) == 0 {
		return err
	}
	l.capAt(ask, got)
	return nil
}

// capAt records a cap of got records found asking for ask: the probe's
// own pages were smaller.
func (l *Ladder) capAt(ask, got int64) {
	l.Learnt.mu.Lock()
	l.Learnt.ask = ask
	l.Learnt.mu.Unlock()
	l.Learnt.CapAt(got)
}
