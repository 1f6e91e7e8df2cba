package exporter

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// Paging kinds a probe decides, as EndpointResult.Paging names them; the
// probe adds "none" (no usable ordering or filter: a run fails) and
// "empty" (no record to probe with).
const (
	PagingKeyset       = "keyset"
	PagingKeysetCapped = "keyset-capped"
	PagingKeyRanges    = "key-ranges"
	PagingTimeWindows  = "time-windows"
	PagingOffset       = "offset"
	PagingNone         = "none"
	PagingEmpty        = "empty"
)

// probeCount is the count the probe's order checks ask for; one page of
// the configured page size then looks for a cap above it.
const probeCount = 3

// Paging is what a probe found about how an incremental endpoint can be
// read.
type Paging struct {
	Kind     string // one of the Paging* kinds
	Cap      int64  // with PagingKeysetCapped: the most records a page holds
	Ignored  string // with PagingKeyRanges, PagingTimeWindows and PagingNone: "filter[id]" or "sort=id"
	Sentence string // for a person, e.g. "by id (filter[id] and sort=id honoured)"
}

// Probe decides, with a few small read-only requests, how ep (an
// incremental endpoint) is paged on this PBX, using the checks an export
// uses (keyReader): one request for the newest key, one for that key alone
// (a key outside it: the key filter is ignored), pages of probeCount from
// the first key (keys out of order: the sort is ignored; records after a
// short page: a cap), one page of EXPORT_PAGE_SIZE from the first key (and,
// short without a total, one record after it: a cap an export would meet)
// and, when keys cannot be used, one request for a
// time window that holds no record (records in it: the time filter is
// ignored as well, and no paging is usable). An error is a request that
// failed, not a finding.
func (x *Exporter) Probe(ctx context.Context, ep *record.Endpoint) (Paging, error) {
	n := &Counters{}
	log := x.log().With("endpoint", ep.Name)
	sizes := newLearnt(probeCount)
	var res EndpointResult
	upper, found, err := x.upperBound(ctx, ep, 0, n, log, &res, sizes)
	var ignored *ladderError
	if errors.As(err, &ignored) {
		return x.probeTime(ctx, ep, ignored.Ignored.what(ep.Cursor), n)
	}
	if err != nil {
		return Paging{}, err
	}
	if !found {
		return Paging{Kind: PagingEmpty, Sentence: "not probed: the PBX holds no record yet"}, nil
	}
	kr := &keyReader{Client: x.Client, Endpoint: ep, Concurrency: 1, MaxPages: 8, Counters: n, Log: log,
		Rows: (&record.Converter{Endpoint: ep, Zone: x.Zone, Warnings: &n.Warnings}).Rows, Learnt: sizes}
	sp := kr.readSpan(ctx, upper, upper, false)
	if sp.err == nil {
		sp = kr.readSpan(ctx, 1, upper, true)
	}
	var le *ladderError
	if errors.As(sp.err, &le) && le.Ignored == sortParam {
		return x.probeRanges(ctx, ep, kr, upper, n)
	}
	switch {
	case errors.As(sp.err, &le):
		return x.probeTime(ctx, ep, le.Ignored.what(ep.Cursor), n)
	case sp.err != nil:
		return Paging{}, sp.err
	}
	if _, capped := sizes.capped(); !capped && int64(x.PageSize) > probeCount {
		capAt, err := probeCap(ctx, kr, upper, int64(x.PageSize))
		switch {
		case errors.As(err, &le):
			return x.probeTime(ctx, ep, le.Ignored.what(ep.Cursor), n)
		case err != nil:
			return Paging{}, err
		}
		if capAt > 0 {
			sizes = newLearnt(x.PageSize)
			sizes.capAt(capAt)
		}
	}
	honoured := fmt.Sprintf("filter[%s] and sort=%s honoured", ep.Cursor, ep.Cursor)
	if ask, capped := sizes.capped(); capped {
		return Paging{Kind: PagingKeysetCapped, Cap: ask, Sentence: fmt.Sprintf(
			"by %s at the PBX's page size (%s; it answers at most %d records a page)", ep.Cursor, honoured, ask)}, nil
	}
	return Paging{Kind: PagingKeyset, Sentence: fmt.Sprintf("by %s (%s)", ep.Cursor, honoured)}, nil
}

// probeRanges reads the newest keys (16, or half a page of
// EXPORT_PAGE_SIZE if less) as an export reads key ranges on a PBX that
// ignores the sort: one range read whole means key ranges work; a key
// outside it, or pages too small to prove a range whole, send the probe
// on to time windows. A range that few keys wide is read whole within
// its budget of requests even at two records a page.
func (x *Exporter) probeRanges(ctx context.Context, ep *record.Endpoint, kr *keyReader, upper int64, n *Counters) (Paging, error) {
	// A reader of its own, as an export would start one: the page sizes
	// learnt from the probe's small pages do not carry over.
	kr = &keyReader{Client: kr.Client, Endpoint: ep, Concurrency: 1, MaxPages: 64, Counters: n, Log: kr.Log, Rows: kr.Rows,
		Learnt: newLearnt(x.PageSize), Unsorted: true}
	width := max(1, min(16, int64(x.PageSize)/2))
	sp := kr.wholeRange(ctx, max(1, upper-width+1), upper)
	var le *ladderError
	switch {
	case errors.As(sp.err, &le):
		return x.probeTime(ctx, ep, le.Ignored.what(ep.Cursor), n)
	case sp.err != nil:
		return Paging{}, sp.err
	}
	return Paging{Kind: PagingKeyRanges, Ignored: sortParam.what(ep.Cursor), Sentence: fmt.Sprintf(
		"by %s ranges, each read whole: the PBX ignores sort=%s but honours filter[%s]", ep.Cursor, ep.Cursor, ep.Cursor)}, nil
}

// probeTime asks for a time window in 1970, which holds no call: a record
// in the answer means the PBX ignores the time filter too.
func (x *Exporter) probeTime(ctx context.Context, ep *record.Endpoint, ignored string, n *Counters) (Paging, error) {
	if ep.TimeField == "" {
		return Paging{Kind: PagingNone, Ignored: ignored, Sentence: fmt.Sprintf(
			"none usable: the PBX ignores %s and the endpoint has no time field to page by", ignored)}, nil
	}
	tf := ep.TimeField
	a, b := epochWall, "1970-01-01 00:00:01"
	q := url.Values{}
	q.Set("filter["+tf+"][from]", a)
	q.Set("filter["+tf+"][to]", b)
	q.Set("start", "0")
	q.Set("count", strconv.Itoa(probeCount))
	pg, err := x.Client.List(ctx, ep.Path, q, &n.Counts)
	if err != nil {
		return Paging{}, fmt.Errorf("window %s to %s: %w", a, b, err)
	}
	rows, err := (&record.Converter{Endpoint: ep, Zone: x.Zone, Warnings: &n.Warnings}).Rows(pg.Records)
	if err != nil {
		return Paging{}, fmt.Errorf("window %s to %s: %w", a, b, err)
	}
	for _, row := range rows {
		if row.Wall < a || row.Wall > b {
			return Paging{Kind: PagingNone, Ignored: ignored, Sentence: fmt.Sprintf(
				"none usable: the PBX ignores %s, and filter[%s] as well (it sent %s %q for a window in 1970)", ignored, tf, tf, row.Wall)}, nil
		}
	}
	return Paging{Kind: PagingTimeWindows, Ignored: ignored, Sentence: fmt.Sprintf(
		"by filter[%s] time windows: the PBX ignores %s", tf, ignored)}, nil
}

// probeCap asks for a page of ask records from the first key: fewer while
// more remain (the total says so or, without one, a record after the
// page's last key) is a cap, returned; 0 when there is none.
func probeCap(ctx context.Context, kr *keyReader, upper, ask int64) (int64, error) {
	pg, rows, _, _, _, err := kr.page(ctx, 1, upper, ask)
	if err != nil {
		return 0, err
	}
	got := int64(len(pg.Records))
	switch {
	case got >= ask || len(rows) == 0:
		return 0, nil
	case pg.Total >= 0:
		if pg.Total > got {
			return got, nil
		}
		return 0, nil
	}
	last := rows[len(rows)-1].Cursor
	if last >= upper {
		return 0, nil
	}
	next, _, _, _, _, err := kr.page(ctx, last+1, upper, 1)
	if err != nil || len(next.Records) == 0 {
		return 0, err
	}
	return got, nil
}
