package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	pbxapi "github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
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
	st, where, err := a.recordingsStore(ctx)
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
	a.checkUnnamed(ctx, c, st, ep, s)
	now := time.Now()
	if a.checkRecordingFile(ctx, c, p, ep, now) {
		a.checkRecordingsBehind(ctx, c, p, ep, s, now)
	}
}

// eachStored is a recordings store that lists its files (recstore.Dir
// and S3).
type eachStored interface {
	Each(ctx context.Context, pbx string, fn func(name string) error) error
}

// objectNamer is a sink that tells which files its rows name
// (sinks.Postgres and CSV), the rows of every PBX.
type objectNamer interface {
	NamedObjects(ctx context.Context, ep *record.Endpoint, names []string) (map[string]bool, error)
}

// checkUnnamed lists the files of this PBX in the store that no row of
// the sink names (review 15, R15-3): a run that failed or was stopped
// stored them before it wrote their rows. The next run that lists their
// recordings again names them, or removes the files of recordings not
// kept once proven theirs (exporter/recordings, Erase); those the PBX no
// longer lists stay for good, a voice maybe of a number forgotten since,
// which forget, finding files through rows, cannot reach. Reported, never
// removed: nothing here proves whose a file is. Every file is listed, and
// the rows asked once: a check's cost grows with the store.
func (a *app) checkUnnamed(ctx context.Context, c *checkLines, st recordings.Store, ep *record.Endpoint, s *sink) {
	e, ok := st.(eachStored)
	if !ok {
		return
	}
	if s == nil && a.cfg.Sink != "postgres" {
		// check opens no CSV sink of its own: opened here, it reads
		// its files only.
		var err error
		if s, err = a.openSink(ctx); err != nil {
			c.line(fmt.Errorf("read the rows naming the store's files: %w", err), "recordings")
			return
		}
		defer s.close()
	}
	if s == nil {
		return
	}
	a.checkPending(ctx, c, ep, s)
	n, ok := s.Sink.(objectNamer)
	if !ok {
		return
	}
	var names []string
	err := e.Each(ctx, storedPBX(a.cfg.PBXID), func(name string) error {
		names = append(names, name)
		return nil
	})
	if err != nil {
		c.line(fmt.Errorf("list the store's files: %w", err), "recordings")
		return
	}
	named, err := n.NamedObjects(ctx, ep, names)
	if err != nil {
		c.line(fmt.Errorf("read the rows naming the store's files: %w", err), "recordings")
		return
	}
	var unnamed []string
	for _, name := range names {
		if !named[name] {
			unnamed = append(unnamed, name)
		}
	}
	if len(unnamed) == 0 {
		c.line(nil, "recordings", fmt.Sprintf("store: each of its %d file(s) of this PBX is named by a row", len(names)))
		return
	}
	slices.Sort(unnamed)
	c.warn("recordings", fmt.Sprintf("store: %d file(s) named by no row (first: %s): stored by a run that failed or was stopped before it wrote their rows (or by a run going on now); "+
		"the next run that lists their recordings names them, or removes those not kept (a number forgotten, older than EXPORT_RETENTION) once proven theirs; "+
		"forget and the retention cannot reach a file no row names: for a recording the PBX no longer lists, check the file and remove it by hand (README, Erasure)", len(unnamed), unnamed[0]))
}

// statePeeker is a sink whose State completes crashed commits, which
// reads a state without (sinks.CSV).
type statePeeker interface {
	PeekState(ctx context.Context, pbx, key string) ([]byte, error)
}

// checkPending lists the files of recordings not kept that the
// recordings state holds pending removal (exporter.PendingRemovals):
// kept for want of proof, tried again by every run.
func (a *app) checkPending(ctx context.Context, c *checkLines, ep *record.Endpoint, s *sink) {
	read := s.Sink.State
	if p, ok := s.Sink.(statePeeker); ok {
		read = p.PeekState
	}
	b, err := read(ctx, a.cfg.PBXID, ep.Name)
	var files []exporter.PendingFile
	if err == nil {
		files, err = exporter.PendingRemovals(b)
	}
	switch {
	case err != nil:
		c.line(fmt.Errorf("read the files pending removal: %w", err), "recordings")
	case len(files) > 0:
		first := cmp.Or(files[0].Name, "one under a name of before ids were keyed")
		c.warn("recordings", fmt.Sprintf("store: %d file(s) of recordings not kept (a number forgotten, older than EXPORT_RETENTION) pending removal, kept for want of proof (first: %s: %s); "+
			"every run lists their recordings again and removes a file once proven theirs; check them, and remove by hand those the PBX no longer has (README, Erasure)", len(files), first, files[0].Why))
	}
}

// checkRecordingFile lists the recordings of the last 7 days (one page:
// the first checkListed the PBX sends) and fetches the first bytes of the
// file of the newest among them; it reports whether the list answered.
func (a *app) checkRecordingFile(ctx context.Context, c *checkLines, p *pbx, ep *record.Endpoint, now time.Time) bool {
	recs, err := a.listRecordings(ctx, p, ep, now.Add(-7*24*time.Hour), now, checkListed)
	if err != nil {
		c.line(fmt.Errorf("list %s: %w", ep.Path, err), "recordings")
		return false
	}
	if len(recs) == 0 {
		c.line(nil, "recordings", "listed: no recording in the last 7 days, so no file to fetch")
		return true
	}
	newest, listedN := recs[len(recs)-1], fmt.Sprint(len(recs))
	if len(recs) == checkListed {
		listedN = fmt.Sprintf("%d or more", checkListed) // one page asked: the newest of those
	}
	spool, from, err := a.spool()
	if err == nil {
		_, err = spool.Probe(ctx, newest.path)
	}
	if err != nil {
		// A refused token's error names the token to create (Spool's hint).
		c.line(fmt.Errorf("%s recording(s) listed, but the newest one's file could not be fetched with %s: %w", listedN, from, err), "recordings")
		return true
	}
	c.line(nil, "recordings", fmt.Sprintf("files: %s recording(s) listed in the last 7 days; the newest one's file fetched with %s", listedN, from))
	return true
}

// checkListed is how many recordings check asks for: one page.
const checkListed = 100

// listed is a recording as check needs it.
type listed struct {
	path  string
	start time.Time
	wall  bool // start was the PBX's wall time, read in WILDIX_TIMEZONE (UTC when not set)
}

// listRecordings asks the PBX for at most count recordings whose call
// started from from to to, in each time form the endpoint declares until
// one is taken, and reads their file address and start in the shape the
// PBX sends (record.Endpoint.DetectShape). Sorted by start. Six
// parameters on purpose: the PBX, its endpoint, the range and the count
// are what one listing asks; a struct would only rename them.
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
		return readListed(&e, form, zone, body)
	}
	return nil, fmt.Errorf("refused every time form (%v): %w", ep.TimeForms, lastErr)
}

// readListed reads the records of a list answer.
func readListed(ep *record.Endpoint, form string, zone *time.Location, body []byte) ([]listed, error) {
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
				l.start, _ = time.ParseInLocation(record.WallLayout, v, zone)
				l.wall = true
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
// older than 5 days not yet copied (the PBX drops its copy at 7), the
// last recordings run failed, none succeeded in 30 days while runs were
// tried, or more than 3 days between successful recordings runs in the
// run ledger.
//
// The ledger gives the last successful recordings run; every recording
// that started before it was stored, vanished or refused (its cursor
// moved past them only then). One that started after it and more than 5
// days ago is not yet copied: listed, it is the warning. Six parameters
// on purpose: check's lines, the PBX, its endpoint, the sink and the
// check's one now are each check step's, as for its other steps.
func (a *app) checkRecordingsBehind(ctx context.Context, c *checkLines, p *pbx, ep *record.Endpoint, s *sink, now time.Time) {
	runs, err := a.recordingsRuns(ctx, s, now.Add(-30*24*time.Hour))
	if err != nil {
		c.line(fmt.Errorf("read the run ledger: %w", err), "recordings")
		return
	}
	var ok []time.Time // the successful runs' starts
	for _, r := range runs {
		if r.err == "" {
			ok = append(ok, r.started)
		}
	}
	since := now.Add(-7 * 24 * time.Hour)
	if len(ok) > 0 && ok[len(ok)-1].After(since) {
		since = ok[len(ok)-1]
	}
	if due := now.Add(-recordingsBehind); since.Before(due) {
		recs, err := a.listRecordings(ctx, p, ep, since, due, 1)
		if err != nil {
			c.line(fmt.Errorf("list the recordings not yet copied: %w", err), "recordings")
		} else if len(recs) > 0 {
			c.warn("recordings", fmt.Sprintf("falling behind: a recording from %s is not copied yet (older than 5 days; the PBX drops its copy at 7): run the export now, and see why the last runs did not copy it", a.listedTime(recs[0])))
		}
	}
	const every = "copy at least every 3 days, the PBX drops its copy at 7"
	var last recRun
	if len(runs) > 0 {
		last = runs[len(runs)-1]
	}
	switch {
	case len(runs) == 0:
		c.line(nil, "recordings", "run ledger: no recordings run in the last 30 days")
	case len(ok) == 0:
		c.warn("recordings", fmt.Sprintf("run ledger: %d recordings run(s) in the last 30 days, none successful; the last started %s and failed: %s",
			len(runs), a.checkTime(last.started), last.err))
	case now.Sub(ok[len(ok)-1]) > recordingsGap:
		c.warn("recordings", fmt.Sprintf("run ledger: no successful recordings run for %s (the last started %s): %s",
			days(now.Sub(ok[len(ok)-1])), a.checkTime(ok[len(ok)-1]), every))
	case last.err != "":
		c.warn("recordings", fmt.Sprintf("run ledger: the last recordings run started %s and failed: %s (the last successful one started %s)",
			a.checkTime(last.started), last.err, a.checkTime(ok[len(ok)-1])))
	default:
		for i := 1; i < len(ok); i++ {
			if gap := ok[i].Sub(ok[i-1]); gap > recordingsGap {
				c.warn("recordings", fmt.Sprintf("run ledger: %s between successful recordings runs (%s to %s): %s",
					days(gap), a.checkTime(ok[i-1]), a.checkTime(ok[i]), every))
				return
			}
		}
		c.line(nil, "recordings", fmt.Sprintf("run ledger: %d successful recordings run(s) in the last 30 days, the last started %s", len(ok), a.checkTime(ok[len(ok)-1])))
	}
}

func days(d time.Duration) string { return fmt.Sprintf("%.1f days", d.Hours()/24) }

// checkTime is an instant as check prints it: in the PBX's zone
// (WILDIX_TIMEZONE) or UTC, with the zone's name.
func (a *app) checkTime(t time.Time) string {
	zone := a.cfg.Timezone
	if zone == nil {
		zone = time.UTC
	}
	return t.In(zone).Format("2006-01-02 15:04 MST")
}

// listedTime is a listed recording's start as check prints it: a wall
// time read without WILDIX_TIMEZONE is the PBX's local time, of an
// offset not known here.
func (a *app) listedTime(l listed) string {
	if l.wall && a.cfg.Timezone == nil {
		return l.start.Format("2006-01-02 15:04") + " (the PBX's local time)"
	}
	return a.checkTime(l.start)
}

// recRun is a recordings run in the run ledger: its start, and its
// recordings endpoint's error ("" when it succeeded).
type recRun struct {
	started time.Time
	err     string
}

// recordingsRuns returns the recordings runs of this PBX that ended since
// since, oldest first, from the run ledger: PostgreSQL's export_runs, or
// the CSV sink's .state/*/runs.jsonl.
func (a *app) recordingsRuns(ctx context.Context, s *sink, since time.Time) ([]recRun, error) {
	if s != nil && s.pool != nil {
		rows, err := s.pool.Query(ctx, "SELECT r.started_at, COALESCE(e.error, '') FROM "+pgx.Identifier{a.cfg.DBSchema, "export_runs"}.Sanitize()+" r JOIN "+
			pgx.Identifier{a.cfg.DBSchema, "export_run_endpoints"}.Sanitize()+` e USING (run_id)
WHERE r.pbx = $1 AND e.endpoint = $2 AND r.ended_at IS NOT NULL AND r.started_at >= $3 ORDER BY r.started_at`,
			a.cfg.PBXID, config.RecordingsEndpoint, since)
		if err != nil {
			if isUndefinedTable(err) {
				return nil, nil // no export yet: the next applies the migrations
			}
			return nil, err
		}
		return pgx.CollectRows(rows, func(row pgx.CollectableRow) (recRun, error) {
			var r recRun
			err := row.Scan(&r.started, &r.err)
			r.err = shortError(r.err)
			return r, err
		})
	}
	files, err := filepath.Glob(filepath.Join(a.cfg.CSVDir, ".state", "*", "runs.jsonl"))
	if err != nil {
		return nil, err
	}
	var out []recRun
	for _, f := range files {
		rs, err := csvRecordingsRuns(f, a.cfg.PBXID, since)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	slices.SortFunc(out, func(x, y recRun) int { return x.started.Compare(y.started) })
	return out, nil
}

// shortError is a ledger's error as one line of check: the first line,
// cut at 200 bytes.
func shortError(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}

// csvRecordingsRuns reads one CSV run ledger.
func csvRecordingsRuns(file, pbxID string, since time.Time) ([]recRun, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type endpoint struct {
		Endpoint string `json:"endpoint"`
		Error    string `json:"error"`
	}
	var out []recRun
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
		for _, e := range run.Endpoints {
			if e.Endpoint == config.RecordingsEndpoint {
				out = append(out, recRun{started: run.Started, err: shortError(e.Error)})
			}
		}
	}
	return out, sc.Err()
}

// isUndefinedTable reports PostgreSQL's 42P01.
func isUndefinedTable(err error) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && pe.SQLState() == "42P01"
}
