package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/config"
	pbxapi "github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// checkRecordings is check's part for call recordings: the store, one
// file listed and fetched, and whether copying falls behind. It reads
// only: nothing is copied, the store gets a temporary file at most (a
// folder, removed), and the bucket is only asked whether it exists.
func (a *app) checkRecordings(ctx context.Context, c *checkLines, p *pbx, cat *record.Catalog, s *sink) {
	cfg := a.cfg
	if !cfg.RecordingsOn() {
		c.line(nil, "recordings", "off: EXPORT_RECORDINGS_STORE=none (README, Recordings)")
		return
	}
	_, where, err := a.recordingsStore(ctx)
	if err == nil && cfg.RecordingsStore == config.StoreDir {
		err = writable(cfg.RecordingsDir)
	}
	if c.line(err, "recordings", "store "+where) != nil {
		return
	}
	eps, err := cat.Select([]string{config.RecordingsEndpoint})
	if err != nil {
		c.line(err, "recordings")
		return
	}
	ep := &eps[0]
	now := time.Now()
	if a.checkRecordingFile(ctx, c, p, ep, now) {
		a.checkRecordingsBehind(ctx, c, p, ep, s, now)
	}
}

// checkRecordingFile lists the recordings of the last 7 days and fetches
// the first bytes of the newest one's file; it reports whether the list
// answered.
func (a *app) checkRecordingFile(ctx context.Context, c *checkLines, p *pbx, ep *record.Endpoint, now time.Time) bool {
	recs, err := a.listRecordings(ctx, p, ep, now.Add(-7*24*time.Hour), now, 100)
	if err != nil {
		c.line(fmt.Errorf("list %s: %w", ep.Path, err), "recordings")
		return false
	}
	if len(recs) == 0 {
		c.line(nil, "recordings", "listed: no recording in the last 7 days, so no file to fetch")
		return true
	}
	newest := recs[len(recs)-1]
	spool, from, err := a.spool()
	if err == nil {
		_, err = spool.Probe(ctx, newest.path)
	}
	if err != nil {
		// A refused token's error names the token to create (Spool's hint).
		c.line(fmt.Errorf("%d recording(s) listed, but the newest one's file could not be fetched with %s: %w", len(recs), from, err), "recordings")
		return true
	}
	c.line(nil, "recordings", fmt.Sprintf("files: %d recording(s) listed in the last 7 days; the newest one's file fetched with %s", len(recs), from))
	return true
}

// listed is a recording as check needs it.
type listed struct {
	path  string
	start time.Time
}

// listRecordings asks the PBX for at most count recordings whose call
// started from from to to, in each time form the endpoint declares until
// one is taken, and reads their file address and start in the shape the
// PBX sends (record.Endpoint.DetectShape). Sorted by start.
func (a *app) listRecordings(ctx context.Context, p *pbx, ep *record.Endpoint, from, to time.Time, count int) ([]listed, error) {
	zone := a.cfg.Timezone
	if zone == nil {
		zone = time.UTC // a day's error at most on a 7-day range: enough for check
	}
	forms := ep.TimeForms
	if len(forms) == 0 {
		forms = []string{ep.TimeForm}
	}
	var lastErr error
	for _, form := range forms {
		e := *ep
		e.TimeForm = form
		f, t := from.In(zone), to.In(zone)
		if form == record.TimeEpoch {
			f, t = from.UTC(), to.UTC()
		}
		q := e.TimeQuery(f.Format(record.WallLayout), t.Format(record.WallLayout))
		q.Set("start", "0")
		q.Set("count", strconv.Itoa(count))
		status, body, err := p.client.Get(ctx, ep.Path+"?"+q.Encode())
		if err != nil {
			return nil, err
		}
		if status == http.StatusBadRequest {
			lastErr = &pbxapi.APIError{Status: status, Reason: pbxapi.Reason(body)}
			continue // another time form
		}
		if status != http.StatusOK {
			return nil, &pbxapi.APIError{Status: status, Reason: pbxapi.Reason(body)}
		}
		return readListed(&e, form, body)
	}
	return nil, fmt.Errorf("refused every time form (%v): %w", ep.TimeForms, lastErr)
}

// readListed reads the records of a list answer.
func readListed(ep *record.Endpoint, form string, body []byte) ([]listed, error) {
	var env struct {
		Result struct {
			Records []map[string]any `json:"records"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	var out []listed
	for _, r := range env.Result.Records {
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		shape, err := ep.DetectShape(keys)
		if err != nil {
			return nil, err
		}
		l := listed{}
		l.path, _ = r[shape.Fields["path"]].(string)
		switch v := r[shape.Fields["start_time"]].(type) {
		case string:
			if form == record.TimeEpoch {
				n, _ := strconv.ParseInt(v, 10, 64)
				l.start = time.Unix(n, 0)
			} else {
				l.start, _ = time.Parse(record.WallLayout, v)
			}
		case float64:
			l.start = time.Unix(int64(v), 0)
		}
		out = append(out, l)
	}
	slices.SortStableFunc(out, func(x, y listed) int { return x.start.Compare(y.start) })
	return out, nil
}

// checkRecordingsBehind warns when copying falls behind: a recording
// older than 5 days not yet copied (the PBX drops its copy at 7), or more
// than 3 days between successful recordings runs in the run ledger.
//
// The ledger gives the last successful recordings run; every recording
// that started before it was stored, vanished or refused (its cursor
// moved past them only then). One that started after it and more than 5
// days ago is not yet copied: listed, it is the warning.
func (a *app) checkRecordingsBehind(ctx context.Context, c *checkLines, p *pbx, ep *record.Endpoint, s *sink, now time.Time) {
	runs, err := a.recordingsRuns(ctx, s, now.Add(-30*24*time.Hour))
	if err != nil {
		c.line(fmt.Errorf("read the run ledger: %w", err), "recordings")
		return
	}
	since := now.Add(-7 * 24 * time.Hour)
	if len(runs) > 0 && runs[len(runs)-1].After(since) {
		since = runs[len(runs)-1]
	}
	if due := now.Add(-recordingsBehind); since.Before(due) {
		recs, err := a.listRecordings(ctx, p, ep, since, due, 1)
		if err != nil {
			c.line(fmt.Errorf("list the recordings not yet copied: %w", err), "recordings")
		} else if len(recs) > 0 {
			c.warn("recordings", fmt.Sprintf("falling behind: a recording from %s is not copied yet (older than 5 days; the PBX drops its copy at 7): run the export now, and see why the last runs did not copy it", recs[0].start.Format("2006-01-02 15:04")))
		}
	}
	switch {
	case len(runs) == 0:
		c.line(nil, "recordings", "run ledger: no successful recordings run in the last 30 days")
		return
	case now.Sub(runs[len(runs)-1]) > recordingsGap:
		c.warn("recordings", fmt.Sprintf("run ledger: no successful recordings run for %s (the last started %s): copy at least every 3 days, the PBX drops its copy at 7",
			days(now.Sub(runs[len(runs)-1])), runs[len(runs)-1].Local().Format("2006-01-02 15:04")))
		return
	}
	for i := 1; i < len(runs); i++ {
		if gap := runs[i].Sub(runs[i-1]); gap > recordingsGap {
			c.warn("recordings", fmt.Sprintf("run ledger: %s between successful recordings runs (%s to %s): copy at least every 3 days, the PBX drops its copy at 7",
				days(gap), runs[i-1].Local().Format("2006-01-02 15:04"), runs[i].Local().Format("2006-01-02 15:04")))
			return
		}
	}
	c.line(nil, "recordings", fmt.Sprintf("run ledger: %d successful recordings run(s) in the last 30 days, the last started %s", len(runs), runs[len(runs)-1].Local().Format("2006-01-02 15:04")))
}

func days(d time.Duration) string { return fmt.Sprintf("%.1f days", d.Hours()/24) }

// recordingsRuns returns the starts of the successful recordings runs of
// this PBX since since, oldest first, from the run ledger: PostgreSQL's
// export_runs, or the CSV sink's .state/*/runs.jsonl.
func (a *app) recordingsRuns(ctx context.Context, s *sink, since time.Time) ([]time.Time, error) {
	if s != nil && s.pool != nil {
		rows, err := s.pool.Query(ctx, "SELECT r.started_at FROM "+pgx.Identifier{a.cfg.DBSchema, "export_runs"}.Sanitize()+" r JOIN "+
			pgx.Identifier{a.cfg.DBSchema, "export_run_endpoints"}.Sanitize()+` e USING (run_id)
WHERE r.pbx = $1 AND e.endpoint = $2 AND e.error IS NULL AND r.ended_at IS NOT NULL AND r.started_at >= $3 ORDER BY r.started_at`,
			a.cfg.PBXID, config.RecordingsEndpoint, since)
		if err != nil {
			if isUndefinedTable(err) {
				return nil, nil // no export yet: the next applies the migrations
			}
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[time.Time])
	}
	files, err := filepath.Glob(filepath.Join(a.cfg.CSVDir, ".state", "*", "runs.jsonl"))
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for _, f := range files {
		ts, err := csvRecordingsRuns(f, a.cfg.PBXID, since)
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	slices.SortFunc(out, time.Time.Compare)
	return out, nil
}

// csvRecordingsRuns reads one CSV run ledger.
func csvRecordingsRuns(file, pbxID string, since time.Time) ([]time.Time, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type endpoint struct {
		Endpoint string `json:"endpoint"`
		Error    string `json:"error"`
	}
	var out []time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var run struct {
			PBX       string     `json:"pbx"`
			Started   time.Time  `json:"started"`
			Endpoints []endpoint `json:"endpoints"`
		}
		if json.Unmarshal(sc.Bytes(), &run) != nil || run.PBX != pbxID || run.Started.Before(since) {
			continue // a line cut by a crash, another PBX's, or old
		}
		if slices.ContainsFunc(run.Endpoints, func(e endpoint) bool { return e.Endpoint == config.RecordingsEndpoint && e.Error == "" }) {
			out = append(out, run.Started)
		}
	}
	return out, sc.Err()
}

// isUndefinedTable reports PostgreSQL's 42P01.
func isUndefinedTable(err error) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && pe.SQLState() == "42P01"
}
