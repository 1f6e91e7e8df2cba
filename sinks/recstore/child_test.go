package recstore

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// childJob is what a child process (this test binary, run again) does with
// a store: copy Size bytes of content(Seed) to Name, and either stop at
// StopAt bytes to be killed or report its peak memory once done.
type childJob struct {
	Dir    string     // a Dir store's root, or
	S3     *S3Options // an S3 store
	Name   string
	Seed   uint64
	Size   int64
	StopAt int64 // > 0: say "ready" after this many bytes and wait to be killed
	// Unannounced: Size is not announced to Put (S3: sent in parts
	// whatever its size, as a stream of unknown length).
	Unannounced bool
	// CAFile is the certificate to trust, for S3 over https.
	CAFile string
	// HoldPutAt > 0: every S3 PUT's body stops after this many bytes
	// were sent: say "ready" and wait to be killed, mid-request.
	HoldPutAt int
}

// holdPuts holds every PUT's body after at bytes, saying "ready" once.
type holdPuts struct {
	base http.RoundTripper
	at   int
}

func (h holdPuts) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && r.Body != nil {
		r.Body = &heldBody{ReadCloser: r.Body, left: h.at}
	}
	return h.base.RoundTrip(r)
}

type heldBody struct {
	io.ReadCloser
	left int
}

func (b *heldBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		fmt.Println("ready")
		select {} // killed here, mid-request
	}
	n, err := b.ReadCloser.Read(p[:min(len(p), b.left)])
	b.left -= n
	return n, err
}

// childS3 is the S3 options of job, with its transport.
func childS3(j childJob) (S3Options, error) {
	o := *j.S3
	if j.CAFile == "" && j.HoldPutAt == 0 {
		return o, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if j.CAFile != "" {
		pem, err := os.ReadFile(j.CAFile)
		if err != nil {
			return o, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return o, fmt.Errorf("no certificate in %s", j.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	o.Transport = tr
	if j.HoldPutAt > 0 {
		o.Transport = holdPuts{base: tr, at: j.HoldPutAt}
	}
	return o, nil
}

const childEnv = "RECSTORE_CHILD_JOB"

// TestChildProcess is not a test: it is the child of the kill and memory
// tests, doing the job in its environment.
func TestChildProcess(t *testing.T) {
	job := os.Getenv(childEnv)
	if job == "" {
		t.Skip("the child of the kill and memory tests; runs only as their child")
	}
	var j childJob
	if err := json.Unmarshal([]byte(job), &j); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var st store
	var err error
	if j.S3 != nil {
		var o S3Options
		if o, err = childS3(j); err == nil {
			st, err = OpenS3(ctx, o)
		}
	} else {
		st, err = OpenDir(j.Dir, DirOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = content(j.Seed, j.Size)
	if j.StopAt > 0 {
		r = io.MultiReader(content(j.Seed, j.StopAt), funcReader(func() {
			fmt.Println("ready")
			select {} // killed here, mid-copy
		}))
	}
	want := Want{Size: j.Size}
	if j.Unannounced {
		want = Want{}
	}
	o, err := st.Put(ctx, j.Name, r, want)
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			fmt.Printf("peak %s sha256 %s size %d\n", strings.Join(strings.Fields(l)[1:], " "), o.SHA256, o.Size)
		}
	}
}

// startChild runs job in a child process and returns it with its output.
func startChild(t *testing.T, job childJob) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	b, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
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

// waitLine returns the first output line starting with prefix, failing
// the test when the child ends without one or takes over limit.
func waitLine(t *testing.T, out *bufio.Reader, prefix string, limit time.Duration) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var seen strings.Builder
		for {
			l, err := out.ReadString('\n')
			seen.WriteString(l)
			if strings.HasPrefix(l, prefix) {
				got <- strings.TrimSpace(l)
				return
			}
			if err != nil {
				got <- "child ended without " + strconv.Quote(prefix) + "; its output: " + seen.String()
				return
			}
		}
	}()
	select {
	case l := <-got:
		if !strings.HasPrefix(l, prefix) {
			t.Fatal(l)
		}
		return l
	case <-time.After(limit):
		t.Fatalf("the child said no %q within %s", prefix, limit)
		return ""
	}
}

// testKilledMidCopy kills children at seeded random points of copies to
// f's store and checks, each time, that nothing is under the final name,
// then that a copy and its Sync complete it.
func testKilledMidCopy(t *testing.T, f fixture, job func(name string) childJob, kills int) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for i := range kills {
		name := testName(t, fmt.Sprintf("killed-%d", i))
		j := job(name)
		j.Seed = seed + uint64(i)
		j.StopAt = 1 + rng.Int64N(j.Size-1)
		cmd, out := startChild(t, j)
		waitLine(t, out, "ready", 2*time.Minute)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		if b, err := f.read(t, name); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("kill %d at byte %d of %d: %d bytes under the final name (%v)", i, j.StopAt, j.Size, len(b), err)
		}
		want := Want{Size: j.Size, SHA256: contentSum(t, j.Seed, j.Size)}
		// As the copier does: the copy, then its batch's Sync (S3: the
		// upload a killed copy in parts left is aborted there, when the
		// completing copy goes in one PUT).
		if _, err := f.st.Put(context.Background(), name, content(j.Seed, j.Size), want); err != nil {
			t.Fatalf("kill %d: the copy after it: %v", i, err)
		}
		if err := f.st.Sync(context.Background(), []string{name}); err != nil {
			t.Fatalf("kill %d: the Sync after the copy: %v", i, err)
		}
		if b, err := f.read(t, name); err != nil || sum(b) != want.SHA256 {
			t.Fatalf("kill %d: after the completing copy: %d bytes, %v", i, len(b), err)
		}
	}
}

// testPeakMemory copies size bytes to the store in a child process and
// checks that its peak resident memory (VmHWM) stays under limit; under
// the race detector (CI's go test -race), whose shadow memory roughly
// triples the heap's share, under twice the limit: still far from the
// size of the file, which is what the test guards against.
func testPeakMemory(t *testing.T, f fixture, job childJob, limitKiB int64) {
	if raceEnabled {
		limitKiB *= 2
	}
	job.Seed = rand.Uint64()
	t.Logf("seed %d", job.Seed)
	_, out := startChild(t, job)
	l := waitLine(t, out, "peak ", 10*time.Minute)
	var kib, size int64
	var unit, sha string
	if _, err := fmt.Sscanf(l, "peak %d %s sha256 %s size %d", &kib, &unit, &sha, &size); err != nil || unit != "kB" {
		t.Fatalf("child said %q: %v", l, err)
	}
	t.Logf("copied %d MB with a peak resident memory of %d KiB (limit %d KiB)", size/1e6, kib, limitKiB)
	if kib > limitKiB {
		t.Errorf("peak resident memory %d KiB copying %d bytes; want under %d KiB", kib, size, limitKiB)
	}
	if size != job.Size || sha != contentSum(t, job.Seed, job.Size) {
		t.Errorf("the child stored %d bytes of sha256 %s; want %d bytes of the content's", size, sha, job.Size)
	}
	if o, err := f.st.Stat(context.Background(), job.Name); err != nil || o.SHA256 != sha {
		t.Errorf("Stat after the copy = %+v, %v", o, err)
	}
}
