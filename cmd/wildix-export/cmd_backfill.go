package main

import (
	"context"
	"fmt"
	"time"

	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// cmdBackfill is the backfill command: its flags, then the windows of
// [--from, --to) exported under the PBX's lock, with the rewrite in place
// under the rule first planned when asked for or due (planRewrite). It
// stays one function (about 70 lines, half of them its --help text, which
// belongs beside the flags it describes).
func cmdBackfill(ctx context.Context, a *app, args []string) error {
	fs := a.flags("backfill", "--from DATE --to DATE [flags]", `Export the records whose time (call start) lies in [--from, --to), PBX-local
time, window by window. Each window commits on its own, so running the same
backfill again resumes at the first unfinished window (--force redoes all).
A backfill never moves the nightly cursor; rows already exported are not
duplicated, in PostgreSQL or CSV (in CSV a row that changed replaces the old one).
With --rewrite, under EXPORT_PSEUDONYMIZE, a backfill then rewrites in place,
under the rule, every row of the PBX the sink holds that a run under another
rule wrote (recordings' rows, earlier snapshots, calls the PBX no longer has),
over the whole history whatever --from and --to (README, Privacy, lists what it
does not reach). Only with --rewrite, once, after a change of rule: the rewrite
cannot be undone, and it judges the extensions a row written in clear holds by
those known when it runs (a colleague's long extension neither the PBX nor the
sink's colleagues know then is replaced for good); a row it judged is not read
again by a later one under the same rule. A backfill with --rewrite stopped before its end leaves
the rewrite due: the next backfill of the PBX, with or without --rewrite,
completes it (and says so), or fails (exit 1) saying it is still due; a
damaged record of it is replaced by a backfill with --rewrite. To withdraw a
rewrite due, delete its record (README, Privacy). Rows written under the rule are left as they are,
and nothing is rewritten when the PBX's colleagues could not be read. Under
rule none --rewrite is refused (exit 2): a pseudonym cannot be turned back into
its value in clear.`)
	from := fs.String("from", "", "first day, YYYY-MM-DD (inclusive), PBX-local")
	to := fs.String("to", "", "last day, YYYY-MM-DD (exclusive), PBX-local")
	window := fs.Duration("window", 24*time.Hour, "window length")
	force := fs.Bool("force", false, "redo windows already done")
	rewrite := fs.Bool("rewrite", false, "then rewrite in place, under EXPORT_PSEUDONYMIZE's rule, every stored row of the PBX a run under another rule wrote, the whole history: once, after a change of rule; it cannot be undone (README, Privacy)")
	eps := fs.String("endpoints", "", "comma list of endpoints (default: every endpoint with a time field)")
	if err := parse(fs, args); err != nil {
		return err
	}
	opts, err := backfillRange(*from, *to, *window)
	if err != nil {
		return err
	}
	opts.Force, opts.Progress = *force, a.backfillProgress()
	if err := a.load(config.Need{PBX: true, Sink: true}); err != nil {
		return err
	}
	if *rewrite && !a.cfg.Pseudonymize.On() {
		return errRewriteNone
	}
	cat, err := a.catalog()
	if err != nil {
		return err
	}
	endpoints, err := backfillEndpoints(cat, *eps)
	if err != nil {
		return err
	}
	st, err := a.start(ctx, cat)
	if err != nil {
		return err
	}
	defer st.sink.close()
	m := newMetrics()
	return a.safely(m, func() error {
		return a.export(ctx, st, m, func(ctx context.Context, id string) *exporter.RunResult {
			// Only when asked for, now or by a backfill stopped before
			// its end (review 25 R25-1, review 28 R28-1 and R28-2), not at
			// every backfill nor every --force (which only redoes windows).
			if plan := a.planRewrite(ctx, st, id, *rewrite); plan.run() {
				a.rewriteUnderRule(st, plan)
			}
			return st.x.Backfill(ctx, id, endpoints, opts)
		})
	})
}

// errRewriteNone refuses --rewrite under rule none (review 29, R29-1):
// it would rewrite nothing, and say nothing.
var errRewriteNone = fmt.Errorf("%w: --rewrite rewrites the stored rows under EXPORT_PSEUDONYMIZE's rule, which is none here (unset or none): "+
	"there is nothing to rewrite under, and a pseudonym written already cannot be turned back into its value in clear; "+
	"set EXPORT_PSEUDONYMIZE (with EXPORT_PSEUDONYM_KEY) to the rule the rows are to be written under, or run the backfill without --rewrite (README, Privacy)", errUsage)

// backfillRange checks the flags' range and window.
func backfillRange(from, to string, window time.Duration) (exporter.BackfillOptions, error) {
	var o exporter.BackfillOptions
	if from == "" || to == "" {
		return o, fmt.Errorf("%w: --from and --to are required, e.g. --from 2026-01-01 --to 2026-02-01", errUsage)
	}
	f, err := parseWall("from", from)
	if err != nil {
		return o, err
	}
	t, err := parseWall("to", to)
	if err != nil {
		return o, err
	}
	if !f.Before(t) {
		return o, fmt.Errorf("%w: --from %s is not before --to %s", errUsage, from, to)
	}
	if window < time.Minute {
		return o, fmt.Errorf("%w: --window %s: expected at least 1m", errUsage, window)
	}
	return exporter.BackfillOptions{From: f, To: t, Window: window}, nil
}

func parseWall(flagName, s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: --%s %q: expected a date YYYY-MM-DD (or YYYY-MM-DD HH:MM) in the PBX's local time", errUsage, flagName, s)
}

// backfillEndpoints is the --endpoints list, else every endpoint with a
// time field and a cursor.
func backfillEndpoints(cat *record.Catalog, list string) ([]record.Endpoint, error) {
	if list != "" {
		endpoints, err := cat.Select(config.SplitList(list))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		for _, e := range endpoints {
			if e.Files != "" {
				return nil, fmt.Errorf("%w: --endpoints %s: recordings are not backfilled: the nightly run copies each one while the PBX keeps it (7 days), and only it (README, Recordings)", errUsage, e.Name)
			}
		}
		return endpoints, nil
	}
	var endpoints []record.Endpoint
	for _, e := range cat.All() {
		if e.TimeField != "" && e.Cursor != "" {
			endpoints = append(endpoints, e)
		}
	}
	return endpoints, nil
}

// backfillProgress reports progress on one line on a terminal, else as a
// log line every ten seconds and at the end of each endpoint.
func (a *app) backfillProgress() func(exporter.BackfillProgress) {
	tty := isTerminal(a.stderr)
	var lastLog time.Time
	return func(pr exporter.BackfillProgress) {
		rate := float64(pr.Rows) / max(pr.Elapsed.Seconds(), 0.001)
		left := time.Duration(0)
		if pr.Done > 0 {
			left = time.Duration(float64(pr.Elapsed) / float64(pr.Done) * float64(pr.Total-pr.Done))
		}
		if tty {
			fmt.Fprintf(a.stderr, "\r%s: window %d/%d (%s) rows %d, %.0f rows/s, about %s left   ",
				pr.Endpoint, pr.Done, pr.Total, pr.Window.From[:10], pr.Rows, rate, left.Round(time.Second))
			if pr.Done == pr.Total {
				fmt.Fprintln(a.stderr)
			}
			return
		}
		if time.Since(lastLog) >= 10*time.Second || pr.Done == pr.Total {
			lastLog = time.Now()
			a.log.Info("backfill progress", "endpoint", pr.Endpoint, "windows_done", pr.Done, "windows", pr.Total,
				"window", pr.Window.From, "rows", pr.Rows, "rows_per_second", int(rate), "time_left", left.Round(time.Second).String())
		}
	}
}
