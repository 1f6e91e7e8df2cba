package sinks

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestRewriteLedgerGluedRecords is review 33's R33-2 and the rewrite's
// part of R33-1 (CSV run ledger): a whole record whose newline alone was
// lost, glued to the next (`{A}{B}`), is split and each record kept,
// redacted (before: A became a torn-line marker, its rows and rule gone);
// a torn last line, replaced by the marker, ends with a newline, so the
// next record starts its own line.
func TestRewriteLedgerGluedRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys, err := pseudonym.New([]byte("ledgerfix test key, 32 bytes or more"))
	if err != nil {
		t.Fatal(err)
	}
	red := &privacy.Redactor{Keys: keys, Names: true}
	s, err := NewCSV(CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.mkStateDir("x"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.stateDir("x"), "runs.jsonl")
	a := `{"run_id":"20261201T100000Z-a1b2c3","rows":42,"privacy":{"rule":"none"},"endpoints":[{"endpoint":"call_history","notes":["caller +39 333 7771234"]}]}`
	b := `{"run_id":"20261201T110000Z-d4e5f6","rows":7,"privacy":{"rule":"none"},"endpoints":[{"endpoint":"call_history","notes":["caller +39 333 7775678"]}]}`
	torn := `{"run_id":"20261201T120000Z-aaaaaa","endpoints":[{"notes":["caller +39 333 77`
	if err := os.WriteFile(path, []byte(a+b+"\n"+torn), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RewriteLedgerUnderRule(ctx, "x", "r2", "all", red.Text); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(got), "\n") {
		t.Errorf("runs.jsonl does not end with a newline after its torn last line was replaced:\n%s", got)
	}
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("runs.jsonl: %d lines, want 3 (A, B, the torn part's marker):\n%s", len(lines), got)
	}
	for i, want := range []struct {
		id   string
		rows int
	}{{"20261201T100000Z-a1b2c3", 42}, {"20261201T110000Z-d4e5f6", 7}} {
		var rec struct {
			ID   string `json:"run_id"`
			Rows int    `json:"rows"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil || rec.ID != want.id || rec.Rows != want.rows {
			t.Errorf("line %d: %s (%v); want the record of %s whole, rows %d", i+1, lines[i], err, want.id, want.rows)
		}
	}
	if want := tornRedacted + " (run_id 20261201T120000Z-aaaaaa)"; lines[2] != want {
		t.Errorf("the torn last line: %s\nwant %s", lines[2], want)
	}
	if strings.Contains(string(got), "333 777") || strings.Contains(string(got), "7771234") {
		t.Errorf("a number left in clear:\n%s", got)
	}
}

// TestRewriteLedgerNonObjectLines is review 39's R39-2: a line that is
// JSON but no object (a string, a number, a list), alone or glued to a
// record, made the rewrite call itself without end (a stack overflow
// after the windows, every backfill crashing while a rewrite was due). It
// is replaced by the torn-line marker; a record glued to it is kept.
func TestRewriteLedgerNonObjectLines(t *testing.T) {
	t.Parallel()
	keys, err := pseudonym.New([]byte("ledgerfix test key, 32 bytes or more"))
	if err != nil {
		t.Fatal(err)
	}
	red := &privacy.Redactor{Keys: keys, Names: true}
	rec := `{"run_id":"20261201T100000Z-a1b2c3","rows":42,"privacy":{"rule":"none"},"endpoints":[{"endpoint":"call_history","notes":["caller +39 333 7771234"]}]}`
	for _, tc := range []struct {
		name, line string
		records    int
	}{
		{"string", `"+39 333 7771234"`, 0},
		{"number", `3337771234`, 0},
		{"list", `["+39 333 7771234"]`, 0},
		{"list then record", `["+39 333 7771234"]` + rec, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := NewCSV(CSVOptions{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.mkStateDir("x"); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(s.stateDir("x"), "runs.jsonl")
			if err := os.WriteFile(path, []byte(tc.line+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := s.RewriteLedgerUnderRule(context.Background(), "x", "r2", "all", red.Text); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(got), "7771234") {
				t.Errorf("a number left in clear:\n%s", got)
			}
			records := 0
			for _, l := range strings.Split(strings.TrimSuffix(string(got), "\n"), "\n") {
				var r struct {
					ID string `json:"run_id"`
				}
				if json.Unmarshal([]byte(l), &r) == nil && r.ID != "" {
					records++
				}
			}
			if records != tc.records {
				t.Errorf("%d records kept, want %d:\n%s", records, tc.records, got)
			}
		})
	}
}
