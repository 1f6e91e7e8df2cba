package main

import (
	"context"
	"fmt"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/sinks"
)

// pruner is what retention asks of a sink (sinks.Postgres, sinks.CSV).
type pruner interface {
	Prune(ctx context.Context, pbx string, eps []record.Endpoint, cut time.Time, o sinks.PruneOptions) (sinks.Pruned, error)
}

// retention is the exporter's AfterRun for EXPORT_RETENTION, nil when it
// is off. After a run (or backfill) whose endpoints all succeeded, the
// PBX's lock still held, the rows of calls that started before ret's cut
// (the run's start less EXPORT_RETENTION, the cut its guard applied) are
// removed from every endpoint of the catalog that
// holds calls, their recordings' files first (sinks' Prune). What it
// removed is the run's "retention" result: rows per table in its notes
// (the run ledger) and in /metrics only; its Rows stay 0, so that the
// run's rows (export_runs.rows, wildix_export_rows_total) count rows
// exported, never rows removed. A prune
// that fails fails the run; what it removed stays removed, and the next
// run goes on from there. The exporter's guard keeps older rows from
// being written again (exporter/privacy).
func (a *app) retention(st *started, m *metrics, ret record.Retention) func(context.Context, *exporter.RunResult) []exporter.EndpointResult {
	if ret.Cut.IsZero() {
		return nil
	}
	cut := ret.Cut
	return func(ctx context.Context, r *exporter.RunResult) []exporter.EndpointResult {
		began := time.Now()
		res := exporter.EndpointResult{Endpoint: "retention", Paging: "prune"}
		var o sinks.PruneOptions
		if st.x != nil {
			// A quarantined recording's wall time read as the export
			// read it: in WILDIX_TIMEZONE, else at the learnt offset.
			o.Zone, res.Err = st.x.RecordingsZone(ctx)
		}
		if st.rec != nil {
			// The stores (recstore.Dir, recstore.S3) remove; a store
			// that cannot keeps the recordings' rows (Prune says so).
			if rm, ok := st.rec.Store.(interface {
				Remove(ctx context.Context, name string) error
			}); ok {
				o.Recordings = rm
			}
		}
		var got sinks.Pruned
		p, ok := st.sink.Sink.(pruner)
		if res.Err != nil {
			res.Err = fmt.Errorf("read the PBX's learnt UTC offset: %w", res.Err)
		} else if ok {
			got, res.Err = p.Prune(ctx, r.PBX, st.cat.All(), cut, o)
		} else {
			res.Err = fmt.Errorf("the %s cannot prune (a bug: please report it)", st.sink.name)
		}
		res.Notes = []string{"removing what concerns calls started before " + cut.Format(time.RFC3339) + " (EXPORT_RETENTION)"}
		for _, c := range got {
			what := "rows"
			if c.Table == sinks.RecordingsStore {
				what = "files"
			}
			note := fmt.Sprintf("%s: %d %s removed", c.Table, c.Rows, what)
			if c.Detail != "" {
				note += " (" + c.Detail + ")"
			}
			res.Notes = append(res.Notes, note)
		}
		if res.Err != nil && a.redact != nil {
			// As the exporter does for endpoints: the ledger and the
			// summary get no number in clear (a file or object name).
			res.Err = a.redact.Error(res.Err)
		}
		res.Duration = time.Since(began)
		m.pruned(got)
		log := a.log.With("run_id", r.ID, "cut", cut.Format(time.RFC3339))
		if res.Err != nil {
			log.Error("retention failed", "rows", got.Total(), "notes", res.Notes, "err", res.Err)
		} else {
			res.Completed = time.Now().UTC()
			log.Info("retention pruned", "rows", got.Total(), "notes", res.Notes, "duration", res.Duration.Round(time.Millisecond))
		}
		return []exporter.EndpointResult{res}
	}
}
