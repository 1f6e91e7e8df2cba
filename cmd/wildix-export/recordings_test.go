package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/simtest"
	"github.com/wildix-export/wildix-export/sinks"
	"github.com/wildix-export/wildix-export/sinks/recstore"
	"github.com/wildix-export/wildix-export/sinks/recstore/recstoretest"
)

// recToken is the simulated PBX's Simple Token in these tests.
const recToken = "access_rec-test-token"

// recPBX is a simulator with recordings over the last span, authorized
// with OAuth (whose token does not fetch files).
func recPBX(t *testing.T, calls int64, span time.Duration, o pbxsim.RecordingOptions) *simtest.Fixture {
	t.Helper()
	gap := span / time.Duration(calls)
	if o.Every == 0 {
		o.Every = 10
	}
	if o.BytesPerSecond == 0 {
		o.BytesPerSecond = 200
	}
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: gap, CallsStart: time.Now().UTC().Add(-span), APIKeys: []string{recToken, "access_other-user"}, Recordings: o})
	f.Authorize(t)
	return f
}

// ledgerLine writes a CSV run ledger line of a recordings run of pbx.
func ledgerLine(t *testing.T, dir, pbx string, started time.Time, failed bool) {
	t.Helper()
	state := filepath.Join(dir, ".state", "ledger-test")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	ep := map[string]any{"endpoint": "recordings", "rows": 3}
	if failed {
		ep["error"] = "copy recording: 500"
	}
	b, _ := json.Marshal(map[string]any{"run_id": fmt.Sprint(started.Unix()), "mode": "once", "pbx": pbx, "started": started, "ended": started.Add(time.Minute),
		"status": "ok", "endpoints": []any{map[string]any{"endpoint": "call_history"}, ep}})
	f, err := os.OpenFile(filepath.Join(state, "runs.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(append(b, '\n'))
}

// TestCLICheckRecordings: check's recordings lines over HTTP on loopback:
// off without a store; the store, a file listed and fetched and the token
// it was fetched with; a token the PBX refuses (FAIL, exit 1, naming the
// token to create); and the warnings (WARN, exit 0) when copying falls
// behind: more than 3 days between successful recordings runs in the run
// ledger, none for more than 3 days, the last run failed, runs tried and
// none successful, a recording older than 5 days not yet copied. Times
// are printed with their zone (WILDIX_TIMEZONE=Europe/Rome: CET).
func TestCLICheckRecordings(t *testing.T) {
	t.Parallel()
	now := time.Now()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	at := func(t time.Time) string { return t.In(rome).Format("2006-01-02 15:04 MST") }
	for _, tc := range []struct {
		name   string
		span   time.Duration
		env    []string
		ledger []time.Time // successful recordings runs
		failed []time.Time // failed ones
		code   int
		lines  []string
		never  []string
	}{
		{name: "off", env: []string{}, lines: []string{"ok    recordings    off: EXPORT_RECORDINGS_STORE=none"}},
		{name: "a file fetched", env: []string{"WILDIX_RECORDINGS_TOKEN=" + recToken},
			lines: []string{"ok    recordings    store folder ", "ok    recordings    files: ", "fetched with WILDIX_RECORDINGS_TOKEN",
				"ok    recordings    run ledger: no recordings run in the last 30 days"}, never: []string{"WARN"}},
		{name: "the API key a Simple Token", env: []string{"WILDIX_API_KEY=" + recToken, "WILDIX_CLIENT_ID=", "WILDIX_CLIENT_SECRET="},
			lines: []string{"fetched with WILDIX_API_KEY"}},
		{name: "token refused", env: []string{"WILDIX_RECORDINGS_TOKEN=access_not-known-to-the-pbx"}, code: exitFailed,
			lines: []string{"FAIL  recordings", "could not be fetched with WILDIX_RECORDINGS_TOKEN", "401", "Simple Token created for an admin user"},
			never: []string{"access_not-known-to-the-pbx"}},
		{name: "runs 4 days apart", env: []string{"WILDIX_RECORDINGS_TOKEN=" + recToken}, ledger: []time.Time{now.Add(-5 * 24 * time.Hour), now.Add(-24 * time.Hour)},
			lines: []string{"WARN  recordings    run ledger: 4.0 days between successful recordings runs (" + at(now.Add(-5*24*time.Hour)) + " to " + at(now.Add(-24*time.Hour)) + ")"}},
		{name: "runs a day apart, an earlier one failed", env: []string{"WILDIX_RECORDINGS_TOKEN=" + recToken},
			ledger: []time.Time{now.Add(-50 * time.Hour), now.Add(-26 * time.Hour), now.Add(-2 * time.Hour)}, failed: []time.Time{now.Add(-25 * time.Hour)},
			lines: []string{"ok    recordings    run ledger: 3 successful recordings run(s) in the last 30 days, the last started " + at(now.Add(-2*time.Hour))},
			never: []string{"WARN"}},
		{name: "the last run failed", env: []string{"WILDIX_RECORDINGS_TOKEN=" + recToken},
			ledger: []time.Time{now.Add(-26 * time.Hour)}, failed: []time.Time{now.Add(-time.Hour)},
			lines: []string{"WARN  recordings    run ledger: the last recordings run started " + at(now.Add(-time.Hour)) + " and failed: copy recording: 500 (the last successful one started " + at(now.Add(-26*time.Hour)) + ")"}},
		{name: "no run successful", env: []string{"WILDIX_RECORDINGS_TOKEN=" + recToken}, failed: []time.Time{now.Add(-50 * time.Hour), now.Add(-time.Hour)},
			lines: []string{"WARN  recordings    run ledger: 2 recordings run(s) in the last 30 days, none successful; the last started " + at(now.Add(-time.Hour)) + " and failed: copy recording: 500"}},
		{name: "falling behind", span: 8 * 24 * time.Hour, env: []string{"WILDIX_RECORDINGS_TOKEN=" + recToken}, ledger: []time.Time{now.Add(-6 * 24 * time.Hour)},
			failed: []time.Time{now.Add(-time.Hour)},
			lines: []string{"WARN  recordings    falling behind: a recording from ", " CET is not copied yet (older than 5 days",
				"WARN  recordings    run ledger: no successful recordings run for 6.0 days (the last started " + at(now.Add(-6*24*time.Hour)) + ")"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			span := tc.span
			if span == 0 {
				span = 3 * time.Hour
			}
			f := recPBX(t, 400, span, pbxsim.RecordingOptions{})
			dir, store := t.TempDir(), t.TempDir()
			kv := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history")
			if tc.name != "off" {
				kv = append(kv, "EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR="+store)
			}
			for _, at := range tc.ledger {
				ledgerLine(t, dir, f.URL.Host, at, false)
			}
			for _, at := range tc.failed {
				ledgerLine(t, dir, f.URL.Host, at, true)
			}
			ledgerLine(t, dir, "another-pbx", now.Add(-time.Hour), false)
			ledgerLine(t, dir, "another-pbx", now.Add(-time.Minute), true)
			r := runCLI(t, append(kv, tc.env...), "check")
			if r.code != tc.code {
				t.Fatalf("check: exit %d, want %d: %v\n%s%s", r.code, tc.code, r.err, r.stdout, r.stderr)
			}
			for _, l := range tc.lines {
				if !strings.Contains(r.stdout, l) {
					t.Errorf("check's output lacks %q:\n%s", l, r.stdout)
				}
			}
			for _, l := range tc.never {
				if strings.Contains(r.stdout+r.stderr, l) {
					t.Errorf("check's output shows %q:\n%s%s", l, r.stdout, r.stderr)
				}
			}
			if entries, _ := os.ReadDir(store); len(entries) != 0 {
				t.Errorf("check wrote %d entries in the store", len(entries))
			}
		})
	}
}

// TestCLIRecordingsConfigErrors: the recordings settings' problems are
// configuration errors (exit 2) listed together at start, each naming the
// variable, its value unless secret, and what to do.
func TestCLIRecordingsConfigErrors(t *testing.T) {
	t.Parallel()
	base := []string{"WILDIX_PBX_URL=https://pbx.example", "WILDIX_CLIENT_ID=id", "WILDIX_CLIENT_SECRET=s"}
	for _, tc := range []struct {
		name  string
		env   []string
		want  []string
		never string
	}{
		{"no token", []string{"EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR=" + os.TempDir()},
			[]string{"WILDIX_RECORDINGS_TOKEN: required with EXPORT_RECORDINGS_STORE=dir", "WMS (PBX > Integrations > Applications > Simple Token)"}, ""},
		{"store misspelt", []string{"EXPORT_RECORDINGS_STORE=folder"}, []string{`EXPORT_RECORDINGS_STORE="folder": expected one of none, dir, s3`}, ""},
		{"recordings named without a store", []string{"EXPORT_ENDPOINTS=recordings"}, []string{"EXPORT_ENDPOINTS names recordings, which needs a store"}, ""},
		{"folder missing and a company key", []string{"EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR=/nope/rec", "WILDIX_RECORDINGS_TOKEN=wsk-v1-hidden"},
			[]string{`EXPORT_RECORDINGS_DIR="/nope/rec": no such folder`, "WILDIX_RECORDINGS_TOKEN: is a company key"}, "hidden"},
		{"S3 half set", []string{"EXPORT_RECORDINGS_STORE=s3", "WILDIX_RECORDINGS_TOKEN=access_x", "EXPORT_RECORDINGS_S3_ENDPOINT=http://minio.lan:9000",
			"EXPORT_RECORDINGS_S3_SECRET_KEY=very-secret"},
			[]string{"EXPORT_RECORDINGS_S3_ENDPOINT=\"http://minio.lan:9000\": plain http://", "EXPORT_RECORDINGS_S3_BUCKET: required", "EXPORT_RECORDINGS_S3_ACCESS_KEY: required"}, "very-secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, cmd := range [][]string{{"run", "--once"}, {"check"}, {"config"}} {
				r := runCLI(t, append(append([]string{}, base...), tc.env...), cmd...)
				out := r.stdout + r.stderr + fmt.Sprint(r.err)
				if r.code != exitConfig {
					t.Fatalf("%v: exit %d, want %d: %s", cmd, r.code, exitConfig, out)
				}
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Errorf("%v: lacks %q:\n%s", cmd, w, out)
					}
				}
				if tc.never != "" && strings.Contains(out, tc.never) {
					t.Errorf("%v: shows %q:\n%s", cmd, tc.never, out)
				}
			}
		})
	}
}

// TestStoredPBX: every PBX id becomes a name recstore accepts, the same
// each time; an id recstore accepts is kept as it is; and different ids
// never share a folder (rec-attack 1: 127.0.0.1:18081 and 127.0.0.1_18081
// overwrote each other's recordings), including ids that differ only past
// the cut, and a kept id that looks like another's marked folder.
func TestStoredPBX(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("p", 100)
	for in, want := range map[string]string{
		"acme.wildixin.com": "acme.wildixin.com", "127.0.0.1_18081": "127.0.0.1_18081", "pbx-rec": "pbx-rec", "a_b": "a_b",
	} {
		if got := storedPBX(in); got != want {
			t.Errorf("storedPBX(%q) = %q, want %q (kept)", in, got, want)
		}
	}
	for in, readable := range map[string]string{
		"127.0.0.1:18081": "127.0.0.1_18081-", ".hidden": "_hidden-", "a/b\x00c": "a_b_c-", "été": "__t__-", "a b": "a_b-",
	} {
		if got := storedPBX(in); !strings.HasPrefix(got, readable) || len(got) != len(readable)+12 {
			t.Errorf("storedPBX(%q) = %q, want %q and 12 hex digits", in, got, readable)
		}
	}
	marked := storedPBX("127.0.0.1:18081")
	ids := []string{"127.0.0.1:18081", "127.0.0.1_18081", "Zürich", "Zärich", "a b", "a_b", "a:b", "", ".a", "_a",
		marked, storedPBX(marked), long, long + "x", long + "y", strings.Repeat("p", 90), strings.Repeat("p", 91),
		"host:1", strings.Repeat("é", 60), strings.Repeat("è", 60)}
	seen := map[string]string{}
	for _, id := range ids {
		got := storedPBX(id)
		if _, err := recstore.Name(got, time.Now(), "1"); err != nil {
			t.Errorf("storedPBX(%q) = %q: %v", id, got, err)
		}
		if got != storedPBX(id) {
			t.Errorf("storedPBX(%q) differs from one call to the next", id)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("storedPBX(%q) = storedPBX(%q) = %q: two PBXs in one folder", id, other, got)
		}
		seen[got] = id
	}
	if len(storedPBX(long)) != 90 {
		t.Errorf("storedPBX(long) = %q: %d bytes, want 90", storedPBX(long), len(storedPBX(long)))
	}
}

// TestCLIRecordingsStoreErrors: a bucket that does not open at start, on a
// real S3-compatible server (versitygw), is a configuration error (exit 2)
// saying what to set, the secret never shown (rec-attack 5): no such
// bucket, a wrong secret, and path-style off (the bucket looked up as a
// host name, which does not resolve); a server that does not answer may
// be down for a while: exit 1. check's store line says the same.
func TestCLIRecordingsStoreErrors(t *testing.T) {
	t.Parallel()
	srv := recstoretest.Start(t)
	down := "http://" + closedPort(t)
	f := recPBX(t, 20, time.Hour, pbxsim.RecordingOptions{})
	for _, tc := range []struct {
		name string
		env  []string
		code int
		want []string
	}{
		{"no such bucket", []string{"EXPORT_RECORDINGS_S3_BUCKET=not-there"}, exitConfig,
			[]string{"not-there", "no such bucket", "set EXPORT_RECORDINGS_S3_BUCKET to an existing bucket"}},
		{"wrong secret", []string{"EXPORT_RECORDINGS_S3_SECRET_KEY=wrong-secret-4711"}, exitConfig,
			[]string{"check EXPORT_RECORDINGS_S3_ACCESS_KEY and EXPORT_RECORDINGS_S3_SECRET_KEY"}},
		{"path-style off", []string{"EXPORT_RECORDINGS_S3_PATH_STYLE=false"}, exitConfig,
			[]string{"set EXPORT_RECORDINGS_S3_PATH_STYLE=true"}},
		{"server down", []string{"EXPORT_RECORDINGS_S3_ENDPOINT=" + down}, exitFailed,
			[]string{"is the server at EXPORT_RECORDINGS_S3_ENDPOINT up?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := fixtureEnv(f, t.TempDir(), "EXPORT_ENDPOINTS=recordings", "WILDIX_RECORDINGS_TOKEN="+recToken,
				"EXPORT_RECORDINGS_STORE=s3", "EXPORT_RECORDINGS_S3_ENDPOINT="+srv.Endpoint, "EXPORT_RECORDINGS_S3_BUCKET="+srv.Bucket,
				"EXPORT_RECORDINGS_S3_REGION="+srv.Region, "EXPORT_RECORDINGS_S3_PATH_STYLE=true",
				"EXPORT_RECORDINGS_S3_ACCESS_KEY="+srv.AccessKey, "EXPORT_RECORDINGS_S3_SECRET_KEY="+srv.SecretKey)
			env = append(env, tc.env...)
			r := runCLI(t, env, "run", "--once")
			out := r.stdout + r.stderr + fmt.Sprint(r.err)
			if r.code != tc.code {
				t.Fatalf("run --once: exit %d, want %d: %s", r.code, tc.code, out)
			}
			c := runCLI(t, env, "check")
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("run --once: lacks %q:\n%s", w, out)
				}
				if !strings.Contains(c.stdout, w) {
					t.Errorf("check: lacks %q:\n%s", w, c.stdout)
				}
			}
			if !strings.Contains(c.stdout, "FAIL  recordings") {
				t.Errorf("check: no FAIL line for the store:\n%s", c.stdout)
			}
			for _, s := range []string{"wrong-secret-4711", srv.SecretKey} {
				if strings.Contains(out+c.stdout+c.stderr, s) {
					t.Errorf("the secret %q is shown:\n%s%s", s, out, c.stdout)
				}
			}
		})
	}
}

// closedPort is a loopback address nothing listens on (a port taken and
// let go).
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestCLIBackfillRefusesRecordings: backfill --endpoints recordings is a
// configuration error saying why (the nightly run copies recordings),
// before the PBX is contacted; it was refused as "a snapshot".
func TestCLIBackfillRefusesRecordings(t *testing.T) {
	t.Parallel()
	r := runCLI(t, []string{"WILDIX_PBX_URL=https://pbx.example", "WILDIX_CLIENT_ID=id", "WILDIX_CLIENT_SECRET=s", "EXPORT_CSV_DIR=" + t.TempDir(),
		"EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR=" + t.TempDir(), "WILDIX_RECORDINGS_TOKEN=" + recToken},
		"backfill", "--from", "2026-01-01", "--to", "2026-01-02", "--endpoints", "call_history,recordings")
	out := r.stdout + r.stderr + fmt.Sprint(r.err)
	if r.code != exitConfig || !strings.Contains(out, "--endpoints recordings: recordings are not backfilled") {
		t.Errorf("backfill --endpoints recordings: exit %d, want %d saying why: %s", r.code, exitConfig, out)
	}
}

// TestCLICheckRefusedPathPseudonymised: under pseudonymisation, check
// prints a refused recording path with its numbers replaced, as run
// stores and logs it, never in clear (attack 1, A3: the list moved every
// path out of /spoolview/recordings/).
func TestCLICheckRefusedPathPseudonymised(t *testing.T) {
	t.Parallel()
	span := 3 * time.Hour
	o := pbxsim.Options{Calls: 400, CallGap: span / 400, CallsStart: time.Now().UTC().Add(-span), APIKeys: []string{recToken},
		Recordings: pbxsim.RecordingOptions{Every: 10, BytesPerSecond: 200}}
	o.Rewrite = func(r *http.Request, status int, body []byte) (int, []byte) {
		if !strings.HasPrefix(r.URL.Path, "/api/v1/PBX/recordings") {
			return status, body
		}
		return status, bytes.ReplaceAll(body, []byte("/spoolview/recordings/"), []byte("/spoolview/nothere/recordings/"))
	}
	f := simtest.New(t, o)
	f.Authorize(t)
	var numbers []string
	for _, r := range f.Sim.Recordings() {
		if len(r.Number) > 6 {
			numbers = append(numbers, strings.TrimPrefix(strings.TrimPrefix(r.Number, "+"), "00"))
		}
	}
	if len(numbers) == 0 {
		t.Fatal("the simulator's recordings hold no external number")
	}
	kv := fixtureEnv(f, t.TempDir(), "EXPORT_ENDPOINTS=call_history", "EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR="+t.TempDir(),
		"WILDIX_RECORDINGS_TOKEN="+recToken, "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY=check-test-key-0123456789abcdefghij")
	r := runCLI(t, kv, "check")
	if r.code != exitFailed || !strings.Contains(r.stdout, "FAIL  recordings") || !strings.Contains(r.stdout, "refused") {
		t.Fatalf("check: exit %d, want %d with the path refused:\n%s%s", r.code, exitFailed, r.stdout, r.stderr)
	}
	for _, n := range numbers {
		if strings.Contains(r.stdout+r.stderr, n) {
			t.Fatalf("check's output holds number %s in clear:\n%s%s", n, r.stdout, r.stderr)
		}
	}
}

// TestCLIRecordingsPathOnlyKeyed: recordings the PBX lists without an id
// (known by their path, which holds the caller's number) are stored, and
// their rows keyed, under "k-" and a keyed hash of the path: with the
// PBX's own random key, kept with the CSV folder's suppression list
// (sealed with the pseudonym key under pseudonymisation), made by the
// first run and kept
// (attack 1, A1: an unkeyed sha256 of the path let anyone confirm the
// number by trying the extensions). No stored name holds a number.
func TestCLIRecordingsPathOnlyKeyed(t *testing.T) {
	t.Parallel()
	const pkey = "path-only-test-key-0123456789abcdefgh"
	for _, rule := range []string{"none", "numbers"} {
		t.Run(rule, func(t *testing.T) {
			t.Parallel()
			f := recPBX(t, 300, 3*time.Hour, pbxsim.RecordingOptions{Fields: "bare"})
			dir, store := t.TempDir(), t.TempDir()
			kv := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=recordings", "EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR="+store,
				"WILDIX_RECORDINGS_TOKEN="+recToken, "EXPORT_PSEUDONYMIZE="+rule)
			if rule != "none" {
				kv = append(kv, "EXPORT_PSEUDONYM_KEY="+pkey)
			}
			for run := 0; run < 2; run++ {
				if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
					t.Fatalf("run %d: exit %d\n%s%s", run, r.code, r.stdout, r.stderr)
				}
			}
			// The PBX's key as the folder keeps it: in clear, or sealed
			// with the pseudonym key.
			pk, err := pseudonym.New([]byte(pkey))
			if err != nil {
				t.Fatal(err)
			}
			o := sinks.IDKeyOptions{PBX: f.URL.Host, Ruled: true}
			if rule != "none" {
				o.Pseudonymize, o.Key, o.WrittenUnder = true, []byte(pkey), pk.KeyID()
			}
			s, _ := sinks.NewCSV(sinks.CSVOptions{Dir: dir})
			key, err := s.SuppressionKey(context.Background(), o)
			if err != nil || key == nil || key.KeyID() == pk.KeyID() {
				t.Fatalf("the folder's key of recordings' ids: %v, %v: want the PBX's own", key, err)
			}
			want := map[string]bool{}
			for _, r := range f.Sim.Recordings() {
				name, err := recstore.Name(storedPBX(f.URL.Host), r.Start.UTC(), recordings.StoredID(recordings.Recording{Path: r.Path, IDKey: key}))
				if err != nil {
					t.Fatal(err)
				}
				want[name] = true
			}
			got := dirFiles(t, store)
			if len(got) != len(want) {
				t.Errorf("%d files stored, want %d", len(got), len(want))
			}
			for name := range got {
				if !want[name] {
					t.Errorf("stored %s: not the keyed name of a recording's path", name)
				}
				if id := filepath.Base(name); !strings.HasPrefix(id, "k-") || strings.ContainsAny(id, "0189") {
					t.Errorf("stored name %s: want k- and a keyed hash (base32: no 0, 1, 8 or 9)", name)
				}
			}
		})
	}
}

// TestCLICheckPendingRemoval: check warns of the files of recordings not
// kept that the recordings state holds pending removal (brief
// recordings, item 4), naming the first and why, exit 0; with none it
// says nothing of them. Both sinks: the CSV state is read as its file
// holds it (check completes no crashed commit).
func TestCLICheckPendingRemoval(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"postgres", "csv"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := recPBX(t, 20, time.Hour, pbxsim.RecordingOptions{})
			store := dirStore(t)
			extra := append([]string{"EXPORT_ENDPOINTS=call_history,recordings", "WILDIX_RECORDINGS_TOKEN=" + recToken}, store.env...)
			csvDir := t.TempDir()
			env := simEnv(f, csvDir, extra...)
			var pool *pgxpool.Pool
			if kind == "postgres" {
				env, pool, _ = pgEnv(t, f, extra...)
			}
			if r := runCLI(t, env, "run", "--once"); r.code != exitOK {
				t.Fatalf("run --once: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			if r := runCLI(t, env, "check"); r.code != exitOK || strings.Contains(r.stdout, "pending removal") {
				t.Fatalf("check with none pending: exit %d, want 0 and no line of files pending removal:\n%s", r.code, r.stdout)
			}
			const name = "pbx-rec/2026/01/02/k-abcdefghijklmnop.wav"
			pending := map[string]any{"k-abcdefghijklmnop": map[string]any{"wall": "2026-01-02 10:00:00", "names": []string{name},
				"why": "the recording's file could not be fetched from the PBX to compare: the PBX answered 500 Internal Server Error"}}
			withPending := func(b []byte) []byte {
				var st map[string]any
				if err := json.Unmarshal(b, &st); err != nil {
					t.Fatal(err)
				}
				st["pending"] = pending
				b, err := json.Marshal(st)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			if pool != nil {
				var b []byte
				if err := pool.QueryRow(ctx, "SELECT state FROM export_state WHERE key = 'recordings'").Scan(&b); err != nil {
					t.Fatal(err)
				}
				if _, err := pool.Exec(ctx, "UPDATE export_state SET state = $1 WHERE key = 'recordings'", withPending(b)); err != nil {
					t.Fatal(err)
				}
			} else {
				files, _ := filepath.Glob(filepath.Join(csvDir, ".state", "*", "recordings.json"))
				if len(files) != 1 {
					t.Fatalf("recordings state files: %q; want one", files)
				}
				b, err := os.ReadFile(files[0])
				if err != nil {
					t.Fatal(err)
				}
				var cs map[string]json.RawMessage
				if err := json.Unmarshal(b, &cs); err != nil {
					t.Fatal(err)
				}
				cs["state"] = withPending(cs["state"])
				if b, err = json.Marshal(cs); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(files[0], b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r := runCLI(t, env, "check")
			if l := "WARN  recordings    store: 1 file(s) of recordings not kept (a number forgotten, older than EXPORT_RETENTION) pending removal, kept for want of proof (first: " + name + ": the recording's file could not be fetched from the PBX to compare: the PBX answered 500"; r.code != exitOK || !strings.Contains(r.stdout, l) {
				t.Errorf("check with a file pending removal: exit %d, want 0 and the line %q:\n%s", r.code, l, r.stdout)
			}
		})
	}
}
