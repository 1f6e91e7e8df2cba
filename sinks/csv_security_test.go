package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/safefile"
	"github.com/wildix-export/wildix-export/simtest"
)

// hookSink calls hook once, after the first Write of a batch has put rows
// in its temporary file.
type hookSink struct {
	exporter.Sink
	once sync.Once
	hook func()
}

func (h *hookSink) Begin(ctx context.Context, b exporter.BatchInfo) (exporter.Batch, error) {
	bt, err := h.Sink.Begin(ctx, b)
	if err != nil {
		return nil, err
	}
	return &hookBatch{Batch: bt, sink: h}, nil
}

type hookBatch struct {
	exporter.Batch
	sink *hookSink
}

func (b *hookBatch) Write(ctx context.Context, rows []record.Row) error {
	if err := b.Batch.Write(ctx, rows); err != nil {
		return err
	}
	b.sink.once.Do(b.sink.hook)
	return nil
}

// readCSVOf reads the committed files of one PBX, found by their
// manifests.
func readCSVOf(t *testing.T, dir, endpoint, pbx string) []map[string]string {
	t.Helper()
	manifests, err := filepath.Glob(filepath.Join(dir, endpoint, "*.manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	only := t.TempDir()
	for _, m := range manifests {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		var man struct{ PBX, File string }
		if err := json.Unmarshal(b, &man); err != nil {
			t.Fatal(err)
		}
		if man.PBX != pbx {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, endpoint, man.File))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(only, endpoint), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(only, endpoint, man.File), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return readCSV(t, only, endpoint)
}

// TestCSVTwoPBXIDsShareAFolder: PBX "a" starts (and cleans up stale
// temporary files) while "a_b" has a batch in progress in the same
// folder; both exports stay exact.
func TestCSVTwoPBXIDsShareAFolder(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 1500, CallGap: time.Minute})
	dir := t.TempDir()
	ctx := context.Background()
	ab, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	eps := record.Builtin()[:1]
	var ra *exporter.RunResult
	hooked := &hookSink{Sink: ab, hook: func() {
		// "a" starts now: a new process, after a_b's temporary file.
		a, err := NewCSV(CSVOptions{Dir: dir})
		if err != nil {
			t.Error(err)
			return
		}
		xa := newExporter(t, f, a)
		xa.PBX = "a"
		ra = xa.Run(ctx, exporter.NewRunID(time.Now()), "once", eps)
	}}
	xab := newExporter(t, f, hooked)
	xab.PBX = "a_b"
	rab := xab.Run(ctx, exporter.NewRunID(time.Now()), "once", eps)
	if ra == nil {
		t.Fatal("the hook did not run: a_b never had a batch in progress")
	}
	for _, r := range []*exporter.RunResult{ra, rab} {
		if err := r.Err(); err != nil {
			t.Fatalf("%s: %v", r.PBX, err)
		}
	}
	for _, pbx := range []string{"a", "a_b"} {
		rows := readCSVOf(t, dir, "call_history", pbx)
		if got := checkCalls(t, f.Sim, rows); got != 1500 || len(rows) != 1500 {
			t.Fatalf("%s: %d rows up to call %d, want 1500", pbx, len(rows), got)
		}
	}
}

// TestCSVCommitWhoseDataVanishedFails: the data file of the commit being
// made disappears between the pending record and the rename; the commit
// fails and the state does not move.
func TestCSVCommitWhoseDataVanishedFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ep := record.Builtin()[0]
	ctx := context.Background()
	s, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	row, err := (&record.Converter{Endpoint: &ep}).Convert(0, json.RawMessage(`{"id":"7","start":"2026-01-01 10:00:00","timezone":"+0100"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, []record.Row{row}); err != nil {
		t.Fatal(err)
	}
	if err := b.(*csvBatch).decide([]byte(`{"cursor":7}`)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(b.(*csvBatch).tmp); err != nil {
		t.Fatal(err)
	}
	// What Commit does after decide.
	if err := s.recover("p", ep.Name, false); err == nil || !strings.Contains(err.Error(), "vanished") {
		t.Fatalf("commit with its data gone: %v, want a failure", err)
	}
	st, err := s.State(ctx, "p", ep.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st != nil {
		t.Fatalf("state %s saved for a commit whose data vanished", st)
	}
}

// TestCSVPendingRecordPathsAreNotTrusted: a crafted pending record naming
// files elsewhere renames nothing outside the export folder.
func TestCSVPendingRecordPathsAreNotTrusted(t *testing.T) {
	t.Parallel()
	dir, elsewhere := t.TempDir(), t.TempDir()
	victim := filepath.Join(elsewhere, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := s.mkStateDir("p")
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []map[string]string{
		{"tmp": victim, "final": filepath.Join(elsewhere, "p_moved.csv"), "sha256": "x"},
		{"folder": "..", "tmp": ".p~x.tmp-1", "final": "p_x.csv"},
		{"folder": "call_history", "tmp": ".q~x.tmp-1", "final": "q_x.csv"},
	} {
		b, _ := json.Marshal(map[string]any{"seq": 1, "state": json.RawMessage(`{}`), "folder": p["folder"], "tmp": p["tmp"], "final": p["final"], "sha256": p["sha256"]})
		if err := os.WriteFile(filepath.Join(sd, "call_history.pending.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := s.State(context.Background(), "p", "call_history")
		if _, serr := os.Stat(victim); serr != nil {
			t.Fatalf("record %d: the file outside the export folder was moved (%v)", i, serr)
		}
		if _, serr := os.Stat(filepath.Join(elsewhere, "p_moved.csv")); serr == nil {
			t.Fatalf("record %d: a file was renamed outside the export folder", i)
		}
		if i > 0 && err == nil {
			t.Fatalf("record %d: accepted", i)
		}
	}
}

// TestCSVSymlinksPlantedAreNotFollowed: links planted in the state and
// export folders are refused, and their targets stay untouched.
func TestCSVSymlinksPlantedAreNotFollowed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	victimDir := t.TempDir()
	ep := record.Builtin()[0]
	for _, tc := range []struct {
		name, link, target string
		do                 func(s *CSV) error
	}{
		{"ledger", ".state/p/runs.jsonl", victim, func(s *CSV) error {
			return s.FinishRun(ctx, &exporter.RunResult{ID: "r", PBX: "p"})
		}},
		{"lock", ".state/p/export.lock", victim, func(s *CSV) error {
			_, err := s.LockPBX(ctx, "p")
			return err
		}},
		{"state folder", ".state/p", victimDir, func(s *CSV) error {
			_, err := s.LockPBX(ctx, "p")
			return err
		}},
		{"endpoint folder", "call_history", victimDir, func(s *CSV) error {
			_, err := s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
			return err
		}},
	} {
		dir := t.TempDir()
		s, err := NewCSV(CSVOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, tc.link)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(tc.target, link); err != nil {
			t.Fatal(err)
		}
		if err := tc.do(s); !errors.Is(err, safefile.ErrSymlink) {
			t.Fatalf("%s through a planted link: %v, want ErrSymlink", tc.name, err)
		}
		if b, err := os.ReadFile(victim); err != nil || string(b) != "keep" {
			t.Fatalf("%s: the link's target changed: %q %v", tc.name, b, err)
		}
		if entries, err := os.ReadDir(victimDir); err != nil || len(entries) != 0 {
			t.Fatalf("%s: files written through the link: %v %v", tc.name, entries, err)
		}
	}
}
