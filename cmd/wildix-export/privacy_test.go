package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/simtest"
)

// Two pseudonym keys: never to be shown anywhere.
const (
	testKey1 = "first-pseudonym-key-0123456789abcdef"
	testKey2 = "second-pseudonym-key-0123456789abcdef"
)

// onSink adds to env the settings of sink: for "postgres", a schema of
// its own, whose pool it returns (nil for "csv", the default).
func onSink(t *testing.T, sink string, env []string) ([]string, *pgxpool.Pool) {
	t.Helper()
	if sink != "postgres" {
		return env, nil
	}
	schema, pool := pgtest.Schema(t)
	return append(env, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema), pool
}

// TestPrivacyRuleChangeRefused: on a sink holding rows written under one
// rule and key, a run under another rule or key exits 2 naming the
// setting and why, writes nothing and shows no key; with --force it runs
// and the ledger records the change; the same settings again run. For
// both sinks.
func TestPrivacyRuleChangeRefused(t *testing.T) {
	t.Parallel()
	for _, sink := range []string{"csv", "postgres"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			f := authorized(t, pbxsim.Options{Calls: 120})
			dir := t.TempDir()
			base := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues")
			base, pool := onSink(t, sink, base)
			with := func(extra ...string) []string { return append(append([]string(nil), base...), extra...) }
			numbers1 := with("EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
			numbers2 := with("EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey2)

			if r := runCLI(t, base, "run", "--once"); r.code != 0 {
				t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			r := runCLI(t, numbers1, "run", "--once")
			if r.code != exitConfig || !strings.Contains(r.err.Error(), "EXPORT_PSEUDONYMIZE changed") || !strings.Contains(r.err.Error(), "rule none") ||
				!strings.Contains(r.err.Error(), "breaks every join") || !strings.Contains(r.err.Error(), "--force") ||
				!strings.Contains(r.err.Error(), "backfill --from <first day> --to <tomorrow> --force") {
				t.Fatalf("rule none → numbers: exit %d, %v; want 2 naming the change, why, --force and the backfill rewriting the rows before", r.code, r.err)
			}
			// The way out into a new schema or folder carries the
			// suppression list over and takes a new recordings store
			// (review 10, R10-4; sinks › TestNewExportAdviceCarriesTheList
			// runs what it says).
			list := ".state/.suppressed.json"
			if pool != nil {
				list = "WHERE pbx = '' AND key = 'suppressed numbers'"
			}
			for _, want := range []string{"new recordings store", "carrying this", list} {
				if !strings.Contains(r.err.Error(), want) {
					t.Errorf("rule none → numbers: %v; want it to say %q", r.err, want)
				}
			}
			if r := runCLI(t, numbers1, "run", "--once", "--force"); r.code != 0 || !strings.Contains(r.stdout+r.stderr, "backfill --from <first day>") {
				t.Fatalf("forced: exit %d: %v; want 0 and a warning naming the backfill\n%s", r.code, r.err, r.stderr)
			}
			r = runCLI(t, numbers2, "run", "--once")
			if r.code != exitConfig || !strings.Contains(r.err.Error(), "EXPORT_PSEUDONYM_KEY changed") {
				t.Fatalf("another key: exit %d, %v; want 2 naming EXPORT_PSEUDONYM_KEY", r.code, r.err)
			}
			for _, s := range []string{r.stdout, r.stderr, r.err.Error()} {
				if strings.Contains(s, testKey1[:12]) || strings.Contains(s, testKey2[:12]) {
					t.Fatalf("a key is shown:\n%s", s)
				}
			}
			if r := runCLI(t, numbers1, "run", "--once"); r.code != 0 {
				t.Fatalf("the same rule and key again: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			got := privacyLedger(t, pool, dir)
			if len(got) != 3 || got[0] != "none||" || !strings.HasPrefix(got[1], "numbers|k:") || !strings.HasSuffix(got[1], "|none") ||
				got[2] != strings.TrimSuffix(got[1], "none") {
				t.Fatalf("ledger %q: want none, then numbers with its key id changed from none, then the same unchanged", got)
			}
		})
	}
}

// privacyLedger reads each run's rule|key id|change from the sink's run
// ledger, oldest first: the schema's export_runs (pool set) or the CSV
// folder's runs.jsonl. Forget's entries are left out.
func privacyLedger(t *testing.T, pool *pgxpool.Pool, dir string) []string {
	t.Helper()
	var out []string
	if pool != nil {
		return queryStrings(t, pool, `SELECT coalesce(privacy_rule, '') || '|' || coalesce(privacy_key_id, '') || '|' || coalesce(privacy_changed, '')
FROM export_runs WHERE mode <> 'forget' ORDER BY started_at, run_id`)
	}
	files, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "runs.jsonl"))
	if len(files) != 1 {
		t.Fatalf("run ledgers %v, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var line struct {
			Mode    string            `json:"mode"`
			Privacy map[string]string `json:"privacy"`
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatal(err)
		}
		if line.Mode != "forget" {
			out = append(out, line.Privacy["rule"]+"|"+line.Privacy["key_id"]+"|"+line.Privacy["changed"])
		}
	}
	return out
}

// TestPrivacyRuleStoredOnlyWithRows is review 30-forget-attack's finding
// 5: runs that fail after accepting another rule (refused by the
// suppression list's key, or the PBX failing) leave the stored rule as it
// was, so that a later run under yet another rule is still refused
// without --force; the rule a forced run applies is stored with its first
// commit, and the ledger marks that run's change, the only one. A key
// change is refused, forced too, while the suppression list is keyed with
// the earlier key, saying why and what to do. For both sinks. Before the
// fix, the run under rule none exited 0 and wrote numbers in clear into
// the pseudonymised sink.
func TestPrivacyRuleStoredOnlyWithRows(t *testing.T) {
	t.Parallel()
	for _, sink := range []string{"csv", "postgres"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			var failing atomic.Bool
			f := authorized(t, pbxsim.Options{Calls: 80, Rewrite: func(r *http.Request, status int, body []byte) (int, []byte) {
				if failing.Load() && strings.HasPrefix(r.URL.Path, "/api/") {
					return http.StatusServiceUnavailable, []byte(`{"type":"error","reason":"down"}`)
				}
				return status, body
			}})
			dir := t.TempDir()
			base := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues", "EXPORT_MAX_ATTEMPTS=1")
			base, pool := onSink(t, sink, base)
			with := func(extra ...string) []string { return append(slices.Clone(base), extra...) }
			numbers1 := with("EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
			step := func(name string, kv []string, code int, want string, args ...string) {
				t.Helper()
				r := runCLI(t, kv, args...)
				said := true
				for _, w := range strings.Split(want, "|") {
					said = said && strings.Contains(fmt.Sprint(r.err), w)
				}
				if r.code != code || code != exitOK && !said {
					t.Fatalf("%s: exit %d, %v; want %d saying %q\n%s", name, r.code, r.err, code, want, r.stderr)
				}
			}
			step("first export", numbers1, exitOK, "", "run", "--once")
			step("forget", numbers1, exitOK, "", "forget", "--number", "+390123456789")
			step("another key, forced", with("EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey2), exitConfig,
				"suppression list of 1 forgotten number(s)|the key cannot change while the list exists, with --force neither|a new recordings store|before its first run, run `wildix-export forget --allow-empty` for each number of the list", "run", "--once", "--force")
			step("no rule and no key, forced", base, exitConfig, "suppression list", "run", "--once", "--force")
			step("rule none, the list's key", with("EXPORT_PSEUDONYMIZE=none", "EXPORT_PSEUDONYM_KEY="+testKey1), exitConfig,
				"EXPORT_PSEUDONYMIZE changed", "run", "--once")
			names1 := with("EXPORT_PSEUDONYMIZE=numbers,names", "EXPORT_PSEUDONYM_KEY="+testKey1)
			failing.Store(true)
			step("another rule, forced, the PBX failing", names1, exitFailed, "", "run", "--once", "--force")
			failing.Store(false)
			step("that rule again, not forced", names1, exitConfig, "EXPORT_PSEUDONYMIZE changed", "run", "--once")
			step("the first rule again", numbers1, exitOK, "", "run", "--once")
			step("another rule, forced", names1, exitOK, "", "run", "--once", "--force")
			step("that rule again", names1, exitOK, "", "run", "--once")

			var changes []string
			got := privacyLedger(t, pool, dir)
			for _, l := range got {
				if !strings.HasSuffix(l, "|") {
					changes = append(changes, l)
				}
			}
			k, _ := pseudonym.New([]byte(testKey1))
			want := "numbers,names|" + k.KeyID() + "|numbers " + k.KeyID()
			if len(changes) != 1 || changes[0] != want || got[len(got)-2] != want {
				t.Fatalf("ledger %q: want one change, %q, by the run that wrote under it", got, want)
			}
		})
	}
}

// export runs one export in process, as `run --once` does, and returns
// what it logged and printed and the /metrics text after it.
func export(t *testing.T, kv []string) (logs, metricsText string) {
	t.Helper()
	a, out, errb := cliApp(kv)
	if err := a.load(config.Need{PBX: true, Sink: true}); err != nil {
		t.Fatal(err)
	}
	cat, err := a.catalog()
	if err != nil {
		t.Fatal(err)
	}
	endpoints, err := a.selectEndpoints(cat, a.cfg.Endpoints)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := a.start(ctx, cat)
	if err != nil {
		t.Fatal(err)
	}
	defer st.sink.close()
	m := newMetrics()
	r, err := a.exportAll(ctx, st, m, endpoints, "once")
	if err != nil || r.Err() != nil {
		t.Fatalf("export: %v\n%s", err, errb.String())
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return out.String() + errb.String(), rec.Body.String()
}

// needles are the personal values of a clear export: each external
// number (its national digits, together and spaced as the simulator
// writes them: they are in every form the PBX sends, +, 00 or neither)
// and, under all, each name, e-mail, login or note and the colleagues'
// numbers, read from the columns the catalog declares personal and from
// the fields of raw it declares personal that no column reads (the CDR's
// caller ids: clid's number, and under all its name), and the names of
// the call groups' members.
func needles(t *testing.T, pool *pgxpool.Pool, all bool) []string {
	t.Helper()
	set := map[string]bool{}
	add := func(kind record.PersonalKind, v string) {
		switch kind {
		case record.PersonalNumber:
			if name, number, ok := strings.Cut(strings.TrimSuffix(v, ">"), "<"); ok {
				// A caller id, "Mario Rossi" <+39…>: its name, and
				// its number.
				v = number
				if name = strings.Trim(strings.TrimSpace(name), `"`); all && len(name) >= 4 {
					set[name] = true
				}
			}
			if d, ok := pseudonym.Canonical(v); ok && len(d) >= 9 {
				national := d[2:]
				set[national], set[national[:3]+" "+national[3:]] = true, true
			}
		case record.PersonalName, record.PersonalNote:
			if all && len(strings.TrimSpace(v)) >= 4 {
				set[v] = true
			}
		}
	}
	for _, ep := range record.Builtin() {
		if ep.Staff && !all {
			continue // the company's own people: only under all
		}
		for col, p := range ep.Personal {
			rows, err := pool.Query(context.Background(), fmt.Sprintf("SELECT DISTINCT coalesce(%s::text, '') FROM %s", col, ep.Name))
			if err != nil {
				continue // an endpoint not exported (recordings)
			}
			for rows.Next() {
				var v string
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				add(p.Kind, v)
			}
			rows.Close()
		}
		for field, p := range ep.PersonalFields {
			for _, v := range queryStrings(t, pool, fmt.Sprintf("SELECT DISTINCT coalesce(raw->>'%s', '') FROM %s", field, ep.Name)) {
				add(p.Kind, v)
			}
		}
	}
	if all {
		// The call groups' members name colleagues ({"extension": "201",
		// "name": …}): their names are the company's own people's,
		// replaced under all only (README, Privacy).
		rows, err := pool.Query(context.Background(), `SELECT DISTINCT m->>'name' FROM call_groups, jsonb_array_elements(members) m
WHERE jsonb_typeof(members) = 'array' AND jsonb_typeof(m) = 'object' AND length(m->>'name') >= 4`)
		if err != nil {
			t.Fatal(err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(names) == 0 {
			t.Fatal("no call group member has a name: the simulator's groups no longer prove that they are replaced")
		}
		for _, n := range names {
			set[n] = true
		}
	}
	// A group's title is what the PBX writes as the callee's name of a
	// call to the group: the company's, not a person's.
	for _, g := range queryStrings(t, pool, "SELECT coalesce(title, '') FROM call_groups UNION SELECT coalesce(name, '') FROM call_groups") {
		delete(set, g)
	}
	out := slices.Sorted(maps.Keys(set))
	if len(out) < 100 {
		t.Fatalf("%d personal values in the clear export: the test would prove little", len(out))
	}
	return out
}

// dumpSchema is every row of every table of schema, as text.
func dumpSchema(t *testing.T, pool *pgxpool.Pool, schema string) string {
	t.Helper()
	tables := queryStrings(t, pool, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'", schema)
	var b strings.Builder
	for _, tb := range tables {
		lines := queryStrings(t, pool, "SELECT t::text FROM "+pgx.Identifier{schema, tb}.Sanitize()+" t")
		fmt.Fprintf(&b, "== %s\n%s\n", tb, strings.Join(lines, "\n"))
	}
	if len(tables) < 10 {
		t.Fatalf("%d tables in %s", len(tables), schema)
	}
	return b.String()
}

// dumpDir is every file under dir, gunzipped where gzipped, as text.
func dumpDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "== %s\n%s\n", path, data)
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("%d files under %s", n, dir)
	}
	return b.String()
}

// viewCounts is what the reporting views count, for comparing exports.
func viewCounts(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		"SELECT count(*), count(next_call_id), count(*) FILTER (WHERE next_call_direction = 'outbound') FROM missed_calls",
		"SELECT direction, count(*), sum(talk_seconds), count(answered_by_colleague) FROM calls GROUP BY 1 ORDER BY 1",
		"SELECT sum(calls), sum(answered), sum(missed) FROM calls_daily",
		"SELECT extension, calls_made, calls_received, received_missed, answered FROM calls_by_extension ORDER BY 1",
		"SELECT count(DISTINCT number_key(caller_number)), count(*) FROM calls WHERE direction = 'inbound'",
		"SELECT n, count(*) FROM (SELECT count(*) AS n FROM calls WHERE direction = 'inbound' GROUP BY number_key(caller_number)) c GROUP BY n ORDER BY n",
	} {
		lines := queryStrings(t, pool, "SELECT r::text FROM ("+q+") r")
		out = append(out, q+": "+strings.Join(lines, " "))
	}
	return out
}

// TestPseudonymisedExportHoldsNoNumberOrName is issue 30's first
// acceptance test: the simulator's data, its external numbers in every
// form a PBX sends (+39…, 0039…, 39…, spaced), exported under
// EXPORT_PSEUDONYMIZE=all and under numbers to PostgreSQL and to CSV, then
// every table of the schema (raw, extra, the ledger, the state), every
// file of the CSV folder (manifests, state, ledger), the logs at debug
// level and /metrics are searched for every external number (and under
// all every name, and the colleagues' numbers) of a clear export of the
// same PBX: none is found. The
// reporting views count the same on the pseudonymised schema as on the
// clear one, call-backs included.
//
// Into the call history go, besides, the forms review 30-pseudo-attack
// found in clear (injected): a number written with dashes, dots or
// slashes in free text, a number written as the caller's name, a number
// in a name column under numbers, and names in fields the catalog does
// not know or spells otherwise (caller_name, From_Name).
func TestPseudonymisedExportHoldsNoNumberOrName(t *testing.T) {
	t.Parallel()
	for _, rule := range []string{"all", "numbers"} {
		t.Run(rule, func(t *testing.T) {
			t.Parallel()
			pseudonymisedExportHoldsNothing(t, rule)
		})
	}
}

// injected are the forms the attack found in clear, put into the call
// history's free text (userfield, a cycle), its names (one record in
// seven) and its unknown fields; injectedNumbers and injectedNames are
// what of them must not be found.
var (
	injectedForms = []string{"cb 0039-352-851-2784", "+39.352.851.2784", "Rueckruf: +39 - 352 - 8512784",
		"PJSIP/sip:0039-352-8512784@trunk", "tel:+39/352/8512784 x", "fax 0044.20.7946.0958"}
	injectedNumbers = []string{"8512784", "851-2784", "851.2784", "851 2784", "39-352", "39.352", "39 - 352", "39/352",
		"7946.0958", "44.20", "4455 6677", "44556677"}
	injectedNames = []string{"Extrafield", "Casename"}
)

// inject rewrites the simulator's call-history pages with injectedForms.
func inject() func(r *http.Request, status int, body []byte) (int, []byte) {
	var mu sync.Mutex
	n := 0
	userfield := regexp.MustCompile(`"userfield":""`)
	fromName := regexp.MustCompile(`"from_name":"[^"]*"`)
	return func(r *http.Request, status int, body []byte) (int, []byte) {
		if !strings.Contains(r.URL.Path, "CallHistory") {
			return status, body
		}
		mu.Lock()
		defer mu.Unlock()
		body = userfield.ReplaceAllFunc(body, func([]byte) []byte {
			n++
			return []byte(`"userfield":"` + injectedForms[n%len(injectedForms)] + `","caller_name":"Marìa Extrafield","From_Name":"Upper Casename"`)
		})
		return status, fromName.ReplaceAllFunc(body, func(b []byte) []byte {
			if n++; n%7 != 0 {
				return b
			}
			return []byte(`"from_name":"+39 02 4455 6677"`)
		})
	}
}

// clockTimes are the times of day logs, ledgers and tables write
// (05:28:44.204047563) and the PBX's recording names carry
// (2026.12.07-09.44.20-…): a short needle such as 44.20 is found in them by
// chance, as it was in a log line's "time" and, at 09:44:20, in a
// recording's file name.
var clockTimes = regexp.MustCompile(`\d\d:\d\d:\d\d(\.\d+)?|\d{4}\.\d\d\.\d\d-\d\d\.\d\d\.\d\d`)

func pseudonymisedExportHoldsNothing(t *testing.T, rule string) {
	const calls = 600
	f := authorized(t, pbxsim.Options{Calls: calls, NumberForms: true, ExtraCallField: true, CallerIDFields: true,
		CallGap: time.Minute, CallsStart: time.Now().UTC().Add(-calls * time.Minute).Add(-time.Hour),
		APIKeys: []string{recToken}, Recordings: pbxsim.RecordingOptions{Every: 10, BytesPerSecond: 40}, Rewrite: inject()})
	clearSchema, clearPool := pgtest.Schema(t)
	pseudoSchema, pseudoPool := pgtest.Schema(t)
	dir, pgStore, csvStore := t.TempDir(), t.TempDir(), t.TempDir()
	recs := func(store string) []string {
		return []string{"EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR=" + store, "WILDIX_RECORDINGS_TOKEN=" + recToken}
	}
	pg := func(schema string, extra ...string) []string {
		return fixtureEnv(f, t.TempDir(), append([]string{"EXPORT_SINK=postgres", "EXPORT_DATABASE_URL=" + pgtest.URL(), "EXPORT_DB_SCHEMA=" + schema}, extra...)...)
	}
	on := []string{"EXPORT_PSEUDONYMIZE=" + rule, "EXPORT_PSEUDONYM_KEY=" + testKey1, "EXPORT_LOG_LEVEL=debug", "EXPORT_PSEUDONYM_DISPLAY=true"}
	export(t, pg(clearSchema, recs(t.TempDir())...))
	pgLogs, pgMetrics := export(t, pg(pseudoSchema, append(on, recs(pgStore)...)...))
	csvLogs, csvMetrics := export(t, fixtureEnv(f, dir, append(on, recs(csvStore)...)...))
	var stored strings.Builder
	for _, store := range []string{pgStore, csvStore} {
		filepath.WalkDir(store, func(path string, _ fs.DirEntry, err error) error {
			stored.WriteString(path + "\n")
			return err
		})
	}
	var n int
	if err := clearPool.QueryRow(context.Background(), "SELECT count(*) FROM recordings WHERE status = 'copied'").Scan(&n); err != nil || n < 10 {
		t.Fatalf("%d recordings copied (%v): the recordings prove little", n, err)
	}
	var forms, names, clids int
	if err := clearPool.QueryRow(context.Background(), "SELECT count(*) FILTER (WHERE userfield LIKE '%352%'), count(*) FILTER (WHERE from_name LIKE '+39 02%'), count(*) FILTER (WHERE raw->>'clid' LIKE '\"%\" <+%>' AND raw->>'c_to' <> '') FROM call_history").Scan(&forms, &names, &clids); err != nil || forms == 0 || names == 0 || clids == 0 {
		t.Fatalf("%d, %d records injected, %d caller ids with a name and an external number (%v): the injection proves nothing", forms, names, clids, err)
	}

	find := append(needles(t, clearPool, rule == "all"), injectedNumbers...)
	if rule == "all" {
		find = append(find, injectedNames...)
	}
	for _, place := range []struct{ name, text string }{
		{"the database", dumpSchema(t, pseudoPool, pseudoSchema)},
		{"the CSV folder", dumpDir(t, dir)},
		{"the logs", pgLogs + csvLogs},
		{"/metrics", pgMetrics + csvMetrics},
		{"the recordings stores' names", stored.String()},
	} {
		text := clockTimes.ReplaceAllString(place.text, "hh:mm:ss")
		var found []string
		for _, n := range find {
			if strings.Contains(text, n) {
				found = append(found, n)
			}
		}
		if len(found) > 0 {
			i := strings.Index(text, found[0])
			t.Errorf("%s holds %d of %d personal values in clear (%q), e.g. %q in …%s…", place.name, len(found), len(find), found, found[0],
				text[max(0, i-200):min(len(text), i+100)])
		}
	}
	clear, pseudo := viewCounts(t, clearPool), viewCounts(t, pseudoPool)
	t.Logf("views: %q", clear)
	if !slices.Equal(clear, pseudo) {
		t.Errorf("the views count differently:\nclear  %q\npseudo %q", clear, pseudo)
	}
	if !strings.Contains(clear[0], ",") || strings.Contains(clear[0], "(0,0,0)") || strings.Contains(clear[0], ",0,") {
		t.Errorf("missed_calls %s: want missed calls and call-backs, or the comparison proves little", clear[0])
	}
}

// TestRedactedRecordValues: a record whose start holds a name fails the
// run under pseudonymisation (review 30-pseudo-attack finding 6): the
// error, the summary, the logs and the run ledger name the record's key
// and the field, not the value; a warning's example (a duration holding
// a name, stored as NULL) neither.
func TestRedactedRecordValues(t *testing.T) {
	t.Parallel()
	start := regexp.MustCompile(`("id":"?30"?,"start":)"[^"]*"`)
	duration := regexp.MustCompile(`"duration":"?[0-9]*"?`)
	f := authorized(t, pbxsim.Options{Calls: 50, Rewrite: func(r *http.Request, status int, body []byte) (int, []byte) {
		if !strings.Contains(r.URL.Path, "CallHistory") {
			return status, body
		}
		body = duration.ReplaceAll(body, []byte(`"duration":"Anna Durname"`))
		return status, start.ReplaceAll(body, []byte(`${1}"2026-01-01 Luca Timename"`))
	}})
	dir := t.TempDir()
	r := runCLI(t, fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history", "EXPORT_MAX_ATTEMPTS=1",
		"EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1, "EXPORT_LOG_LEVEL=debug"), "run", "--once")
	if r.code == 0 || r.err == nil {
		t.Fatalf("exit %d, %v; want the run failed", r.code, r.err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "runs.jsonl"))
	if len(files) != 1 {
		t.Fatalf("run ledgers %v, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	all := r.err.Error() + r.stdout + r.stderr + string(b)
	if strings.Contains(all, "Timename") || strings.Contains(all, "Durname") || !strings.Contains(all, `field \"start\"`) && !strings.Contains(all, `field "start"`) {
		t.Errorf("want the field named and no value:\n%s", all)
	}
}

// TestRedactedErrorsAndLogs: a PBX failing with a number in its answer,
// with pseudonymisation on: the number is its pseudonym in the error the
// command returns, the summary, the logs (the retry's warning, logged
// before any error is the endpoint's) and the run ledger, and the exit
// code still says what failed. It fails without the logger's handler or
// without Exporter.Redact.
func TestRedactedErrorsAndLogs(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 50, Rewrite: func(r *http.Request, status int, body []byte) (int, []byte) {
		if strings.Contains(r.URL.Path, "CallHistory") {
			return http.StatusServiceUnavailable, []byte(`{"type":"error","reason":"call from +39 333 1234567 cannot be read"}`)
		}
		return status, body
	}})
	dir := t.TempDir()
	r := runCLI(t, fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history", "EXPORT_MAX_ATTEMPTS=2",
		"EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1, "EXPORT_LOG_LEVEL=debug"), "run", "--once")
	if r.code != exitFailed || r.err == nil {
		t.Fatalf("exit %d, %v; want 1", r.code, r.err)
	}
	k, err := pseudonym.New([]byte(testKey1))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "runs.jsonl"))
	if len(files) != 1 {
		t.Fatalf("run ledgers %v, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	ledger := string(b)
	for what, s := range map[string]string{"the error": r.err.Error() + fmt.Sprint(r.err), "the summary and logs": r.stdout + r.stderr, "the ledger": ledger} {
		if strings.Contains(s, "1234567") || !strings.Contains(s, k.Number("+393331234567")) {
			t.Errorf("%s: want the number as its pseudonym:\n%s", what, s)
		}
	}
}

// TestRedactedPBXTextUnderNames: under a rule with names, the PBX's
// error text, which may name a person, is left out of the error the
// command returns, the summary, the logs and the run ledger, its status
// kept (attack 30 F7); it fails without the Redactor's Names.
func TestRedactedPBXTextUnderNames(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 50, Rewrite: func(r *http.Request, status int, body []byte) (int, []byte) {
		if strings.Contains(r.URL.Path, "CallHistory") {
			return http.StatusBadRequest, []byte(`{"type":"error","reason":"no caller Mario Rossi"}`)
		}
		return status, body
	}})
	dir := t.TempDir()
	r := runCLI(t, fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history", "EXPORT_PSEUDONYMIZE=numbers,names",
		"EXPORT_PSEUDONYM_KEY="+testKey1, "EXPORT_LOG_LEVEL=debug"), "run", "--once")
	if r.code != exitFailed || r.err == nil {
		t.Fatalf("exit %d, %v; want 1", r.code, r.err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "runs.jsonl"))
	if len(files) != 1 {
		t.Fatalf("run ledgers %v, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range map[string]string{"the error": r.err.Error(), "the summary and logs": r.stdout + r.stderr, "the ledger": string(b)} {
		if strings.Contains(s, "Rossi") || !strings.Contains(s, "400 Bad Request") {
			t.Errorf("%s: want the status without the PBX's text:\n%s", what, s)
		}
	}
}

// TestQueryHelpSaysInClear: query prints the PBX's answer in clear, with
// pseudonymisation on too; its help says so (issue 30, point 4: say what
// it cannot do).
func TestQueryHelpSaysInClear(t *testing.T) {
	t.Parallel()
	r := runCLI(t, nil, "query", "-h")
	for _, want := range []string{"in clear", "EXPORT_PSEUDONYMIZE", "not an\nexport"} {
		if r.code != exitOK || !strings.Contains(r.stderr, want) {
			t.Fatalf("query -h: exit %d, want it to say %q:\n%s", r.code, want, r.stderr)
		}
	}
}

// TestPseudonymisedLongExtensionsStayReadable: a PBX whose extensions
// have 7 digits (pbxsim LongExtensions), exported in clear and under
// EXPORT_PSEUDONYMIZE=numbers to PostgreSQL: the colleagues' extensions,
// read from the colleagues at the run's start, stay readable in every
// column and channel they are in (as many rows hold them as in clear);
// every external number, and every 7-digit number that is no extension
// of the PBX's (calls reach 201…260, colleagues are 201…225, devices'
// users 201…230), is found nowhere in the database, the logs or
// /metrics; the views count the same; the ledger says how many
// extensions were kept.
func TestPseudonymisedLongExtensionsStayReadable(t *testing.T) {
	t.Parallel()
	const calls = 400
	f := authorized(t, pbxsim.Options{Calls: calls, LongExtensions: true, NumberForms: true,
		CallGap: time.Minute, CallsStart: time.Now().UTC().Add(-calls * time.Minute).Add(-time.Hour),
		APIKeys: []string{recToken}, Recordings: pbxsim.RecordingOptions{Every: 10, BytesPerSecond: 40}})
	clearSchema, clearPool := pgtest.Schema(t)
	pseudoSchema, pseudoPool := pgtest.Schema(t)
	pg := func(schema string, extra ...string) []string {
		return fixtureEnv(f, t.TempDir(), append([]string{"EXPORT_SINK=postgres", "EXPORT_DATABASE_URL=" + pgtest.URL(), "EXPORT_DB_SCHEMA=" + schema,
			"EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR=" + t.TempDir(), "WILDIX_RECORDINGS_TOKEN=" + recToken}, extra...)...)
	}
	export(t, pg(clearSchema))
	logs, metricsText := export(t, pg(pseudoSchema, "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1, "EXPORT_LOG_LEVEL=debug"))

	exts := queryStrings(t, clearPool, "SELECT extension FROM colleagues ORDER BY 1")
	if len(exts) != 25 || len(exts[0]) != 7 {
		t.Fatalf("colleagues' extensions %q: want 25 of 7 digits, or the test proves nothing", exts)
	}
	others := queryStrings(t, clearPool, `SELECT DISTINCT v FROM call_history, unnest(ARRAY[src, dst]) v WHERE v ~ '^[0-9]{7}$'
EXCEPT SELECT extension FROM colleagues EXCEPT SELECT user_extension FROM devices`)
	if len(others) < 5 {
		t.Fatalf("%d 7-digit numbers that are no extension of the PBX's in the call history: the test proves little", len(others))
	}
	// Rows holding a colleague's extension, in clear and pseudonymised.
	for _, q := range []string{
		"SELECT count(*)::text FROM call_history WHERE src IN (SELECT extension FROM colleagues)",
		"SELECT count(*)::text FROM call_history WHERE dst IN (SELECT extension FROM colleagues)",
		"SELECT count(*)::text FROM call_history c WHERE EXISTS (SELECT FROM colleagues k WHERE c.channel LIKE 'SIP/' || k.extension || '-%')",
		"SELECT count(*)::text FROM call_history c WHERE EXISTS (SELECT FROM colleagues k WHERE c.dstchannel LIKE 'SIP/' || k.extension || '-%')",
		"SELECT count(*)::text FROM call_history c WHERE EXISTS (SELECT FROM colleagues k WHERE c.lastdata LIKE 'SIP/' || k.extension || ',%')",
		"SELECT count(*)::text FROM recordings WHERE extension IN (SELECT extension FROM colleagues)",
	} {
		clear, pseudo := queryStrings(t, clearPool, q)[0], queryStrings(t, pseudoPool, q)[0]
		if clear == "0" || clear != pseudo {
			t.Errorf("%s: %s in clear, %s pseudonymised: want the same, not 0", q, clear, pseudo)
		}
	}
	find := append(needles(t, clearPool, false), others...)
	for _, place := range []struct{ name, text string }{
		{"the database", dumpSchema(t, pseudoPool, pseudoSchema)},
		{"the logs", logs},
		{"/metrics", metricsText},
	} {
		text := clockTimes.ReplaceAllString(place.text, "hh:mm:ss")
		for _, n := range find {
			if i := strings.Index(text, n); i >= 0 {
				t.Errorf("%s holds %q in clear: …%s…", place.name, n, text[max(0, i-200):min(len(text), i+100)])
			}
		}
	}
	clear, pseudo := viewCounts(t, clearPool), viewCounts(t, pseudoPool)
	if !slices.Equal(clear, pseudo) {
		t.Errorf("the views count differently:\nclear  %q\npseudo %q", clear, pseudo)
	}
	notes := strings.Join(queryStrings(t, pseudoPool, "SELECT coalesce(array_to_string(notes, E'\\n'), '') FROM export_run_endpoints WHERE endpoint = 'call_history'"), "\n")
	if !strings.Contains(notes, "25 "+noteExtensionsKept) {
		t.Errorf("the ledger's notes of call_history do not say 25 extensions were kept: %q", notes)
	}
}

// TestLongExtensionsWhenColleaguesUnread: with EXPORT_ENDPOINTS leaving
// colleagues out, the run still reads them and keeps the 7-digit
// extensions readable; when the PBX refuses them (403, a key without the
// scope), the run does not fail: the extensions are pseudonymised (the
// shape rule), a warning names what to give, and the ledger says so; a
// busy PBX (503 twice on the colleagues) is retried, and they are kept.
// CSV.
func TestLongExtensionsWhenColleaguesUnread(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		forbid bool
		busy   int // colleagues' requests answered 503 first
	}{{"not exported", false, 0}, {"forbidden", true, 0}, {"busy", false, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const calls = 200
			o := pbxsim.Options{Calls: calls, LongExtensions: true, CallGap: time.Minute, CallsStart: time.Now().UTC().Add(-calls * time.Minute).Add(-time.Hour)}
			var busy atomic.Int64
			o.Rewrite = func(r *http.Request, status int, body []byte) (int, []byte) {
				switch {
				case !strings.Contains(r.URL.Path, "Colleagues"):
				case tc.forbid:
					return http.StatusForbidden, []byte(`{"type":"error","reason":"Forbidden"}`)
				case busy.Add(1) <= int64(tc.busy):
					return http.StatusServiceUnavailable, []byte(`{"type":"error","reason":"busy"}`)
				}
				return status, body
			}
			f := authorized(t, o)
			dir := t.TempDir()
			logs, _ := export(t, fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history", "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1))
			var b strings.Builder // every file of the folder (dumpDir wants more files)
			if err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data, err := os.ReadFile(path)
				b.Write(data)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			all := b.String()
			if !strings.Contains(all, "p:") {
				t.Fatalf("no pseudonym in the CSV folder: nothing was exported under numbers")
			}
			kept := 0
			for i := range 25 {
				if strings.Contains(all, fmt.Sprint(2000201+i)) {
					kept++
				}
			}
			warned := strings.Contains(logs, "colleagues could not be read")
			noted := strings.Contains(all, "could not be read at the run's start")
			if tc.forbid {
				if kept != 0 || !warned || !noted {
					t.Errorf("colleagues refused: %d of 25 extensions in clear (want 0), warned %v, in the ledger %v (want both)\n%s", kept, warned, noted, logs)
				}
				return
			}
			if n := busy.Load(); n <= int64(tc.busy) {
				t.Fatalf("%d colleagues' requests, want more than the %d answered busy", n, tc.busy)
			}
			if kept < 20 || warned || noted || !strings.Contains(all, noteExtensionsKept) {
				t.Errorf("colleagues read but not exported: %d of 25 extensions in clear (want ≥ 20), warned %v, unread noted %v, kept noted %v",
					kept, warned, noted, strings.Contains(all, noteExtensionsKept))
			}
		})
	}
}

// TestRecordingsKeyWithoutRuleSurvivesKeyUnset: under
// EXPORT_PSEUDONYMIZE=none with EXPORT_PSEUDONYM_KEY set, the key of the
// recordings' ids is the sink's own, not the pseudonym key: unsetting
// the key, which nothing used, leaves the next start working and the
// recordings under their ids, not copied again (review1 R4: the list
// took the key's id and every start then failed, exit 2). Both sinks.
func TestRecordingsKeyWithoutRuleSurvivesKeyUnset(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"csv", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f := recPBX(t, 100, time.Hour, pbxsim.RecordingOptions{Fields: "bare"})
			store := t.TempDir()
			kv := fixtureEnv(f, t.TempDir(), "EXPORT_ENDPOINTS=recordings", "EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR="+store,
				"WILDIX_RECORDINGS_TOKEN="+recToken, "EXPORT_PSEUDONYMIZE=none")
			if kind == "postgres" {
				schema, _ := pgtest.Schema(t)
				kv = append(kv, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema)
			}
			if r := runCLI(t, append(slices.Clone(kv), "EXPORT_PSEUDONYM_KEY=recordings-key-unset-0123456789abcdef"), "run", "--once"); r.code != exitOK {
				t.Fatalf("with the key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			before := dirFiles(t, store)
			if len(before) == 0 {
				t.Fatal("no recording stored: the test proves nothing")
			}
			if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
				t.Fatalf("key unset: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if after := dirFiles(t, store); !maps.Equal(after, before) {
				t.Errorf("key unset: %d files stored, %d before: recordings copied again under other ids", len(after), len(before))
			}
		})
	}
}

// TestErasureNotUndoneByLostState: after forget, nothing in the sink, its
// suppression list included, holds the number's pseudonym (attack 4,
// F7); the list deleted (PostgreSQL: export_state emptied; CSV: the state
// folder restored from a copy taken before the forget, its ledger without
// it, then the list file, then the whole state folder with its run
// ledger), a run is
// refused, exit 2, naming the list and what to do, and writes nothing:
// the number would come back (F4). Doing what the message says to go on
// all the same, the run goes on.
func TestErasureNotUndoneByLostState(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sink   string
		pseudo bool
	}{{"postgres", true}, {"csv", false}, {"csv", true}} {
		t.Run(fmt.Sprintf("%s/pseudonymised=%v", tc.sink, tc.pseudo), func(t *testing.T) {
			t.Parallel()
			const calls = 120
			f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
			f.Authorize(t)
			dir := t.TempDir()
			kv, pool := onSink(t, tc.sink, fixtureEnv(f, dir))
			k, _ := pseudonym.New([]byte(testKey1))
			if tc.pseudo {
				kv = append(kv, "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
			}
			dump := func() string { return dumpDir(t, dir) }
			schema := ""
			if pool != nil {
				for _, e := range kv {
					if s, ok := strings.CutPrefix(e, "EXPORT_DB_SCHEMA="); ok {
						schema = s
					}
				}
				dump = func() string { return dumpSchema(t, pool, schema) }
			}
			if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
				t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			d := simNumber(t, f.Sim, calls)
			trace := d[len(d)-9:]
			if tc.pseudo {
				trace = k.Number(d)
			}
			if !strings.Contains(dump(), trace) {
				t.Fatal("the sink holds no trace of the number before forget: the test proves nothing")
			}
			// The nightly copy of the state folder, taken before the
			// first forget: its ledger holds no forget (review 9, R9-1).
			backup := filepath.Join(t.TempDir(), "state")
			if pool == nil {
				if err := os.CopyFS(backup, os.DirFS(filepath.Join(dir, ".state"))); err != nil {
					t.Fatal(err)
				}
			}
			if r := runCLI(t, kv, "forget", "--number", "+"+d); r.code != exitOK {
				t.Fatalf("forget: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
			}
			erased := dump()
			if strings.Contains(erased, trace) {
				i := strings.Index(erased, trace)
				t.Fatalf("after forget the sink still holds the number's trace %s: …%s…", trace, erased[max(0, i-300):min(len(erased), i+100)])
			}

			lose := []func(){func() {
				if _, err := pool.Exec(context.Background(), "DELETE FROM export_state"); err != nil {
					t.Fatal(err)
				}
			}}
			if pool == nil {
				lose = []func(){func() {
					// .state restored from the copy: the PBX's ledger is
					// there, without the forget; the data files' manifests
					// count it.
					if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
						t.Fatal(err)
					}
					if err := os.CopyFS(filepath.Join(dir, ".state"), os.DirFS(backup)); err != nil {
						t.Fatal(err)
					}
				}, func() {
					if err := os.Remove(filepath.Join(dir, ".state", ".suppressed.json")); err != nil {
						t.Fatal(err)
					}
				}, func() {
					if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
						t.Fatal(err)
					}
				}}
			}
			for i, lost := range lose {
				lost()
				before := dump()
				// As main prints it: under pseudonymisation, redacted.
				var out, errb lockedBuffer
				err := run(context.Background(), []string{"run", "--once"}, env(kv), strings.NewReader(""), &out, &errb)
				r := cliResult{stdout: out.String(), stderr: errb.String(), err: err, code: exitCode(err)}
				msg := fmt.Sprint(r.err)
				if r.code != exitConfig || !strings.Contains(msg, "Restore the list from the backup") || !strings.Contains(msg, "README, Erasure") {
					t.Fatalf("state lost (%d): run: exit %d, want %d: %v\n%s", i, r.code, exitConfig, r.err, r.stderr)
				}
				if after := dump(); after != before {
					t.Fatalf("state lost (%d): the refused run changed the sink", i)
				}
				// Going on all the same, as the message says.
				_, do, _ := strings.Cut(msg, "record that in the list: ")
				if pool != nil {
					// The table named is the schema's (the test schema's
					// random digits are redacted in its name).
					table := pgx.Identifier{schema, "export_state"}.Sanitize()
					do = regexp.MustCompile(`"[^"]*"\."export_state"`).ReplaceAllLiteralString(do, table)
					if _, err := pool.Exec(context.Background(), do); err != nil {
						t.Fatalf("the statement the message gives: %v\n%s", err, do)
					}
				} else {
					// The file named is the list's (the test folder's
					// random digits are redacted in its name).
					m := regexp.MustCompile(`write (\{.*\}) to \S+/\.state/\.suppressed\.json$`).FindStringSubmatch(do)
					if m == nil {
						t.Fatalf("no file to write in %q", do)
					}
					list := filepath.Join(dir, ".state", ".suppressed.json")
					os.MkdirAll(filepath.Dir(list), 0o700)
					if err := os.WriteFile(list, []byte(m[1]), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
					t.Fatalf("state lost (%d), undone erasures accepted: run: exit %d: %v\n%s", i, r.code, r.err, r.stderr)
				}
			}
		})
	}
}

// TestPrivacyRuleLostTakenFromLedger is attack 6's F4: with the stored
// rule lost (CSV: .state/<pbx>/.privacy.json, a dot file a restore may
// leave out; PostgreSQL: the export_state row), the rows were taken as
// written under rule none, and the refusal's advice (set none again)
// exported numbers in clear into the pseudonymised sink, exit 0. Now the
// run ledger's rule is the rows' (CSV: the ledger records the run of the
// newest data file's rule, so it is at least as recent as the manifests
// and decides): a run in clear is refused, saying the record is missing
// and what the ledger says; a run under the ledger's rule stores the
// record again; forced, the change is marked. Both sinks.
func TestPrivacyRuleLostTakenFromLedger(t *testing.T) {
	t.Parallel()
	for _, sink := range []string{"csv", "postgres"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			f := authorized(t, pbxsim.Options{Calls: 60})
			dir := t.TempDir()
			base := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues")
			base, pool := onSink(t, sink, base)
			numbers := append(append([]string(nil), base...), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
			lose := func() {
				t.Helper()
				if pool != nil {
					if _, err := pool.Exec(context.Background(), "DELETE FROM export_state WHERE key = 'pseudonymisation rule'"); err != nil {
						t.Fatal(err)
					}
					return
				}
				files, _ := filepath.Glob(filepath.Join(dir, ".state", "*", ".privacy.json"))
				if len(files) != 1 {
					t.Fatalf("rule files %v, want one", files)
				}
				if err := os.Remove(files[0]); err != nil {
					t.Fatal(err)
				}
			}
			stored := func() bool {
				t.Helper()
				if pool != nil {
					return len(queryStrings(t, pool, "SELECT state::text FROM export_state WHERE key = 'pseudonymisation rule'")) == 1
				}
				files, _ := filepath.Glob(filepath.Join(dir, ".state", "*", ".privacy.json"))
				return len(files) == 1
			}
			if r := runCLI(t, numbers, "run", "--once"); r.code != 0 {
				t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			lose()
			r := runCLI(t, base, "run", "--once")
			if r.code != exitConfig {
				t.Fatalf("rule lost, run in clear: exit %d, %v; want 2", r.code, r.err)
			}
			// CSV: the ledger records the run of the newest data file's
			// rule, so it decides (review 20, R20-1, R20-5).
			told := "run ledger says they are written under rule numbers k:"
			for _, want := range []string{"is missing", told, "under rule numbers k:", "this run would write them under none", "restore that record", "--force"} {
				if !strings.Contains(r.err.Error(), want) {
					t.Errorf("rule lost, run in clear: %v; want it to say %q", r.err, want)
				}
			}
			if strings.Contains(r.err.Error(), "written under rule none") {
				t.Errorf("rule lost: %v; says the rows are under rule none", r.err)
			}
			if r := runCLI(t, numbers, "run", "--once"); r.code != 0 || !stored() {
				t.Fatalf("rule lost, run under the ledger's rule: exit %d: %v, record stored again %v; want 0 and stored\n%s", r.code, r.err, stored(), r.stderr)
			}
			if r := runCLI(t, base, "run", "--once"); r.code != exitConfig || !strings.Contains(r.err.Error(), "EXPORT_PSEUDONYMIZE changed") {
				t.Fatalf("record stored again, run in clear: exit %d, %v; want 2", r.code, r.err)
			}
			lose()
			if r := runCLI(t, base, "run", "--once", "--force"); r.code != 0 {
				t.Fatalf("rule lost, forced: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			got := privacyLedger(t, pool, dir)
			if len(got) != 3 || !strings.HasPrefix(got[0], "numbers|k:") || got[1] != got[0] || got[2] != "none||"+strings.ReplaceAll(strings.TrimSuffix(got[0], "|"), "|", " ") {
				t.Fatalf("ledger %q: want numbers twice, then none changed from numbers", got)
			}
		})
	}
}

// TestRedactorKeepsRunIDs is attack 6's F10: under pseudonymisation, an
// interrupted erasure's id (a run id: its UTC time, "Z-", 6 hex digits)
// was printed by check and each run's start with its date taken for a
// number (p:…T182442Z-736c54), an id found in neither the journal nor the
// ledger. Ids pass through, in text (check's lines, errors) and in the
// forget_id attribute; a number beside them is still replaced, and digits
// of an id's shape that are no date still are.
func TestRedactorKeepsRunIDs(t *testing.T) {
	t.Parallel()
	k, err := pseudonym.New([]byte(testKey1))
	if err != nil {
		t.Fatal(err)
	}
	r := &privacy.Redactor{Keys: k}
	const id = "20261207T182442Z-736c54"
	var buf bytes.Buffer
	slog.New(r.Handler(slog.NewJSONHandler(&buf, nil))).Warn("forget not completed", "forget_id", id, "search", "the number +39 333 1234567")
	for what, s := range map[string]string{
		"check's line": r.Text("WARN  forget        the erasure " + id + " begun 2026-12-07T18:24:42Z, searching +39 333 1234567, was interrupted"),
		"an error":     r.Error(fmt.Errorf("pruned under the limit of run %s, the number +39 333 1234567", id)).Error(),
		"the log":      buf.String(),
	} {
		if !strings.Contains(s, id) || strings.Contains(s, "1234567") || !strings.Contains(s, k.Number("+393331234567")) {
			t.Errorf("%s: want the id %s kept and the number as its pseudonym:\n%s", what, id, s)
		}
	}
	if s := r.Text("call 20261399T182442Z-736c54"); strings.Contains(s, "20261399") {
		t.Errorf("digits of a run id's shape that are no date kept: %s", s)
	}
}

// TestWorkerRunRefusedCountedFailed is attack 6's F11: a scheduled run
// refused by a privacy check under the PBX's lock (here the stored rule
// changed under the worker: another rule) logged "scheduled export
// failed" but was not counted in wildix_export_runs_total, which
// docs/deployment.md says to alert on. It is counted failed.
func TestWorkerRunRefusedCountedFailed(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 40})
	dir := t.TempDir()
	addr := freeAddr(t)
	env := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history", "EXPORT_SCHEDULE=@every 1s", "EXPORT_HTTP_ADDR="+addr,
		"EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
	cmd := exec.Command(binary, "run")
	cmd.Env = env
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	runs := func(outcome string) float64 {
		res, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return -1
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return parseMetrics(string(b))[`wildix_export_runs_total{outcome="`+outcome+`"}`]
	}
	eventually(t, "a first scheduled export", func() bool { return runs("ok") >= 1 }, stderr.String)
	files, _ := filepath.Glob(filepath.Join(dir, ".state", "*", ".privacy.json"))
	if len(files) != 1 {
		t.Fatalf("rule files %v, want one", files)
	}
	// As another process's forced change stores it: naming its run and
	// when it began, after the worker's files (a record naming neither
	// is taken for older than the manifests saying another rule: review
	// 27, R27-2).
	now := time.Now().UTC()
	rec := fmt.Sprintf(`{"rule":"numbers,names","key_id":"k:aaaaaaaa","changed":"numbers","run_id":%q,"run_started":%q}`, now.Format("20060102T150405Z")+"-abcdef", now.Format(time.RFC3339Nano))
	// Replaced atomically, as the sink does: a scheduled check reading a
	// half-written file would fail on a damaged record instead.
	if err := os.WriteFile(files[0]+".new", []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(files[0]+".new", files[0]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a refused scheduled export counted failed", func() bool { return runs("failed") >= 1 }, stderr.String)
	if !strings.Contains(stderr.String(), "EXPORT_PSEUDONYMIZE changed") {
		t.Fatalf("the refusal is not logged:\n%s", stderr.String())
	}
}

// dataFiles is every file of the CSV export folder dir but its state
// folder's, with its content: what a refused run must leave as it was.
func dataFiles(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".state" {
				return filepath.SkipDir
			}
			return nil
		}
		data, err := os.ReadFile(path)
		fmt.Fprintf(&b, "== %s\n%s\n", path, data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestPrivacyRuleLostWithTheStateFolder is attack 7's F9 and F8: a CSV
// folder whose whole .state (or .state/<pbx>) is lost took a run under
// another rule for a first export, exit 0, and wrote the rows in clear
// beside the pseudonymised ones (its run ledger, the only other witness,
// was in .state too); after `forget --allow-empty` on it, following the
// refusal's advice did the same. Now each data file's manifest carries
// the rule its rows were written under: the newest file's rule is the
// rows' (a forced change's files say the new one), a run under another
// is refused (exit 2) naming the file and writing nothing, one under it
// stores the record again. Files whose manifests carry no rule (an
// earlier release's), with the state lost, are refused under every rule
// until forced. `forget --allow-empty` on the folder is refused now
// (review 20, R20-2) and changes nothing. PostgreSQL's ledger is a table of its own: the PBX's
// whole export_state deleted, it still tells.
func TestPrivacyRuleLostWithTheStateFolder(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"state folder", "PBX's state folder", "forget --allow-empty after", "forced change before", "manifests without rule", "manifests without rule, forget --allow-empty after", "postgres"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			f := authorized(t, pbxsim.Options{Calls: 60})
			dir := t.TempDir()
			clear, pool := onSink(t, map[bool]string{true: "postgres"}[tc == "postgres"], fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues"))
			numbers := append(append([]string(nil), clear...), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
			if r := runCLI(t, numbers, "run", "--once"); r.code != 0 {
				t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			rows, rule, other := numbers, "numbers k:", clear
			if tc == "forced change before" {
				if r := runCLI(t, clear, "run", "--once", "--force"); r.code != 0 {
					t.Fatalf("forced run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
				}
				rows, rule, other = clear, "rule none", numbers
			}
			if strings.HasPrefix(tc, "manifests without rule") {
				mans, _ := filepath.Glob(filepath.Join(dir, "*", "*.manifest.json"))
				for _, m := range mans {
					b, _ := os.ReadFile(m)
					var v map[string]any
					if err := json.Unmarshal(b, &v); err != nil {
						t.Fatal(err)
					}
					delete(v, "privacy")
					delete(v, "run_started")
					b, _ = json.Marshal(v)
					if err := os.WriteFile(m, b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			switch tc {
			case "postgres":
				if _, err := pool.Exec(context.Background(), "DELETE FROM export_state"); err != nil {
					t.Fatal(err)
				}
			case "PBX's state folder":
				pbxes, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "runs.jsonl"))
				if len(pbxes) != 1 {
					t.Fatalf("PBX state folders %v, want one", pbxes)
				}
				if err := os.RemoveAll(filepath.Dir(pbxes[0])); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
					t.Fatal(err)
				}
			}
			if strings.HasSuffix(tc, "forget --allow-empty after") {
				d := simNumber(t, f.Sim, 60)
				// As one who does not know the folder was pseudonymised:
				// refused, the state lost (review 20, R20-2), changing
				// nothing.
				if r := runCLI(t, clear, "forget", "--number", "+"+d, "--allow-empty"); r.code != exitConfig || !strings.Contains(fmt.Sprint(r.err), "restore .state from a backup") {
					t.Fatalf("forget --allow-empty: exit %d: %v; want 2, the state lost\n%s%s", r.code, r.err, r.stdout, r.stderr)
				}
			}
			before := dataFiles(t, dir)
			r := runCLI(t, other, "run", "--once")
			if r.code != exitConfig {
				t.Fatalf("state lost, run under another rule: exit %d, %v; want 2\n%s", r.code, r.err, r.stderr)
			}
			want := []string{"is missing", "under rule " + strings.TrimPrefix(rule, "rule "), "the manifest of its newest data file", ".csv, says", "restore that record", "--force"}
			switch {
			case tc == "postgres":
				want = []string{"is missing", "run ledger says they are written under rule numbers k:", "--force"}
			case strings.HasPrefix(tc, "manifests without rule"):
				want = []string{"is not known", "state (", "data file(s) were written by a release whose manifests do not say the rule", "restore the state folder", "--force"}
			}
			for _, w := range want {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("state lost, run under another rule: %v; want it to say %q", r.err, w)
				}
			}
			if pool == nil && dataFiles(t, dir) != before {
				t.Fatal("the refused run changed the data files")
			}
			if strings.HasPrefix(tc, "manifests without rule") {
				if r := runCLI(t, rows, "run", "--once"); r.code != exitConfig || !strings.Contains(r.err.Error(), "is not known") {
					t.Fatalf("no rule told, run under the rows' rule: exit %d, %v; want 2, not known", r.code, r.err)
				}
				if r := runCLI(t, rows, "run", "--once", "--force"); r.code != 0 {
					t.Fatalf("no rule told, forced: exit %d: %v\n%s", r.code, r.err, r.stderr)
				}
				if got := privacyLedger(t, pool, dir); len(got) != 1 || !strings.HasPrefix(got[0], "numbers|k:") || !strings.HasSuffix(got[0], "|unknown") {
					t.Fatalf("ledger %q: want numbers, changed from unknown", got)
				}
			} else if r := runCLI(t, rows, "run", "--once"); r.code != 0 || !strings.Contains(r.stderr, "record of the pseudonymisation rule the PBX's rows are written under is missing") {
				t.Fatalf("state lost, run under the rows' rule: exit %d: %v; want 0 and a warning\n%s", r.code, r.err, r.stderr)
			}
			if r := runCLI(t, other, "run", "--once"); r.code != exitConfig || !strings.Contains(r.err.Error(), "EXPORT_PSEUDONYMIZE changed: the") {
				t.Fatalf("record stored again, run under another rule: exit %d, %v; want 2 as a change", r.code, r.err)
			}
		})
	}
}

// TestPrivacyRuleLostAfterRewriteInPlace is review 20's R20-1: with no
// snapshot endpoint (call_history, recordings), a forced change to
// numbers with no new call writes no data file, and the forced backfill
// then pseudonymises every row in place; each manifest kept the rule
// its file was first written under, none. With only the rule's record
// lost, the newest manifest (none) was taken over the ledger (numbers):
// the run under numbers was refused and told to set none; with the whole
// state lost, a run in clear was accepted (exit 0). Now a rewrite under
// a run's rule stamps that rule, and the run's start, in each manifest
// it rewrites, and the ledger, when it survives, is weighed against the
// manifests by which run is later: the run in clear is refused (exit 2)
// and the run under numbers accepted, in both losses. The same with a
// PBX paging call_history by time, whose forced run updated the rows in
// place so that the backfill's rewrite changed none: the rewrite stamps
// each file it read whole and found under the rule.
func TestPrivacyRuleLostAfterRewriteInPlace(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ setup, lose string }{
		{"recordings", "record"}, {"recordings", "state folder"}, {"paged by time", "record"}, {"paged by time", "state folder"},
	} {
		t.Run(tc.setup+", "+tc.lose, func(t *testing.T) {
			t.Parallel()
			lose := tc.lose
			const calls = 60
			start := time.Now().UTC().Add(-calls * time.Minute).Add(-3 * time.Hour)
			opt := pbxsim.Options{Calls: calls, CallGap: time.Minute, CallsStart: start,
				APIKeys: []string{recToken}, Recordings: pbxsim.RecordingOptions{Every: 10, BytesPerSecond: 40}}
			if tc.setup == "paged by time" {
				// A PBX ignoring filter[id]: call_history is read by time,
				// and the forced run updates the look-back's rows in place
				// (numbers replaced), the rest of each file in clear.
				opt = pbxsim.Options{Calls: calls, CallGap: time.Minute, CallsStart: start, IgnoreFilter: []string{"id"}}
			}
			f := authorized(t, opt)
			rome, _ := time.LoadLocation("Europe/Rome")
			from, to := start.In(rome).AddDate(0, 0, -1).Format("2006-01-02"), time.Now().In(rome).AddDate(0, 0, 2).Format("2006-01-02")
			dir := t.TempDir()
			clear := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,recordings", "EXPORT_RECORDINGS_STORE=dir",
				"EXPORT_RECORDINGS_DIR="+t.TempDir(), "WILDIX_RECORDINGS_TOKEN="+recToken)
			if tc.setup == "paged by time" {
				clear = fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history")
			}
			numbers := append(append([]string(nil), clear...), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
			if r := runCLI(t, clear, "run", "--once"); r.code != 0 {
				t.Fatalf("run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			files := dataFiles(t, dir)
			if r := runCLI(t, numbers, "run", "--once", "--force"); r.code != 0 {
				t.Fatalf("forced run: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			if tc.setup == "recordings" && dataFiles(t, dir) != files {
				t.Fatal("the forced run with no new call wrote a data file: the case is not the review's")
			}
			if r := runCLI(t, numbers, "backfill", "--from", from, "--to", to, "--force", "--rewrite"); r.code != 0 {
				t.Fatalf("forced backfill: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			d := simNumber(t, f.Sim, calls)
			if strings.Contains(dumpDir(t, dir), d) {
				t.Fatalf("number %s still in clear after the forced backfill", d)
			}
			if lose == "record" {
				ps, _ := filepath.Glob(filepath.Join(dir, ".state", "*", ".privacy.json"))
				if len(ps) != 1 {
					t.Fatalf("rule files %v, want one", ps)
				}
				if err := os.Remove(ps[0]); err != nil {
					t.Fatal(err)
				}
			} else if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
				t.Fatal(err)
			}
			before := dataFiles(t, dir)
			r := runCLI(t, clear, "run", "--once")
			if r.code != exitConfig || !strings.Contains(r.err.Error(), "under rule numbers k:") {
				t.Fatalf("rule lost, run in clear: exit %d, %v; want 2, the rows under numbers", r.code, r.err)
			}
			if dataFiles(t, dir) != before || strings.Contains(dataFiles(t, dir), d) {
				t.Fatal("the refused run changed the data files")
			}
			if r := runCLI(t, numbers, "run", "--once"); r.code != 0 {
				t.Fatalf("rule lost, run under numbers: exit %d: %v; want 0\n%s", r.code, r.err, r.stderr)
			}
		})
	}
}
