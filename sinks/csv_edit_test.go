package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// editFolder is an export folder of call_history for the edit tests:
// commit writes a batch of calls (id → PBX-local start, UTC) as a
// separate process would.
type editFolder struct {
	t   *testing.T
	dir string
	ep  record.Endpoint
}

func newEditFolder(t *testing.T) *editFolder {
	return &editFolder{t: t, dir: t.TempDir(), ep: record.Builtin()[0]}
}

func (f *editFolder) commit(pbx, runID string, gz bool, calls map[int]string) {
	f.t.Helper()
	ctx := context.Background()
	conv := &record.Converter{Endpoint: &f.ep}
	s, err := NewCSV(CSVOptions{Dir: f.dir, Gzip: gz})
	if err != nil {
		f.t.Fatal(err)
	}
	b, err := s.Begin(ctx, exporter.BatchInfo{PBX: pbx, RunID: runID, Endpoint: &f.ep, StateKey: f.ep.Name, Seq: 1})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, id := range slices.Sorted(maps.Keys(calls)) {
		r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":%q,"timezone":"+0000","to_name":"n%d"}`, id, calls[id], id)))
		if err != nil {
			f.t.Fatal(err)
		}
		if err := b.Write(ctx, []record.Row{r}); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := b.Commit(ctx, []byte(`{"cursor":1}`), exporter.Progress{}); err != nil {
		f.t.Fatal(err)
	}
}

// files lists the folder's data files of pbx (with a manifest or not)
// and the calls each holds.
func (f *editFolder) files(pbx string) map[string][]map[string]string {
	f.t.Helper()
	out := map[string][]map[string]string{}
	paths, _ := filepath.Glob(filepath.Join(f.dir, f.ep.Name, safeName(pbx)+"_r*.csv*")) // run ids start with r here: p_x_… is not p's
	for _, p := range paths {
		out[filepath.Base(p)] = readCSVFile(f.t, p)
	}
	return out
}

// ids counts the files holding each call of pbx; with manifests, only
// the files that have one.
func (f *editFolder) ids(pbx string, withManifest bool) map[string]int {
	n := map[string]int{}
	for name, rows := range f.files(pbx) {
		if _, err := os.Stat(manifestPath(filepath.Join(f.dir, f.ep.Name, name))); withManifest && err != nil {
			continue
		}
		for _, r := range rows {
			n[r["id"]]++
		}
	}
	return n
}

// checkManifests: every data file with a manifest matches it (rows and
// sha256).
func (f *editFolder) checkManifests(pbx string) {
	f.t.Helper()
	for name, rows := range f.files(pbx) {
		p := filepath.Join(f.dir, f.ep.Name, name)
		mb, err := os.ReadFile(manifestPath(p))
		if err != nil {
			continue
		}
		var m struct {
			Rows   int
			SHA256 string
		}
		if err := json.Unmarshal(mb, &m); err != nil {
			f.t.Fatal(err)
		}
		sum, _ := fileSHA256(p)
		if m.Rows != len(rows) || m.SHA256 != sum {
			f.t.Fatalf("%s: manifest says %d rows sha256 %s, the file holds %d rows sha256 %s", name, m.Rows, m.SHA256, len(rows), sum)
		}
	}
}

// checkIndex: the stored key index names exactly the data files of pbx,
// each with the keys it holds.
func (f *editFolder) checkIndex(pbx string) {
	f.t.Helper()
	s, _ := NewCSV(CSVOptions{Dir: f.dir})
	idx, ok, err := s.readIndex(pbx, f.ep.Name)
	if err != nil || !ok {
		f.t.Fatalf("key index: stored %v, %v", ok, err)
	}
	got := map[string]string{}
	for name, ks := range idx.Files {
		got[name] = fmt.Sprint(ks.Ranges, ks.Other)
	}
	want := map[string]string{}
	for name, rows := range f.files(pbx) {
		var c keyCollector
		for _, r := range rows {
			c.add(r["id"])
		}
		ks := c.set()
		want[name] = fmt.Sprint(ks.Ranges, ks.Other)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		f.t.Fatalf("key index %v, the files hold %v", got, want)
	}
}

// olderThan is the retention edit: calls that started before cut dropped.
func olderThan(cut time.Time) EditFunc {
	return func(header, row []string) (RowEdit, error) {
		i := slices.Index(header, "start_time")
		t, err := time.Parse(time.RFC3339Nano, row[i])
		if err != nil {
			return RowEdit{}, err
		}
		return RowEdit{Drop: t.Before(cut)}, nil
	}
}

// TestCSVEditRowsKilledAtEachPoint: an edit dropping old calls from a
// folder holding a file of old calls only, a compressed file mixing old
// and new ones and a file of new ones (and another PBX's file, whose id
// starts the same), stopped at each point of its commits as a killed
// process would be: no call that stays is ever missing, none is in two
// files, every file with a manifest matches it; the next start completes
// the edit, and the key index names what each file holds.
func TestCSVEditRowsKilledAtEachPoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	old, recent := "2025-03-01 10:00:00", "2026-02-01 10:00:00"
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := map[string]int{"7": 1, "8": 1, "9": 1, "10": 1}
	for stop := 1; ; stop++ {
		f := newEditFolder(t)
		f.commit("p", "r1", false, map[int]string{1: old, 2: old, 3: old, 4: old})
		f.commit("p", "r2", true, map[int]string{5: old, 6: old, 7: recent, 8: recent})
		f.commit("p", "r3", false, map[int]string{9: recent, 10: recent})
		f.commit("p_x", "r1", false, map[int]string{1: old, 2: old})
		s, _ := NewCSV(CSVOptions{Dir: f.dir})
		n := 0
		s.crash = func() bool { n++; return n == stop }
		res, err := s.EditRows(ctx, "p", &f.ep, "retention", olderThan(cut))
		if err != nil && !strings.Contains(err.Error(), errCrashed.Error()) {
			t.Fatalf("stop %d: %v", stop, err)
		}
		for id, c := range f.ids("p", false) {
			if c > 1 {
				t.Fatalf("stop %d: call %s in %d data files", stop, id, c)
			}
		}
		for id := range want {
			if f.ids("p", false)[id] != 1 {
				t.Fatalf("stop %d: call %s, which stays, is missing: %v", stop, id, f.ids("p", false))
			}
		}
		f.checkManifests("p")
		// The next process.
		s2, _ := NewCSV(CSVOptions{Dir: f.dir})
		if _, err := s2.State(ctx, "p", f.ep.Name); err != nil {
			t.Fatalf("stop %d: restart: %v", stop, err)
		}
		if err == nil {
			// Not stopped: every point was passed.
			if res.Files != 3 || res.Removed != 1 || res.Rewritten != 1 || res.Dropped != 6 || res.Rows != 10 {
				t.Fatalf("result %+v, want 3 files read, 1 removed, 1 rewritten, 6 rows of 10 dropped", res)
			}
			if stop < 4 {
				t.Fatalf("the edit passed only %d points", stop-1)
			}
		} else {
			// Finish what the killed process left.
			if _, err := s2.EditRows(ctx, "p", &f.ep, "retention", olderThan(cut)); err != nil {
				t.Fatalf("stop %d: edit after the restart: %v", stop, err)
			}
		}
		if got := f.ids("p", true); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("stop %d: the folder holds %v, want %v", stop, got, want)
		}
		if got := f.ids("p_x", true); len(got) != 2 {
			t.Fatalf("stop %d: the other PBX's file holds %v, want its 2 calls untouched", stop, got)
		}
		f.checkManifests("p")
		f.checkIndex("p")
		left, _ := filepath.Glob(filepath.Join(f.dir, "*", ".*tmp-*"))
		pend, _ := filepath.Glob(filepath.Join(f.dir, ".state", "p", "*.pending.json"))
		stray, _ := filepath.Glob(filepath.Join(f.dir, ".state", "p", "*~edit.json"))
		if len(left)+len(pend)+len(stray) > 0 {
			t.Fatalf("stop %d: left behind: %v %v %v", stop, left, pend, stray)
		}
		if _, err := os.Stat(filepath.Join(f.dir, f.ep.Name, "p_r1_0001.manifest.json")); err == nil {
			t.Fatalf("stop %d: the removed file's manifest is still there", stop)
		}
		if err == nil {
			t.Logf("the edit passed %d stopping points", stop-1)
			return
		}
	}
}

// TestCSVEditRowsReplacesAndKeepsExactlyOnce: an edit giving rows new
// cells (as erasure pseudonymises a number) rewrites only the files
// holding them, counts them in the manifest, and a later batch still
// finds each call in its file: a call sent again unchanged is not
// written twice. An edit keeping every row changes nothing.
func TestCSVEditRowsReplacesAndKeepsExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newEditFolder(t)
	day := "2026-02-01 10:00:00"
	f.commit("p", "r0", false, map[int]string{6: day, 7: day})
	f.commit("p", "r1", false, map[int]string{1: day, 2: day})
	f.commit("p", "r2", true, map[int]string{3: day, 4: day, 8: day})
	folder, _ := os.Stat(filepath.Join(f.dir, f.ep.Name))
	before := map[string]string{}
	for name := range f.files("p") {
		before[name], _ = fileSHA256(filepath.Join(f.dir, f.ep.Name, name))
	}
	s, _ := NewCSV(CSVOptions{Dir: f.dir})
	looked := 0
	res, err := s.EditRows(ctx, "p", &f.ep, "forget", func(header, row []string) (RowEdit, error) {
		looked++
		return RowEdit{}, nil
	})
	if err != nil || looked != 7 || res.Rows != 7 || res.Rewritten+res.Removed != 0 {
		t.Fatalf("a dry run: %+v, %v, %d rows looked at; want 7 rows read, nothing changed", res, err, looked)
	}
	// Not even a temporary file made and removed: a read only.
	if now, _ := os.Stat(filepath.Join(f.dir, f.ep.Name)); !now.ModTime().Equal(folder.ModTime()) {
		t.Fatal("a dry run wrote in the folder")
	}
	for name, sum := range before {
		if now, _ := fileSHA256(filepath.Join(f.dir, f.ep.Name, name)); now != sum {
			t.Fatalf("a dry run changed %s", name)
		}
	}
	res, err = s.EditRows(ctx, "p", &f.ep, "forget", func(header, row []string) (RowEdit, error) {
		if row[0] != "2" && row[0] != "4" { // second rows: the first ones are copied again, plain and compressed
			return RowEdit{}, nil
		}
		out := slices.Clone(row)
		out[slices.Index(header, "to_name")] = "p:erased"
		return RowEdit{Cells: out}, nil
	})
	if err != nil || res.Replaced != 2 || res.Rewritten != 2 {
		t.Fatalf("edit: %+v, %v; want 2 rows replaced in 2 files", res, err)
	}
	if now, _ := fileSHA256(filepath.Join(f.dir, f.ep.Name, "p_r0_0001.csv")); now != before["p_r0_0001.csv"] {
		t.Fatal("a file holding no row to edit was rewritten")
	}
	mb, _ := os.ReadFile(filepath.Join(f.dir, f.ep.Name, "p_r2_0001.manifest.json"))
	var m map[string]any
	json.Unmarshal(mb, &m)
	if m["rows_replaced_forget"] != 1.0 || m["rows"] != 3.0 {
		t.Fatalf("manifest %v: want rows 3, rows_replaced_forget 1", m)
	}
	f.checkManifests("p")
	f.checkIndex("p")
	// The nightly run reads call 1 again, and a new call 5.
	f.commit("p", "r3", false, map[int]string{1: day, 5: day})
	names := map[string]string{}
	for _, rows := range f.files("p") {
		for _, r := range rows {
			if _, twice := names[r["id"]]; twice {
				t.Fatalf("call %s twice after the edit and a batch", r["id"])
			}
			names[r["id"]] = r["to_name"]
		}
	}
	if want := map[string]string{"1": "n1", "2": "p:erased", "3": "n3", "4": "p:erased", "5": "n5", "6": "n6", "7": "n7", "8": "n8"}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("the folder holds %v, want %v", names, want)
	}
	if _, err := s.EditRows(ctx, "p", &f.ep, "forget", func(header, row []string) (RowEdit, error) {
		return RowEdit{Cells: row[:2]}, nil
	}); err == nil || !strings.Contains(err.Error(), "cells") {
		t.Fatalf("an edit giving too few cells: %v, want it refused", err)
	}
	if _, err := s.EditRows(ctx, "p", &f.ep, "Bad Reason", olderThan(time.Time{})); err == nil {
		t.Fatal("a reason that is not a word was taken")
	}
	for _, id := range []int{1, 2, 3, 4, 5} {
		if _, ok := names[strconv.Itoa(id)]; !ok {
			t.Fatalf("call %d lost", id)
		}
	}
}
