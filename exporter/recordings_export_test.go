package exporter_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/sinks/recstore"
	"github.com/wildix-export/wildix-export/sinks/recstore/recstoretest"
)

// The recordings tests: the simulator over HTTP (list and files), the
// directory store on the real file system, the CSV sink and PostgreSQL.

const recToken = "access_simple-token-of-admin-rec1"

// recordingsEndpoint is the catalog's recordings endpoint.
func recordingsEndpoint(t *testing.T) record.Endpoint {
	t.Helper()
	c, err := record.NewCatalog(record.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	eps, err := c.Select([]string{"recordings"})
	if err != nil {
		t.Fatal(err)
	}
	return eps[0]
}

// recEnv is a simulator with recordings behind front, an exporter to a
// sink of kind ("csv" or "postgres") and a directory store.
type recEnv struct {
	sim      *pbxsim.Sim
	x        *exporter.Exporter
	csvDir   string // with csv
	rows     func(t *testing.T) map[string][]string
	storeDir string
	ep       record.Endpoint
	pool     *pgxpool.Pool        // with postgres
	s3       *recstoretest.Server // with an S3 store ("<sink>/s3")
	s3opt    recstore.S3Options   // the store's options, with s3
}

// recSetup starts it. front, when set, may answer a request itself.
func recSetup(t *testing.T, o pbxsim.Options, kind string, front func(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool) *recEnv {
	t.Helper()
	o.APIKeys = append(o.APIKeys, recToken, "wsk-v1-test")
	if o.Calls == 0 {
		o.Calls = 200
	}
	if o.Recordings.Every == 0 {
		o.Recordings.Every = 3
	}
	if o.Recordings.BytesPerSecond == 0 {
		o.Recordings.BytesPerSecond = 50
	}
	sim := pbxsim.New(o)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if front == nil || !front(sim, w, r) {
			sim.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	sinkKind, s3, _ := strings.Cut(kind, "/") // "csv/s3": the CSV sink, an S3 store (versitygw)
	sink, dir, pool := openSink(t, sinkKind)
	c := &pbx.Client{HTTP: &http.Client{Transport: &auth.Transport{Source: auth.Static("wsk-v1-test")}}, Base: u,
		MaxAttempts: 3, Timeout: time.Minute, MinBackoff: 5 * time.Millisecond}
	storeDir := t.TempDir()
	var store recordings.Store
	var s3srv *recstoretest.Server
	var s3opt recstore.S3Options
	if s3 == "s3" {
		// The gateway serves a folder: an object's file is
		// Root/<bucket>/<key>, read as the directory store's.
		s3srv = recstoretest.Start(t)
		s3opt = recstore.S3Options{Endpoint: s3srv.Endpoint, Region: s3srv.Region, Bucket: s3srv.Bucket,
			Prefix: "rec/", PathStyle: true, AccessKey: s3srv.AccessKey, SecretKey: s3srv.SecretKey}
		st, err := recstore.OpenS3(context.Background(), s3opt)
		if err != nil {
			t.Fatal(err)
		}
		store, storeDir = st, filepath.Join(s3srv.Root, s3srv.Bucket, "rec")
	} else if store, err = recstore.OpenDir(storeDir, recstore.DirOptions{}); err != nil {
		t.Fatal(err)
	}
	x := &exporter.Exporter{Client: c, Sink: sink, PBX: "pbx", Zone: rome, PageSize: 20, Concurrency: 2, BatchSize: 15, MaxPages: 10000,
		Recordings: &recordings.Copier{Spool: &recordings.Spool{Origin: u, Token: recToken, MinBackoff: time.Millisecond, MaxAttempts: 3},
			Store: store, PBX: "pbx", Concurrency: 3}, RecordingsKey: testRecordingsKey(t)}
	e := &recEnv{sim: sim, x: x, csvDir: dir, storeDir: storeDir, ep: recordingsEndpoint(t), pool: pool, s3: s3srv, s3opt: s3opt}
	e.rows = func(t *testing.T) map[string][]string { return csvRecordingRows(t, dir) }
	if pool != nil {
		e.rows = func(t *testing.T) map[string][]string {
			t.Helper()
			out := map[string][]string{}
			rows, err := pool.Query(context.Background(), `SELECT recording, coalesce(sha256, ''), coalesce(object, ''), status,
coalesce(file_name, ''), hostile::text, coalesce(call_id::text, '') FROM recordings WHERE pbx = 'pbx'`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				v := make([]string, 7)
				if err := rows.Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]); err != nil {
					t.Fatal(err)
				}
				if _, dup := out[v[0]]; dup {
					t.Errorf("recording %s has two rows", v[0])
				}
				out[v[0]] = v[1:]
			}
			return out
		}
	}
	return e
}

// csvRecordingRows reads the committed recordings CSV files: by the
// recording column, sha256, object, status, file_name, hostile, call_id.
func csvRecordingRows(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "recordings", "*.csv"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		col := map[string]int{}
		for i, n := range recs[0] {
			col[n] = i
		}
		for _, r := range recs[1:] {
			key := r[col["recording"]]
			if _, dup := out[key]; dup {
				t.Errorf("recording %s has two rows", key)
			}
			out[key] = []string{r[col["sha256"]], r[col["object"]], r[col["status"]], r[col["file_name"]], r[col["hostile"]], r[col["call_id"]]}
		}
	}
	return out
}

func (e *recEnv) run(t *testing.T) exporter.EndpointResult {
	t.Helper()
	r := e.x.Run(context.Background(), exporter.NewRunID(time.Now()), "once", []record.Endpoint{e.ep})
	return r.Endpoints[0]
}

// checkStore: every recording of the simulator not vanished is in the
// store exactly once with its bytes' sha256, and has its row; nothing
// else is in the store (no partial file under any name).
func (e *recEnv) checkStore(t *testing.T) {
	t.Helper()
	stored := map[string]string{}
	filepath.WalkDir(e.storeDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(e.storeDir, p)
			stored[filepath.ToSlash(rel)] = fileSHA256(t, p)
		}
		return nil
	})
	rows := e.rows(t)
	want := 0
	for _, r := range e.sim.Recordings() {
		id := recordings.StoredID(recordings.Recording{ID: idOf(e, r), Path: r.Path, IDKey: testRecordingsKey(t)})
		name, _ := recstore.Name("pbx", r.Start.UTC(), id)
		row, ok := rows[id]
		switch {
		case !ok:
			t.Errorf("recording %d (%s): no row", r.ID, id)
			continue
		case row[5] != itoa(r.CallID):
			t.Errorf("recording %d: call_id %q, want %d", r.ID, row[5], r.CallID)
		}
		switch {
		case r.Vanished:
			if row[2] != "vanished" {
				t.Errorf("recording %d vanished: status %q", r.ID, row[2])
			}
			continue
		case recordings.CheckFileName(r.FileName) != nil:
			if row[2] != "refused" || row[4] != "true" {
				t.Errorf("recording %d, file name %.40q: status %q, hostile %q; want refused, true", r.ID, r.FileName, row[2], row[4])
			}
			continue
		case row[0] != e.sim.RecordingSHA256(r) || row[1] != name:
			t.Errorf("recording %d: row sha256 %s object %s, want %s %s", r.ID, row[0], row[1], e.sim.RecordingSHA256(r), name)
		}
		if r.Vanished {
			continue
		}
		want++
		if got := stored[name]; got != e.sim.RecordingSHA256(r) {
			t.Errorf("recording %d: stored %q with sha256 %q, want %s", r.ID, name, got, e.sim.RecordingSHA256(r))
		}
	}
	if len(stored) != want || len(rows) != len(e.sim.Recordings()) {
		t.Errorf("%d files stored and %d rows, want %d files and %d rows", len(stored), len(rows), want, len(e.sim.Recordings()))
	}
}

// testRecordingsKey is the key recordings' ids are hashed with in these
// tests (Exporter.RecordingsKey).
func testRecordingsKey(t *testing.T) *pseudonym.Keyed {
	t.Helper()
	k, err := pseudonym.New([]byte("recordings-test-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// idOf is the id the list sends for r: none in the bare shape.
func idOf(e *recEnv, r pbxsim.Recording) string {
	if e.sim.Options().Recordings.Fields == "bare" {
		return ""
	}
	return strings.TrimSpace(strings.TrimPrefix(itoa(r.ID), "+"))
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := newSHA256()
	io.Copy(h, f)
	return hexSum(h)
}

// TestRecordingsWithoutStore: without a recordings store, exporting the
// recordings endpoint fails it with a configuration error naming
// EXPORT_RECORDINGS_STORE; the other endpoints of the run are exported.
func TestRecordingsWithoutStore(t *testing.T) {
	t.Parallel()
	_, x, _, _ := setup(t, pbxsim.Options{Calls: 50, Seed: 3, Recordings: pbxsim.RecordingOptions{Every: 2}})
	eps := []record.Endpoint{recordingsEndpoint(t), record.Builtin()[1]}
	r := x.Run(context.Background(), exporter.NewRunID(time.Now()), "once", eps)
	rec, col := r.Endpoints[0], r.Endpoints[1]
	if rec.Err == nil || !errors.Is(rec.Err, record.ErrConfig) || !strings.Contains(rec.Err.Error(), "EXPORT_RECORDINGS_STORE") {
		t.Fatalf("recordings: err %v, want a configuration error naming EXPORT_RECORDINGS_STORE", rec.Err)
	}
	if rec.Recordings == nil || rec.Rows != 0 {
		t.Fatalf("recordings: %+v", rec)
	}
	if col.Err != nil || col.Rows == 0 {
		t.Fatalf("colleagues: rows %d, err %v", col.Rows, col.Err)
	}
}

// TestRecordingsExportedOnce: every recording of the simulator is in the
// store once with its sha256 and has its row (CSV and PostgreSQL), a
// vanished one counted; a second run copies nothing and writes no row.
func TestRecordingsExportedOnce(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"csv", "postgres", "csv/s3"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			o := pbxsim.Options{Seed: 11, Calls: 200, Recordings: pbxsim.RecordingOptions{Every: 3}}
			recs := pbxsim.New(o).Recordings()
			o.Recordings.Vanished = []int64{recs[3].ID, recs[len(recs)-1].ID}
			e := recSetup(t, o, kind, nil)
			res := e.run(t)
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			rr := res.Recordings
			n := len(e.sim.Recordings())
			if n < 30 || rr.Listed != n || rr.Copied+rr.Vanished != n || rr.Vanished != 2 || rr.OldestPending != nil || res.Rows != int64(n) {
				t.Fatalf("%d recordings; result %+v, rows %d", n, rr, res.Rows)
			}
			e.checkStore(t)
			if want := fmt.Sprintf("recordings: %d listed, %d copied (%d bytes), 0 already stored, 2 vanished", n, n-2, rr.Bytes); !strings.Contains(strings.Join(res.Notes, "\n"), want) {
				t.Errorf("notes %q: none says %q", res.Notes, want)
			}
			res = e.run(t)
			if res.Err != nil || res.Recordings.Copied != 0 || res.Recordings.Listed != 0 || res.Rows != 0 {
				t.Fatalf("second run: %+v %+v", res, res.Recordings)
			}
			e.checkStore(t)
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func newSHA256() hash.Hash { return sha256.New() }

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// TestRecordingsShapesAndForms: each list shape the simulator serves, with
// from/to as PBX-local wall time or Unix seconds, is detected, noted in
// the ledger, and read: every recording stored with its row.
func TestRecordingsShapesAndForms(t *testing.T) {
	t.Parallel()
	for _, fields := range []string{"camel", "snake", "attachment", "bare"} {
		for _, times := range []string{"wall", "epoch"} {
			t.Run(fields+"/"+times, func(t *testing.T) {
				t.Parallel()
				e := recSetup(t, pbxsim.Options{Seed: 5, Calls: 120, Recordings: pbxsim.RecordingOptions{Fields: fields, Times: times}}, "csv", nil)
				res := e.run(t)
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				if rr := res.Recordings; rr.Shape != fields || rr.TimeForm != times || rr.Copied != len(e.sim.Recordings()) {
					t.Fatalf("result %+v, want shape %s, form %s, %d copied", rr, fields, times, len(e.sim.Recordings()))
				}
				want := "takes from/to as " + times + " and sends records in the " + fields + " shape"
				if !strings.Contains(strings.Join(res.Notes, "\n"), want) {
					t.Errorf("notes %q: none says %q", res.Notes, want)
				}
				e.checkStore(t)
			})
		}
	}
}

// TestRecordingsUnknownShape: a list whose records fit no known shape
// fails the endpoint naming the fields seen; nothing is copied or
// committed.
func TestRecordingsUnknownShape(t *testing.T) {
	t.Parallel()
	rename := func(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, "/api/v1/PBX/recordings") {
			return false
		}
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		w.WriteHeader(rec.Code)
		w.Write(bytes.ReplaceAll(rec.Body.Bytes(), []byte(`"start":`), []byte(`"recordedAt":`)))
		return true
	}
	e := recSetup(t, pbxsim.Options{Seed: 5, Calls: 60}, "csv", rename)
	res := e.run(t)
	if res.Err == nil || !strings.Contains(res.Err.Error(), `"recordedAt"`) || !strings.Contains(res.Err.Error(), "fit none of the shapes") {
		t.Fatalf("err %v, want one naming the fields seen", res.Err)
	}
	if res.Rows != 0 || res.Recordings.Copied != 0 {
		t.Fatalf("rows %d, copied %d", res.Rows, res.Recordings.Copied)
	}
}

// TestRecordingsHostileNames: recordings whose PBX file name is "../../etc/x",
// an absolute path, holds a NUL or a line break, or is 4 KB long are
// refused (their paths never fetched), kept in their rows as hostile and
// reported; nothing is written outside the store; the others are copied.
func TestRecordingsHostileNames(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"csv", "postgres", "csv/s3"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := recSetup(t, pbxsim.Options{Seed: 7, Calls: 400, Recordings: pbxsim.RecordingOptions{Every: 2, HostileNames: true}}, kind, nil)
			// Every file written in the store's parent is in the store.
			outside := filepath.Dir(e.storeDir)
			before := filesUnder(outside)
			res := e.run(t)
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			hostile := 0
			for _, r := range e.sim.Recordings() {
				if recordings.CheckFileName(r.FileName) != nil {
					hostile++
				}
			}
			rr := res.Recordings
			if hostile < 5 || rr.Hostile != hostile || rr.Refused != hostile {
				t.Fatalf("%d hostile names; result %+v", hostile, rr)
			}
			if !strings.Contains(strings.Join(res.Notes, "\n"), "must not be used as a path") {
				t.Errorf("notes %q: the hostile names are not reported", res.Notes)
			}
			e.checkStore(t)
			for p := range filesUnder(outside) {
				in := func(dir string) bool { return dir != "" && strings.HasPrefix(p, dir+string(filepath.Separator)) }
				if !before[p] && !in(e.storeDir) && !in(e.csvDir) && !strings.Contains(p, ".sgwtmp") {
					t.Errorf("%s written outside the store", p)
				}
			}
			if _, err := os.Stat(filepath.Join(e.storeDir, "..", "..", "etc", "x")); err == nil {
				t.Error("etc/x written outside the store")
			}
		})
	}
}

// TestRecordingsFailedCopy: a file failing after every retry fails the
// endpoint, naming the recording; the windows before it are committed
// with their rows, its own is not (the oldest recording not stored is
// reported), and the next run, the file served again, copies the rest:
// every recording once, its row once.
func TestRecordingsFailedCopy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		at   func(n int) int // the failing recording's index
		say  string          // what the error says was committed
	}{
		{"late", func(n int) int { return n * 2 / 3 }, "; the windows before it were committed: the next run lists from "},
		{"first", func(int) int { return 0 }, "; nothing was committed: the next run lists from the start, as this one did"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var broken atomic.Pointer[string]
			fail := func(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool {
				if p := broken.Load(); p != nil && r.URL.EscapedPath() == *p {
					http.Error(w, "Internal error", http.StatusInternalServerError)
					return true
				}
				return false
			}
			e := recSetup(t, pbxsim.Options{Seed: 13, Calls: 300}, "csv", fail)
			recs := e.sim.Recordings()
			bad := recs[tc.at(len(recs))]
			broken.Store(&bad.Path)
			res := e.run(t)
			id := strconv.FormatInt(bad.ID, 10)
			if res.Err == nil || !strings.Contains(res.Err.Error(), `copy recording "`+id+`"`) || !strings.Contains(res.Err.Error(), "500") ||
				!strings.Contains(res.Err.Error(), tc.say) || strings.Contains(res.Err.Error(), "1970") {
				t.Fatalf("err %v, want one naming recording %s and the 500, saying %q", res.Err, id, tc.say)
			}
			rr := res.Recordings
			if rr.Failed != 1 || rr.OldestPending == nil || rr.OldestPending.After(bad.Start) || res.Rows >= int64(len(recs)) ||
				(res.Rows == 0) != (tc.name == "first") {
				t.Fatalf("result %+v, rows %d of %d", rr, res.Rows, len(recs))
			}
			for key := range e.rows(t) {
				if key == id {
					t.Fatalf("the failed recording %s has a row", id)
				}
			}
			broken.Store(nil)
			if res = e.run(t); res.Err != nil {
				t.Fatal(res.Err)
			}
			e.checkStore(t)
		})
	}
}

// filesUnder lists the files under dir.
func filesUnder(dir string) map[string]bool {
	out := map[string]bool{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out[p] = true
		}
		return nil
	})
	return out
}

// TestRecordingsTimeZone: a list sending PBX-local wall times with no
// WILDIX_TIMEZONE fails with a configuration error saying to set it,
// until call history, read by time windows, has learnt the PBX's UTC
// offset: then the recordings are read at it (noted), each stored and
// matched as with the zone.
func TestRecordingsTimeZone(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 17, Calls: 150, IgnoreFilter: []string{"id"}}, "csv", nil)
	e.x.Zone = nil
	res := e.run(t)
	if res.Err == nil || !errors.Is(res.Err, record.ErrConfig) || !strings.Contains(res.Err.Error(), "WILDIX_TIMEZONE") {
		t.Fatalf("err %v, want a configuration error naming WILDIX_TIMEZONE", res.Err)
	}
	if ch := e.x.Run(context.Background(), exporter.NewRunID(time.Now()), "once", record.Builtin()[:1]).Endpoints[0]; ch.Err != nil || ch.Paging != "time-windows" {
		t.Fatalf("call history: %v, paging %q", ch.Err, ch.Paging)
	}
	if res = e.run(t); res.Err != nil {
		t.Fatal(res.Err)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "UTC offset call history's newest record carried (UTC+01:00)") {
		t.Errorf("notes %q: the learnt offset is not noted", res.Notes)
	}
	e.checkStore(t)
}

// TestRecordingsRecordOutOfShape: a record later in the list without a
// field its shape needs (the file's path, the id) fails the endpoint
// naming the fields it holds, never skipped; the windows before it are
// committed, and it is not.
func TestRecordingsRecordOutOfShape(t *testing.T) {
	t.Parallel()
	for _, field := range []string{"path", "id"} {
		t.Run(field, func(t *testing.T) {
			t.Parallel()
			var bad string
			drop := listRewrite(func(m map[string]any) {
				if m["id"] == bad {
					m["no_"+field] = m[field]
					delete(m, field)
				}
			})
			e := recSetup(t, pbxsim.Options{Seed: 19, Calls: 300}, "csv", drop)
			recs := e.sim.Recordings()
			bad = itoa(recs[len(recs)/2].ID)
			res := e.run(t)
			if res.Err == nil || !strings.Contains(res.Err.Error(), "not the camel shape") || !strings.Contains(res.Err.Error(), "no_"+field) {
				t.Fatalf("err %v, want one naming the fields of the record", res.Err)
			}
			if res.Rows == 0 || res.Rows >= int64(len(recs)/2+1) {
				t.Errorf("rows %d of %d committed", res.Rows, len(recs))
			}
		})
	}
}

// TestRecordingsListVariants: the list's total as a number or absent, and
// a to that excludes its bound: every recording stored once with its row.
func TestRecordingsListVariants(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]pbxsim.Options{
		"total number":    {Total: "number"},
		"total absent":    {Total: "absent"},
		"to exclusive":    {FilterToExclusive: true},
		"epoch, no total": {Total: "absent", Recordings: pbxsim.RecordingOptions{Times: "epoch", Fields: "snake"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o.Seed, o.Calls = 23, 200
			e := recSetup(t, o, "csv", nil)
			if res := e.run(t); res.Err != nil || res.Recordings.Copied != len(e.sim.Recordings()) {
				t.Fatalf("err %v, result %+v", res.Err, res.Recordings)
			}
			e.checkStore(t)
			if res := e.run(t); res.Err != nil || res.Rows != 0 || res.Recordings.Copied != 0 {
				t.Fatalf("second run: err %v, rows %d, result %+v", res.Err, res.Rows, res.Recordings)
			}
		})
	}
}

// TestRecordingsArriving: calls (and their recordings) arrive while a run
// reads (3 after every call-history request, the call matcher's among
// them), the PBX's present following its newest call: the first run
// stops at its watermark, the next, on a quiet PBX past the settle
// margin, copies the rest: every recording stored once, its row once,
// its call matched.
func TestRecordingsArriving(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 29, Calls: 400, CallGap: 20 * time.Second, LiveInsertEvery: 1, LiveInsertBatch: 3, LiveInsertMax: 90}, "csv", nil)
	var ahead atomic.Int64
	e.x.Now = present(e.sim, &ahead)
	r1 := e.run(t)
	if r1.Err != nil {
		t.Fatal(r1.Err)
	}
	e.sim.Quiet()
	if e.sim.Stats.LiveInserted.Load() < 30 {
		t.Fatalf("%d calls arrived during the first run: the case proves nothing", e.sim.Stats.LiveInserted.Load())
	}
	ahead.Store(int64(exporter.DefaultSettle + time.Minute))
	r2 := e.run(t)
	if r2.Err != nil || r1.Recordings.Listed+r2.Recordings.Listed != len(e.sim.Recordings()) {
		t.Fatalf("listed %d then %d (%v), the PBX holds %d recordings", r1.Recordings.Listed, r2.Recordings.Listed, r2.Err, len(e.sim.Recordings()))
	}
	e.checkStore(t)
}

// TestRecordingsListIgnoringFromTo: a list that ignores from/to (every
// record for any range) fails the endpoint, saying what each form got;
// nothing is copied or committed.
func TestRecordingsListIgnoringFromTo(t *testing.T) {
	t.Parallel()
	ignore := func(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool {
		q := r.URL.Query()
		q.Del("from")
		q.Del("to")
		r.URL.RawQuery = q.Encode()
		return false
	}
	e := recSetup(t, pbxsim.Options{Seed: 31, Calls: 100}, "csv", ignore)
	res := e.run(t)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "wall: ignored") || !strings.Contains(res.Err.Error(), "epoch: ignored") {
		t.Fatalf("err %v, want one saying each form was ignored", res.Err)
	}
	if res.Rows != 0 || res.Recordings.Listed != 0 {
		t.Fatalf("rows %d, listed %d", res.Rows, res.Recordings.Listed)
	}
}

// TestRecordingsNotBackfilled: backfill refuses the recordings endpoint
// saying the regular run copies them and how to run it (before, it said
// the endpoint had no time field and was a snapshot: neither is true);
// nothing is listed or copied.
func TestRecordingsNotBackfilled(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 43, Calls: 50}, "csv", nil)
	to := time.Now()
	r := e.x.Backfill(context.Background(), exporter.NewRunID(time.Now()), []record.Endpoint{e.ep}, exporter.BackfillOptions{From: to.Add(-48 * time.Hour), To: to})
	res := r.Endpoints[0]
	if res.Err == nil || strings.Contains(res.Err.Error(), "snapshot") || !strings.Contains(res.Err.Error(), "run --once --endpoints recordings") {
		t.Fatalf("backfill of recordings: err %v; want one saying the regular run copies them and how to run it", res.Err)
	}
	if res.Rows != 0 || e.sim.Stats.Recordings.FileRequests.Load() != 0 {
		t.Fatalf("rows %d, file requests %d", res.Rows, e.sim.Stats.Recordings.FileRequests.Load())
	}
}

// TestRecordingsWindowsSideBySide: a window's files are copied while the
// window before it is still in hand (issue 29's throughput: no file waits
// for another window's last file, its Sync, its call-history read or its
// rows). The oldest recording's file (the first window's) is held until a
// file of a later window is asked for: a window copied only once the one
// before is finished never asks, and the file is let go after a minute,
// the case failed. Every recording is then stored once, its row once.
func TestRecordingsWindowsSideBySide(t *testing.T) {
	t.Parallel()
	var held, later atomic.Pointer[string]
	var timedOut atomic.Bool
	release := make(chan struct{})
	var once sync.Once
	front := func(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool {
		p := r.URL.EscapedPath()
		if h := held.Load(); h != nil && p == *h {
			select {
			case <-release:
			case <-time.After(time.Minute):
				timedOut.Store(true)
			}
		} else if l := later.Load(); l != nil && p >= *l && strings.HasPrefix(p, "/spoolview/") && !timedOut.Load() {
			once.Do(func() { close(release) })
		}
		return false
	}
	e := recSetup(t, pbxsim.Options{Seed: 17, Calls: 200}, "csv", front)
	recs := e.sim.Recordings()
	slices.SortFunc(recs, func(a, b pbxsim.Recording) int { return a.Start.Compare(b.Start) })
	// A window holds at most a page (20): the 21st recording is in a
	// later one. File paths sort as their starts (2026/01/01/2026.01.01-…).
	if len(recs) < 30 || recs[20].Path <= recs[0].Path {
		t.Fatalf("%d recordings, paths %s and %s: the case needs 30 sorting by start", len(recs), recs[0].Path, recs[20].Path)
	}
	held.Store(&recs[0].Path)
	later.Store(&recs[20].Path)
	res := e.run(t)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if timedOut.Load() {
		t.Fatalf("no file of a later window was asked for in a minute while the first window's oldest file was held")
	}
	if rr := res.Recordings; rr.Listed != len(recs) || rr.Copied != len(recs) || res.Rows != int64(len(recs)) {
		t.Fatalf("result %+v, rows %d; want %d copied", rr, res.Rows, len(recs))
	}
	e.checkStore(t)
}

// TestRecordingsKeysOfBeforeKept: a recording known by its path alone is
// stored under "k-" and a keyed hash of it (recordings.StoredID), and a
// store written before, whose state holds the recordings' ids of then
// (an unkeyed "h-" hash: recordings.LegacyID), gets none of them copied
// again by the next run's look-back (issue 29: exactly once).
func TestRecordingsKeysOfBeforeKept(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 29, Calls: 150, Recordings: pbxsim.RecordingOptions{Fields: "bare"}}, "postgres", nil)
	res := e.run(t)
	if res.Err != nil || res.Recordings.Copied == 0 {
		t.Fatalf("first run: %v, %+v", res.Err, res.Recordings)
	}
	e.checkStore(t)
	for key := range e.rows(t) {
		if !strings.HasPrefix(key, "k-") {
			t.Errorf("recording key %q: want k- and a keyed hash of its path", key)
		}
	}
	// The state as a run before ids were keyed left it.
	ctx := context.Background()
	var b []byte
	if err := e.pool.QueryRow(ctx, "SELECT state FROM export_state WHERE pbx = 'pbx' AND key = 'recordings'").Scan(&b); err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	recent, _ := st["recent"].(map[string]any)
	old := map[string]any{}
	for _, r := range e.sim.Recordings() {
		rec := recordings.Recording{Path: r.Path, IDKey: e.x.RecordingsKey}
		if w, ok := recent[recordings.StoredID(rec)]; ok {
			old[recordings.LegacyID(rec)] = w
		}
	}
	if len(old) == 0 || len(old) != len(recent) {
		t.Fatalf("%d keys of %d in the state renamed", len(old), len(recent))
	}
	st["recent"] = old
	b, _ = json.Marshal(st)
	if _, err := e.pool.Exec(ctx, "UPDATE export_state SET state = $1 WHERE pbx = 'pbx' AND key = 'recordings'", b); err != nil {
		t.Fatal(err)
	}
	res = e.run(t)
	if rr := res.Recordings; res.Err != nil || rr.Listed != 0 || rr.Copied != 0 || rr.Skipped != 0 || res.Rows != 0 {
		t.Fatalf("run after the keyed ids: %v, %+v, %d rows; want the %d recordings of the look-back known by their ids of before", res.Err, rr, res.Rows, len(old))
	}
}
