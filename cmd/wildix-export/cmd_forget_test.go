package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/simtest"
	"github.com/wildix-export/wildix-export/sinks"
	"github.com/wildix-export/wildix-export/sinks/recstore"
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
	_, n := pseudonym.Replace(s, func(v string) bool { return strings.TrimPrefix(v, "+") == d }, "")
	return n > 0 || strings.Contains(s, d[2:])
}

// csvFolder is every data row of every endpoint under dir (sorted per
// endpoint: a redone window may move a row to another file), and every
// line of every other file under its path.
func csvFolder(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !strings.HasSuffix(path, ".csv") || strings.HasPrefix(de.Name(), ".") {
			out[rel] = strings.Split(string(b), "\n")
			return nil
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		ep := filepath.Dir(rel)
		for _, r := range recs[1:] {
			out[ep] = append(out[ep], strings.Join(r, "\x1f"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

// TestForgetCLI, on both sinks, numbers in clear and pseudonymised:
// forget --dry-run changes nothing; forget erases every trace of the
// number and changes no other row; its output and logs never show the
// number; the ledger records it; a forced backfill of the whole history
// and the next run bring nothing back and change no row; a second forget
// finds nothing.
func TestForgetCLI(t *testing.T) {
	t.Parallel()
	const key = "EXPORT_PSEUDONYM_KEY=0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name   string
		pg     bool
		pseudo bool
	}{{"postgres", true, false}, {"csv", false, false}, {"postgres pseudonymised", true, true}, {"csv pseudonymised", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const calls = 300
			f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute, CallerIDFields: true})
			f.Authorize(t)
			dir := t.TempDir()
			kv := fixtureEnv(f, dir)
			var pool *pgxpool.Pool
			snap := func() map[string][]string { return csvFolder(t, dir) }
			ledger := []string{filepath.Join(".state", strings.ReplaceAll(f.URL.Host, ":", "%3A"), "runs.jsonl")}
			// The suppression list holds the number's keyed hash (its
			// pseudonym under the pseudonym key) on purpose; a data
			// file's manifest changes with its file.
			suppressed := func(k string, row string) bool {
				return strings.HasPrefix(k, filepath.Join(".state", ".suppressed")) || strings.HasSuffix(k, ".manifest.json")
			}
			data := "call_history"
			if tc.pg {
				var schema string
				schema, pool = pgtest.Schema(t)
				kv = append(kv, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema)
				snap = func() map[string][]string { return tableRows(t, pool) }
				ledger = []string{"export_runs", "export_run_endpoints"}
				suppressed = func(k, row string) bool {
					return k == "export_state" && strings.HasPrefix(row, `("","suppressed numbers",`)
				}
			}
			if tc.pseudo {
				rule := "numbers"
				if tc.pg {
					rule = "numbers,names"
				}
				kv = append(kv, "EXPORT_PSEUDONYMIZE="+rule, key)
			}
			if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
				t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			d := simNumber(t, f.Sim, calls)
			k, _ := pseudonym.New([]byte(strings.TrimPrefix(key, "EXPORT_PSEUDONYM_KEY=")))
			mentioned := func(s string) bool { return mentions(s, d) || strings.Contains(s, k.Number(d)) }
			if tc.pg && tc.pseudo {
				// Under numbers,names an external caller's clid is
				// "n:… <p:…>": no word of its name is left in clear.
				ids := queryStrings(t, pool, `SELECT raw->>'clid' FROM call_history WHERE raw->>'clid' LIKE '%<p:%>'`)
				pseudonyms := regexp.MustCompile(`[np]:[a-z0-9]+`)
				for _, id := range ids {
					if strings.ContainsFunc(pseudonyms.ReplaceAllString(id, ""), unicode.IsLetter) {
						t.Errorf("clid %q: an external caller's name in clear under numbers,names", id)
					}
				}
				if len(ids) == 0 {
					t.Error("no clid of an external caller: the check proves nothing")
				}
			}
			before := snap()
			if held := slices.ContainsFunc(before[data], mentioned); !held {
				t.Fatalf("%s holds no trace of the number before forget: the test proves nothing", data)
			}

			asked := "+" + d[:2] + " " + d[2:5] + " " + d[5:]
			r := runCLI(t, kv, "forget", "--number", asked, "--dry-run")
			if r.code != exitOK || !strings.Contains(r.stdout, "found: call_history") || !strings.Contains(r.stdout, "Dry run: nothing was changed") {
				t.Fatalf("forget --dry-run: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
			}
			if mentioned(r.stdout + r.stderr) {
				t.Fatalf("forget --dry-run shows the number:\n%s%s", r.stdout, r.stderr)
			}
			if !sameTableRows(before, snap()) {
				t.Fatal("forget --dry-run changed the sink")
			}

			r = runCLI(t, kv, "forget", "--number", asked)
			if r.code != exitOK || !strings.Contains(r.stdout, "nowhere in the sink") || !strings.Contains(r.stdout, "The PBX keeps its own copy") {
				t.Fatalf("forget: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
			}
			if mentioned(r.stdout + r.stderr) {
				t.Fatalf("forget shows the number:\n%s%s", r.stdout, r.stderr)
			}
			// Its "erased:" lines name every table (CSV: the endpoint, or
			// the state folder holding the file) that held the number
			// and no longer does: the reporting tables too (attack 30 N7).
			var erasedPlaces []string
			for _, l := range strings.Split(r.stdout, "\n") {
				if p, ok := strings.CutPrefix(l, "erased: "); ok {
					erasedPlaces = append(erasedPlaces, p[:strings.LastIndex(p, ",")])
				}
			}
			for tb, rows := range before {
				if slices.Contains(ledger, tb) || !slices.ContainsFunc(rows, mentioned) {
					continue
				}
				if !slices.ContainsFunc(erasedPlaces, func(p string) bool { return tb == p || strings.HasPrefix(tb, p+string(filepath.Separator)) }) {
					t.Errorf("%s held the number, and forget's erased lines do not name it:\n%s", tb, r.stdout)
				}
			}
			after := snap()
			for tb, rows := range before {
				if slices.Contains(ledger, tb) {
					continue // the forget's own ledger entry, checked below
				}
				if strings.HasSuffix(tb, ".manifest.json") {
					continue
				}
				// The list (and its lock) may be there before forget too:
				// a run's start keeps the keys of recordings' ids beside it.
				rows := slices.DeleteFunc(slices.Clone(rows), func(row string) bool { return suppressed(tb, row) })
				got := slices.DeleteFunc(slices.Clone(after[tb]), func(row string) bool { return suppressed(tb, row) })
				if len(got) != len(rows) {
					t.Errorf("%s: %d rows after forget, %d before", tb, len(got), len(rows))
				}
				for _, row := range rows {
					if !mentioned(row) && !slices.Contains(got, row) {
						t.Errorf("%s: a row without the number changed: %s", tb, row)
					}
				}
			}
			for tb, rows := range after {
				for _, row := range rows {
					if mentioned(row) && !suppressed(tb, row) {
						t.Errorf("%s still holds the number: %s", tb, row)
					}
					if strings.Contains(row, "<"+sinks.Erased+">") {
						t.Errorf("%s holds a caller id whose name stayed beside the erased number: %s", tb, row)
					}
				}
			}
			// The simulator's caller ids (clid: "name" <number>) naming
			// the number are erased whole, the name with it.
			clids := 0
			for id := int64(1); id <= calls; id++ {
				if c, _ := pseudonym.Canonical(f.Sim.Call(id).Src); c == d {
					clids++
				}
			}
			erasedClid := regexp.MustCompile(`clid"+: ?"+` + sinks.Erased + `"`)
			if n := len(slices.DeleteFunc(slices.Clone(after[data]), func(row string) bool { return !erasedClid.MatchString(row) })); clids == 0 || n < clids {
				t.Errorf("%d rows of %s with clid erased, want the %d calls from the number", n, data, clids)
			}
			if !tc.pg {
				exactlyOnce(t, readCSVCalls(t, dir, false), calls)
			}
			ledgerText := strings.Join(slices.Concat(after[ledger[0]], after[ledger[len(ledger)-1]]), "\n")
			if !strings.Contains(ledgerText, "forget") || !strings.Contains(ledgerText, "call_history: ") {
				t.Errorf("the run ledger has no forget with its counts:\n%s", ledgerText)
			}

			erased := after
			for _, args := range [][]string{{"backfill", "--from", "2025-01-01", "--to", "2027-01-01", "--force", "--window", "2160h"}, {"run", "--once"}} {
				if r := runCLI(t, kv, args...); r.code != exitOK {
					t.Fatalf("%s: exit %d: %v\n%s", args[0], r.code, r.err, r.stderr)
				}
			}
			again := snap()
			if !slices.Equal(again[data], erased[data]) {
				t.Errorf("%s changed on the backfill and run after forget", data)
			}
			for tb, rows := range again {
				for _, row := range rows {
					if mentioned(row) && !suppressed(tb, row) {
						t.Errorf("the number came back in %s: %s", tb, row)
					}
				}
			}

			r = runCLI(t, kv, "forget", "--number", "0039"+d[2:])
			if r.code != exitOK || !strings.Contains(r.stdout, "found: no row mentions the number") || !strings.Contains(r.stdout, "Already in the suppression list") {
				t.Fatalf("forget again: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
			}
		})
	}
}

// TestForgetDryRunUnmigrated: --dry-run on a schema this version has not
// migrated changes nothing, not even the schema, and says why it cannot
// search it.
func TestForgetDryRunUnmigrated(t *testing.T) {
	t.Parallel()
	schema, pool := pgtest.Schema(t)
	kv := []string{"WILDIX_PBX_URL=https://pbx.example.com", "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL=" + pgtest.URL(), "EXPORT_DB_SCHEMA=" + schema}
	r := runCLI(t, kv, "forget", "--number", "+390123456789", "--dry-run", "--allow-empty")
	if r.code != exitFailed || !strings.Contains(fmt.Sprint(r.err), "--dry-run changes nothing") {
		t.Fatalf("exit %d, %v; want 1 saying the dry run cannot search an unmigrated schema", r.code, r.err)
	}
	if rows := tableRows(t, pool); len(rows) != 0 {
		t.Fatalf("--dry-run created tables: %v", slices.Collect(maps.Keys(rows)))
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
		{[]string{"forget", "--number", strings.Repeat("5", 100_000)}, "at most 15 digits"},
		{[]string{"forget", "--number", "00000000000"}, "only zeros"},
		// attack5 F4: read as +36 48191602 (Hungary), it erased nothing of
		// the Italian caller and listed another country's number.
		{[]string{"forget", "--number", "3648191602"}, "--number (10 characters) has no + or 00 before its digits"},
		{[]string{"forget", "--number", "36 481 91602"}, "that form is also found where the rows write it with its country code but without + or 00"},
		// review 12, R12-1: --as-written leaves the number written
		// internationally, so it is never the advice for digits that hold
		// a country code.
		{[]string{"forget", "--number", "36 481 91602"}, "Only for digits the rows write with no country code at all (a national number as stored), add --as-written"},
		// review 10, R10-5: contradictory with --as-written, once accepted
		{[]string{"forget", "--number", "+39 347 1110109", "--as-written"}, "--as-written takes --number exactly as the rows write it, without + or 00, and --number (15 characters) begins with + or 00: drop --as-written"},
		{[]string{"forget", "--number", "0039 347 1110109", "--as-written"}, "begins with + or 00: drop --as-written"},
		{[]string{"forget", "--number", "3471110109", "--as-written", "--national-forms"}, "--as-written reads no country code into --number (10 characters): drop --national-forms"},
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
		if strings.Contains(msg, "55512") || strings.Contains(msg, "20155") || strings.Contains(msg, "481") || strings.Contains(msg, "1110109") {
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

// TestForgetRecordings, with the real binary, a folder store and the CSV
// sink: a number forgotten before any export never has a recording
// stored (its rows are written erased, status erased); a number forgotten
// after its recordings were copied has their files removed and rows
// erased; the next run copies neither again, every other recording stays.
func TestForgetRecordings(t *testing.T) {
	t.Parallel()
	store := dirStore(t)
	const calls = 400
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute, CallsStart: time.Now().UTC().Add(-calls * time.Minute).Add(-time.Hour),
		APIKeys: []string{recToken}, Recordings: pbxsim.RecordingOptions{Every: 10, BytesPerSecond: 400}})
	f.Authorize(t)
	csvDir := t.TempDir()
	env := simEnv(f, csvDir, append([]string{"WILDIX_RECORDINGS_TOKEN=" + recToken}, store.env...)...)
	pbxID := f.URL.Host

	// The external party of each recording, and its stored names.
	names := map[string][]string{}
	all := map[string]bool{}
	for _, r := range f.Sim.Recordings() {
		name, err := recstore.Name(storedPBX(pbxID), r.Start.UTC(), strconv.FormatInt(r.ID, 10))
		if err != nil {
			t.Fatal(err)
		}
		all[name] = true
		for _, v := range []string{r.Number, r.Extension} {
			if d, ok := pseudonym.Canonical(v); ok && len(d) >= 7 {
				names[d] = append(names[d], name)
			}
		}
	}
	var numbers []string
	for d := range names {
		numbers = append(numbers, d)
	}
	slices.Sort(numbers)
	if len(numbers) < 3 {
		t.Fatalf("%d external numbers in the simulator's recordings: the test proves little", len(numbers))
	}
	early, late := numbers[0], numbers[1]
	want := func(gone ...string) map[string]bool {
		w := maps.Clone(all)
		for _, d := range gone {
			for _, n := range names[d] {
				delete(w, n)
			}
		}
		return w
	}
	stored := func() map[string]bool {
		out := map[string]bool{}
		for n := range store.files(t) {
			out[n] = true
		}
		return out
	}

	if r := runBin(t, env, "", "forget", "--number", "+"+early, "--allow-empty"); r.code != 0 || !strings.Contains(r.stdout, "no row mentions the number") {
		t.Fatalf("forget before any export: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("run --once: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := stored(); !maps.Equal(got, want(early)) {
		t.Fatalf("store holds %d files, want %d: every recording but the %d of the number forgotten first", len(got), len(want(early)), len(names[early]))
	}
	if !stored()[names[late][0]] {
		t.Fatal("the second number's recording was not copied: the test proves nothing")
	}
	r := runBin(t, env, "", "forget", "--number", "00"+late)
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("removed: %d recording file(s)", len(names[late]))) {
		t.Fatalf("forget: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := stored(); !maps.Equal(got, want(early, late)) {
		t.Fatalf("after forget the store holds %d files, want %d", len(got), len(want(early, late)))
	}
	if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("run --once after forget: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := stored(); !maps.Equal(got, want(early, late)) {
		t.Fatalf("the run after forget left %d files, want %d", len(got), len(want(early, late)))
	}
	folder := csvFolder(t, csvDir)
	erased := 0
	for _, row := range folder["recordings"] {
		if strings.Contains(row, "\x1ferased\x1f") {
			erased++
		}
	}
	if erased != len(names[early])+len(names[late]) {
		t.Errorf("%d recording rows marked erased, want %d", erased, len(names[early])+len(names[late]))
	}
	for k, rows := range folder {
		for _, row := range rows {
			if mentions(row, early) || mentions(row, late) {
				t.Errorf("%s holds a forgotten number: %s", k, row)
			}
		}
	}
}

// TestForgetListKey: a list made with EXPORT_PSEUDONYM_KEY cannot be
// applied without it: an export then exits 2 naming the variable rather
// than bring the number back, and so does forget with another key.
func TestForgetListKey(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 20, CallGap: time.Minute})
	f.Authorize(t)
	kv := fixtureEnv(f, t.TempDir())
	withKey := append(slices.Clone(kv), "EXPORT_PSEUDONYM_KEY=0123456789abcdef0123456789abcdef")
	if r := runCLI(t, withKey, "forget", "--number", "+390123456789", "--allow-empty"); r.code != exitOK {
		t.Fatalf("forget: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{kv, []string{"run", "--once"}},
		{append(slices.Clone(kv), "EXPORT_PSEUDONYM_KEY=another key of at least 32 bytes!!"), []string{"forget", "--number", "+390123456788"}},
	} {
		r := runCLI(t, tc.env, tc.args...)
		msg := r.stdout + r.stderr
		if r.err != nil {
			msg += r.err.Error()
		}
		if r.code != exitConfig || !strings.Contains(msg, "EXPORT_PSEUDONYM_KEY") {
			t.Errorf("%s: exit %d, want 2 naming EXPORT_PSEUDONYM_KEY:\n%s", tc.args[0], r.code, msg)
		}
	}
	if r := runCLI(t, withKey, "run", "--once"); r.code != exitOK {
		t.Fatalf("run --once with the key: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
}

// TestForgetStoppedMidwayRerun: a forget stopped after some tables
// (PostgreSQL refusing it a lock on a later one) exits 1, has changed
// each table whole or not at all, and says so in the ledger; run again,
// it completes: the number is nowhere, every other row as before.
func TestForgetStoppedMidwayRerun(t *testing.T) {
	t.Parallel()
	const calls = 200
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
	f.Authorize(t)
	schema, pool := pgtest.Schema(t)
	kv := fixtureEnv(f, t.TempDir(), "EXPORT_SINK=postgres", "EXPORT_DB_SCHEMA="+schema)
	url := "EXPORT_DATABASE_URL=" + pgtest.URL()
	if r := runCLI(t, append(slices.Clone(kv), url), "run", "--once"); r.code != exitOK {
		t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	d := simNumber(t, f.Sim, calls)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO export_quarantine (pbx, endpoint, key, run_id, field, error, record)
VALUES ('x', 'call_history', '9', 'r', 'cost', 'bad', '{"src":"+`+d+`"}')`); err != nil {
		t.Fatal(err)
	}
	before := tableRows(t, pool)

	// export_quarantine is erased after the endpoints' tables: held, it
	// stops forget there (lock_timeout), after call_history.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE export_quarantine IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	sep := "?"
	if strings.Contains(pgtest.URL(), "?") {
		sep = "&"
	}
	r := runCLI(t, append(slices.Clone(kv), url+sep+"options=-c%20lock_timeout%3D500"), "forget", "--number", "+"+d)
	tx.Rollback(ctx)
	if r.code != exitFailed || !strings.Contains(r.stdout, "erased: call_history") {
		t.Fatalf("forget with export_quarantine held: exit %d (want 1): %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	if msg := r.stdout + r.stderr + fmt.Sprint(r.err); mentions(msg, d) {
		t.Errorf("the failed forget shows the number:\n%s", msg)
	}
	mid := tableRows(t, pool)
	if slices.ContainsFunc(mid["call_history"], func(s string) bool { return mentions(s, d) }) {
		t.Error("call_history still holds the number after its transaction")
	}
	if !slices.Equal(mid["export_quarantine"], before["export_quarantine"]) {
		t.Error("export_quarantine changed though forget could not lock it")
	}
	var status string
	if err := pool.QueryRow(ctx, "SELECT status FROM export_runs WHERE mode = 'forget'").Scan(&status); err != nil || status != "failed" {
		t.Errorf("ledger: forget %q, %v; want failed", status, err)
	}

	r = runCLI(t, append(slices.Clone(kv), url), "forget", "--number", "+"+d)
	if r.code != exitOK || !strings.Contains(r.stdout, "erased: export_quarantine, 1 row(s)") {
		t.Fatalf("forget again: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	after := tableRows(t, pool)
	for tb, rows := range before {
		if tb == "export_runs" || tb == "export_run_endpoints" || tb == "export_state" {
			continue
		}
		if len(after[tb]) != len(rows) {
			t.Errorf("%s: %d rows, %d before", tb, len(after[tb]), len(rows))
		}
		for _, row := range rows {
			if !mentions(row, d) && !slices.Contains(after[tb], row) {
				t.Errorf("%s: a row without the number changed: %s", tb, row)
			}
		}
	}
	for tb, rows := range after {
		for _, row := range rows {
			if mentions(row, d) && !strings.HasPrefix(row, `("","suppressed numbers",`) {
				t.Errorf("%s still holds the number: %s", tb, row)
			}
		}
	}
}

// TestForgetDryRunNumericColumn: with the number in a numeric column
// (call_history.cost), which cannot hold erased, forget --dry-run says so
// ahead in the words the erasure fails with, and exits 1 as it does,
// changing nothing (forget handoff 4: the dry run said nothing and
// exited 0).
func TestForgetDryRunNumericColumn(t *testing.T) {
	t.Parallel()
	const calls = 40
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
	f.Authorize(t)
	schema, pool := pgtest.Schema(t)
	kv := append(fixtureEnv(f, t.TempDir()), "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema,
		"EXPORT_ENDPOINTS=call_history")
	if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
		t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	d := simNumber(t, f.Sim, calls)
	if _, err := pool.Exec(context.Background(), "UPDATE call_history SET cost = $1::numeric WHERE id = 3", d); err != nil {
		t.Fatal(err)
	}
	const why = `column call_history.cost is numeric and cannot hold "erased": set the value to NULL there yourself`
	before := tableRows(t, pool)
	dry := runCLI(t, kv, "forget", "--number", "+"+d, "--dry-run")
	if dry.code != exitFailed || dry.err == nil || !strings.Contains(dry.err.Error(), why) || !strings.Contains(dry.stdout, "Dry run: nothing was changed") {
		t.Fatalf("forget --dry-run: exit %d, %v; want 1 saying %q\n%s", dry.code, dry.err, why, dry.stdout)
	}
	if !sameTableRows(before, tableRows(t, pool)) {
		t.Fatal("forget --dry-run changed the sink")
	}
	r := runCLI(t, kv, "forget", "--number", "+"+d)
	if r.code != dry.code || r.err == nil {
		t.Fatalf("forget: exit %d, %v; want %d, as the dry run said", r.code, r.err, dry.code)
	}
	if _, tail, _ := strings.Cut(r.err.Error(), "after erasure: "); tail == "" || !strings.HasSuffix(dry.err.Error(), tail) {
		t.Errorf("the dry run said %q, the erasure %q: want the same words", dry.err, r.err)
	}
	if mentions(dry.stdout+dry.stderr+dry.err.Error(), d) {
		t.Errorf("forget --dry-run shows the number:\n%s%s", dry.stdout, dry.err)
	}
}

// TestForgetRefusesColleagueExtension: on a PBX whose extensions have 7
// digits, on both sinks, forget of a colleague's extension, given as it
// is or as the national form of the number given (+39 and the
// extension), is refused, exit 2, saying so and naming the PBX and
// --allow-extension, without the number, and changes nothing (the
// suppression list included); with --allow-extension a dry run goes on
// and finds the extension in the calls, which the erasure would wipe
// (review L6: forget took it as an external number).
func TestForgetRefusesColleagueExtension(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"csv", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			const calls = 60
			f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute, LongExtensions: true, Colleagues: 5})
			f.Authorize(t)
			dir := t.TempDir()
			kv := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues")
			snap := func() map[string][]string { return csvFolder(t, dir) }
			if kind == "postgres" {
				schema, pool := pgtest.Schema(t)
				kv = append(kv, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema)
				snap = func() map[string][]string { return tableRows(t, pool) }
			}
			if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
				t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			const ext = "2000202" // colleague 2's
			before := snap()
			r := runCLI(t, kv, "forget", "--number", ext)
			if r.code != exitConfig || !strings.Contains(fmt.Sprint(r.err), "has no + or 00") || !strings.Contains(fmt.Sprint(r.err), "--as-written") {
				t.Errorf("forget --number without + or 00 nor --as-written: exit %d, %v; want 2, naming --as-written\n%s", r.code, r.err, r.stdout)
			}
			// attack5 F4: a caller's national form, as a person writes it,
			// was read as another country's number, erased nothing of the
			// caller, listed that number for good, exit 0.
			national := pseudonym.NationalForms(simNumber(t, f.Sim, calls))[0]
			r = runCLI(t, kv, "forget", "--number", national)
			if r.code != exitConfig || !strings.Contains(fmt.Sprint(r.err), "has no + or 00") || !strings.Contains(fmt.Sprint(r.err), "Nothing was changed") {
				t.Errorf("forget --number of a national form: exit %d, %v; want 2, naming the form and the fix\n%s", r.code, r.err, r.stdout)
			}
			if mentions(fmt.Sprint(r.err)+r.stdout, national) {
				t.Errorf("forget --number of a national form shows the number: %v\n%s", r.err, r.stdout)
			}
			for _, number := range [][]string{{ext, "--as-written"}, {"+39 " + ext}} {
				r := runCLI(t, kv, append([]string{"forget", "--number"}, number...)...)
				msg := fmt.Sprint(r.err)
				if r.code != exitConfig || !strings.Contains(msg, "the extension of a colleague of PBX "+f.URL.Host) || !strings.Contains(msg, "--allow-extension") {
					t.Errorf("forget --number %q: exit %d, %v; want 2, naming the colleague's PBX and --allow-extension\n%s", number, r.code, r.err, r.stdout)
				}
				if strings.Contains(msg+r.stdout, ext) {
					t.Errorf("forget --number %q shows the number: %s\n%s", number, msg, r.stdout)
				}
			}
			if !sameTableRows(before, snap()) {
				t.Error("a refused forget changed the sink")
			}
			r = runCLI(t, kv, "forget", "--number", ext, "--as-written", "--allow-extension", "--dry-run")
			if r.code != exitOK || !strings.Contains(r.stdout, "--allow-extension: --number is the extension of a colleague") || !strings.Contains(r.stdout, "found: ") {
				t.Errorf("forget --allow-extension --dry-run: exit %d, %v; want 0, saying it is a colleague's extension, and finding it\n%s", r.code, r.err, r.stdout)
			}
			if !strings.Contains(r.stdout, "call_history") {
				t.Errorf("the dry run does not find the extension in the calls: the test proves nothing\n%s", r.stdout)
			}
		})
	}
}
