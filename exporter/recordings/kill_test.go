package recordings

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// copyJob is what a child process (this test binary, run again) copies:
// recordings from a PBX to a store, saying "ready" after StopAt bytes and
// waiting there to be killed, or "done" when it finished first.
type copyJob struct {
	PBX        string
	CAPEM      []byte
	Token      string
	Dir        string
	S3         *recstore.S3Options
	Recordings []Recording
	StopAt     int64 // 0: not stopped
	Peak       bool  // print "peak <KiB>", the peak resident memory, before "done"
}

const childEnv = "RECORDINGS_CHILD_JOB"

// TestChildCopy is not a test: it is the child of TestKilledDuringCopies.
func TestChildCopy(t *testing.T) {
	job := os.Getenv(childEnv)
	if job == "" {
		t.Skip("the child of TestKilledDuringCopies; runs only as its child")
	}
	var j copyJob
	if err := json.Unmarshal([]byte(job), &j); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var st Store
	var err error
	if j.S3 != nil {
		st, err = recstore.OpenS3(ctx, *j.S3)
	} else {
		st, err = recstore.OpenDir(j.Dir, recstore.DirOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(j.PBX)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	cs := &countingStore{Store: st, at: j.StopAt, once: func() {
		once.Do(func() { fmt.Println("ready") })
		select {} // killed here, mid-copy; the other copies go on until then
	}}
	if j.StopAt == 0 {
		cs.once = nil
	}
	sp := &Spool{Origin: u, Token: Token(j.Token), Transport: transportFor(j.CAPEM), MinBackoff: time.Millisecond, MaxAttempts: 30}
	cp := &Copier{Spool: sp, Store: cs, PBX: testPBX, Concurrency: 4}
	if _, _, err := cp.Copy(ctx, j.Recordings); err != nil {
		t.Fatal(err)
	}
	if j.Peak {
		status, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(status), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
				fmt.Println("peak", f[1])
			}
		}
	}
	fmt.Println("done")
}

// TestKilledDuringCopies kills copying processes at seeded random points
// (10 kills per store; the first recording is 11 MiB, in three parts on
// S3), checking after each that every file
// under a final name is right, then completes the copy: the store is
// exact, nothing partial left.
func TestKilledDuringCopies(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			seed := testSeed(t)
			rng := rand.New(rand.NewPCG(seed, 11))
			o := pbxsim.Options{Seed: int64(seed % 1000), Recordings: pbxsim.RecordingOptions{BytesPerSecond: 2000, Cut: 0.05, BigSize: 11 << 20}}
			o.Recordings.Vanished = someIDs(t, o, seed, 2)
			e := recSetup(t, o, cloudTLS)
			f := newStore(t, kind)
			recs := e.recordings(false)
			want := wantStore(t, testPBX, e.truth(t))
			job := copyJob{PBX: e.pbx.URL, CAPEM: e.caPEM, Token: testToken, Recordings: recs}
			if kind == "s3" {
				job.S3 = &f.s3opt
			} else {
				job.Dir = f.dir
			}
			size := map[string]int64{}
			cp := &Copier{PBX: testPBX}
			for _, r := range recs {
				name, _ := cp.name(r)
				size[name] = r.Size
			}
			const kills = 10
			for i := range kills {
				stored := f.contents(t)
				var left int64
				for name := range want {
					if _, ok := stored[name]; !ok {
						left += size[name]
					}
				}
				if left < 2 {
					t.Fatalf("kill %d: the store is complete already; the test proves nothing", i)
				}
				// Up to a third of what is left: kills early in a file, late
				// in one, between files, and files stored between kills.
				job.StopAt = 1 + rng.Int64N(max(left/3, 1))
				cmd, out := startChild(t, job)
				line := waitLine(t, out, 2*time.Minute)
				if line != "ready" {
					t.Fatalf("kill %d: the child said %q, not ready", i, line)
				}
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				cmd.Wait()
				for name, sum := range f.contents(t) {
					if want[name] != sum {
						t.Fatalf("kill %d at byte %d: %s holds sha256 %s; want %q", i, job.StopAt, name, sum, want[name])
					}
				}
			}
			t.Logf("%d kills; %d of %d files stored before the completing copy", kills, len(f.contents(t)), len(want))
			cp = &Copier{Spool: e.spool(t), Store: f.st, PBX: testPBX}
			if _, n, err := cp.Copy(context.Background(), recs); err != nil {
				t.Fatalf("the completing copy: %v", err)
			} else if n.Copied+n.Skipped != len(want) || n.Vanished != 2 {
				t.Errorf("the completing copy: %+v; want %d copied or skipped, 2 vanished", n, len(want))
			}
			checkExact(t, f, want)
			if n := e.sim.Stats.Recordings.CloudCredentials.Load(); n != 0 {
				t.Errorf("the cloud stand-in received %d credentials", n)
			}
		})
	}
}

// startChild runs job in a child process.
func startChild(t *testing.T, job copyJob) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	b, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildCopy$")
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

// waitLine returns the child's first line that is "ready", "done" or
// "peak …", or
// what it printed before it ended.
func waitLine(t *testing.T, out *bufio.Reader, limit time.Duration) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var seen strings.Builder
		for {
			l, err := out.ReadString('\n')
			seen.WriteString(l)
			if s := strings.TrimSpace(l); s == "ready" || s == "done" || strings.HasPrefix(s, "peak ") {
				got <- s
				return
			}
			if err != nil {
				got <- "child ended; its output: " + strconv.Quote(seen.String())
				return
			}
		}
	}()
	select {
	case l := <-got:
		return l
	case <-time.After(limit):
		t.Fatalf("the child said nothing within %s", limit)
		return ""
	}
}

// TestCopyPeakMemory: a 500 MB recording, redirected to the cloud
// stand-in over TLS, is copied to the directory store by a child process
// whose peak resident memory (VmHWM) stays under 100 MiB; under the race
// detector, whose shadow memory roughly triples the heap's share, under
// twice that: still far from the file's size, which is what it guards
// against. Skipped with -short.
func TestCopyPeakMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("copies 500 MB")
	}
	t.Parallel()
	const size, limitKiB = 500e6, 100 << 10
	e := recSetup(t, pbxsim.Options{Seed: 9, Recordings: pbxsim.RecordingOptions{BigSize: size}}, cloudTLS)
	f := newStore(t, "dir")
	var big pbxsim.Recording
	for _, r := range e.sim.Recordings() {
		if r.Size == size {
			big = r
		}
	}
	rec := Recording{ID: strconv.FormatInt(big.ID, 10), Path: big.Path, Start: big.Start, Size: big.Size}
	cmd, out := startChild(t, copyJob{PBX: e.pbx.URL, CAPEM: e.caPEM, Token: testToken, Dir: f.dir, Recordings: []Recording{rec}, Peak: true})
	line := waitLine(t, out, 10*time.Minute)
	var kib int64
	if _, err := fmt.Sscanf(line, "peak %d", &kib); err != nil {
		t.Fatalf("the child said %q", line)
	}
	if l := waitLine(t, out, time.Minute); l != "done" {
		t.Fatalf("the child said %q", l)
	}
	cmd.Wait()
	limit := int64(limitKiB)
	if raceEnabled {
		limit *= 2
	}
	t.Logf("copied %d MB with a peak resident memory of %d KiB (limit %d KiB)", big.Size/1e6, kib, limit)
	if kib > limit {
		t.Errorf("peak resident memory %d KiB copying %d bytes; want under %d KiB", kib, big.Size, limit)
	}
	name, err := (&Copier{PBX: testPBX}).name(rec)
	if err != nil {
		t.Fatal(err)
	}
	checkExact(t, f, map[string]string{name: e.sim.RecordingSHA256(big)})
	if n := e.sim.Stats.Recordings.CloudRequests.Load(); n != 1 {
		t.Errorf("%d requests to the cloud stand-in; want 1 (the file redirected there)", n)
	}
}

// testSeed is a new seed, or RECORDINGS_SEED's to replay a run; logged.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv("RECORDINGS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("RECORDINGS_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (RECORDINGS_SEED=%d replays it)", seed, seed)
	return seed
}
