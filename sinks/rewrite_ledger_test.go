package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// Attack 8, F3: a run under rule none quotes in its notes a value the
// PBX sent that could not be stored (a caller's number and name), and the
// PBX's error text; after pseudonymisation is turned on, the forced
// backfill's rewrite left them in clear in the run ledger. Now
// RewriteLedgerUnderRule gives the earlier runs' notes and errors what
// the current rule's redactor makes of them; a run under the rule is not
// read; a second rewrite changes nothing. Both sinks.
func TestRewriteLedgerUnderRuleLeavesNoValueInClear(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys, err := pseudonym.New([]byte("ledgerfix test key, 32 bytes or more"))
	if err != nil {
		t.Fatal(err)
	}
	red := &privacy.Redactor{Keys: keys, Names: true}
	const (
		note   = `1 values not convertible, stored NULL (first: key 7, field "duration": "call +39 333 7771234 Mario Verdisecret" is not a whole number)`
		pbxErr = `400 Bad Request: "no caller Mario Verdisecret"`
		clear  = "+393337771234 Mario Verdisecret" // a run under the rule: not read
	)
	// runs writes into s a run under none with the clear texts, then a
	// run under all whose note the redactor would change (it is not read).
	runs := func(t *testing.T, s exporter.Sink) {
		t.Helper()
		for _, r := range []struct {
			id, rule, note string
			err            error
		}{{"r0", "none", note, errors.New(pbxErr)}, {"r1", "all", clear, nil}} {
			run := ledgerRun(r.id)
			run.Privacy = exporter.Privacy{Rule: r.rule}
			run.Endpoints[0].Notes = append(run.Endpoints[0].Notes, r.note)
			run.Endpoints[0].Err = r.err
			if err := s.StartRun(ctx, run); err != nil {
				t.Fatal(err)
			}
			if err := s.FinishRun(ctx, run); err != nil {
				t.Fatal(err)
			}
		}
	}
	type rewriter interface {
		RewriteLedgerUnderRule(ctx context.Context, pbx, run, rule string, redact LedgerRedactor) ([]ForgetPlace, error)
	}
	rewrite := func(t *testing.T, s rewriter, want int64) {
		t.Helper()
		places, err := s.RewriteLedgerUnderRule(ctx, "x", "r2", "all", red.Text)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, p := range places {
			n += p.Rows
		}
		if n != want {
			t.Fatalf("rewrote %d ledger rows or lines (%+v), want %d", n, places, want)
		}
	}
	// check fails unless the run under none's texts hold neither the name
	// nor the number in clear, but say which field and what was left
	// out, and hold the number's pseudonym; and the run under the rule is
	// as it was.
	check := func(t *testing.T, r0, r1 string) {
		t.Helper()
		for _, bad := range []string{"Verdisecret", "7771234", "333 777"} {
			if strings.Contains(r0, bad) {
				t.Errorf("the run under none's ledger texts still hold %q: %s", bad, r0)
			}
		}
		for _, want := range []string{`key 7, field "duration": (a value of`, "400 Bad Request: (the PBX's text of"} {
			if !strings.Contains(r0, want) {
				t.Errorf("the run under none's ledger texts lack %q: %s", want, r0)
			}
		}
		if !strings.Contains(r1, clear) {
			t.Errorf("the run under the rule was rewritten: %s", r1)
		}
	}

	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		p, pool := newPostgres(t)
		runs(t, p)
		rewrite(t, p, 2) // export_runs.error, export_run_endpoints
		rewrite(t, p, 0)
		read := func(id string) string {
			var s string
			if err := pool.QueryRow(ctx, `SELECT coalesce(r.error, '') || ' | ' || coalesce(e.error, '') || ' | ' || array_to_string(e.notes, ' | ')
FROM export_runs r JOIN export_run_endpoints e USING (run_id) WHERE run_id = $1`, id).Scan(&s); err != nil {
				t.Fatal(err)
			}
			return s
		}
		check(t, read("r0"), read("r1"))
	})
	t.Run("csv", func(t *testing.T) {
		t.Parallel()
		s, err := NewCSV(CSVOptions{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		runs(t, s)
		path := filepath.Join(s.stateDir("x"), "runs.jsonl")
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rewrite(t, s, 1)
		rewrite(t, s, 0)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		was := strings.Split(strings.TrimSuffix(string(before), "\n"), "\n")
		if len(lines) != 2 || len(was) != 2 || lines[1] != was[1] {
			t.Fatalf("runs.jsonl: the run under the rule's line not kept byte for byte:\n%s\nwas\n%s", b, before)
		}
		check(t, strings.ReplaceAll(lines[0], `\"`, `"`), lines[1]) // the JSON's quotes as the texts have them
	})
}

// TestRewriteLedgerTornLine is review 26's R26-1, review 28's R28-3 and
// R28-6: a CSV runs.jsonl line that is not a JSON object (a write cut
// short, the next run's record appended to it) failed the ledger's
// rewrite, and so every backfill under a rule, for good. Then the
// redactor went over its whole text, as raw JSON: a name in escaped
// quotes and the PBX's text stayed in clear, and the run id's digits were
// mangled. Now the torn part is replaced whole by a fixed record keeping
// only the run id read exactly, the record appended to it is kept as its
// own line (redacted as a line is), the other lines stay byte for byte,
// and a second rewrite changes nothing.
func TestRewriteLedgerTornLine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys, err := pseudonym.New([]byte("ledgerfix test key, 32 bytes or more"))
	if err != nil {
		t.Fatal(err)
	}
	red := &privacy.Redactor{Keys: keys, Names: true}
	for _, c := range []struct {
		name, torn, id string
	}{
		{"run id read", `{"run_id":"20261201T100000Z-a1b2c3","privacy":{"rule":"none"},"endpoints":[{"notes":["first: key 7, field \"name\": \"\\\"Mario Verdisecret\\\" 0039 333 7771234`, "20261201T100000Z-a1b2c3"},
		{"run id cut", `{"run_id":"20261201T1000`, ""},
		{"run id a number", `{"run_id":"393337771234","endpoints":[{"error":"400: no caller Mario Verdisecret`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewCSV(CSVOptions{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			run := ledgerRun("r0")
			run.Privacy = exporter.Privacy{Rule: "all"}
			if err := s.StartRun(ctx, run); err != nil {
				t.Fatal(err)
			}
			if err := s.FinishRun(ctx, run); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(s.stateDir("x"), "runs.jsonl")
			whole, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// The next run's record, under none, appended to the torn part.
			next := `{"run_id":"20261201T110000Z-d4e5f6","privacy":{"rule":"none"},"endpoints":[{"endpoint":"call_history","notes":["caller +39 333 7771234"]}]}`
			if err := os.WriteFile(path, append([]byte(c.torn+next+"\n"), whole...), 0o600); err != nil {
				t.Fatal(err)
			}
			places, err := s.RewriteLedgerUnderRule(ctx, "x", "r2", "all", red.Text)
			if err != nil {
				t.Fatalf("a torn line failed the rewrite: %v", err)
			}
			if len(places) != 1 || places[0].Rows != 1 {
				t.Errorf("rewrote %+v, want the torn line only", places)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitN(string(b), "\n", 3)
			if len(lines) != 3 || lines[2] != string(whole) {
				t.Fatalf("runs.jsonl: want the torn part, the record appended to it, then the whole lines byte for byte:\n%s", b)
			}
			want := tornRedacted + " (its run_id unreadable)"
			if c.id != "" {
				want = tornRedacted + " (run_id " + c.id + ")"
			}
			if lines[0] != want {
				t.Errorf("the torn part: %s\nwant %s", lines[0], want)
			}
			var rec struct {
				ID        string `json:"run_id"`
				Endpoints []struct {
					Notes []string `json:"notes"`
				} `json:"endpoints"`
			}
			if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec.ID != "20261201T110000Z-d4e5f6" || len(rec.Endpoints) != 1 || len(rec.Endpoints[0].Notes) != 1 {
				t.Errorf("the record appended to the torn part: %s (%v); want it whole, its own line", lines[1], err)
			}
			for _, bad := range []string{"Verdisecret", "7771234", "333 777"} {
				if strings.Contains(lines[0]+lines[1], bad) {
					t.Errorf("%q left in clear: %s", bad, lines[0]+"\n"+lines[1])
				}
			}
			if places, err := s.RewriteLedgerUnderRule(ctx, "x", "r3", "all", red.Text); err != nil || len(places) != 1 || places[0].Rows != 0 {
				t.Errorf("a second rewrite: %+v, %v; want nothing changed", places, err)
			}
		})
	}
}

// TestReplacesNames: the rules under which quarantined records are not
// rewritten in place (review 25, R25-2).
func TestReplacesNames(t *testing.T) {
	for rule, want := range map[string]bool{"none": false, "numbers": false, "names": true, "numbers,names": true, "all": true} {
		if got := replacesNames(rule); got != want {
			t.Errorf("replacesNames(%q) = %v, want %v", rule, got, want)
		}
	}
}
