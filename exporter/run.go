package exporter

import (
	"context"
	"log/slog"
	"net/url"
	"time"

	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// endpointRun is one endpoint's run: what every step of a policy shares,
// passed as one value. Its result is written by the policy's goroutine
// only.
type endpointRun struct {
	x      *Exporter
	ep     *record.Endpoint
	runID  string
	n      *paging.Counters
	log    *slog.Logger
	res    *EndpointResult
	learnt *paging.Learnt // what the PBX was seen to do, for this run
	began  time.Time
}

func (x *Exporter) newRun(runID string, ep *record.Endpoint, res *EndpointResult) *endpointRun {
	res.Endpoint = ep.Name
	return &endpointRun{x: x, ep: ep, runID: runID, n: &paging.Counters{}, res: res, began: time.Now(),
		log: x.log().With("endpoint", ep.Name, "run_id", runID), learnt: paging.NewLearnt(x.PageSize)}
}

// note records a detection or guess once per endpoint and run: in the log
// and in the endpoint's result (the run ledger).
func (e *endpointRun) note(text string) { note(e.res, e.log, text) }

// converter converts the endpoint's records, counting its warnings.
func (e *endpointRun) converter() *record.Converter {
	return &record.Converter{Endpoint: e.ep, Zone: e.x.Zone, Warnings: &e.n.Warnings}
}

// reader reads the endpoint with the further filters q, conc requests at
// once.
func (e *endpointRun) reader(q url.Values, conc int) *paging.Reader {
	return &paging.Reader{Lister: e.x.Client, Endpoint: e.ep, Query: q, Concurrency: conc, MaxPages: e.x.MaxPages,
		Counters: e.n, Log: e.log, Rows: e.converter().Rows, Learnt: e.learnt, Note: e.note}
}

// ladder reads the endpoint's key ranges with the further filters q,
// falling to last.
func (e *endpointRun) ladder(q url.Values, conc int, last paging.Strategy) *paging.Ladder {
	return &paging.Ladder{Reader: e.reader(q, conc), Last: last}
}

// committer opens the committer of the endpoint's batches described by
// info.
func (e *endpointRun) committer(ctx context.Context, info BatchInfo, grace time.Duration) *committer {
	return e.x.newCommitter(ctx, info, e.n, grace)
}

// tally fills in the endpoint's duration and request counts when its
// export ends.
func (e *endpointRun) tally() { tally(e.res, e.n, e.began) }
