package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/simtest"
)

// simNumber picks the simulator's external number written most often in
// calls 1..n, and returns its canonical digits.
func simNumber(t *testing.T, sim *pbxsim.Sim, n int64) string {
	t.Helper()
	count := map[string]int{}
	for id := int64(1); id <= n; id++ {
		c := sim.Call(id)
		for _, v := range []string{c.Src, c.Dst} {
			if d, ok := pseudonym.Canonical(v); ok && len(d) >= 7 {
				count[d]++
			}
		}
	}
	best := ""
	for d, k := range count {
		if k > count[best] || k == count[best] && d < best {
			best = d
		}
	}
	if best == "" {
		t.Fatal("the simulator wrote no external number")
	}
	return best
}

// tableRows is every row of every table of the schema as text, sorted.
func tableRows(t *testing.T, pool *pgxpool.Pool) map[string][]string {
	t.Helper()
	ctx := context.Background()
	q := func(sql string) pgx.Rows {
		rows, err := pool.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	tables, err := pgx.CollectRows(q(`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`), pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, tb := range tables {
		rows, err := pgx.CollectRows(q("SELECT t::text FROM "+pgx.Identifier{tb}.Sanitize()+" t"), pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(rows)
		out[tb] = rows
	}
	return out
}

// mentions reports whether s holds the number of canonical digits d in
// any form.
func mentions(s, d string) bool {
	_, n := pseudonym.Replace(s, func(v string) bool { return v == d }, "")
	return n > 0 || strings.Contains(s, d[2:])
}

// TestForgetPostgresCLI: forget --dry-run changes no row; forget erases
// every trace of the number and changes no other row; its output and
// logs never show the number; the ledger records it; a second forget
// finds nothing.
func TestForgetPostgresCLI(t *testing.T) {
	t.Parallel()
	const calls = 300
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
	f.Authorize(t)
	schema, pool := pgtest.Schema(t)
	kv := fixtureEnv(f, t.TempDir(), "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema)
	if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
		t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	d := simNumber(t, f.Sim, calls)
	asked := "+" + d[:2] + " " + d[2:5] + " " + d[5:]

	before := tableRows(t, pool)
	r := runCLI(t, kv, "forget", "--number", asked, "--dry-run")
	if r.code != exitOK || !strings.Contains(r.stdout, "found: call_history") || !strings.Contains(r.stdout, "Dry run: nothing was changed") {
		t.Fatalf("forget --dry-run: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	if mentions(r.stdout+r.stderr, d) {
		t.Fatalf("forget --dry-run shows the number:\n%s%s", r.stdout, r.stderr)
	}
	if after := tableRows(t, pool); !sameTableRows(before, after) {
		t.Fatal("forget --dry-run changed the database")
	}

	r = runCLI(t, kv, "forget", "--number", asked)
	if r.code != exitOK || !strings.Contains(r.stdout, "nowhere in the sink") || !strings.Contains(r.stdout, "The PBX keeps its own copy") {
		t.Fatalf("forget: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	if mentions(r.stdout+r.stderr, d) {
		t.Fatalf("forget shows the number:\n%s%s", r.stdout, r.stderr)
	}
	after := tableRows(t, pool)
	for tb, rows := range before {
		got := after[tb]
		switch tb {
		case "export_runs", "export_run_endpoints":
			continue // the forget's own ledger row, checked below
		case "export_state":
			got = slices.DeleteFunc(slices.Clone(got), func(s string) bool { return strings.HasPrefix(s, `("","suppressed numbers",`) })
		}
		if len(got) != len(rows) {
			t.Errorf("%s: %d rows after forget, %d before", tb, len(got), len(rows))
		}
		for _, row := range rows {
			if !mentions(row, d) && !slices.Contains(got, row) {
				t.Errorf("%s: a row without the number changed: %s", tb, row)
			}
		}
	}
	for tb, rows := range after {
		for _, row := range rows {
			if mentions(row, d) {
				t.Errorf("%s still holds the number: %s", tb, row)
			}
		}
	}
	var mode, status string
	var rows int64
	var notes []string
	if err := pool.QueryRow(context.Background(), `SELECT r.mode, r.status, e.rows, e.notes FROM export_runs r JOIN export_run_endpoints e USING (run_id)
WHERE r.mode = 'forget'`).Scan(&mode, &status, &rows, &notes); err != nil {
		t.Fatalf("no forget in the run ledger: %v", err)
	}
	if status != "ok" || rows == 0 || !slices.ContainsFunc(notes, func(n string) bool { return strings.HasPrefix(n, "call_history: ") }) {
		t.Errorf("ledger: %s %s rows %d notes %q", mode, status, rows, notes)
	}

	// Erasure sticks: a forced backfill of the whole history and the next
	// run write the PBX's records erased, equal to what forget left.
	erased := tableRows(t, pool)
	for _, args := range [][]string{{"backfill", "--from", "2026-01-01", "--to", "2027-01-01", "--force", "--window", "2160h"}, {"run", "--once"}} {
		if r := runCLI(t, kv, args...); r.code != exitOK {
			t.Fatalf("%s: exit %d: %v\n%s", args[0], r.code, r.err, r.stderr)
		}
	}
	again := tableRows(t, pool)
	for _, tb := range []string{"call_history", "group_calls_stored", "export_quarantine"} {
		if !slices.Equal(again[tb], erased[tb]) {
			t.Errorf("%s changed on the backfill and run after forget", tb)
		}
	}
	for tb, rows := range again {
		for _, row := range rows {
			if mentions(row, d) {
				t.Errorf("the number came back in %s: %s", tb, row)
			}
		}
	}

	r = runCLI(t, kv, "forget", "--number", "0039"+d[2:])
	if r.code != exitOK || !strings.Contains(r.stdout, "found: no row mentions the number") || !strings.Contains(r.stdout, "Already in the suppression list") {
		t.Fatalf("forget again: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
}

// TestForgetBadInput: a --number that is not an external phone number
// exits 2 naming the flag, without repeating what may be a mistyped
// number; no --number at all too.
func TestForgetBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"forget"}, "--number is required"},
		{[]string{"forget", "--number", "+39 0777 55512x9"}, `--number (16 characters; character 15 is 'x')`},
		{[]string{"forget", "--number", "20155"}, "forget takes an external number of at least 7 digits"},
		{[]string{"forget", "--number", "+390123456789", "extra"}, "forget takes no argument"},
		{[]string{"forget", "--numbr", "+390123456789"}, "flag provided but not defined"},
	} {
		r := runCLI(t, []string{"EXPORT_CSV_DIR=" + t.TempDir(), "WILDIX_PBX_URL=https://pbx.example.com"}, tc.args...)
		msg := r.stderr
		if r.err != nil {
			msg += r.err.Error()
		}
		if r.code != exitConfig || !strings.Contains(msg, tc.want) {
			t.Errorf("%q: exit %d, %q; want exit 2 and %q", tc.args, r.code, msg, tc.want)
		}
		if strings.Contains(msg, "55512") || strings.Contains(msg, "20155") {
			t.Errorf("%q: the message repeats the number: %s", tc.args, msg)
		}
	}
}

func sameTableRows(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
