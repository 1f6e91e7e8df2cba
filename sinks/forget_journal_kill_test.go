package sinks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
)

// TestForgetJournalCountedByLedger (review 18, R18-1): on CSV a failed
// forget's RecordForget writes the journal's next entry (its Counted:
// the recording files its ledger entry counts) before the ledger entry.
// Stopped between the two (here: the ledger entry's write fails, which
// leaves the folder as a kill there does), no ledger entry counts those
// files, yet the completing forget took them as counted and counted
// them nowhere: the ledger's forget entries under-counted the files
// removed. ForgetJournal now leaves out Counted when the ledger lacks
// its entry (Continues); once that entry is written, Counted stays (the
// completing forget must not count them twice: R13-1). And when the
// forget completing the erasure took the killed one's first entry (its
// id) and was killed in turn after its ledger entry, before dropping
// the next entry, that entry is left out too: the erasure is recorded ok
// under the id it continues (it was counted a second time).
func TestForgetJournalCountedByLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	files := []string{"fileA", "fileB"}
	b := ForgetBegun{ID: exporter.NewRunID(t0), PBX: "x", Started: t0, Tag: "tagabc", Search: "--number with + or 00", Rows: 10, Recordings: 2, Added: true,
		Store: "/store", Removed: files}
	if err := s.BeginForget(ctx, b); err != nil {
		t.Fatal(err)
	}
	next := ForgetBegun{ID: exporter.NewRunID(t0.Add(time.Minute)), PBX: "x", Started: t0, Tag: b.Tag, Search: b.Search, Rows: 10,
		Store: "/store", Removed: files, Counted: files, Continues: b.ID}
	run := &exporter.RunResult{ID: b.ID, Mode: "forget", PBX: "x", Started: t0, Ended: t0.Add(time.Minute), Status: "failed",
		Endpoints: []exporter.EndpointResult{{Endpoint: "forget", Notes: []string{"recording files removed: 2"}}}}

	// The PBX's state folder a file: the ledger entry cannot be written.
	blocker := filepath.Join(dir, ".state", "x")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordForget(ctx, run, b, &next); err == nil {
		t.Fatal("RecordForget wrote the ledger entry: the test proves nothing")
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	j, err := s.ForgetJournal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(j) != 2 || j[0].ID != b.ID || j[1].ID != next.ID {
		t.Fatalf("journal %+v, want the attempt's entry and the next one", j)
	}
	if len(j[1].Counted) != 0 {
		t.Errorf("the next entry's files are taken as counted (%q) while no ledger entry counts them", j[1].Counted)
	}
	if !slices.Equal(j[1].Removed, files) {
		t.Errorf("the next entry's removed files %q, want %q (removed all the same)", j[1].Removed, files)
	}

	// Killed after the ledger entry, before the journal's rewrite.
	if err := s.FinishRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	j, err = s.ForgetJournal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(j) != 1 || j[0].ID != next.ID || !slices.Equal(j[0].Counted, files) {
		t.Errorf("journal %+v once the ledger entry is written: want the next entry alone, its files counted", j)
	}

	// The forget completing the erasure from the state a kill before the
	// failed entry leaves (its first entry taken, under its id), killed
	// after its ledger entry, before the journal's rewrite.
	dir2 := t.TempDir()
	s2, err := NewCSV(CSVOptions{Dir: dir2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.BeginForget(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s2.writeForgetJournal([]ForgetBegun{b, next}); err != nil { // as RecordForget's first write left it
		t.Fatal(err)
	}
	done := *run
	done.Status = "ok"
	if err := s2.FinishRun(ctx, &done); err != nil {
		t.Fatal(err)
	}
	if j, err := s2.ForgetJournal(ctx); err != nil || len(j) != 0 {
		t.Errorf("journal %+v, %v once the erasure is recorded ok under the id the next entry continues: want none left (it would be counted again)", j, err)
	}
}

// TestForgetJournalCompletedKilledBeforeRewrite (review 36, R36-1): a
// failed forget A is stopped between its journal write (A and the next
// entry N, which continues A) and its ledger entry. Forget C completes
// the erasure from A's entry, so its ok ledger entry takes A's id, and is
// killed after that entry, before the journal's rewrite. N must not be
// offered again: the next forget would complete it and count its rows
// (and files) a second time. With and without recording files (N
// continues A either way).
func TestForgetJournalCompletedKilledBeforeRewrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		files []string
	}{
		{"with recording files", []string{"fileA", "fileB"}},
		{"rows only", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s, err := NewCSV(CSVOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now().UTC().Truncate(time.Second)
			a := ForgetBegun{ID: exporter.NewRunID(t0), PBX: "x", Started: t0, Tag: "tagabc", Search: "--number with + or 00", Rows: 10,
				Recordings: len(tc.files), Added: true, Removed: tc.files}
			next := ForgetBegun{ID: exporter.NewRunID(t0.Add(time.Minute)), PBX: "x", Started: t0, Tag: a.Tag, Search: a.Search, Rows: 4,
				Removed: tc.files, Counted: tc.files, Continues: a.ID}
			if tc.files != nil {
				a.Store, next.Store = "/store", "/store"
			}
			if err := s.BeginForget(ctx, a); err != nil {
				t.Fatal(err)
			}
			failed := &exporter.RunResult{ID: a.ID, Mode: "forget", PBX: "x", Started: t0, Ended: t0.Add(time.Minute), Status: "failed"}
			blocker := filepath.Join(dir, ".state", "x") // the ledger entry cannot be written: as a kill there
			if err := os.WriteFile(blocker, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := s.RecordForget(ctx, failed, a, &next); err == nil {
				t.Fatal("RecordForget wrote the ledger entry: the test proves nothing")
			}
			if err := os.Remove(blocker); err != nil {
				t.Fatal(err)
			}
			j, err := s.ForgetJournal(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(j) != 2 || j[0].ID != a.ID || j[1].ID != next.ID {
				t.Fatalf("journal %+v after the kill between journal and ledger: want A's entry and the next one", j)
			}
			// C completes from A's entry (forgetLedger: the entry takes
			// begun's id), ok, everything counted; killed after FinishRun.
			c := &exporter.RunResult{ID: a.ID, Mode: "forget", PBX: "x", Started: t0, Ended: t0.Add(2 * time.Minute), Status: "ok",
				Endpoints: []exporter.EndpointResult{{Endpoint: "forget", Rows: 10, Notes: []string{fmt.Sprintf("recording files removed: %d", len(tc.files))}}}}
			if err := s.FinishRun(ctx, c); err != nil {
				t.Fatal(err)
			}
			j, err = s.ForgetJournal(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range j {
				t.Errorf("after the completed erasure the journal still offers %s (rows %d, recordings %d, counted %q): the next forget would count them again",
					e.ID, e.Rows, e.Recordings, e.Counted)
			}
			// BeginForget of the next forget writes the journal back without it.
			d := ForgetBegun{ID: exporter.NewRunID(t0.Add(3 * time.Minute)), PBX: "x", Started: t0.Add(3 * time.Minute), Tag: "tagdef", Search: a.Search}
			if err := s.BeginForget(ctx, d); err != nil {
				t.Fatal(err)
			}
			if j, err := s.readForgetJournal(); err != nil || len(j) != 1 || j[0].ID != d.ID {
				t.Errorf("journal file %+v, %v after the next forget began: want its entry alone", j, err)
			}
		})
	}
}
