package exporter

import (
	"context"
	"fmt"

	"github.com/wildix-export/wildix-export/exporter/paging"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// Paging kinds a probe decides, as EndpointResult.Paging names them; the
// probe adds "none" (no usable ordering or filter: a run fails) and
// "empty" (no record to probe with). The ways' names are paging.Strategy's
// (TestPagingKindsAreStrategies).
const (
	PagingKeyset       = "keyset"
	PagingKeysetCapped = "keyset-capped"
	PagingKeyRanges    = "key-ranges"
	PagingTimeWindows  = "time-windows"
	PagingOffset       = "offset"
	PagingNone         = "none"
	PagingEmpty        = "empty"
)

// Paging is what a probe found about how an incremental endpoint can be
// read.
type Paging struct {
	Kind     string // one of the Paging* kinds
	Cap      int64  // with PagingKeysetCapped: the most records a page holds
	Ignored  string // with PagingKeyRanges, PagingTimeWindows and PagingNone: "filter[id]" or "sort=id"
	Sentence string // for a person, e.g. "by id (filter[id] and sort=id honoured)"
}

// Probe decides, with a few small read-only requests, how ep (an
// incremental endpoint) is paged on this PBX: the paging ladder with a
// budget of requests (paging.Ladder.Probe), using the checks an export
// uses. An error is a request that failed, not a finding.
func (x *Exporter) Probe(ctx context.Context, ep *record.Endpoint) (Paging, error) {
	var res EndpointResult
	e := x.newRun("", ep, &res)
	e.learnt = paging.NewLearnt(paging.ProbeCount)
	f, err := e.ladder(nil, 1, paging.ByTimeWindows).Probe(ctx, int64(x.PageSize))
	if err != nil {
		return Paging{}, err
	}
	field, tf := ep.Cursor, ep.TimeField
	var ignored string
	if f.Ignored != 0 {
		ignored = f.Ignored.What(field)
	}
	honoured := fmt.Sprintf("filter[%s] and sort=%s honoured", field, field)
	switch {
	case f.Empty:
		return Paging{Kind: PagingEmpty, Sentence: "not probed: the PBX holds no record yet"}, nil
	case f.None && tf == "":
		return Paging{Kind: PagingNone, Ignored: ignored, Sentence: fmt.Sprintf(
			"none usable: the PBX ignores %s and the endpoint has no time field to page by", ignored)}, nil
	case f.None:
		return Paging{Kind: PagingNone, Ignored: ignored, Sentence: fmt.Sprintf(
			"none usable: the PBX ignores %s, and filter[%s] as well (it sent %s %q for a window in 1970)", ignored, tf, tf, f.TimeSeen)}, nil
	case f.Way == paging.ByTimeWindows:
		return Paging{Kind: PagingTimeWindows, Ignored: ignored, Sentence: fmt.Sprintf(
			"by filter[%s] time windows: the PBX ignores %s", tf, ignored)}, nil
	case f.Way == paging.ByKeyRanges:
		return Paging{Kind: PagingKeyRanges, Ignored: ignored, Sentence: fmt.Sprintf(
			"by %s ranges, each read whole: the PBX ignores sort=%s but honours filter[%s]", field, field, field)}, nil
	case f.Way == paging.ByKeyCapped:
		return Paging{Kind: PagingKeysetCapped, Cap: f.Cap, Sentence: fmt.Sprintf(
			"by %s at the PBX's page size (%s; it answers at most %d records a page)", field, honoured, f.Cap)}, nil
	}
	return Paging{Kind: PagingKeyset, Sentence: fmt.Sprintf("by %s (%s)", field, honoured)}, nil
}
