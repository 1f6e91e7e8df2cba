package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/sinks"
)

// pruner is what retention asks of a sink (sinks.Postgres, sinks.CSV).
type pruner interface {
	Prune(ctx context.Context, pbx string, eps []record.Endpoint, cut time.Time, o sinks.PruneOptions) (sinks.Pruned, error)
}

// limitStore keeps the limit a PBX's rows were last pruned under
// (sinks.Postgres, sinks.CSV).
type limitStore interface {
	RetentionLimit(ctx context.Context, pbx string) (time.Duration, error)
	SetRetentionLimit(ctx context.Context, pbx, run string, limit time.Duration) error
	// LedgerLimit is the limit of the last prune the run ledger records,
	// for when the stored one is lost.
	LedgerLimit(ctx context.Context, pbx string) (time.Duration, string, error)
}

// limitText writes a limit as EXPORT_RETENTION takes it.
func limitText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// retentionLimit checks EXPORT_RETENTION against the limit the sink's
// rows of this PBX were last pruned under: a shorter one (a typo, 40d for
// 400d, would delete history for good on the next run) is refused (exit
// 2) unless a.force, as a changed pseudonymisation key is. Forced, it
// returns the change, which the retention result's notes (the run
// ledger) record; the limit is stored once a prune under it succeeded.
// With none stored (lost with the state, the rows and ledger kept), the
// limit of the last prune the run ledger records is taken.
func (a *app) retentionLimit(ctx context.Context, s *sink) (changed string, err error) {
	limit := a.cfg.Retention
	ls, ok := s.Sink.(limitStore)
	if limit <= 0 || !ok {
		return "", nil
	}
	was, err := ls.RetentionLimit(ctx, a.cfg.PBXID)
	from := ""
	if err == nil && was == 0 {
		var run string
		was, run, err = ls.LedgerLimit(ctx, a.cfg.PBXID)
		from = " (the limit of run " + run + ", the last prune the run ledger records: the stored limit is missing)"
	}
	if err != nil || was == 0 || limit >= was {
		return "", err
	}
	if !a.force {
		return "", fmt.Errorf("%w: EXPORT_RETENTION=%s is shorter than the %s the %s's rows of PBX %s were pruned under%s: "+
			"the next prune would delete, for good, the calls between %s and %s old; set EXPORT_RETENTION=%s again if this is a typo, "+
			"or run `wildix-export run --once --force` to accept the shorter limit (the run ledger records the change)",
			errUsage, limitText(limit), limitText(was), s.name, a.cfg.PBXID, from, limitText(limit), limitText(was), limitText(was))
	}
	return fmt.Sprintf("EXPORT_RETENTION lowered from %s to %s (--force)", limitText(was), limitText(limit)), nil
}

// finisher completes a prune a run stopped after removing recordings'
// files (sinks.Postgres, sinks.CSV: FinishPrune).
type finisher interface {
	FinishPrune(ctx context.Context, pbx string, eps []record.Endpoint, o sinks.PruneOptions) (sinks.Pruned, time.Time, error)
}

// retention is the exporter's AfterRun for EXPORT_RETENTION. After a run
// (or backfill) whose endpoints all succeeded, the
// PBX's lock still held, the rows of calls that started before ret's cut
// (the run's start less EXPORT_RETENTION, the cut its guard applied) are
// removed from every endpoint of the catalog that
// holds calls, their recordings' files first (sinks' Prune). What it
// removed is the run's "retention" result: rows per table in its notes
// (the run ledger) and in /metrics only; its Rows stay 0, so that the
// run's rows (export_runs.rows, wildix_export_rows_total) count rows
// exported, never rows removed. A prune
// that fails fails the run; what it removed stays removed, and the next
// run goes on from there: a prune stopped after removing recordings'
// files is settled by the next run, whatever EXPORT_RETENTION says then
// (off: finishPrune): the rows of the files it removed go, nothing the
// limit keeps now, so that no row names a file that is gone (attack 4,
// F6; review 6, R6-2). The exporter's guard keeps older rows from
// being written again (exporter/privacy). changed, when a shorter limit
// was forced (retentionLimit), goes in its notes; the limit is stored
// once the prune succeeded.
func (a *app) retention(st *started, m *metrics, ret record.Retention, changed string) func(context.Context, *exporter.RunResult) []exporter.EndpointResult {
	if ret.Cut.IsZero() {
		return a.finishPrune(st, m)
	}
	cut := ret.Cut
	return func(ctx context.Context, r *exporter.RunResult) []exporter.EndpointResult {
		began := time.Now()
		res := exporter.EndpointResult{Endpoint: "retention", Paging: "prune"}
		var o sinks.PruneOptions
		o, res.Err = a.pruneOptions(ctx, st)
		var got sinks.Pruned
		res.Notes = []string{sinks.PruneNote + cut.Format(time.RFC3339) + " (EXPORT_RETENTION)"}
		if changed != "" {
			res.Notes = append(res.Notes, changed)
		}
		p, ok := st.sink.Sink.(pruner)
		switch {
		case res.Err != nil: // nothing pruned
		case ok:
			got, res.Err = p.Prune(ctx, r.PBX, st.cat.All(), cut, o)
		default:
			res.Err = fmt.Errorf("the %s cannot prune (a bug: please report it)", st.sink.name)
		}
		if ls, ok := st.sink.Sink.(limitStore); ok && res.Err == nil {
			res.Err = ls.SetRetentionLimit(ctx, r.PBX, r.ID, a.cfg.Retention)
		}
		res.Duration = time.Since(began)
		a.pruned(m, r, &res, cut, got)
		return []exporter.EndpointResult{res}
	}
}

// finishPrune is the AfterRun with EXPORT_RETENTION off: a prune a run
// stopped after removing recordings' files (killed, or failed) is
// settled (sinks' FinishPrune): the rows naming the files it removed
// are removed, no file and no other row, and reported as the run's
// "retention" result; without a recordings store it is left pending and
// the result says why. Nothing else is pruned, and with none pending
// there is no such result.
func (a *app) finishPrune(st *started, m *metrics) func(context.Context, *exporter.RunResult) []exporter.EndpointResult {
	f, ok := st.sink.Sink.(finisher)
	if !ok {
		return nil
	}
	return func(ctx context.Context, r *exporter.RunResult) []exporter.EndpointResult {
		began := time.Now()
		res := exporter.EndpointResult{Endpoint: "retention", Paging: "prune"}
		// Settling reads no quarantined record: a zone that cannot be
		// read does not matter here, the store is set whatever.
		o, _ := a.pruneOptions(ctx, st)
		got, cut, err := f.FinishPrune(ctx, r.PBX, st.cat.All(), o)
		if err == nil && cut.IsZero() {
			return nil
		}
		res.Err = err
		switch {
		case cut.IsZero():
		case o.Recordings == nil:
			res.Notes = []string{"the prune of what concerns calls started before " + cut.Format(time.RFC3339) +
				" that a run stopped after removing recordings' files is left pending: no recordings store is configured"}
		case got.Held():
			res.Notes = []string{"the prune of what concerns calls started before " + cut.Format(time.RFC3339) +
				" that a run stopped after removing recordings' files is left pending: it was made with another recordings store, or cannot tell (below)"}
		default:
			res.Notes = []string{"completing the prune of what concerns calls started before " + cut.Format(time.RFC3339) +
				" that a run stopped after removing recordings' files (EXPORT_RETENTION is off now: only the rows of the files it removed go)"}
		}
		res.Duration = time.Since(began)
		a.pruned(m, r, &res, cut, got)
		return []exporter.EndpointResult{res}
	}
}

// pruneOptions are the prune's options for st: the store, its identity
// and the zone; the store is set even when the zone cannot be read (the
// error).
func (a *app) pruneOptions(ctx context.Context, st *started) (sinks.PruneOptions, error) {
	var o sinks.PruneOptions
	if st.rec != nil {
		// The stores (recstore.Dir, recstore.S3) remove; a store
		// that cannot keeps the recordings' rows (Prune says so).
		if rm, ok := st.rec.Store.(sinks.RecordingFiles); ok {
			o.Recordings, o.Store = rm, storeIdentity(a.cfg)
		}
	}
	if st.x != nil {
		// A quarantined recording's wall time read as the export
		// read it: in WILDIX_TIMEZONE, else at the learnt offset.
		var err error
		if o.Zone, err = st.x.RecordingsZone(ctx); err != nil {
			return o, fmt.Errorf("read the PBX's learnt UTC offset: %w", err)
		}
	}
	return o, nil
}

// storeIdentity is the recordings store's identity as a pending prune
// records it (sinks.PruneOptions.Store): its kind and where, no
// credentials: a folder's absolute path; an S3 server's host, the bucket
// and the prefix (without its trailing slash, as OpenS3 adds one).
// Another folder, server, bucket or prefix is another store.
func storeIdentity(c *config.Config) string {
	switch c.RecordingsStore {
	case config.StoreDir:
		dir, err := filepath.Abs(c.RecordingsDir)
		if err != nil {
			dir = filepath.Clean(c.RecordingsDir)
		}
		return "folder " + dir
	case config.StoreS3:
		host := ""
		if c.S3Endpoint != nil {
			host = strings.ToLower(c.S3Endpoint.Host)
		}
		return fmt.Sprintf("S3 bucket %s at %s, prefix %q", c.S3Bucket, host, strings.TrimSuffix(c.S3Prefix, "/"))
	}
	return c.RecordingsStore
}

// pruned completes res, the retention result of run r (a prune at cut
// that removed got, its Duration set): its notes, its error redacted,
// the metrics and the log.
func (a *app) pruned(m *metrics, r *exporter.RunResult, res *exporter.EndpointResult, cut time.Time, got sinks.Pruned) {
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
	m.pruned(got)
	log := a.log.With("run_id", r.ID)
	if !cut.IsZero() {
		log = log.With("cut", cut.Format(time.RFC3339))
	}
	switch {
	case res.Err != nil:
		log.Error("retention failed", "rows", got.Total(), "notes", res.Notes, "err", res.Err)
	case got.Incomplete():
		// A stopped prune left pending, or rows of calls before the cut
		// kept: it stays so, run after run, until someone does what the
		// notes say; the run itself succeeded.
		res.Completed = time.Now().UTC()
		log.Warn("retention incomplete", "rows", got.Total(), "notes", res.Notes, "duration", res.Duration.Round(time.Millisecond))
	default:
		res.Completed = time.Now().UTC()
		log.Info("retention pruned", "rows", got.Total(), "notes", res.Notes, "duration", res.Duration.Round(time.Millisecond))
	}
}
