package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
)

// idKeyStep is one run of TestRecordingsKeptAcrossKeyChanges: its
// privacy settings, whether it is forced, and the exit it must have.
type idKeyStep struct {
	env   []string
	force bool
	code  int
	says  string // in the error when code is not exitOK
	// forget makes the sink forget the key of recordings' ids before the
	// run: a sink written before it was kept.
	forget bool
	// norec is a run without a recordings store.
	norec bool
	// lose deletes, before the run, what a lost state would: "list" the
	// suppression list, "both" it and the record of the keys of
	// recordings' ids, "shared" everything of no PBX (loseState),
	// "state" the whole state, "dots" every dot file of the state (the
	// rule, the record, the PBX's mark).
	lose string
}

// TestRecordingsKeptAcrossKeyChanges: recordings stored under a keyed id
// ("k-…": the simulator's records without an id) keep their names when
// the pseudonym key is changed (run --force, with the earlier key given
// as EXPORT_PSEUDONYM_PREVIOUS_KEY) or the rule goes from none to on and
// back: the next runs, whose look-back lists the same recordings again,
// copy none again and add no row, the store unchanged (issue 30, R1:
// every keyed id changed with the key, each recording copied twice). A
// forced key change without the earlier key exits 2 naming the setting,
// and stores nothing. Both sinks.
func TestRecordingsKeptAcrossKeyChanges(t *testing.T) {
	t.Parallel()
	on := func(key string, extra ...string) []string {
		return append([]string{"EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY=" + key}, extra...)
	}
	none := func(extra ...string) []string { return append([]string{"EXPORT_PSEUDONYMIZE=none"}, extra...) }
	for _, sc := range []struct {
		name  string
		steps []idKeyStep
	}{
		{"key change", []idKeyStep{
			{env: on(testKey1)},
			{env: on(testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+testKey1), force: true},
			{env: on(testKey2)},
		}},
		// A run without a recordings store carries the key over too
		// (review 5, R5-1): the next run with one needs no earlier key.
		{"key change by a run without recordings", []idKeyStep{
			{env: on(testKey1)},
			{env: on(testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+testKey1), force: true, norec: true},
			{env: on(testKey2)},
		}},
		// Refused too by a run without a recordings store on a sink
		// written before the key was kept: warned of only, it stored
		// K2 as the rule, and the next run with recordings took K2 for
		// the key the recordings were named with (review 7, R7-1).
		{"key change by a run without recordings, without the earlier key", []idKeyStep{
			{env: on(testKey1), norec: true},
			{env: on(testKey1), forget: true},
			{env: on(testKey2), force: true, norec: true, forget: true, code: exitConfig, says: "EXPORT_PSEUDONYM_PREVIOUS_KEY"},
			{env: on(testKey1)},
		}},
		{"key change without the earlier key", []idKeyStep{
			{env: on(testKey1)},
			{env: on(testKey2), force: true, code: exitConfig, says: "EXPORT_PSEUDONYM_PREVIOUS_KEY"},
			{env: on(testKey1)},
		}},
		{"none, on, key change, none", []idKeyStep{
			{env: none()},
			{env: on(testKey1), force: true},
			{env: on(testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+testKey1), force: true},
			{env: none("EXPORT_PSEUDONYM_KEY=" + testKey2), force: true},
			// Sealed until the change to none is committed (review 7,
			// R7-4): the key is needed once more, then kept in clear.
			{env: none(), code: exitConfig, says: "EXPORT_PSEUDONYM_KEY"},
			{env: none("EXPORT_PSEUDONYM_KEY=" + testKey2)},
			{env: none()},
		}},
		// The PBX's first run, without recordings, under K1, then the
		// key forgotten: the next run keeps K1 as its key (a PBX with
		// rows under K1 and no key kept named its recordings with K1
		// itself), so the recordings are named as the release before
		// named them; then the key is forgotten again.
		{"key change on a sink written before the key was kept", []idKeyStep{
			{env: on(testKey1), norec: true},
			{env: on(testKey1), forget: true},
			{env: on(testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+testKey1), force: true, forget: true},
			{env: on(testKey2)},
		}},
		// A lost suppression list no longer loses the keys (review 6,
		// R6-4): they are kept in a record of their own.
		{"the suppression list lost", []idKeyStep{
			{env: none()},
			{env: none(), lose: "list"},
			{env: none()},
		}},
		{"the suppression list lost, pseudonymised", []idKeyStep{
			{env: on(testKey1)},
			{env: on(testKey1), lose: "list"},
		}},
		// Both lost, or the whole state: refused, exit 2, rather than
		// a new key naming every k- recording anew (R6-4).
		{"the keys lost with the list", []idKeyStep{
			{env: none()},
			{env: none(), lose: "both", code: exitConfig, says: "restore"},
			{env: none(), code: exitConfig, says: "restore"},
		}},
		{"the keys lost with the list, pseudonymised", []idKeyStep{
			{env: on(testKey1)},
			{env: on(testKey1), lose: "both", code: exitConfig, says: "restore"},
		}},
		// Everything of no PBX lost (PostgreSQL's rows pbx '', a CSV
		// folder's files in .state), the PBX's rule kept: a
		// pseudonymised PBX took its pseudonym key for a key of before
		// keys were kept, as the marks of its key were rows pbx '' too,
		// and copied every k- recording again, exit 0 (review 9, R9-2).
		{"everything of no PBX lost, pseudonymised", []idKeyStep{
			{env: on(testKey1)},
			{env: on(testKey1), lose: "shared", code: exitConfig, says: "restore"},
			{env: on(testKey1), code: exitConfig, says: "restore"},
		}},
		{"everything of no PBX lost", []idKeyStep{
			{env: none()},
			{env: none(), lose: "shared", code: exitConfig, says: "restore"},
		}},
		// A restore without dot files: on CSV the PBX's rule, the
		// record of the keys and the PBX's mark of its key (PostgreSQL:
		// those rows). The rule is taken from the run ledger (attack 6,
		// F4), and the key is not the pseudonym key taken for one of
		// before keys were kept: refused (review 16, R16-5: the
		// look-back's recordings were copied again, exit 0).
		{"the rule lost with the keys, pseudonymised", []idKeyStep{
			{env: on(testKey1)},
			{env: on(testKey1), lose: "dots", code: exitConfig, says: "restore"},
		}},
		{"the state lost", []idKeyStep{
			{env: none()},
			{env: none(), lose: "state", code: exitConfig, says: "restore"},
		}},
		{"on, none", []idKeyStep{
			{env: on(testKey1)},
			{env: none(), force: true, code: exitConfig, says: "EXPORT_PSEUDONYM_KEY"},
			{env: none("EXPORT_PSEUDONYM_KEY=" + testKey1), force: true},
			{env: none("EXPORT_PSEUDONYM_KEY=" + testKey1)},
		}},
	} {
		for _, sink := range []string{"csv", "postgres"} {
			t.Run(sc.name+"/"+sink, func(t *testing.T) {
				t.Parallel()
				f := recPBX(t, 100, time.Hour, pbxsim.RecordingOptions{Fields: "bare"})
				store, dir := t.TempDir(), t.TempDir()
				base, pool := onSink(t, sink, fixtureEnv(f, dir, "EXPORT_ENDPOINTS=recordings", "EXPORT_RECORDINGS_STORE=dir",
					"EXPORT_RECORDINGS_DIR="+store, "WILDIX_RECORDINGS_TOKEN="+recToken))
				var files, rows map[string]string
				for i, st := range sc.steps {
					args := []string{"run", "--once"}
					if st.force {
						args = append(args, "--force")
					}
					if st.forget {
						forgetIDKey(t, dir, pool)
					}
					if st.lose != "" {
						loseState(t, dir, pool, st.lose)
					}
					fetched := f.Sim.Stats.Recordings.FileRequests.Load()
					env := append(slices.Clone(base), st.env...)
					if st.norec {
						env = append(slices.DeleteFunc(env, func(s string) bool { return strings.HasPrefix(s, "EXPORT_RECORDINGS_") }), "EXPORT_ENDPOINTS=call_history")
					}
					r := runCLI(t, env, args...)
					if r.code != st.code || st.code != exitOK && (r.err == nil || !strings.Contains(r.err.Error(), st.says)) {
						t.Fatalf("step %d (%v %v): exit %d, want %d naming %q\n%s%s%v", i, st.env, args, r.code, st.code, st.says, r.stdout, r.stderr, r.err)
					}
					for _, k := range []string{testKey1, testKey2} {
						if strings.Contains(r.stdout+r.stderr+fmt.Sprint(r.err), k) {
							t.Fatalf("step %d shows a pseudonym key", i)
						}
					}
					if st.norec {
						continue
					}
					if files == nil {
						files, rows = dirFiles(t, store), recordingRows(t, dir, pool, f.URL.Host)
						if len(files) < 5 || len(rows) != len(files) || !strings.HasPrefix(filepath.Base(slices.Sorted(maps.Keys(files))[0]), "k-") {
							t.Fatalf("first run stored %d files, %d rows: want keyed (k-) recordings, one row each", len(files), len(rows))
						}
						continue
					}
					if n := f.Sim.Stats.Recordings.FileRequests.Load() - fetched; n != 0 {
						t.Errorf("step %d fetched %d recording file(s) again", i, n)
					}
					if got := dirFiles(t, store); !maps.Equal(got, files) {
						t.Errorf("step %d: the store holds %d files, %d before: recordings copied again under new names", i, len(got), len(files))
					}
					if got := recordingRows(t, dir, pool, f.URL.Host); !maps.Equal(got, rows) {
						t.Errorf("step %d: %d recording rows, %d before", i, len(got), len(rows))
					}
				}
			})
		}
	}
}

// TestRecordingsKeyNotInClear: once a sink whose recordings' ids are
// keyed with its own random key (a run under EXPORT_PSEUDONYMIZE=none)
// is pseudonymised, nothing a reader of the sink can see holds that key
// (its bytes, hex or base64): with it, anyone could confirm a guessed
// number against a stored name (attack 1, A1). The recordings keep
// their names all the same. Both sinks.
func TestRecordingsKeyNotInClear(t *testing.T) {
	t.Parallel()
	for _, sink := range []string{"csv", "postgres"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			f := recPBX(t, 60, time.Hour, pbxsim.RecordingOptions{Fields: "bare"})
			store, dir := t.TempDir(), t.TempDir()
			base, pool := onSink(t, sink, fixtureEnv(f, dir, "EXPORT_ENDPOINTS=recordings", "EXPORT_RECORDINGS_STORE=dir",
				"EXPORT_RECORDINGS_DIR="+store, "WILDIX_RECORDINGS_TOKEN="+recToken))
			if r := runCLI(t, append(slices.Clone(base), "EXPORT_PSEUDONYMIZE=none"), "run", "--once"); r.code != exitOK {
				t.Fatalf("none: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			var key []byte
			if pool != nil {
				b64 := queryStrings(t, pool, "SELECT coalesce(state->'keys'->$1->>'key', '') FROM export_state WHERE pbx = '' AND key = 'recordings id keys'", f.URL.Host)
				if len(b64) == 1 {
					key, _ = base64.StdEncoding.DecodeString(b64[0])
				}
			} else {
				var rec struct {
					Keys map[string]struct{ Key []byte } `json:"keys"`
				}
				b, _ := os.ReadFile(filepath.Join(dir, ".state", ".idkeys.json"))
				if json.Unmarshal(b, &rec) == nil {
					key = rec.Keys[f.URL.Host].Key
				}
			}
			if len(key) == 0 {
				t.Fatal("the sink keeps no key of its own for the recordings' ids")
			}
			if len(sinkText(t, dir, pool)) == 0 || !bytes.Contains(sinkText(t, dir, pool), []byte(base64.StdEncoding.EncodeToString(key))) {
				t.Fatal("the key is not found in the sink in clear before pseudonymisation: the search below proves nothing")
			}
			files := dirFiles(t, store)
			env := append(slices.Clone(base), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
			if r := runCLI(t, env, "run", "--once", "--force"); r.code != exitOK {
				t.Fatalf("numbers: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			text := sinkText(t, dir, pool)
			for _, form := range []string{string(key), hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)), base64.StdEncoding.EncodeToString(key),
				base64.RawStdEncoding.EncodeToString(key), base64.URLEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key)} {
				if bytes.Contains(text, []byte(form)) {
					t.Errorf("the sink holds the recordings' id key in clear (%d bytes as %d characters) under pseudonymisation", len(key), len(form))
				}
			}
			if got := dirFiles(t, store); !maps.Equal(got, files) {
				t.Errorf("the store holds %d files, %d before: recordings copied again", len(got), len(files))
			}
		})
	}
}

// sinkText is everything a reader of the sink sees: every file under the
// CSV folder, or every row of every table of the PostgreSQL schema as
// text.
func sinkText(t *testing.T, dir string, pool *pgxpool.Pool) []byte {
	t.Helper()
	var out bytes.Buffer
	if pool == nil {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			out.Write(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	ctx := context.Background()
	tables := queryStrings(t, pool, "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables WHERE table_schema = current_schema()")
	for _, tb := range tables {
		rows, err := pool.Query(ctx, "SELECT t::text FROM "+tb+" t")
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(strings.Join(texts, "\n"))
	}
	return out.Bytes()
}

// forgetIDKey removes from the sink what it keeps of the key of
// recordings' ids, as a sink written before it was kept had none: the
// record of the keys, the suppression list (which held them before, and
// marks them kept apart now), and each PBX's mark of its key.
func forgetIDKey(t *testing.T, dir string, pool *pgxpool.Pool) {
	t.Helper()
	loseState(t, dir, pool, "both")
	if pool != nil {
		if _, err := pool.Exec(context.Background(), "DELETE FROM export_state WHERE pbx = '' OR key = 'recordings id key'"); err != nil {
			t.Fatal(err)
		}
		return
	}
	// A folder of before keys were kept by PBX has no witness of the key
	// beside its recordings either (sinks/idkey_witness.go).
	marks, _ := filepath.Glob(filepath.Join(dir, ".state", "*", ".idkey.json"))
	witnesses, _ := filepath.Glob(filepath.Join(dir, "recordings", ".idkey-*.json"))
	for _, m := range append(marks, witnesses...) {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
}

// loseState deletes what a lost state would (idKeyStep.lose): the
// suppression list ("list"), it and the record of the keys of
// recordings' ids ("both"), every dot file of the state ("dots": the
// rule, the record, the PBX's mark; on PostgreSQL their rows), everything that belongs to no PBX
// ("shared": PostgreSQL's rows pbx ”, a CSV folder's files in .state
// itself), or the whole state ("state"), as an operator or a restore
// from an older backup may.
func loseState(t *testing.T, dir string, pool *pgxpool.Pool, what string) {
	t.Helper()
	if pool != nil {
		sql := map[string]string{
			"list":   "DELETE FROM export_state WHERE pbx = '' AND key = 'suppressed numbers'",
			"both":   "DELETE FROM export_state WHERE pbx = '' AND key IN ('suppressed numbers', 'recordings id keys')",
			"shared": "DELETE FROM export_state WHERE pbx = ''",
			"state":  "DELETE FROM export_state",
			"dots":   "DELETE FROM export_state WHERE pbx = '' OR key IN ('recordings id key', 'pseudonymisation rule')",
		}[what]
		if _, err := pool.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
		return
	}
	state := filepath.Join(dir, ".state")
	files := map[string][]string{"list": {".suppressed.json"}, "both": {".suppressed.json", ".idkeys.json"}}[what]
	if what == "dots" {
		dots, _ := filepath.Glob(filepath.Join(state, ".*"))
		inPBX, _ := filepath.Glob(filepath.Join(state, "*", ".*"))
		for _, f := range append(dots, inPBX...) {
			if fi, err := os.Stat(f); err == nil && !fi.IsDir() {
				files = append(files, strings.TrimPrefix(f, state+string(filepath.Separator)))
			}
		}
		if !slices.Contains(files, ".idkeys.json") || !slices.ContainsFunc(files, func(f string) bool { return strings.HasSuffix(f, ".privacy.json") }) {
			t.Fatalf("%s holds %v: no record of the keys or of the rule to lose", state, files)
		}
	}
	if what == "shared" {
		entries, err := os.ReadDir(state)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				files = append(files, e.Name())
			}
		}
		if !slices.Contains(files, ".idkeys.json") {
			t.Fatalf("%s holds %v: no record of the keys of recordings' ids to lose", state, files)
		}
	}
	for _, f := range files {
		if err := os.Remove(filepath.Join(state, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if what == "state" {
		if err := os.RemoveAll(state); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecordingsKeyTwoPBXesOneSchema: two PBXes exported into one schema
// or folder, A in clear and B pseudonymised, then A forced to another
// pseudonym key by a run without a recordings store: every night each
// runs without being refused for the other's rule or key, and neither
// copies a recording again nor adds a row, before and after the change
// (review 5, R5-1, R5-3: one key per schema was taken over by B's first
// run, refusing A; a forced change without a store carried nothing
// over). Both sinks.
func TestRecordingsKeyTwoPBXesOneSchema(t *testing.T) {
	t.Parallel()
	for _, sink := range []string{"csv", "postgres"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			type pbx struct {
				f           *simtest.Fixture
				base, rec   []string
				store       string
				files, rows map[string]string
			}
			var shared []string // the PostgreSQL schema, for both
			mk := func() *pbx {
				p := &pbx{f: recPBX(t, 60, time.Hour, pbxsim.RecordingOptions{Fields: "bare"}), store: t.TempDir()}
				p.base = append(fixtureEnv(p.f, dir), shared...)
				p.rec = []string{"EXPORT_ENDPOINTS=recordings", "EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR=" + p.store, "WILDIX_RECORDINGS_TOKEN=" + recToken}
				return p
			}
			a := mk()
			var pool *pgxpool.Pool
			if sink == "postgres" {
				var env []string
				env, pool = onSink(t, sink, nil)
				shared = env
				a.base = append(a.base, shared...)
			}
			b := mk()
			// rows are the PBX's recording rows (a CSV folder's files
			// hold both PBXes'): their objects begin with its folder.
			rows := func(p *pbx) map[string]string {
				out := map[string]string{}
				for k, v := range recordingRows(t, dir, pool, p.f.URL.Host) {
					if strings.HasPrefix(k, storedPBX(p.f.URL.Host)) {
						out[k] = v
					}
				}
				return out
			}
			on := func(key string) []string {
				return []string{"EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY=" + key}
			}
			steps := []struct {
				p     *pbx
				env   []string
				force bool
				rec   bool
			}{
				{a, []string{"EXPORT_PSEUDONYMIZE=none"}, false, true},
				{b, on(testKey1), false, true},
				{a, []string{"EXPORT_PSEUDONYMIZE=none"}, false, true},
				{b, on(testKey1), false, true},
				{a, on(testKey2), true, false}, // forced, no recordings store
				{a, on(testKey2), false, true},
				{b, on(testKey1), false, true},
				{a, on(testKey2), false, true},
			}
			for i, st := range steps {
				env := append(slices.Clone(st.p.base), st.env...)
				if st.rec {
					env = append(env, st.p.rec...)
				} else {
					env = append(env, "EXPORT_ENDPOINTS=call_history")
				}
				args := []string{"run", "--once"}
				if st.force {
					args = append(args, "--force")
				}
				fetched := st.p.f.Sim.Stats.Recordings.FileRequests.Load()
				if r := runCLI(t, env, args...); r.code != exitOK {
					t.Fatalf("step %d (PBX %s): exit %d\n%s%s%v", i, st.p.f.URL.Host, r.code, r.stdout, r.stderr, r.err)
				}
				if !st.rec {
					continue
				}
				if st.p.files == nil {
					st.p.files, st.p.rows = dirFiles(t, st.p.store), rows(st.p)
					if len(st.p.files) < 3 || len(st.p.rows) != len(st.p.files) {
						t.Fatalf("step %d stored %d files, %d rows: want keyed recordings, one row each", i, len(st.p.files), len(st.p.rows))
					}
					continue
				}
				if n := st.p.f.Sim.Stats.Recordings.FileRequests.Load() - fetched; n != 0 {
					t.Errorf("step %d fetched %d recording file(s) again", i, n)
				}
				if got := dirFiles(t, st.p.store); !maps.Equal(got, st.p.files) {
					t.Errorf("step %d: the store holds %d files, %d before: recordings copied again under new names", i, len(got), len(st.p.files))
				}
				if got := rows(st.p); !maps.Equal(got, st.p.rows) {
					t.Errorf("step %d: %d recording rows, %d before", i, len(got), len(st.p.rows))
				}
			}
		})
	}
}

// TestRecordingsKeyOfBeforeProven is attack 6's F3: a PBX in clear whose
// recordings are stored under keyed ids (k-), with a suppression list
// made without EXPORT_PSEUDONYM_KEY (its own key), loses the record of
// the keys and the PBX's mark of its key (.state/.idkeys.json and
// .state/<pbx>/.idkey.json deleted; PostgreSQL: those rows), the rule
// kept: the next run took the list's own key for a key of before keys
// were kept and copied every k- recording again, with a second row, exit
// 0. Now that key is taken only when it gives the stored rows' names:
// refused, exit 2, naming the record to restore, the store and the rows
// unchanged. Both sinks.
func TestRecordingsKeyOfBeforeProven(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ sink, rule string }{{"csv", "none"}, {"postgres", "none"}, {"csv", "numbers"}} {
		sink := tc.sink
		t.Run(sink+"/"+tc.rule, func(t *testing.T) {
			t.Parallel()
			f := recPBX(t, 100, time.Hour, pbxsim.RecordingOptions{Fields: "bare"})
			store, dir := t.TempDir(), t.TempDir()
			env, pool := onSink(t, sink, fixtureEnv(f, dir, "EXPORT_ENDPOINTS=recordings", "EXPORT_RECORDINGS_STORE=dir",
				"EXPORT_RECORDINGS_DIR="+store, "WILDIX_RECORDINGS_TOKEN="+recToken, "EXPORT_PSEUDONYMIZE="+tc.rule, "EXPORT_PSEUDONYM_KEY="+testKey1))
			if r := runCLI(t, env, "run", "--once"); r.code != exitOK {
				t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			files, rows := dirFiles(t, store), recordingRows(t, dir, pool, f.URL.Host)
			if len(files) < 5 || !strings.HasPrefix(filepath.Base(slices.Sorted(maps.Keys(files))[0]), "k-") {
				t.Fatalf("first run stored %d files: want keyed (k-) recordings", len(files))
			}
			if pool != nil {
				if _, err := pool.Exec(context.Background(), "DELETE FROM export_state WHERE (pbx = '' AND key = 'recordings id keys') OR key = 'recordings id key'"); err != nil {
					t.Fatal(err)
				}
			} else {
				marks, _ := filepath.Glob(filepath.Join(dir, ".state", "*", ".idkey.json"))
				for _, m := range append(marks, filepath.Join(dir, ".state", ".idkeys.json")) {
					if err := os.Remove(m); err != nil {
						t.Fatal(err)
					}
				}
			}
			fetched := f.Sim.Stats.Recordings.FileRequests.Load()
			r := runCLI(t, env, "run", "--once")
			if r.code != exitConfig || r.err == nil || !strings.Contains(r.err.Error(), "restore") || !strings.Contains(r.err.Error(), "recording k-") {
				t.Errorf("run with the record and the mark lost: exit %d, %v; want %d naming a k- recording and the record to restore", r.code, r.err, exitConfig)
			}
			if n := f.Sim.Stats.Recordings.FileRequests.Load() - fetched; n != 0 {
				t.Errorf("%d recording file(s) fetched again", n)
			}
			if got := dirFiles(t, store); !maps.Equal(got, files) {
				t.Errorf("the store holds %d files, %d before: recordings copied again under new names", len(got), len(files))
			}
			if got := recordingRows(t, dir, pool, f.URL.Host); !maps.Equal(got, rows) {
				t.Errorf("%d recording rows, %d before", len(got), len(rows))
			}
		})
	}
}
