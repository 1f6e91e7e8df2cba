package exporter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/sinks/recstore"
	"github.com/wildix-export/wildix-export/sinks/recstore/recstoretest"
)

// putSignalDir and putSignalS3 are the stores, telling stored each name
// a Put stored.
type putSignalDir struct {
	*recstore.Dir
	stored func(name string)
}

func (s putSignalDir) Put(ctx context.Context, name string, r io.Reader, w recstore.Want) (recstore.Object, error) {
	o, err := s.Dir.Put(ctx, name, r, w)
	if err == nil {
		s.stored(name)
	}
	return o, err
}

type putSignalS3 struct {
	*recstore.S3
	stored func(name string)
}

func (s putSignalS3) Put(ctx context.Context, name string, r io.Reader, w recstore.Want) (recstore.Object, error) {
	o, err := s.S3.Put(ctx, name, r, w)
	if err == nil {
		s.stored(name)
	}
	return o, err
}

// idSuppressor is a suppression list erasing the recordings of the given
// PBX ids (as forget's list erases those of a forgotten number).
type idSuppressor map[string]bool

func (s idSuppressor) Apply(ep *record.Endpoint, row *record.Row) int {
	i := ep.Column("id")
	if !s[fmt.Sprint(row.Values[i])] {
		return 0
	}
	row.Values[i] = "erased"
	return 1
}

// TestRecordingsErasedAfterAFailedRun (attack 6, F12): a run failing on
// one file (500 after every retry) stores other files of its windows and
// commits no row for them; with a killed run's partial copies beside
// some (a folder store, last written before the run). Then those
// recordings must not be kept: a
// number of their calls forgotten ("forget": the suppression list), or
// older than the retention. The next run writes their rows erased (or,
// for retention, none) and removes their files, each proven theirs by
// the PBX's file's sha256, and the partial copies from the store,
// counting them: afterwards every file in the store is named
// by a row, nothing partial is left, and no file of those recordings is
// there. The failing file answers only once a file of a later recording
// is stored (no sleep): the failed run surely stored one. Seeded (the
// recording that fails), the seed logged.
func TestRecordingsErasedAfterAFailedRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ kind, why string }{
		{"csv", "forget"}, {"csv", "retention"}, {"postgres", "forget"}, {"csv/s3", "forget"}, {"csv/s3", "retention"},
	} {
		t.Run(strings.ReplaceAll(tc.kind, "/", "-")+"-"+tc.why, func(t *testing.T) {
			t.Parallel()
			seed := rand.Uint64()
			t.Logf("seed %d", seed)
			rnd := rand.New(rand.NewPCG(seed, 12))
			var broken atomic.Pointer[string]
			gate := make(chan struct{})
			var once sync.Once
			fail := func(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool {
				if p := broken.Load(); p != nil && r.URL.EscapedPath() == *p {
					select {
					case <-gate:
					case <-r.Context().Done():
						return true
					}
					http.Error(w, "Internal error", http.StatusInternalServerError)
					return true
				}
				return false
			}
			e := recSetup(t, pbxsim.Options{Seed: int64(seed % (1 << 62)), Calls: 300}, tc.kind, fail)
			recs := e.sim.Recordings()
			key := testRecordingsKey(t)
			byName := map[string]pbxsim.Recording{}
			nameOf := map[int64]string{}
			for _, r := range recs {
				id := recordings.StoredID(recordings.Recording{ID: idOf(e, r), Path: r.Path, IDKey: key})
				name, err := recstore.Name("pbx", r.Start.UTC(), id)
				if err != nil {
					t.Fatal(err)
				}
				byName[name], nameOf[r.ID] = r, name
			}
			bad := recs[len(recs)/3+rnd.IntN(len(recs)/3)]
			later := func(name string) bool { return byName[name].Start.After(bad.Start) }
			stored := func(name string) {
				if later(name) {
					once.Do(func() { close(gate) })
				}
			}
			switch st := e.x.Recordings.Store.(type) {
			case *recstore.Dir:
				e.x.Recordings.Store = putSignalDir{st, stored}
			case *recstore.S3:
				e.x.Recordings.Store = putSignalS3{st, stored}
			}
			broken.Store(&bad.Path)
			if res := e.run(t); res.Err == nil || !strings.Contains(res.Err.Error(), "500") {
				t.Fatalf("the run with recording %d failing: %v", bad.ID, res.Err)
			}
			rows := e.rows(t)
			// The files no row names: the recordings the failed run stored.
			victims := map[string]bool{nameOf[bad.ID]: true}
			for p := range filesUnder(e.storeDir) {
				rel, _ := filepath.Rel(e.storeDir, p)
				name := filepath.ToSlash(rel)
				if _, ok := byName[name]; !ok {
					t.Fatalf("stored under a name of no recording: %s", name)
				}
				if _, ok := rows[strings.TrimSuffix(filepath.Base(name), ".wav")]; !ok {
					victims[name] = true // its window's (or a later one's)
				}
			}
			if len(victims) < 2 {
				t.Fatalf("the failed run stored no file without a row: the test shows nothing")
			}
			removed := len(victims) - 1 // the failed recording has no file
			partials := 0
			if _, ok := e.x.Recordings.Store.(putSignalDir); ok {
				// What a killed run leaves: a partial copy of the failed
				// recording, and one beside a stored file.
				for _, name := range []string{nameOf[bad.ID], mapKeyOther(victims, nameOf[bad.ID])} {
					p := filepath.Join(e.storeDir, filepath.FromSlash(name))
					os.MkdirAll(filepath.Dir(p), 0o700)
					tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+fmt.Sprintf(".partial-%d", seed%1000))
					if err := os.WriteFile(tmp, []byte("RIFF"), 0o600); err != nil {
						t.Fatal(err)
					}
					// Killed before this run began (more than the margin
					// for the store's clock).
					past := time.Now().Add(-2 * time.Hour)
					if err := os.Chtimes(tmp, past, past); err != nil {
						t.Fatal(err)
					}
					partials++
				}
			}
			var newest time.Time
			ids := idSuppressor{}
			for name := range victims {
				ids[idOf(e, byName[name])] = true
				if byName[name].Start.After(newest) {
					newest = byName[name].Start
				}
			}
			switch tc.why {
			case "forget":
				e.x.Guard = &privacy.Guard{Suppress: ids}
			case "retention":
				const R = 30 * 24 * time.Hour
				now := newest.Add(R).Add(time.Second) // every victim older than the cut
				e.x.Guard = &privacy.Guard{Retention: R, Now: func() time.Time { return now }}
			}
			broken.Store(nil)
			res := e.run(t)
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			rows = e.rows(t)
			for p := range filesUnder(e.storeDir) {
				rel, _ := filepath.Rel(e.storeDir, p)
				name := filepath.ToSlash(rel)
				switch r, ok := byName[name]; {
				case !ok:
					t.Errorf("left in the store: %s", name)
				case victims[name]:
					t.Errorf("recording %d not kept (%s), its file still stored", r.ID, tc.why)
				case rows[strings.TrimSuffix(filepath.Base(name), ".wav")] == nil:
					t.Errorf("recording %d stored, no row names it", r.ID)
				}
			}
			for name := range victims {
				row, ok := rows[strings.TrimSuffix(filepath.Base(name), ".wav")]
				switch {
				case tc.why == "retention" && ok:
					t.Errorf("recording %d older than the retention has a row %q", byName[name].ID, row)
				case tc.why == "forget" && (!ok || row[2] != "erased" || row[1] != ""):
					t.Errorf("recording %d of a forgotten number: row %q, want status erased, no object", byName[name].ID, row)
				}
			}
			if got := res.Recordings; got.Removed != removed || got.Partials != partials || got.KeptUnproven != 0 {
				t.Errorf("%d files removed, %d partial copies, %d kept counted; want %d, %d, 0", got.Removed, got.Partials, got.KeptUnproven, removed, partials)
			}
			notes := strings.Join(res.Notes, "\n")
			if !strings.Contains(notes, fmt.Sprintf("recordings store: %d files of recordings not kept", removed)) ||
				!strings.Contains(notes, fmt.Sprintf("and %d partial copies removed", partials)) {
				t.Errorf("notes %q: want the %d files and %d partial copies removed said", res.Notes, removed, partials)
			}
			t.Logf("%d recordings, recording %d failed; %d not kept, %d files removed", len(recs), bad.ID, len(victims), removed)
		})
	}
}

// mapKeyOther is a key of m other than not.
func mapKeyOther(m map[string]bool, not string) string {
	for k := range m {
		if k != not {
			return k
		}
	}
	return ""
}

// TestRecordingsErasedKeepsFilesRowsName (review 15, R15-4): the
// recordings cursor lost (its state deleted) and the retention on, the
// next run lists the whole history again, and the recordings older than
// the cut are not kept; their files, stored and named by the rows of the
// first run, are the PBX's files byte for byte, and must stay: only a
// prune removes a file a row names, with its row. Every file and row of
// before is there after, nothing counted removed.
func TestRecordingsErasedKeepsFilesRowsName(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 31, Calls: 120}, "postgres", nil)
	if res := e.run(t); res.Err != nil || res.Recordings.Copied == 0 {
		t.Fatalf("first run: %v, %+v", res.Err, res.Recordings)
	}
	files := filesUnder(e.storeDir)
	rows := e.rows(t)
	if _, err := e.pool.Exec(context.Background(), "DELETE FROM export_state WHERE pbx = 'pbx' AND key = 'recordings'"); err != nil {
		t.Fatal(err)
	}
	recs := e.sim.Recordings()
	const R = 30 * 24 * time.Hour
	now := recs[len(recs)/2].Start.Add(R) // the older half not kept
	e.x.Guard = &privacy.Guard{Retention: R, Now: func() time.Time { return now }}
	res := e.run(t)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	after := filesUnder(e.storeDir)
	for p := range files {
		if !after[p] {
			t.Errorf("%s, named by a row, removed", p)
		}
	}
	if len(after) != len(files) || len(e.rows(t)) != len(rows) || res.Recordings.Removed != 0 {
		t.Errorf("%d files, %d rows, %d removed; want the %d files and %d rows of before, none removed", len(after), len(e.rows(t)), res.Recordings.Removed, len(files), len(rows))
	}
}

// TestRecordingsErasedRetriedInTheLookBack (attack 7, F7): a file no row
// names of a recording not kept (its row lost: as a failed run leaves
// one, here the row deleted), whose file the PBX answers 500 for after
// every retry. The run that lists it again (the look-back; exported
// before, so not written again) keeps the file, counts and names it
// (kept_unproven, kept_files), and succeeds; the next run, the PBX
// answering again, proves the file the recording's and removes it. The
// other files stay.
func TestRecordingsErasedRetriedInTheLookBack(t *testing.T) {
	t.Parallel()
	var broken atomic.Pointer[string]
	fail := func(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool {
		if p := broken.Load(); p != nil && r.URL.EscapedPath() == *p {
			http.Error(w, "Internal error", http.StatusInternalServerError)
			return true
		}
		return false
	}
	e := recSetup(t, pbxsim.Options{Seed: 37, Calls: 120}, "postgres", fail)
	if res := e.run(t); res.Err != nil || res.Recordings.Copied == 0 {
		t.Fatalf("first run: %v, %+v", res.Err, res.Recordings)
	}
	recs := e.sim.Recordings()
	victim := recs[len(recs)-1] // the newest: in the next runs' look-back
	key := recordings.StoredID(recordings.Recording{ID: idOf(e, victim), Path: victim.Path, IDKey: testRecordingsKey(t)})
	name, _ := recstore.Name("pbx", victim.Start.UTC(), key)
	if _, err := e.pool.Exec(context.Background(), "DELETE FROM recordings WHERE recording = $1", key); err != nil {
		t.Fatal(err)
	}
	files := filesUnder(e.storeDir)
	victimFile := filepath.Join(e.storeDir, filepath.FromSlash(name))
	if !files[victimFile] {
		t.Fatalf("%s not stored by the first run", name)
	}
	e.x.Guard = &privacy.Guard{Suppress: idSuppressor{idOf(e, victim): true}}
	broken.Store(&victim.Path)
	res := e.run(t)
	if rr := res.Recordings; res.Err != nil || rr.KeptUnproven != 1 || len(rr.KeptFiles) != 1 || rr.KeptFiles[0] != name || rr.Removed != 0 {
		t.Fatalf("the run with the PBX answering 500: %v, kept %d %q, removed %d; want %s kept, reported, no error", res.Err, rr.KeptUnproven, rr.KeptFiles, rr.Removed, name)
	}
	if after := filesUnder(e.storeDir); len(after) != len(files) {
		t.Fatalf("%d files after, want the %d of before", len(after), len(files))
	}
	broken.Store(nil)
	res = e.run(t)
	if rr := res.Recordings; res.Err != nil || rr.Removed != 1 || rr.KeptUnproven != 0 {
		t.Fatalf("the next run: %v, removed %d, kept %d; want %s removed", res.Err, rr.Removed, rr.KeptUnproven, name)
	}
	after := filesUnder(e.storeDir)
	for p := range files {
		if after[p] == (p == victimFile) {
			t.Errorf("%s: stored %v after the next run", p, after[p])
		}
	}
}

// TestRecordingsErasedStoreDown (review 24, R24-1): files an earlier run
// stored with no row (here: the rows and the cursor deleted after a
// run), every recording's number then forgotten, and the folder store
// down during the next run: its day folders made unwritable, or its
// folder gone (a volume not mounted); or, day folders unwritable, only
// the partial copies a killed run left there in place of the files. That
// run must not commit a row saying erased, no file kept, of a file or
// partial copy still stored, since no later run lists a window again
// once committed (but for the look-back): it fails, naming the store.
// Once the store is back, the next run removes every file and partial
// copy, counts them, and writes every row erased.
func TestRecordingsErasedStoreDown(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"unwritable", "gone", "partials-unwritable"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := recSetup(t, pbxsim.Options{Seed: 43, Calls: 120}, "postgres", nil)
			if res := e.run(t); res.Err != nil || res.Recordings.Copied == 0 {
				t.Fatalf("first run: %v, %+v", res.Err, res.Recordings)
			}
			files := filesUnder(e.storeDir)
			for _, q := range []string{"DELETE FROM recordings WHERE pbx = 'pbx'", "DELETE FROM export_state WHERE pbx = 'pbx' AND key = 'recordings'"} {
				if _, err := e.pool.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			removed, partials := len(files), 0
			if partial, ok := strings.CutPrefix(how, "partials-"); ok {
				files, how, removed, partials = partialsOnly(t, files, 2*time.Hour), partial, 0, len(files)
			}
			ids := idSuppressor{}
			for _, r := range e.sim.Recordings() {
				ids[idOf(e, r)] = true
			}
			e.x.Guard = &privacy.Guard{Suppress: ids}
			up := storeDirDown(t, how, e.storeDir, files)
			res := e.run(t)
			up()
			if res.Err == nil || !strings.Contains(res.Err.Error(), "the recordings store folder "+e.storeDir) {
				t.Errorf("the run with the store down: %v; want it failed, naming the store", res.Err)
			}
			rows := e.rows(t)
			for p := range filesUnder(e.storeDir) {
				if row, ok := rows[storedKey(p)]; ok && row[2] == "erased" {
					t.Errorf("%s stored, its row committed %q: erased, no file kept", p, row)
				}
			}
			res = e.run(t)
			if rr := res.Recordings; res.Err != nil || rr.Removed != removed || rr.Partials != partials || rr.KeptUnproven != 0 {
				t.Fatalf("the run with the store back: %v, %d removed, %d partial copies, %d kept; want %d, %d, 0", res.Err, rr.Removed, rr.Partials, rr.KeptUnproven, removed, partials)
			}
			if left := filesUnder(e.storeDir); len(left) > 0 {
				t.Errorf("%d files left in the store, want none: %v", len(left), left)
			}
			rows = e.rows(t)
			for p := range files {
				if row := rows[storedKey(p)]; row == nil || row[2] != "erased" || row[1] != "" {
					t.Errorf("%s: row %q, want status erased, no object", p, row)
				}
			}
		})
	}
}

// TestRecordingsErasedYoungPartials (review 34, R34-1): a killed run's
// partial copies of recordings whose numbers are then forgotten, last
// written 10 minutes before the next run began (within partialMargin),
// are removed by that run whatever their age (no Put of the run writes
// a name of a recording not kept), before it commits the rows erased.
func TestRecordingsErasedYoungPartials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := recSetup(t, pbxsim.Options{Seed: 43, Calls: 120}, "postgres", nil)
	if res := e.run(t); res.Err != nil || res.Recordings.Copied == 0 {
		t.Fatalf("first run: %v, %+v", res.Err, res.Recordings)
	}
	for _, q := range []string{"DELETE FROM recordings WHERE pbx = 'pbx'", "DELETE FROM export_state WHERE pbx = 'pbx' AND key = 'recordings'"} {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	files := partialsOnly(t, filesUnder(e.storeDir), 10*time.Minute)
	ids := idSuppressor{}
	for _, r := range e.sim.Recordings() {
		ids[idOf(e, r)] = true
	}
	e.x.Guard = &privacy.Guard{Suppress: ids}
	res := e.run(t)
	if rr := res.Recordings; res.Err != nil || rr.Partials != len(files) || rr.Removed != 0 || rr.KeptUnproven != 0 {
		t.Fatalf("the run: %v, %d removed, %d partial copies, %d kept; want 0, %d, 0", res.Err, rr.Removed, rr.Partials, rr.KeptUnproven, len(files))
	}
	if left := filesUnder(e.storeDir); len(left) > 0 {
		t.Errorf("%d files left in the store, want none: %v", len(left), left)
	}
	rows := e.rows(t)
	for p := range files {
		if row := rows[storedKey(p)]; row == nil || row[2] != "erased" || row[1] != "" {
			t.Errorf("%s: row %q, want status erased, no object", p, row)
		}
	}
}

// TestRecordingsErasedDenied (review 32, R32-1): an S3 key without
// s3:DeleteObject (the server answers DELETE 403 AccessDenied) fails the
// run as bad configuration (record.ErrConfig: exit 2), naming the
// permission to give, not as a store to wait for ("up and writable"); no
// row is committed erased while its file is stored. With the permission,
// the next run removes every file and writes every row erased.
func TestRecordingsErasedDenied(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := recSetup(t, pbxsim.Options{Seed: 43, Calls: 120}, "postgres/s3", nil)
	if res := e.run(t); res.Err != nil || res.Recordings.Copied == 0 {
		t.Fatalf("first run: %v, %+v", res.Err, res.Recordings)
	}
	files := filesUnder(e.storeDir)
	for _, q := range []string{"DELETE FROM recordings WHERE pbx = 'pbx'", "DELETE FROM export_state WHERE pbx = 'pbx' AND key = 'recordings'"} {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	ids := idSuppressor{}
	for _, r := range e.sim.Recordings() {
		ids[idOf(e, r)] = true
	}
	e.x.Guard = &privacy.Guard{Suppress: ids}
	allowed := e.x.Recordings.Store
	o := e.s3opt
	o.Endpoint = e.s3.Refusing(t, func(r *http.Request) bool { return r.Method == http.MethodDelete })
	st, err := recstore.OpenS3(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	e.x.Recordings.Store = st
	res := e.run(t)
	if !errors.Is(res.Err, record.ErrConfig) || !errors.Is(res.Err, recstore.ErrDenied) ||
		!strings.Contains(res.Err.Error(), "s3:DeleteObject") || strings.Contains(res.Err.Error(), "up and writable") {
		t.Errorf("the run, the key without s3:DeleteObject: %v; want a configuration error naming s3:DeleteObject", res.Err)
	}
	if left := filesUnder(e.storeDir); len(left) != len(files) {
		t.Fatalf("%d files stored after the refused run, want the %d there before", len(left), len(files))
	}
	for p, row := range e.rows(t) {
		if row[2] == "erased" {
			t.Errorf("%s: row committed %q while the key may not remove its file", p, row)
		}
	}
	e.x.Recordings.Store = allowed
	res = e.run(t)
	if rr := res.Recordings; res.Err != nil || rr.Removed != len(files) || rr.KeptUnproven != 0 {
		t.Fatalf("the run with the permission: %v, %d removed, %d kept; want %d, 0", res.Err, rr.Removed, rr.KeptUnproven, len(files))
	}
	if left := filesUnder(e.storeDir); len(left) > 0 {
		t.Errorf("%d files left in the store, want none: %v", len(left), left)
	}
	rows := e.rows(t)
	for p := range files {
		if row := rows[storedKey(p)]; row == nil || row[2] != "erased" || row[1] != "" {
			t.Errorf("%s: row %q, want status erased, no object", p, row)
		}
	}
}

// storedKey is the recording key of a stored file's path, or of its
// partial copy's (".<key>.wav.partial-…").
func storedKey(p string) string {
	key, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(p), "."), ".wav")
	return key
}

// partialsOnly puts in place of each file a partial copy of it, as a run
// killed while copying it leaves, last written age before now, and
// returns their paths.
func partialsOnly(t *testing.T, files map[string]bool, age time.Duration) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	past := time.Now().Add(-age)
	for p := range files {
		q := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".partial-7")
		if err := os.Rename(p, q); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(q, past, past); err != nil {
			t.Fatal(err)
		}
		out[q] = true
	}
	return out
}

// storeDirDown takes the folder store at dir down: "unwritable", the
// folders of files refusing removals; "gone", dir moved away. It returns
// what brings it back.
func storeDirDown(t *testing.T, how, dir string, files map[string]bool) (up func()) {
	t.Helper()
	if how == "gone" {
		if err := os.Rename(dir, dir+".away"); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.Rename(dir+".away", dir); err != nil {
				t.Fatal(err)
			}
		}
	}
	var ups []func()
	done := map[string]bool{}
	for p := range files {
		if d := filepath.Dir(p); !done[d] {
			done[d] = true
			ups = append(ups, recstoretest.Unwritable(t, d))
		}
	}
	return func() {
		for _, up := range ups {
			up()
		}
	}
}
