package sinks

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// journaled is a sink with a forget journal.
type journaled interface {
	ForgetJournal(ctx context.Context) ([]ForgetBegun, error)
	BeginForget(ctx context.Context, b ForgetBegun) error
	RecordForget(ctx context.Context, r *exporter.RunResult, tag string) error
	ForgetFind(ctx context.Context, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error)
}

// TestForgetJournal, on both sinks: BeginForget keeps the earliest entry
// of a number (the attempt that found the most) beside other numbers';
// RecordForget writes the ledger entry and drops its number's entry (on
// PostgreSQL in one transaction, the row gone with the last entry); on
// CSV an entry whose id is in the ledger already (RecordForget killed
// between the two) is left out. The journal holds no number: forget's
// search finds nothing in it. Fails without beginForget's earliest kept
// (seen: the later attempt's 40 rows).
func TestForgetJournal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, k := testForgotten(t, "+393528510123")
	tagA, tagB := ForgetTag(k.Number("393528510123")), ForgetTag(k.Number("393528510999"))
	if strings.ContainsAny(tagA, "0123456789") || tagA == tagB || strings.Contains(tagA, k.Number("393528510123")) {
		t.Fatalf("tags %q, %q: want letters only, one per number", tagA, tagB)
	}
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	first := ForgetBegun{ID: exporter.NewRunID(t0), PBX: "x", Started: t0, Tag: tagA, Rows: 2330, Added: true}
	later := ForgetBegun{ID: exporter.NewRunID(t0.Add(time.Minute)), PBX: "x", Started: t0.Add(time.Minute), Tag: tagA, Rows: 40}
	other := ForgetBegun{ID: exporter.NewRunID(t0.Add(2 * time.Minute)), PBX: "x", Started: t0.Add(2 * time.Minute), Tag: tagB, Rows: 7}
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (journaled, func(id string) bool)
	}{
		{"postgres", func(t *testing.T) (journaled, func(string) bool) {
			p, pool := newPostgres(t)
			return p, func(id string) bool {
				var n int
				if err := pool.QueryRow(ctx, "SELECT count(*) FROM export_runs WHERE run_id = $1", id).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n == 1
			}
		}},
		{"csv", func(t *testing.T) (journaled, func(string) bool) {
			s, err := NewCSV(CSVOptions{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			return s, func(id string) bool {
				has, err := s.ledgerHas("x", id)
				if err != nil {
					t.Fatal(err)
				}
				return has
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, inLedger := tc.open(t)
			read := func() []ForgetBegun {
				t.Helper()
				j, err := s.ForgetJournal(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for i := range j {
					j[i].Started = j[i].Started.UTC()
				}
				return j
			}
			if j := read(); len(j) != 0 {
				t.Fatalf("a new sink's journal: %v", j)
			}
			for _, b := range []ForgetBegun{first, later, other} {
				if err := s.BeginForget(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			if j := read(); !slices.Equal(j, []ForgetBegun{first, other}) {
				t.Fatalf("journal %+v, want the number's first attempt and the other number's", j)
			}
			found, err := s.ForgetFind(ctx, f, nil)
			if err != nil || found.Rows() != 0 {
				t.Errorf("forget's search found the number in the journal: %+v, %v", found, err)
			}
			run := &exporter.RunResult{ID: first.ID, Mode: "forget", PBX: "x", Started: first.Started, Ended: t0.Add(time.Hour), Status: "ok",
				Endpoints: []exporter.EndpointResult{{Endpoint: "forget", Rows: 2330}}}
			if err := s.RecordForget(ctx, run, tagA); err != nil {
				t.Fatal(err)
			}
			if j := read(); !slices.Equal(j, []ForgetBegun{other}) || !inLedger(first.ID) {
				t.Fatalf("after its ledger entry: journal %+v (want the other number's only), in the ledger: %v", j, inLedger(first.ID))
			}
			if csv, ok := s.(*CSV); ok {
				// killed between the ledger entry and the journal's rewrite
				run.ID = other.ID
				if err := csv.FinishRun(ctx, run); err != nil {
					t.Fatal(err)
				}
				if j := read(); len(j) != 0 {
					t.Errorf("an entry recorded in the ledger is still read: %+v", j)
				}
				return
			}
			run.ID = other.ID
			if err := s.RecordForget(ctx, run, tagB); err != nil {
				t.Fatal(err)
			}
			if j := read(); len(j) != 0 {
				t.Errorf("journal after both recorded: %+v", j)
			}
		})
	}
}
