package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// folderSums is the sha256 of every file under dir but the pruned
// endpoints' folders: what a prune must not touch.
func folderSums(t *testing.T, dir string, except ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		if e.IsDir() && slices.Contains(except, rel) {
			return filepath.SkipDir
		}
		if !e.IsDir() {
			out[rel], _ = fileSHA256(p)
		}
		return nil
	})
	return out
}

// writeRecordings commits rows of the recordings endpoint for pbx, one
// per start, each naming a file stored in store.
func writeRecordings(t *testing.T, s *CSV, store *recstore.Dir, pbx string, starts []time.Time) map[string]string {
	t.Helper()
	ctx := context.Background()
	ep := record.Builtin()[len(record.Builtin())-1]
	b, err := s.Begin(ctx, exporter.BatchInfo{PBX: pbx, RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	objects := map[string]string{}
	for i, start := range starts {
		id := fmt.Sprintf("rec%d", i)
		name, _ := recstore.Name("p", start, id)
		if _, err := store.Put(ctx, name, bytes.NewReader([]byte("RIFF")), recstore.Want{}); err != nil {
			t.Fatal(err)
		}
		objects[id] = name
		vals := make([]any, len(ep.Columns))
		vals[ep.Column("recording")], vals[ep.Column("start_time")], vals[ep.Column("object")] = id, start, name
		vals[ep.Column("status")] = "copied"
		if err := b.Write(ctx, []record.Row{{Key: id, Values: vals}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(ctx, []byte(`{"cursor":0}`), exporter.Progress{}); err != nil {
		t.Fatal(err)
	}
	return objects
}

// TestCSVPrune: the simulator's data exported to a folder in two runs,
// then pruned at a cut in the calls' middle: exactly the calls the
// simulator started before it are gone, every other row is as it was,
// byte for byte, in the file holding it; files and manifests agree, the
// key index names what each file holds; the recordings of old calls are
// gone from the store and the folder, newer ones stay; snapshots, states
// and the run log are untouched; a second prune finds nothing.
func TestCSVPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := NewCSV(CSVOptions{Dir: dir, Gzip: true})
	f := simtest.New(t, pbxsim.Options{Calls: 900, CallGap: 10 * time.Minute})
	x := newExporter(t, f, s)
	x.BatchSize = 200 // files of old calls only, one mixing, newer ones
	if err := x.Run(ctx, "r1", "once", defaultEndpoints()).Err(); err != nil {
		t.Fatal(err)
	}
	f.Sim.InsertCalls(300)
	if err := x.Run(ctx, "r2", "once", record.Builtin()[:1]).Err(); err != nil {
		t.Fatal(err)
	}
	pbx := f.URL.Host
	n := f.Sim.CallCount()
	cut := f.Sim.Call(n/3 + 50).Start.Add(time.Second)
	want := map[string]bool{}
	for id := int64(1); id <= n; id++ {
		if !f.Sim.Call(id).Start.Before(cut) {
			want[fmt.Sprint(id)] = true
		}
	}
	store, err := recstore.OpenDir(t.TempDir(), recstore.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	objects := writeRecordings(t, s, store, pbx, []time.Time{cut.Add(-48 * time.Hour), cut.Add(-time.Minute), cut.Add(time.Minute)})
	before := map[string]map[string]string{} // id → its file and row
	for name, rows := range callFiles(t, dir) {
		for _, r := range rows {
			before[r["id"]] = map[string]string{"file": name, "row": fmt.Sprint(r)}
		}
	}
	others := folderSums(t, dir, "call_history", "recordings", filepath.Join(".state", safeName(pbx)))
	stateDir := filepath.Join(dir, ".state", safeName(pbx))
	states := folderSums(t, stateDir)
	for k := range states {
		if filepath.Ext(k) != ".json" || k == "call_history~keys.json" || k == "recordings~keys.json" {
			delete(states, k) // the key indexes change with the files
		}
	}

	got, err := s.Prune(ctx, pbx, record.Builtin(), cut, PruneOptions{Recordings: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pruned: %+v", got)
	counts := map[string]int64{}
	for _, c := range got {
		counts[c.Table] += c.Rows
	}
	if want := n - int64(len(want)); counts["call_history"] != want {
		t.Fatalf("call_history: %d rows pruned, the simulator started %d calls before the cut", counts["call_history"], want)
	}
	var removed, rewritten int
	if c := got[0]; c.Table != "call_history" {
		t.Fatalf("pruned first %s, want call_history", c.Table)
	} else if _, err := fmt.Sscanf(c.Detail, "%d files removed, %d rewritten", &removed, &rewritten); err != nil || removed == 0 || rewritten == 0 {
		t.Fatalf("call_history: %s; the test needs files removed and rewritten", c.Detail)
	}
	if counts["recordings"] != 2 || counts[RecordingsStore] != 2 {
		t.Fatalf("recordings: %d rows and %d files pruned, want 2 and 2", counts["recordings"], counts[RecordingsStore])
	}
	left := map[string]bool{}
	for name, rows := range callFiles(t, dir) {
		for _, r := range rows {
			id := r["id"]
			if left[id] || !want[id] {
				t.Fatalf("call %s: twice, or started before the cut, in the folder after the prune", id)
			}
			left[id] = true
			if b := before[id]; b["file"] != name || b["row"] != fmt.Sprint(r) {
				t.Fatalf("call %s moved (%s → %s) or changed", id, b["file"], name)
			}
		}
	}
	if len(left) != len(want) {
		t.Fatalf("the folder holds %d calls, the simulator started %d after the cut", len(left), len(want))
	}
	ef := &editFolder{t: t, dir: dir, ep: record.Builtin()[0]}
	ef.checkManifests(pbx)
	ef.checkIndex(pbx)
	recs := readCSV(t, dir, "recordings")
	if len(recs) != 1 || recs[0]["recording"] != "rec2" {
		t.Fatalf("recordings rows %v, want rec2 alone", recs)
	}
	for id, name := range objects {
		_, err := store.Stat(ctx, name)
		if (err == nil) != (id == "rec2") {
			t.Fatalf("recording %s in the store: %v", id, err)
		}
	}
	if now := folderSums(t, dir, "call_history", "recordings", filepath.Join(".state", safeName(pbx))); !maps.Equal(now, others) {
		t.Fatal("files outside the pruned folders changed (snapshots, other state)")
	}
	for k, sum := range states {
		if now, _ := fileSHA256(filepath.Join(stateDir, k)); now != sum {
			t.Fatalf("state file %s changed", k)
		}
	}
	// A second prune reads no file: each is known (by its sha256) to hold
	// no call before the cut. One damaged in place, its manifest as it
	// was, shows it: read, it would fail.
	names := slices.Sorted(maps.Keys(callFiles(t, dir)))
	first := filepath.Join(dir, "call_history", names[0])
	var oldest time.Time
	for _, r := range readCSVFile(t, first) {
		if st, _ := time.Parse(time.RFC3339, r["start_time"]); oldest.IsZero() || st.Before(oldest) {
			oldest = st
		}
	}
	orig, _ := os.ReadFile(first)
	bad := bytes.Clone(orig)
	for i := 20; i < len(bad)-10; i++ {
		bad[i] ^= 0x55
	}
	os.WriteFile(first, bad, 0o600)
	again, err := s.Prune(ctx, pbx, record.Builtin(), cut, PruneOptions{Recordings: store})
	if err != nil || again.Total() != 0 {
		t.Fatalf("a second prune: %+v, %v; want nothing, no file read", again, err)
	}
	// A cut past its oldest call reads it again.
	if _, err := s.Prune(ctx, pbx, record.Builtin(), oldest.Add(time.Second), PruneOptions{Recordings: store}); err == nil {
		t.Fatalf("a prune at a cut past %s's oldest call did not read it", names[0])
	}
	os.WriteFile(first, orig, 0o600)
}

// callFiles reads the committed call_history files: name → rows.
func callFiles(t *testing.T, dir string) map[string][]map[string]string {
	t.Helper()
	out := map[string][]map[string]string{}
	paths, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.csv*"))
	for _, p := range paths {
		if _, err := os.Stat(manifestPath(p)); err == nil {
			out[filepath.Base(p)] = readCSVFile(t, p)
		}
	}
	return out
}

// TestRecordStart: a quarantined record's call start is read as the
// export read it: a call's wall time at its own offset, a recording's in
// whichever shape the PBX sent it (a wall time in the PBX's zone, or Unix
// seconds); a record whose start cannot be read gives nothing (kept).
func TestRecordStart(t *testing.T) {
	t.Parallel()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	eps := record.Builtin()
	calls, recs := &eps[0], &eps[len(eps)-1]
	want := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		ep   *record.Endpoint
		raw  string
		ok   bool
	}{
		{"call at its offset", calls, `{"id":"7","start":"2025-03-01 10:00:00","timezone":"+0100"}`, true},
		{"call in the PBX's zone", calls, `{"id":"7","start":"2025-03-01 10:00:00"}`, true},
		{"recording, camel", recs, `{"id":"r1","fileName":"a.wav","path":"/x","start":"2025-03-01 10:00:00","duration":"5","size":"44"}`, true},
		{"recording, snake, Unix seconds", recs, fmt.Sprintf(`{"id":"r1","file_name":"a.wav","url":"/x","time":"%d","length":"5"}`, want.Unix()), true},
		{"call without a start", calls, `{"id":"7"}`, false},
		{"not JSON", recs, `{"id":`, false},
	} {
		got, ok := recordStart(tc.ep, []byte(tc.raw), rome)
		if ok != tc.ok || (ok && !got.Equal(want)) {
			t.Errorf("%s: %v %v, want %v %v", tc.name, got.UTC(), ok, want, tc.ok)
		}
	}
}

// TestPruneCountsStoredFilesOnly: a recording that vanished from the PBX
// or whose path was refused keeps in its row the name its file would
// have had, and nothing was stored there: retention removes its row and
// asks the store to remove nothing for it, nor counts a file removed
// (attack 1, L2: "43 files removed", none existed). On both sinks.
func TestPruneCountsStoredFilesOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	statuses := []string{"copied", "vanished", "refused", "skipped"}
	for _, kind := range []string{"csv", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			store, err := recstore.OpenDir(t.TempDir(), recstore.DirOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ep := record.Builtin()[len(record.Builtin())-1]
			var rows []record.Row
			for i, status := range statuses {
				id, start := fmt.Sprintf("rec%d", i), cut.Add(-time.Duration(i+1)*time.Hour)
				name, _ := recstore.Name("p", start, id)
				if status == "copied" || status == "skipped" {
					if _, err := store.Put(ctx, name, bytes.NewReader([]byte("RIFF")), recstore.Want{}); err != nil {
						t.Fatal(err)
					}
				}
				vals := make([]any, len(ep.Columns))
				vals[ep.Column("recording")], vals[ep.Column("start_time")], vals[ep.Column("object")] = id, start, name
				vals[ep.Column("status")] = status
				rows = append(rows, record.Row{Key: id, Values: vals, Raw: json.RawMessage(`{}`)})
			}
			var pruner interface {
				Prune(ctx context.Context, pbx string, eps []record.Endpoint, cut time.Time, o PruneOptions) (Pruned, error)
			}
			var b exporter.Batch
			if kind == "csv" {
				s, _ := NewCSV(CSVOptions{Dir: t.TempDir()})
				pruner = s
				b, err = s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
			} else {
				p, _ := newPostgres(t)
				if err := p.Migrate(ctx, record.Builtin()); err != nil {
					t.Fatal(err)
				}
				pruner = p
				b, err = p.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Write(ctx, rows); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(ctx, []byte(`{"cursor":0}`), exporter.Progress{}); err != nil {
				t.Fatal(err)
			}
			rm := &failingRemover{store: store}
			got, err := pruner.Prune(ctx, "p", record.Builtin(), cut, PruneOptions{Recordings: rm})
			if err != nil {
				t.Fatal(err)
			}
			counts := map[string]int64{}
			for _, c := range got {
				counts[c.Table] += c.Rows
			}
			if counts["recordings"] != 4 || counts[RecordingsStore] != 2 || rm.calls != 2 {
				t.Fatalf("pruned %+v, the store asked %d times; want 4 rows, 2 files removed (copied, skipped), asked twice", got, rm.calls)
			}
		})
	}
}
