package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
	"github.com/wildix-export/wildix-export/sinks/recstore"
	"github.com/wildix-export/wildix-export/sinks/recstore/recstoretest"
)

// recStore is a recordings store a test points the binary at, and reads
// back from outside the code under test: stored name → sha256.
type recStore struct {
	env   []string
	files func(t *testing.T) map[string]string
	// put stores b under name from outside, as a run that failed after
	// storing a file, before its row, left it.
	put func(t *testing.T, name string, b []byte)
}

func dirStore(t *testing.T) recStore {
	dir := t.TempDir()
	return recStore{env: []string{"EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR=" + dir}, files: func(t *testing.T) map[string]string { return dirFiles(t, dir) },
		put: func(t *testing.T, name string, b []byte) {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}}
}

// dirFiles reads a directory store from outside: name → sha256. A hidden
// (partial) file, anything not a regular file, or a mode other than 0600
// fails the test.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
			t.Errorf("store holds %s (%v): a partial or foreign file", rel, d.Type())
			return nil
		}
		if fi, _ := d.Info(); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", rel, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		sum := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func s3Store(t *testing.T) recStore {
	srv := recstoretest.Start(t)
	const prefix = "calls/rec/"
	return recStore{env: []string{"EXPORT_RECORDINGS_STORE=s3", "EXPORT_RECORDINGS_S3_ENDPOINT=" + srv.Endpoint, "EXPORT_RECORDINGS_S3_BUCKET=" + srv.Bucket,
		"EXPORT_RECORDINGS_S3_REGION=" + srv.Region, "EXPORT_RECORDINGS_S3_PREFIX=" + prefix, "EXPORT_RECORDINGS_S3_PATH_STYLE=true",
		"EXPORT_RECORDINGS_S3_ACCESS_KEY=" + srv.AccessKey, "EXPORT_RECORDINGS_S3_SECRET_KEY=" + srv.SecretKey,
	}, files: func(t *testing.T) map[string]string {
		t.Helper()
		c, ctx := srv.Client(t), context.Background()
		out := map[string]string{}
		for o := range c.ListObjects(ctx, srv.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			name, ok := strings.CutPrefix(o.Key, prefix)
			if !ok {
				t.Errorf("object %s outside the prefix %s", o.Key, prefix)
				continue
			}
			obj, err := c.GetObject(ctx, srv.Bucket, o.Key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			_, err = io.Copy(h, obj)
			obj.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[name] = hex.EncodeToString(h.Sum(nil))
		}
		for u := range c.ListIncompleteUploads(ctx, srv.Bucket, "", true) {
			t.Errorf("an incomplete upload is left: %s", u.Key)
		}
		return out
	}, put: func(t *testing.T, name string, b []byte) {
		c := srv.Client(t)
		if _, err := c.PutObject(context.Background(), srv.Bucket, prefix+name, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}}
}

// cloudStandIn is the second origin standing in for cloud storage, over
// https, with the certificate in a file for WILDIX_CA_FILE. It serves
// the simulator's CloudHandler, which counts any request carrying a
// credential (and refuses it).
func cloudStandIn(t *testing.T) (srv *httptest.Server, caFile string, sim *atomic.Pointer[pbxsim.Sim]) {
	sim = new(atomic.Pointer[pbxsim.Sim])
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sim.Load().CloudHandler().ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "cloud-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, caFile, sim
}

// TestRecordingsCopiedOnce: the real binary's run --once copies every
// recording of the simulator into the store exactly once, each with the
// simulator's bytes (sha256), under <pbx>/<YYYY>/<MM>/<DD>/<id>.wav,
// with its row in the sink (PostgreSQL or CSV) naming the same object
// and sha256; a second run fetches no file and copies nothing; and, for
// files moved to cloud storage (a 302 to a second https origin), no
// request to it carries a credential. The recordings endpoint is in the
// default set because a store is configured. check then reports the
// store, each of its files named by a row, a file fetched and the two
// runs in the run ledger; with a file no row names put in the store (as
// a run that failed before writing its row leaves one), check warns,
// naming that file (review 15, R15-3), exit 0.
func TestRecordingsCopiedOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		store func(*testing.T) recStore
		pg    bool
		cloud bool
	}{
		{"folder, CSV, files on the PBX", dirStore, false, false},
		{"S3, PostgreSQL, files in cloud storage", s3Store, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := tc.store(t)
			opts := pbxsim.RecordingOptions{Every: 10, BytesPerSecond: 400}
			var cloud *httptest.Server
			var caFile string
			var cloudSim *atomic.Pointer[pbxsim.Sim]
			if tc.cloud {
				cloud, caFile, cloudSim = cloudStandIn(t)
				opts.CloudURL = cloud.URL
			}
			const calls = 400
			f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute, CallsStart: time.Now().UTC().Add(-calls * time.Minute).Add(-time.Hour),
				APIKeys: []string{recToken}, Recordings: opts})
			f.Authorize(t)
			if cloudSim != nil {
				cloudSim.Store(f.Sim)
			}
			// OAuth for the API and WILDIX_RECORDINGS_TOKEN for the files,
			// the PBX's id its host and port (stored as 127.0.0.1_<port>-<hash>);
			// or the Simple Token as WILDIX_API_KEY for both, and an id.
			pbxID, creds := f.URL.Host, []string{"WILDIX_RECORDINGS_TOKEN=" + recToken}
			if tc.pg {
				pbxID, creds = "pbx-rec", []string{"WILDIX_PBX_ID=pbx-rec", "WILDIX_API_KEY=" + recToken, "WILDIX_CLIENT_ID=", "WILDIX_CLIENT_SECRET="}
			}
			csvDir := t.TempDir()
			env := simEnv(f, csvDir, append(creds, store.env...)...)
			var pool *pgxpool.Pool
			if tc.pg {
				env, pool, _ = pgEnv(t, f, append(creds, store.env...)...)
			}
			if caFile != "" {
				env = append(env, "WILDIX_CA_FILE="+caFile)
			}
			truth := map[string]string{} // stored name → sha256
			for _, r := range f.Sim.Recordings() {
				name, err := recstore.Name(storedPBX(pbxID), r.Start.UTC(), strconv.FormatInt(r.ID, 10))
				if err != nil {
					t.Fatal(err)
				}
				truth[name] = f.Sim.RecordingSHA256(r)
			}
			t.Logf("%d recordings on the simulated PBX", len(truth))
			if len(truth) < 10 {
				t.Fatalf("the simulator has %d recordings: the test proves little", len(truth))
			}

			r := runBin(t, env, "", "run", "--once")
			if r.code != 0 || !strings.Contains(r.stdout, "recordings     ok") {
				t.Fatalf("run --once: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			got := store.files(t)
			if len(got) != len(truth) {
				t.Errorf("store holds %d files, the simulator %d recordings", len(got), len(truth))
			}
			for name, sum := range truth {
				if got[name] != sum {
					t.Errorf("%s: stored sha256 %q, want %q", name, got[name], sum)
				}
			}
			rows := recordingRows(t, csvDir, pool, pbxID)
			if len(rows) != len(truth) {
				t.Errorf("%d recording rows, want %d", len(rows), len(truth))
			}
			for name, sum := range truth {
				if rows[name] != sum {
					t.Errorf("row of %s: sha256 %q, want %q", name, rows[name], sum)
				}
			}

			files := f.Sim.Stats.Recordings.FileRequests.Load()
			r = runBin(t, env, "", "run", "--once")
			if r.code != 0 || !strings.Contains(r.stdout, " copied=0 ") {
				t.Fatalf("second run --once: exit %d, want a recordings line with copied=0\n%s%s", r.code, r.stdout, r.stderr)
			}
			if n := f.Sim.Stats.Recordings.FileRequests.Load() - files; n != 0 {
				t.Errorf("the second run fetched %d file(s)", n)
			}
			if again := store.files(t); len(again) != len(truth) {
				t.Errorf("after the second run the store holds %d files, want %d", len(again), len(truth))
			}
			if rows := recordingRows(t, csvDir, pool, pbxID); len(rows) != len(truth) {
				t.Errorf("after the second run: %d recording rows, want %d", len(rows), len(truth))
			}
			// check reads the same store and the run ledger the runs wrote.
			r = runBin(t, env, "", "check")
			for _, l := range []string{"ok    recordings    store ", "ok    recordings    files: ", "ok    recordings    run ledger: 2 successful recordings run(s)",
				fmt.Sprintf("ok    recordings    store: each of its %d file(s) of this PBX is named by a row", len(truth))} {
				if r.code != 0 || !strings.Contains(r.stdout, l) {
					t.Errorf("check: exit %d, want the line %q:\n%s%s", r.code, l, r.stdout, r.stderr)
				}
			}
			stray, _ := recstore.Name(storedPBX(pbxID), time.Now().UTC(), "stray-1")
			store.put(t, stray, []byte("RIFF a failed run's"))
			r = runBin(t, env, "", "check")
			if l := "WARN  recordings    store: 1 file(s) named by no row (first: " + stray + "): stored by a run that failed"; r.code != 0 || !strings.Contains(r.stdout, l) {
				t.Errorf("check with a file no row names: exit %d, want the line %q:\n%s%s", r.code, l, r.stdout, r.stderr)
			}
			if tc.cloud {
				st := &f.Sim.Stats.Recordings
				if st.CloudCredentials.Load() != 0 || st.CloudRequests.Load() < int64(len(truth)) {
					t.Errorf("cloud storage got %d request(s) with a credential, %d without (want 0 and at least %d)", st.CloudCredentials.Load(), st.CloudRequests.Load(), len(truth))
				}
			}
		})
	}
}

// recordingRows reads the recordings' rows (PostgreSQL when pool is set,
// else the CSV files): stored object name → sha256. A name twice fails.
func recordingRows(t *testing.T, csvDir string, pool *pgxpool.Pool, pbxID string) map[string]string {
	t.Helper()
	out := map[string]string{}
	add := func(name, sum string) {
		if _, dup := out[name]; dup {
			t.Errorf("two rows for the recording stored as %s", name)
		}
		out[name] = sum
	}
	if pool != nil {
		rows, err := pool.Query(context.Background(), "SELECT coalesce(object, ''), coalesce(sha256, '') FROM recordings WHERE pbx = $1", pbxID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var name, sum string
			if err := rows.Scan(&name, &sum); err != nil {
				t.Fatal(err)
			}
			add(name, sum)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	files, _ := filepath.Glob(filepath.Join(csvDir, "recordings", "*.csv"))
	for _, p := range files {
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(fh).ReadAll()
		fh.Close()
		if err != nil || len(recs) == 0 {
			t.Fatalf("%s: %v", p, err)
		}
		col := map[string]int{}
		for i, h := range recs[0] {
			col[h] = i
		}
		for _, r := range recs[1:] {
			add(r[col["object"]], r[col["sha256"]])
		}
	}
	return out
}
