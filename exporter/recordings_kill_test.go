package exporter_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/sinks"
	"github.com/wildix-export/wildix-export/sinks/recstore"
	"github.com/wildix-export/wildix-export/sinks/recstore/recstoretest"
)

// recJob is what a child process (this test binary, run again) exports:
// the recordings endpoint of the PBX at URL into a CSV sink and a
// directory store.
type recJob struct {
	URL, CSV, Store string
	S3              *recstore.S3Options // instead of Store
}

const recChildEnv = "RECORDINGS_EXPORT_CHILD"

// TestRecordingsChild is not a test: it is the child of
// TestRecordingsKilledDuringCopies.
func TestRecordingsChild(t *testing.T) {
	job := os.Getenv(recChildEnv)
	if job == "" {
		t.Skip("the child of TestRecordingsKilledDuringCopies; runs only as its child")
	}
	var j recJob
	if err := json.Unmarshal([]byte(job), &j); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(j.URL)
	rome, _ := time.LoadLocation("Europe/Rome")
	sink, err := sinks.NewCSV(sinks.CSVOptions{Dir: j.CSV})
	if err != nil {
		t.Fatal(err)
	}
	var store recordings.Store
	if j.S3 != nil {
		store, err = recstore.OpenS3(context.Background(), *j.S3)
	} else {
		store, err = recstore.OpenDir(j.Store, recstore.DirOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &pbx.Client{HTTP: &http.Client{Transport: &auth.Transport{Source: auth.Static("wsk-v1-test")}}, Base: u, MaxAttempts: 3, Timeout: time.Minute}
	x := &exporter.Exporter{Client: c, Sink: sink, PBX: "pbx", Zone: rome, PageSize: 20, Concurrency: 2, BatchSize: 15, MaxPages: 10000,
		Recordings: &recordings.Copier{Spool: &recordings.Spool{Origin: u, Token: recToken, MinBackoff: time.Millisecond}, Store: store, PBX: "pbx", Concurrency: 3}, RecordingsKey: testRecordingsKey(t)}
	ep := recordingsEndpoint(t)
	if err := x.Run(context.Background(), exporter.NewRunID(time.Now()), "once", []record.Endpoint{ep}).Err(); err != nil {
		t.Fatal(err)
	}
	fmt.Println("done")
}

// TestRecordingsKilledDuringCopies kills exporting processes at seeded
// random moments while a file is being sent (TEST_SEED replays them), 10
// times, checking after each that every file under a final name is
// right; then a run completes the export: the store is exact (every
// recording once, its sha256, nothing partial under any name), and every
// recording has one row in the CSV files. Both stores: the directory and
// S3 (versitygw).
func TestRecordingsKilledDuringCopies(t *testing.T) {
	t.Parallel()
	seed := uint64(rand.Int64())
	if s := os.Getenv("TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("TEST_SEED=%d", seed)
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			killedDuringCopies(t, seed, kind)
		})
	}
}

// killedDuringCopies is TestRecordingsKilledDuringCopies with a store of
// kind: "dir" or "s3" (versitygw, read through its folder).
func killedDuringCopies(t *testing.T, seed uint64, kind string) {
	rng := rand.New(rand.NewPCG(seed, 29))
	o := pbxsim.Options{Seed: int64(seed % 1000), Calls: 300, APIKeys: []string{recToken, "wsk-v1-test"},
		Recordings: pbxsim.RecordingOptions{Every: 3, BytesPerSecond: 400}}
	sim := pbxsim.New(o)
	sim.Quiet()
	// The kill: this child's k-th file request stops after a seeded
	// part of its file, and the child is killed. A round is one child's:
	// when its k-th request begins, every file one of the copier's
	// workers finished before is stored, so each round makes progress.
	var cur atomic.Pointer[killRound]
	cur.Store(&killRound{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/spoolview/") {
			sim.ServeHTTP(w, r)
			return
		}
		round := cur.Load()
		kw := &killWriter{ResponseWriter: w, round: round, done: r.Context().Done(), kill: round.reqs.Add(1) == round.k}
		sim.ServeHTTP(kw, r)
	}))
	t.Cleanup(srv.Close)
	csvDir, storeDir := t.TempDir(), t.TempDir()
	j := recJob{URL: srv.URL, CSV: csvDir, Store: storeDir}
	if kind == "s3" {
		gw := recstoretest.Start(t)
		j.S3 = &recstore.S3Options{Endpoint: gw.Endpoint, Region: gw.Region, Bucket: gw.Bucket, Prefix: "rec/", PathStyle: true,
			AccessKey: gw.AccessKey, SecretKey: gw.SecretKey}
		storeDir = filepath.Join(gw.Root, gw.Bucket, "rec")
	}
	job, _ := json.Marshal(j)
	e := &recEnv{sim: sim, storeDir: storeDir, rows: func(t *testing.T) map[string][]string { return csvRecordingRows(t, csvDir) }}
	n := int64(len(sim.Recordings()))
	const kills = 10
	for i := range kills {
		left := n - storedFiles(t, e)
		if left < 2 {
			t.Fatalf("kill %d: the store is complete already; the test proves nothing", i)
		}
		round := &killRound{k: 1 + rng.Int64N(max(left/4, 1)), frac: rng.Float64(), hit: make(chan struct{}, 1)}
		cur.Store(round)
		cmd, out := startRecChild(t, job)
		ended := make(chan string, 1)
		go func() { l, _ := out.ReadString('\n'); ended <- strings.TrimSpace(l) }()
		select {
		case <-round.hit:
			cmd.Process.Kill()
			cmd.Wait()
		case l := <-ended:
			t.Fatalf("kill %d: the child ended (%q) before its file request %d", i, l, round.k)
		}
		e.checkFinalNames(t)
	}
	cur.Store(&killRound{})
	t.Logf("%d kills; %d of %d files stored before the completing run", kills, storedFiles(t, e), n)
	cmd, out := startRecChild(t, job)
	if l, _ := out.ReadString('\n'); strings.TrimSpace(l) != "done" {
		t.Fatalf("the completing run said %q", l)
	}
	cmd.Wait()
	e.checkStore(t)
}

// killRound is one child's kill: in its k-th file request (0: never),
// after frac of the file.
type killRound struct {
	k    int64
	frac float64
	reqs atomic.Int64
	hit  chan struct{}
}

// killWriter passes a file's bytes on; in the round's k-th request, it
// stops after frac of them, says so on hit and holds the answer until the
// child dies.
type killWriter struct {
	http.ResponseWriter
	round *killRound
	done  <-chan struct{}
	kill  bool
	cut   int64 // bytes left to send before the kill; set on the first write
	began bool
}

func (k *killWriter) Write(p []byte) (int, error) {
	if !k.kill {
		return k.ResponseWriter.Write(p)
	}
	if !k.began {
		size, _ := strconv.ParseInt(k.Header().Get("Content-Length"), 10, 64)
		k.cut, k.began = int64(float64(size)*k.round.frac), true
	}
	if int64(len(p)) < k.cut {
		k.cut -= int64(len(p))
		return k.ResponseWriter.Write(p)
	}
	k.ResponseWriter.Write(p[:k.cut])
	k.ResponseWriter.(http.Flusher).Flush()
	k.round.hit <- struct{}{}
	<-k.done
	return 0, http.ErrAbortHandler
}

func (k *killWriter) Flush() { k.ResponseWriter.(http.Flusher).Flush() }

// storedFiles counts the files under final names in the store.
func storedFiles(t *testing.T, e *recEnv) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(e.storeDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(d.Name(), ".partial-") {
			n++
		}
		return nil
	})
	return n
}

// checkFinalNames: every file under a final name holds its recording's
// bytes.
func (e *recEnv) checkFinalNames(t *testing.T) {
	t.Helper()
	want := map[string]string{}
	for _, r := range e.sim.Recordings() {
		name, _ := recstore.Name("pbx", r.Start.UTC(), recordings.StoredID(recordings.Recording{ID: strconv.FormatInt(r.ID, 10)}))
		want[name] = e.sim.RecordingSHA256(r)
	}
	filepath.WalkDir(e.storeDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(d.Name(), ".partial-") {
			return nil
		}
		rel, _ := filepath.Rel(e.storeDir, p)
		if got := fileSHA256(t, p); want[filepath.ToSlash(rel)] != got {
			t.Fatalf("%s holds sha256 %s; want %q", rel, got, want[filepath.ToSlash(rel)])
		}
		return nil
	})
}

// startRecChild runs job in a child process.
func startRecChild(t *testing.T, job []byte) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRecordingsChild$")
	cmd.Env = append(os.Environ(), recChildEnv+"="+string(job))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewReader(out)
}
