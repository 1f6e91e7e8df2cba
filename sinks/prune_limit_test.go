package sinks

import (
	"cmp"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
)

// TestRetentionLimitStored: on both sinks, no limit before a prune stored
// one; the one stored is read back, per PBX, and replaced by the next.
func TestRetentionLimitStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type store interface {
		RetentionLimit(ctx context.Context, pbx string) (time.Duration, error)
		SetRetentionLimit(ctx context.Context, pbx, run string, limit time.Duration) error
	}
	c, err := NewCSV(CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := newPostgres(t)
	for name, s := range map[string]store{"csv": c, "postgres": p} {
		if d, err := s.RetentionLimit(ctx, "p1"); err != nil || d != 0 {
			t.Fatalf("%s: before any prune: %v %v, want 0", name, d, err)
		}
		for _, want := range []time.Duration{400 * 24 * time.Hour, 40 * 24 * time.Hour} {
			if err := s.SetRetentionLimit(ctx, "p1", "r1", want); err != nil {
				t.Fatal(err)
			}
			if d, err := s.RetentionLimit(ctx, "p1"); err != nil || d != want {
				t.Fatalf("%s: read %v %v, want %v", name, d, err, want)
			}
		}
		if d, err := s.RetentionLimit(ctx, "p2"); err != nil || d != 0 {
			t.Fatalf("%s: another PBX: %v %v, want 0", name, d, err)
		}
	}
}

// TestLedgerLimit: on both sinks, the limit of the last successful prune
// of a PBX's rows is read back from its run ledger (the run's start less
// the cut its first retention note names), for the shorter-limit guard
// when the stored limit is lost: a failed prune, a completed stopped one
// (EXPORT_RETENTION off) and another PBX's are not taken; none recorded
// is 0.
func TestLedgerLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type ledger interface {
		exporter.Sink
		LedgerLimit(ctx context.Context, pbx string) (time.Duration, string, error)
	}
	c, err := NewCSV(CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := newPostgres(t)
	day := 24 * time.Hour
	start := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	runs := []struct {
		id, pbx string
		limit   time.Duration
		note    string // the first note; "" is the prune's own
		err     error
	}{
		{"r1", "p1", 400 * day, "", nil},
		{"r2", "p1", 40 * day, "", nil},
		{"r3", "p1", 4 * day, "", errors.New("the store refused")},
		{"r4", "p1", 0, "completing the prune of what concerns calls started before 2026-01-01T00:00:00Z that a run stopped", nil},
		{"r5", "p2", 2 * day, "", nil},
	}
	for name, s := range map[string]ledger{"csv": c, "postgres": p} {
		if d, run, err := s.LedgerLimit(ctx, "p1"); err != nil || d != 0 || run != "" {
			t.Fatalf("%s: no run yet: %v %q %v, want 0", name, d, run, err)
		}
		for i, r := range runs {
			started := start.Add(time.Duration(i) * day)
			cut := started.Add(-1500 * time.Millisecond).Add(-r.limit).Truncate(time.Second) // read a moment before the start
			note := cmp.Or(r.note, PruneNote+cut.Format(time.RFC3339)+" (EXPORT_RETENTION)")
			run := &exporter.RunResult{ID: r.id, Mode: "once", PBX: r.pbx, Started: started, Ended: started.Add(time.Minute), Status: "ok",
				Endpoints: []exporter.EndpointResult{{Endpoint: "call_history"}, {Endpoint: "retention", Notes: []string{note, "call_history: 3 rows removed"}, Err: r.err}}}
			if r.err != nil {
				run.Status = "failed"
			}
			if err := s.StartRun(ctx, run); err != nil {
				t.Fatal(err)
			}
			if err := s.FinishRun(ctx, run); err != nil {
				t.Fatal(err)
			}
		}
		if d, run, err := s.LedgerLimit(ctx, "p1"); err != nil || d != 40*day || run != "r2" {
			t.Errorf("%s: %v %q %v, want 40 days, run r2", name, d, run, err)
		}
		if d, run, err := s.LedgerLimit(ctx, "p2"); err != nil || d != 2*day || run != "r5" {
			t.Errorf("%s: PBX p2: %v %q %v, want 2 days, run r5", name, d, run, err)
		}
	}
}

// TestDamagedRecordsNotQuoted is the brief's finding 8: the error of a
// damaged pending prune (and of a damaged retention limit) quoted the
// stored bytes (%q), which may hold anything, a phone number among
// them. Now it says how many bytes, not what they are, and keeps its
// advice.
func TestDamagedRecordsNotQuoted(t *testing.T) {
	t.Parallel()
	const stored = `{"junk":"+39 333 7771234"}`
	_, err := decodePending([]byte(stored), "export_state")
	if err == nil {
		t.Fatal("a damaged pending prune read without error")
	}
	if strings.Contains(err.Error(), "7771234") || strings.Contains(err.Error(), "junk") {
		t.Errorf("the damaged pending prune's error quotes the record: %v", err)
	}
	if !strings.Contains(err.Error(), `replace it with {"cut":"<time>"}`) || !strings.Contains(err.Error(), "26 bytes, not shown") {
		t.Errorf("the damaged pending prune's error lost its advice or size: %v", err)
	}
	_, err = decodeLimit([]byte(`"+39 333 7771234"`))
	if err == nil {
		t.Fatal("a damaged retention limit read without error")
	}
	if strings.Contains(err.Error(), "7771234") {
		t.Errorf("the damaged retention limit's error quotes the record: %v", err)
	}
}
