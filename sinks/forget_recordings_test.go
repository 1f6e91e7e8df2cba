package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestForgetRecordingKeysOfBefore: recordings' rows written before ids
// were keyed, on both sinks: one keyed by a PBX id holding the number
// (its object holds it too), one by "h-" and an unkeyed hash of a path
// holding it; and a newer one keyed "k-…" whose file vanished from the
// PBX. forget finds the two stored files, not the vanished one's name
// (attack 1, B3); erases the rows, giving the first two a key tied to
// nothing ("erased-…"; the "k-" key stays), so that the number is nowhere,
// the key index included; a second forget succeeds and finds nothing
// (attack 1, A4: PostgreSQL's "multiple assignments to same column
// object" on every run, CSV's "still in recordings~keys.json"). The
// recordings state's recent keys lose the two old keys the rows lose, in
// the same transaction or rewrite; the others stay (review1, R3: an
// unkeyed hash of the path stayed there, confirming the number). The
// second row's reason quotes its hostile file name, holding the number:
// PostgreSQL's forget set reason twice, "multiple assignments to same
// column", after removing the files (attack 4, F10). A row whose key is
// the one its id or path gave before ids were keyed (recordings.LegacyID:
// the PBX id holding the number, "h-" and the hash of its path) gets the
// "k-" key the exporter computes for it with the PBX's key of recordings'
// ids (StoredID), so that the next run's row replaces it rather than
// being a second; one whose key its path no longer gives (here a made-up
// hash) gets "erased-…" (fails with erasedKey for all: the transitional
// second erased row).
func TestForgetRecordingKeysOfBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const number = "393761714455"
	day := time.Date(2026, 1, 1, 3, 25, 54, 0, time.UTC)
	path := "/spoolview/recordings/2026/01/01/2026.01.01-03.25.54-258-" + number + "-d1548fcd-2.wav"
	hashed := "h-6552bcb0" + strings.Repeat("0", 32)
	path2 := strings.Replace(path, "d1548fcd-2", "d1548fce-3", 1)
	idKey, err := pseudonym.New([]byte("forget-recordings-id-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	legacy2 := recordings.LegacyID(recordings.Recording{Path: path2})
	// A third, whose "k-" row a run that did not know its old key wrote
	// beside it: the key is taken, so "erased-…".
	path3 := strings.Replace(path, "d1548fcd-2", "d1548fcf-4", 1)
	legacy3, k3 := recordings.LegacyID(recordings.Recording{Path: path3}), recordings.StoredID(recordings.Recording{Path: path3, IDKey: idKey})
	rows := []struct{ key, id, path, object, status, num, reason string }{
		{"rec-258-" + number, "rec-258-" + number, "", "x/2026/01/01/rec-258-" + number + ".wav", "copied", "+" + number, ""},
		{hashed, "", path, "x/2026/01/01/" + hashed + ".wav", "copied", "+" + number, "hostile file name " + path + "/.."},
		{"k-abcdefghijklmnop", "7", "", "x/2026/01/01/k-abcdefghijklmnop.wav", "vanished", "+" + number, ""},
		{"22", "22", "", "x/2026/01/01/22.wav", "copied", "+390212345678", ""},
		{legacy2, "", path2, "x/2026/01/01/" + legacy2 + ".wav", "copied", "+" + number, ""},
		{legacy3, "", path3, "", "vanished", "+" + number, ""},
		{k3, "", "", "x/2026/01/01/" + k3 + ".wav", "copied", "+390212345679", ""},
	}
	// The keys the exporter gives the two rows keyed as before.
	newKeys := []string{recordings.StoredID(recordings.Recording{ID: rows[0].id, IDKey: idKey}), recordings.StoredID(recordings.Recording{Path: path2, IDKey: idKey})}
	ep := record.Builtin()[len(record.Builtin())-1]
	var recs []record.Row
	for i, r := range rows {
		vals := make([]any, len(ep.Columns))
		for c, v := range map[string]any{"recording": r.key, "id": r.id, "path": r.path, "object": r.object, "status": r.status, "number": r.num, "reason": r.reason,
			"start_time": day.Add(time.Duration(i) * time.Minute)} {
			if v != "" {
				vals[ep.Column(c)] = v
			}
		}
		recs = append(recs, record.Row{Key: r.key, Values: vals, Raw: json.RawMessage(`{}`)})
	}
	for _, kind := range []string{"csv", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			type forgetter interface {
				ForgetFind(ctx context.Context, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error)
				ForgetErase(ctx context.Context, pbx string, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error)
				State(ctx context.Context, pbx, key string) ([]byte, error)
			}
			var s forgetter
			var b exporter.Batch
			var err error
			var traces func() []string // every row or file line
			if kind == "csv" {
				dir := t.TempDir()
				c, _ := NewCSV(CSVOptions{Dir: dir})
				s = c
				b, err = c.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
				traces = func() []string {
					var out []string
					filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
						if err == nil && d.Type().IsRegular() {
							b, _ := os.ReadFile(p)
							out = append(out, strings.Split(string(b), "\n")...)
						}
						return nil
					})
					return out
				}
			} else {
				p, pool := newPostgres(t)
				if err := p.Migrate(ctx, record.Builtin()); err != nil {
					t.Fatal(err)
				}
				s = p
				b, err = p.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
				traces = func() []string {
					rows, _ := pool.Query(ctx, "SELECT t::text FROM recordings t")
					out, err := pgx.CollectRows(rows, pgx.RowTo[string])
					if err != nil {
						t.Fatal(err)
					}
					return out
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Write(ctx, recs); err != nil {
				t.Fatal(err)
			}
			recent := map[string]string{}
			for i, r := range rows {
				recent[r.key] = day.Add(time.Duration(i) * time.Minute).Format(record.WallLayout)
			}
			state, _ := json.Marshal(map[string]any{"time": day.Format(record.WallLayout), "recent": recent})
			if err := b.Commit(ctx, state, exporter.Progress{}); err != nil {
				t.Fatal(err)
			}
			f, _ := testForgotten(t, "+"+number)
			f.KeyRecordingsWith(map[string]*pseudonym.Keyed{"x": idKey})
			found, err := s.ForgetFind(ctx, f, record.Builtin())
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{rows[1].object, rows[4].object, rows[0].object}; !slices.Equal(found.Recordings, want) {
				t.Errorf("found recordings %q, want the three stored %q (not the vanished one's name)", found.Recordings, want)
			}
			for run := 1; run <= 2; run++ {
				if _, err := s.ForgetErase(ctx, "x", f, record.Builtin()); err != nil {
					t.Fatalf("forget, run %d: %v", run, err)
				}
			}
			all := strings.Join(traces(), "\n")
			for _, gone := range []string{number, hashed, "rec-258-" + number, legacy2, legacy3} {
				if strings.Contains(all, gone) {
					t.Errorf("%q is still there after forget:\n%s", gone, all)
				}
			}
			for _, kept := range append([]string{"k-abcdefghijklmnop", "x/2026/01/01/22.wav", "erased-"}, newKeys...) {
				if !strings.Contains(all, kept) {
					t.Errorf("%q is gone after forget:\n%s", kept, all)
				}
			}
			n := 0
			for _, l := range traces() {
				if strings.Contains(l, k3) && (strings.Contains(l, ",copied,") || strings.Contains(l, ",erased,")) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d rows keyed %s, want the one that had it (a row given a key taken is a second)", n, k3)
			}
			st, err := s.State(ctx, "x", ep.Name)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Recent map[string]string `json:"recent"`
			}
			if err := json.Unmarshal(st, &got); err != nil {
				t.Fatalf("state after forget: %v: %s", err, st)
			}
			var keys []string
			for k := range got.Recent {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if want := []string{"22", "k-abcdefghijklmnop", k3}; !slices.Equal(slices.Sorted(slices.Values(keys)), slices.Sorted(slices.Values(want))) {
				t.Errorf("recent keys after forget %q, want %q (the old keys telling the number gone): %s", keys, want, st)
			}
		})
	}
}

// TestRecordingKeyTellsNotKeyedNames: a "k-" key is a keyed hash the
// exporter made (recordings.StoredID; no PBX id taken as it is starts
// with "k-"), never a number, even when its letters and digits happen to
// hold seven digits in a row (about one key in twelve thousand): forget
// gives a row of before ids were keyed such a key (recordingKeyFor), not
// "erased-…", and a "k-" key is never taken for one telling a number.
// With recordingKeyTells reading a "k-" key's digits, the row got
// "erased-…" and the next run's look-back wrote the recording a second
// row (the flake TestForgetRecordingIDsHoldingNumbers/csv/numbers showed
// in a stored name).
func TestRecordingKeyTellsNotKeyedNames(t *testing.T) {
	k, err := pseudonym.New([]byte("recording-key-tells-test-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	var r recordings.Recording
	found := false
	for i := 0; i < 1_000_000 && !found; i++ {
		r = recordings.Recording{ID: fmt.Sprintf("rec-%d-393761714455", i), Path: "x.wav", IDKey: k}
		_, n := pseudonym.Replace(recordings.StoredID(r), func(string) bool { return true }, "")
		found = n > 0
	}
	if !found {
		t.Fatal("no keyed id holding seven digits in a row found: the test proves nothing")
	}
	stored := recordings.StoredID(r)
	if !strings.HasPrefix(stored, "k-") {
		t.Fatalf("StoredID(%q) = %q, want a keyed id", r.ID, stored)
	}
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{stored, false},
		{"k-abcdefghijklmnop", false},
		{"k-393761714455", true}, // not a keyed tag's shape: a PBX id of before
		{r.ID, true},
		{"h-0123456789abcdef", true},
		{"258", false},
	} {
		if got := recordingKeyTells(tc.key); got != tc.want {
			t.Errorf("recordingKeyTells(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
	f := &Forgotten{}
	f.KeyRecordingsWith(map[string]*pseudonym.Keyed{"pbx1": k})
	if got := f.recordingKeyFor("pbx1", recordings.LegacyID(r), r.ID, r.Path); got != stored {
		t.Errorf("recordingKeyFor a row keyed %q before ids were keyed = %q, want the exporter's %q", recordings.LegacyID(r), got, stored)
	}
}
