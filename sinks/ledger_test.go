package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// Both sinks implement the whole contract: no wrapper, no type assertion.
var (
	_ exporter.Sink = (*Postgres)(nil)
	_ exporter.Sink = (*CSV)(nil)
)

func ledgerRun(id string) *exporter.RunResult {
	now := time.Now().UTC()
	return &exporter.RunResult{ID: id, Mode: "once", PBX: "x", Started: now, Ended: now.Add(time.Second), Status: "ok",
		Endpoints: []exporter.EndpointResult{{Endpoint: "call_history", Rows: 3, Pages: 1, Filtered: 2, Vanished: 1,
			Paging: "keyset", Notes: []string{"the PBX ignores filter[id]: paging by filter[start] windows"}}}}
}

// commitOne commits one empty batch of call_history in run id.
func commitOne(t *testing.T, s exporter.Sink, id string) {
	t.Helper()
	ctx := context.Background()
	ep := record.Builtin()[0]
	b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: id, Endpoint: &ep, StateKey: ep.Name, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, []byte(`{"cursor":0}`), exporter.Progress{}); err != nil {
		t.Fatal(err)
	}
}

func TestPostgresLedgerIsWrittenOnlyByTheRun(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	ctx := context.Background()
	commitOne(t, p, "never-started")
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM export_runs").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("a batch of a run StartRun never recorded wrote %d ledger rows", n)
	}
	r := ledgerRun("r1")
	if err := p.StartRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	commitOne(t, p, r.ID)
	if err := p.FinishRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	var paging string
	var notes []string
	var filtered, vanished int64
	if err := pool.QueryRow(ctx, `SELECT paging, notes, filtered, vanished FROM export_run_endpoints
WHERE run_id = 'r1' AND endpoint = 'call_history'`).Scan(&paging, &notes, &filtered, &vanished); err != nil {
		t.Fatal(err)
	}
	want := r.Endpoints[0]
	if paging != want.Paging || !slices.Equal(notes, want.Notes) || filtered != want.Filtered || vanished != want.Vanished {
		t.Fatalf("ledger holds %q %q %d %d, want %q %q %d %d", paging, notes, filtered, vanished, want.Paging, want.Notes, want.Filtered, want.Vanished)
	}
}

func TestCSVLedgerHoldsHowEachEndpointWasRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r := ledgerRun("r1")
	if err := s.FinishRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(s.stateDir("x"), "runs.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var line struct {
		Endpoints []struct {
			Paging   string   `json:"paging"`
			Notes    []string `json:"notes"`
			Filtered int64    `json:"filtered"`
			Vanished int64    `json:"vanished"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(b, &line); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	want := r.Endpoints[0]
	if len(line.Endpoints) != 1 {
		t.Fatalf("ledger line %s", b)
	}
	got := line.Endpoints[0]
	if got.Paging != want.Paging || !slices.Equal(got.Notes, want.Notes) || got.Filtered != want.Filtered || got.Vanished != want.Vanished {
		t.Fatalf("ledger line %s lacks %+v", b, want)
	}
}

func TestPostgresLockIsPerPBX(t *testing.T) {
	t.Parallel()
	p, _ := newPostgres(t)
	ctx := context.Background()
	unlock, err := p.LockPBX(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.LockPBX(ctx, "x"); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock of x: %v, want ErrLocked", err)
	}
	other, err := p.LockPBX(ctx, "y")
	if err != nil {
		t.Fatalf("lock of another PBX: %v", err)
	}
	other()
	unlock()
	again, err := p.LockPBX(ctx, "x")
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again()
}

// TestCSVLedgerPrivacyOnlyWhereApplied: a run's line in runs.jsonl says
// the rule it applied; an erasure's (forget, which applies none) has no
// privacy member, as PostgreSQL's ledger row leaves the rule NULL, not
// an empty rule (attack 30 L6).
func TestCSVLedgerPrivacyOnlyWhereApplied(t *testing.T) {
	t.Parallel()
	s, err := NewCSV(CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	run := ledgerRun("r1")
	run.Privacy = exporter.Privacy{Rule: "numbers", KeyID: "k:aaaaaaaa"}
	erase := &exporter.RunResult{ID: "r2", Mode: "forget", PBX: "x", Status: "ok",
		Endpoints: []exporter.EndpointResult{{Endpoint: "forget", Rows: 3}}}
	for _, r := range []*exporter.RunResult{run, erase} {
		if err := s.FinishRun(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(s.stateDir("x"), "runs.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("runs.jsonl holds %d lines, want 2: %s", len(lines), b)
	}
	var got [2]map[string]json.RawMessage
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &got[i]); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
	}
	if p := string(got[0]["privacy"]); p != `{"rule":"numbers","key_id":"k:aaaaaaaa"}` {
		t.Errorf("the run's privacy = %s, want its rule and key id", p)
	}
	if p, ok := got[1]["privacy"]; ok {
		t.Errorf("the erasure's line holds privacy %s, want none", p)
	}
}
