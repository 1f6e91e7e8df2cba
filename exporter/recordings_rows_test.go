package exporter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// sameID is a front that lists recording b under recording a's id (the
// PBX's ids are not known to be unique: docs/pbx-api.md), and, while
// cutoff is set, lists nothing that started at or after it (a PBX-local
// wall time, the simulator's from/to form).
type sameID struct {
	a, b   atomic.Value // string ids
	cutoff atomic.Value // string
}

func newSameID() *sameID {
	s := &sameID{}
	s.a.Store("")
	s.b.Store("")
	s.cutoff.Store("")
	return s
}

func (s *sameID) front(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool {
	if c := s.cutoff.Load().(string); c != "" && strings.HasPrefix(r.URL.Path, "/api/v1/PBX/recordings") {
		q := r.URL.Query()
		for _, p := range []string{"from", "to"} {
			if q.Has(p) && q.Get(p) > c {
				q.Set(p, c)
			}
		}
		r.URL.RawQuery = q.Encode()
	}
	return listRewrite(func(m map[string]any) {
		if fmt.Sprint(m["id"]) == s.b.Load().(string) {
			m["id"] = s.a.Load().(string)
		}
	})(sim, w, r)
}

// listRewrite is a front that answers the recordings list as the
// simulator does, each record passed through edit first (numbers kept
// as sent).
func listRewrite(edit func(m map[string]any)) func(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool {
	return func(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, "/api/v1/PBX/recordings") {
			return false
		}
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		var ans struct {
			Type   string `json:"type"`
			Result struct {
				Total   json.RawMessage  `json:"total"`
				Records []map[string]any `json:"records"`
			} `json:"result"`
		}
		dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
		dec.UseNumber()
		if rec.Code != http.StatusOK || dec.Decode(&ans) != nil {
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return true
		}
		for _, m := range ans.Result.Records {
			edit(m)
		}
		out, _ := json.Marshal(ans)
		w.Write(out)
		return true
	}
}

// checkBothStored: every recording of the simulator is stored once with
// its bytes, and has one row; a's row holds a's file, and b, listed
// under a's id, is stored and kept under recordings.AltID.
func checkBothStored(t *testing.T, e *recEnv, a, b pbxsim.Recording) {
	t.Helper()
	stored := map[string]int{}
	filepath.WalkDir(e.storeDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			stored[fileSHA256(t, p)]++
		}
		return nil
	})
	recs := e.sim.Recordings()
	for _, r := range recs {
		if n := stored[e.sim.RecordingSHA256(r)]; n != 1 {
			t.Errorf("recording %d stored %d times", r.ID, n)
		}
	}
	rows := e.rows(t)
	if len(rows) != len(recs) || len(stored) != len(recs) {
		t.Errorf("%d rows and %d files for %d recordings", len(rows), len(stored), len(recs))
	}
	alt := recordings.AltID(recordings.Recording{ID: itoa(a.ID), Path: b.Path, IDKey: e.x.RecordingsKey})
	if got := rows[itoa(a.ID)]; len(got) == 0 || got[0] != e.sim.RecordingSHA256(a) {
		t.Errorf("row %d: %q, want recording %d's sha256 %s", a.ID, got, a.ID, e.sim.RecordingSHA256(a))
	}
	name, _ := recstore.Name("pbx", b.Start.UTC(), alt)
	if got := rows[alt]; len(got) < 2 || got[0] != e.sim.RecordingSHA256(b) || got[1] != name {
		t.Errorf("row %s (recording %d sent as %d): %q, want sha256 %s, object %s", alt, b.ID, a.ID, got, e.sim.RecordingSHA256(b), name)
	}
}

// noted: res succeeded and one of its notes names the id sent twice.
func noted(t *testing.T, res exporter.EndpointResult, id int64) {
	t.Helper()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if n := strings.Join(res.Notes, "\n"); res.Recordings.Clashes != 1 || !strings.Contains(n, `id "`+itoa(id)+`"`) {
		t.Errorf("%d clashes, notes %q: none names id %d sent for two recordings", res.Recordings.Clashes, res.Notes, id)
	}
}

// TestRecordingsSameIDInOneRun: the list sends two recordings (their own
// paths, starts and files) under one id, in one run: 7 minutes apart
// (one window), and more than the look-back apart on one UTC day (the
// same stored name, the first's key dropped from the recent ones). Both
// are stored and kept, the second under an id of its own, and the ledger
// names the id. Before, the second was neither stored nor counted, or
// replaced the first's file under its row, and the run failed copying a
// recording "" with no start.
func TestRecordingsSameIDInOneRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		calls int64
		every int
		pair  func(recs []pbxsim.Recording) (int, int)
	}{
		{"7 minutes apart", 300, 3, func([]pbxsim.Recording) (int, int) { return 10, 11 }},
		{"beyond the look-back, one day", 1500, 30, func(recs []pbxsim.Recording) (int, int) {
			for i := range recs {
				for j := i + 1; j < len(recs); j++ {
					if recs[j].Start.UTC().YearDay() == recs[i].Start.UTC().YearDay() && recs[j].Start.Sub(recs[i].Start) > 2*time.Hour {
						return i, j
					}
				}
			}
			return -1, -1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSameID()
			e := recSetup(t, pbxsim.Options{Seed: 19, Calls: tc.calls, Recordings: pbxsim.RecordingOptions{Every: tc.every}}, "csv", s.front)
			e.x.LookBack = time.Hour
			recs := slices.Clone(e.sim.Recordings())
			slices.SortFunc(recs, func(x, y pbxsim.Recording) int { return x.Start.Compare(y.Start) })
			i, j := tc.pair(recs)
			if i < 0 {
				t.Fatalf("no pair in %d recordings", len(recs))
			}
			a, b := recs[i], recs[j]
			s.a.Store(itoa(a.ID))
			s.b.Store(itoa(b.ID))
			t.Logf("recording %d at %s and %d at %s sent with one id", a.ID, a.Start, b.ID, b.Start)
			res := e.run(t)
			noted(t, res, a.ID)
			if rr := res.Recordings; rr.Listed != len(recs) || rr.Copied != len(recs) || rr.OldestPending != nil {
				t.Errorf("%d recordings; result %+v", len(recs), *rr)
			}
			checkBothStored(t, e, a, b)
			if res = e.run(t); res.Err != nil || res.Rows != 0 || res.Recordings.Copied != 0 {
				t.Errorf("second run: rows %d, copied %d, err %v", res.Rows, res.Recordings.Copied, res.Err)
			}
		})
	}
}

// TestRecordingsSameIDLaterRun: the second recording under an id comes
// in a later run: within the look-back of the first (its key among the
// recent ones, with another start) or beyond it (its file found under
// the stored name: another size, or, when the PBX announces no size,
// another sha256 once fetched). Both are stored and kept, the second
// under an id of its own, and the ledger names the id; a third run
// copies nothing.
func TestRecordingsSameIDLaterRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, fields string
		beyond       bool
	}{
		{"within the look-back", "camel", false},
		{"beyond the look-back", "camel", true},
		{"beyond the look-back, no size", "attachment", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSameID()
			e := recSetup(t, pbxsim.Options{Seed: 23, Calls: 1500, Recordings: pbxsim.RecordingOptions{Every: 30, Fields: tc.fields}}, "csv", s.front)
			e.x.LookBack = time.Hour
			recs := slices.Clone(e.sim.Recordings())
			slices.SortFunc(recs, func(x, y pbxsim.Recording) int { return x.Start.Compare(y.Start) })
			i, j := -1, -1
			for k := 1; k < len(recs) && i < 0; k++ {
				p := recs[k-1] // the newest of the first run
				for h := k - 1; h >= 0 && i < 0; h-- {
					day := recs[h].Start.UTC().YearDay() == recs[k].Start.UTC().YearDay()
					if !tc.beyond && h == k-1 || tc.beyond && day && p.Start.Sub(recs[h].Start) > 2*time.Hour {
						i, j = h, k
					}
				}
			}
			if i < 0 {
				t.Fatalf("no pair in %d recordings", len(recs))
			}
			a, b := recs[i], recs[j]
			rome, _ := time.LoadLocation("Europe/Rome")
			s.cutoff.Store(b.Start.Add(-time.Second).In(rome).Format("2006-01-02 15:04:05"))
			res := e.run(t)
			if res.Err != nil || res.Recordings.Listed != j {
				t.Fatalf("first run: %d listed, want %d: %v", res.Recordings.Listed, j, res.Err)
			}
			s.cutoff.Store("")
			s.a.Store(itoa(a.ID))
			s.b.Store(itoa(b.ID))
			t.Logf("recording %d at %s, then %d at %s sent with its id", a.ID, a.Start, b.ID, b.Start)
			res = e.run(t)
			noted(t, res, a.ID)
			if rr := res.Recordings; rr.Listed != len(recs)-j || rr.Copied != len(recs)-j {
				t.Errorf("%d recordings after the first run; result %+v", len(recs)-j, *rr)
			}
			checkBothStored(t, e, a, b)
			if res = e.run(t); res.Err != nil || res.Rows != 0 || res.Recordings.Copied != 0 {
				t.Errorf("third run: rows %d, copied %d, err %v", res.Rows, res.Recordings.Copied, res.Err)
			}
		})
	}
}

// TestRecordingsHostileFileName: a record whose file name is hostile
// (`..`, absolute, NUL, 4 KB) but whose path is an ordinary one: the file
// is copied, and its row keeps the name, marked hostile with its reason;
// the run counts and reports it. (In TestRecordingsHostileNames every
// hostile name has a refused path too, so the name's own check went
// unguarded.)
func TestRecordingsHostileFileName(t *testing.T) {
	t.Parallel()
	names := []string{"../../etc/x", "/etc/passwd", "a\x00b.wav", strings.Repeat("n", 4096)}
	byID := map[string]string{}
	var mu sync.Mutex
	front := listRewrite(func(m map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		if n, ok := byID[fmt.Sprint(m["id"])]; ok {
			m["fileName"] = n
		}
	})
	e := recSetup(t, pbxsim.Options{Seed: 37, Calls: 200}, "csv", front)
	recs := e.sim.Recordings()
	mu.Lock()
	for i, n := range names {
		byID[itoa(recs[3*i+1].ID)] = n
	}
	mu.Unlock()
	res := e.run(t)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	rr := res.Recordings
	if rr.Hostile != len(names) || rr.Refused != 0 || rr.Copied != len(recs) {
		t.Errorf("%d hostile file names on ordinary paths; result %+v, want all %d copied, %d hostile", len(names), *rr, len(recs), len(names))
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "must not be used as a path") {
		t.Errorf("notes %q: the hostile names are not reported", res.Notes)
	}
	rows := e.rows(t)
	for i, n := range names {
		r := recs[3*i+1]
		row := rows[itoa(r.ID)]
		if len(row) < 5 || row[2] != "copied" || row[0] != e.sim.RecordingSHA256(r) || row[4] != "true" {
			t.Errorf("recording %d, file name %.40q: row %.120q; want copied with its sha256, hostile true", r.ID, n, row)
		}
	}
	e.checkStore(t)
}

// TestRecordingsZoneChanged: a list taking from/to as wall times but
// sending each record's start in Unix seconds, read in Europe/Rome, then
// in Europe/London, as if the PBX's zone had changed (WILDIX_TIMEZONE
// changed with it; or a fixed offset learnt again across a daylight-saving
// change): the recordings the look-back lists again show another wall
// time, and are the same recordings, not clashes: none is copied twice or
// gets a second row.
func TestRecordingsZoneChanged(t *testing.T) {
	t.Parallel()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	var pbxZone atomic.Pointer[time.Location] // the zone from/to are asked in
	pbxZone.Store(rome)
	var sent atomic.Int64 // records the list sent
	epoch := listRewrite(func(m map[string]any) {
		sent.Add(1)
		if at, err := time.ParseInLocation("2006-01-02 15:04:05", fmt.Sprint(m["start"]), rome); err == nil {
			m["start"] = json.Number(fmt.Sprint(at.Unix()))
		}
	})
	e := recSetup(t, pbxsim.Options{Seed: 29, Calls: 300, Location: rome}, "csv", func(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool {
		if z := pbxZone.Load(); z != rome && strings.HasPrefix(r.URL.Path, "/api/v1/PBX/recordings") {
			q := r.URL.Query()
			for _, p := range []string{"from", "to"} {
				if at, err := time.ParseInLocation("2006-01-02 15:04:05", q.Get(p), z); err == nil {
					q.Set(p, at.In(rome).Format("2006-01-02 15:04:05"))
				}
			}
			r.URL.RawQuery = q.Encode()
		}
		return epoch(sim, w, r)
	})
	e.x.LookBack = 72 * time.Hour
	res := e.run(t)
	if res.Err != nil || res.Recordings.Copied == 0 {
		t.Fatalf("first run: %+v, %v", res.Recordings, res.Err)
	}
	pbxZone.Store(london)
	e.x.Zone = london
	sent.Store(0)
	res = e.run(t)
	if rr := res.Recordings; res.Err != nil || sent.Load() == 0 || rr.Copied != 0 || rr.Clashes != 0 || res.Rows != 0 {
		t.Fatalf("second run, in another zone: %d records sent, rows %d, %+v, notes %q, err %v; want the recordings listed again and none copied",
			sent.Load(), res.Rows, *rr, res.Notes, res.Err)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "Europe/London") {
		t.Errorf("notes %q, want one saying the zone changed", res.Notes)
	}
	e.checkStore(t)
}

// TestRecordingsStoredBeforeStateLost: a store written before ids were
// keyed (files and rows under "h-" and an unkeyed hash of the path,
// recordings.LegacyID) whose state is lost since: the next run lists the
// whole history again and finds each file under its old name (the store's
// listing asked for it with the new one), so that nothing is copied again
// and no recording gets a second row: its row stays the one of before,
// naming the file of before (review1, R2).
func TestRecordingsStoredBeforeStateLost(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 29, Calls: 90, Recordings: pbxsim.RecordingOptions{Fields: "bare"}}, "postgres", nil)
	if res := e.run(t); res.Err != nil || res.Recordings.Copied == 0 {
		t.Fatalf("first run: %v, %+v", res.Err, res.Recordings)
	}
	e.checkStore(t)
	// The store and rows as a run before ids were keyed left them, the
	// state lost.
	ctx := context.Background()
	old := map[string]string{} // old key → its stored name
	for _, r := range e.sim.Recordings() {
		rec := recordings.Recording{Path: r.Path, IDKey: e.x.RecordingsKey}
		id, was := recordings.StoredID(rec), recordings.LegacyID(rec)
		name, _ := recstore.Name("pbx", r.Start.UTC(), id)
		oldName, _ := recstore.Name("pbx", r.Start.UTC(), was)
		if err := os.Rename(filepath.Join(e.storeDir, name), filepath.Join(e.storeDir, oldName)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.pool.Exec(ctx, "UPDATE recordings SET recording = $1, object = $2 WHERE recording = $3", was, oldName, id); err != nil {
			t.Fatal(err)
		}
		old[was] = oldName
	}
	if _, err := e.pool.Exec(ctx, "DELETE FROM export_state WHERE pbx = 'pbx' AND key = 'recordings'"); err != nil {
		t.Fatal(err)
	}
	res := e.run(t)
	if rr := res.Recordings; res.Err != nil || rr.Copied != 0 || rr.Skipped != len(old) || rr.Clashes != 0 {
		t.Errorf("run after the state was lost: %v, %+v; want the %d recordings found stored under their names of before", res.Err, rr, len(old))
	}
	rows := e.rows(t)
	for key, row := range rows {
		if name, ok := old[key]; !ok || row[1] != name || row[2] != "skipped" && row[2] != "copied" {
			t.Errorf("row %s: object %s, status %s; want one of the rows of before, naming its file", key, row[1], row[2])
		}
	}
	if len(rows) != len(old) {
		t.Errorf("%d rows, want the %d of before", len(rows), len(old))
	}
	var files int
	filepath.WalkDir(e.storeDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files != len(old) {
		t.Errorf("%d files stored, want the %d of before", files, len(old))
	}
}
