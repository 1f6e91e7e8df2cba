package recordings

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

const testPBX = "pbx-test"

// someIDs returns n recording ids of the simulator o would make, drawn
// with seed: to be made Vanished or Broken.
func someIDs(t *testing.T, o pbxsim.Options, seed uint64, n int) []int64 {
	t.Helper()
	if o.Recordings.Every == 0 {
		o.Recordings.Every = 4
	}
	if o.Calls == 0 {
		o.Calls = 300
	}
	recs := pbxsim.New(o).Recordings()
	rng := rand.New(rand.NewPCG(seed, 7))
	var ids []int64
	for _, i := range rng.Perm(len(recs))[:n] {
		ids = append(ids, recs[i].ID)
	}
	return ids
}

// TestCopyEveryRecordingOnce: every recording of the simulator is in the
// store once with the truth's sha256, vanished ones counted, whether the
// PBX serves the file or redirects to cloud storage (over https, which
// must see no credential), with or without an announced size; a second
// copy stores nothing again, and fetches nothing when sizes are
// announced.
func TestCopyEveryRecordingOnce(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	for _, c := range []struct {
		store  string
		cloud  cloudMode
		noSize bool
	}{
		{"dir", noCloud, false},
		{"dir", cloudTLS, false},
		{"dir", noCloud, true},
		{"dir", cloudTLS, true},
		{"s3", cloudTLS, false},
		{"s3", noCloud, true},
	} {
		t.Run(fmt.Sprintf("%s/cloud=%v/nosize=%v", c.store, c.cloud == cloudTLS, c.noSize), func(t *testing.T) {
			t.Parallel()
			o := pbxsim.Options{Seed: int64(seed % 1000)}
			o.Recordings.Vanished = someIDs(t, o, seed, 3)
			e := recSetup(t, o, c.cloud)
			f := newStore(t, c.store)
			cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: testPBX, Concurrency: 4}
			recs := e.recordings(c.noSize)
			res, n, err := cp.Copy(context.Background(), recs)
			if err != nil {
				t.Fatalf("Copy: %v", err)
			}
			truth := e.truth(t)
			want := wantStore(t, testPBX, truth)
			checkExact(t, f, want)
			if n.Copied != len(want) || n.Vanished != 3 || n.Skipped != 0 || n.Failed != 0 || n.Refused != 0 {
				t.Errorf("counts %+v; want %d copied, 3 vanished", n, len(want))
			}
			var bytes int64
			for i, r := range res {
				switch {
				case slices.Contains(o.Recordings.Vanished, mustID(t, recs[i].ID)):
					if r.Status != Vanished {
						t.Errorf("recording %s (vanished on the PBX): %v", recs[i].ID, r.Status)
					}
				case r.Status != Copied || want[r.Name] != r.SHA256:
					t.Errorf("recording %s: %+v; want copied to %s", recs[i].ID, r, r.Name)
				default:
					bytes += r.Size
					if r.Redirected != (c.cloud == cloudTLS) {
						t.Errorf("recording %s: redirected %v", recs[i].ID, r.Redirected)
					}
				}
			}
			if n.Bytes != bytes {
				t.Errorf("counted %d bytes; the results hold %d", n.Bytes, bytes)
			}
			st := &e.sim.Stats.Recordings
			if got := st.CloudCredentials.Load(); got != 0 {
				t.Errorf("the cloud stand-in received %d requests carrying a credential; want 0", got)
			}
			if c.cloud == cloudTLS && st.CloudRequests.Load() < int64(len(want)) {
				t.Errorf("the cloud stand-in served %d requests for %d files", st.CloudRequests.Load(), len(want))
			}

			before := st.FileRequests.Load()
			res, n, err = cp.Copy(context.Background(), recs)
			if err != nil {
				t.Fatalf("second Copy: %v", err)
			}
			// Vanished ones are asked again (they may be back); nothing
			// stored is fetched again, unless the PBX announced no size:
			// then each is fetched once to compare with the stored file
			// (another file under its name is another recording under
			// its id: TestCopyClash), and none is written again.
			wantReq := int64(3)
			if c.noSize {
				wantReq += int64(len(want))
			}
			if got := st.FileRequests.Load() - before; got != wantReq {
				t.Errorf("the second copy made %d file requests; want %d (the vanished ones, and each stored one when no size is announced)", got, wantReq)
			}
			if n.Copied != 0 || n.Skipped != len(want) || n.Vanished != 3 || n.Bytes != 0 {
				t.Errorf("second copy: counts %+v; want %d skipped", n, len(want))
			}
			for i, r := range res {
				if r.Status == Skipped && want[r.Name] != r.SHA256 {
					t.Errorf("recording %s skipped with sha256 %s; want %s", recs[i].ID, r.SHA256, want[r.Name])
				}
			}
			checkExact(t, f, want)
		})
	}
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestCopyCutRetried: files cut mid-body (the PBX's or cloud storage's)
// are fetched again, and the store ends exact.
func TestCopyCutRetried(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	for _, cloud := range []cloudMode{noCloud, cloudTLS} {
		t.Run(fmt.Sprintf("cloud=%v", cloud == cloudTLS), func(t *testing.T) {
			t.Parallel()
			e := recSetup(t, pbxsim.Options{Seed: int64(seed % 1000), Recordings: pbxsim.RecordingOptions{Cut: 0.3, BytesPerSecond: 2000}}, cloud)
			f := newStore(t, "dir")
			sp := e.spool(t)
			sp.MaxAttempts = 30 // at a 30% rate, 30 cuts in a row are 2e-16
			cp := &Copier{Spool: sp, Store: f.st, PBX: testPBX}
			_, n, err := cp.Copy(context.Background(), e.recordings(false))
			if err != nil {
				t.Fatalf("Copy: %v", err)
			}
			faults := e.sim.Stats.Recordings.Faults.Load()
			if faults == 0 {
				t.Fatal("the simulator cut no file: the test proves nothing")
			}
			want := wantStore(t, testPBX, e.truth(t))
			checkExact(t, f, want)
			if n.Copied != len(want) {
				t.Errorf("counts %+v; want %d copied", n, len(want))
			}
			t.Logf("%d files, %d cut and fetched again", n.Copied, faults)
		})
	}
}

// TestCopyBrokenFailsLoudly: a file failing after every retry fails the
// batch with an error naming the recording (never the token), stops the
// other copies, and leaves nothing partial; what was stored is exact.
func TestCopyBrokenFailsLoudly(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			o := pbxsim.Options{Seed: int64(seed % 1000)}
			broken := someIDs(t, o, seed, 1)[0]
			o.Recordings.Broken = []int64{broken}
			e := recSetup(t, o, cloudTLS)
			f := newStore(t, kind)
			sp := e.spool(t)
			sp.MaxAttempts = 3
			cp := &Copier{Spool: sp, Store: f.st, PBX: testPBX, Concurrency: 3}
			recs := e.recordings(false)
			res, n, err := cp.Copy(context.Background(), recs)
			if err == nil {
				t.Fatal("Copy of a batch holding a broken file succeeded")
			}
			t.Logf("error: %v", err)
			var se *StatusError
			if !errors.As(err, &se) || se.Status != 500 {
				t.Errorf("error %v; want a *StatusError 500", err)
			}
			id := strconv.FormatInt(broken, 10)
			if !strings.Contains(err.Error(), `recording "`+id+`"`) || !strings.Contains(err.Error(), "after 3 attempts") {
				t.Errorf("error %q; want it to name recording %s and its 3 attempts", err, id)
			}
			var path string
			for _, r := range recs {
				if r.ID == id {
					path = r.Path
				}
			}
			file := path[strings.LastIndexByte(path, '/')+1:]
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "sig=") || strings.Contains(err.Error(), file) {
				t.Errorf("error %q holds the token, a signed address or the PBX's file name %s (the caller's number)", err, file)
			}
			if n.Failed != 1 {
				t.Errorf("counts %+v; want 1 failed", n)
			}
			// Whatever was stored is right.
			want := wantStore(t, testPBX, e.truth(t))
			for name, sum := range f.contents(t) {
				if want[name] != sum {
					t.Errorf("%s holds %s; want %s", name, sum, want[name])
				}
			}
			// No partial file in a folder. On S3 an upload whose
			// initiation was cancelled may be created by the server after
			// the client's abort (invisible, never under the name); the
			// next Put of the name removes it, as the run without the
			// broken file shows.
			if left := f.leftovers(t); len(left) > 0 && kind == "dir" {
				t.Errorf("partial copies left: %q", left)
			}
			var rest []Recording
			for i, r := range res {
				if (r.Status == Failed) != (recs[i].ID == id) {
					t.Errorf("recording %s: %v", recs[i].ID, r.Status)
				}
				if recs[i].ID != id {
					rest = append(rest, recs[i])
				}
			}
			if _, _, err := cp.Copy(context.Background(), rest); err != nil {
				t.Fatalf("the copy without the broken file: %v", err)
			}
			brokenName, _ := cp.name(Recording{ID: id, Start: recs[slices.IndexFunc(recs, func(r Recording) bool { return r.ID == id })].Start})
			delete(want, brokenName)
			checkExact(t, f, want)
		})
	}
}

// countingStore calls at once when a Put has read atBytes of all Puts.
type countingStore struct {
	Store
	n, at int64
	once  func()
}

func (s *countingStore) Put(ctx context.Context, name string, r io.Reader, want recstore.Want) (recstore.Object, error) {
	return s.Store.Put(ctx, name, readerFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		if atomic.AddInt64(&s.n, int64(n)) >= s.at && s.once != nil {
			s.once()
		}
		return n, err
	}), want)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestCopyCancelled: a copy cancelled mid-file returns the context's
// error, leaves nothing partial and nothing wrong, and the next copy
// completes the store, skipping each file stored before. (It asked once
// that the copy after skip exactly the files listed after the cancel: an
// S3 server completing a cancelled PUT after the listing, under load,
// failed it; seed 3114450952196963936.)
func TestCopyCancelled(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := recSetup(t, pbxsim.Options{Seed: int64(seed % 1000)}, noCloud)
			f := newStore(t, kind)
			ctx, cancel := context.WithCancel(context.Background())
			var total int64
			recs := e.recordings(false)
			for _, r := range recs {
				total += r.Size
			}
			at := 1 + rand.New(rand.NewPCG(seed, 3)).Int64N(total/2)
			t.Logf("cancelled after %d of %d bytes", at, total)
			cs := &countingStore{Store: f.st, at: at, once: cancel}
			cp := &Copier{Spool: e.spool(t), Store: cs, PBX: testPBX}
			_, _, err := cp.Copy(ctx, recs)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Copy cancelled = %v; want context.Canceled", err)
			}
			want := wantStore(t, testPBX, e.truth(t))
			got := f.contents(t)
			if len(got) == len(want) {
				t.Errorf("all %d files stored before the cancel: the test proves nothing", len(got))
			}
			for name, sum := range got {
				if want[name] != sum {
					t.Errorf("%s holds %s after the cancel; want %s", name, sum, want[name])
				}
			}
			// S3: an upload the server created after the client's abort
			// (a cancelled initiation) is removed by the next Put of the
			// name; checkExact below proves it.
			if left := f.leftovers(t); len(left) > 0 && kind == "dir" {
				t.Errorf("partial copies left: %q", left)
			}
			// Each file stored when the copy returned is found, not
			// copied again. No more is asked: an S3 server may still
			// complete a PUT whose whole body it received after the
			// client gave up on it (under load, after the listing
			// above), and the copy after then finds that file too,
			// checked (checkExact) like any other. The folder store
			// has no such server: a file appearing after its Copy
			// returned would be a Put outliving its cancel, so there
			// exactly the files listed are skipped (R32-5).
			cp.Store = f.st
			res, n, err := cp.Copy(context.Background(), recs)
			if err != nil || n.Skipped < len(got) || kind == "dir" && n.Skipped != len(got) {
				t.Fatalf("the copy after = %+v, %v; want the %d stored skipped (at least, for S3)", n, err, len(got))
			}
			for i, r := range res {
				if _, ok := got[r.Name]; ok && r.Status != Skipped {
					t.Errorf("recording %s: %s stored before, %v by the copy after; want it skipped", recs[i].ID, r.Name, r.Status)
				}
			}
			checkExact(t, f, want)
		})
	}
}

// TestCopyHostilePaths: a path the PBX lists that must not be fetched is
// refused and reported, never requested; every request the PBX receives
// is under /spoolview/recordings/; the others are copied.
func TestCopyHostilePaths(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	e := recSetup(t, pbxsim.Options{Seed: int64(seed % 1000), Calls: 600, Recordings: pbxsim.RecordingOptions{HostileNames: true}}, noCloud)
	f := newStore(t, "dir")
	cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: testPBX}
	recs := e.recordings(false)
	res, n, err := cp.Copy(context.Background(), recs)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	var hostile int
	for i, r := range res {
		isHostile := strings.Contains(recs[i].Path, "/"+recs[i].ID+"/")
		if isHostile {
			hostile++
		}
		if (r.Status == Refused) != isHostile {
			t.Errorf("recording %s at %.60q: %v (%s)", recs[i].ID, recs[i].Path, r.Status, r.Reason)
		}
		if r.Status == Refused && !strings.Contains(r.Reason, "refused") {
			t.Errorf("recording %s refused with reason %q", recs[i].ID, r.Reason)
		}
	}
	if hostile < 5 || n.Refused != hostile {
		t.Errorf("%d hostile paths, %d refused; want at least 5, all refused", hostile, n.Refused)
	}
	for _, p := range e.seen.all() {
		if !strings.HasPrefix(p, spoolPrefix) && p != "/_sim/truth/recordings" {
			t.Errorf("the PBX received a request for %.80q, outside %s", p, spoolPrefix)
		}
		for i := range recs {
			if res[i].Status == Refused && p == recs[i].Path {
				t.Errorf("the refused path %.80q was requested", p)
			}
		}
	}
	checkExact(t, f, wantStore(t, testPBX, e.truth(t)))
}

// TestCopyCutLeavesNothing: a file cut mid-body at its only attempt
// fails the copy and leaves nothing under its name, in either store.
// minio-go takes a source's io.ErrUnexpectedEOF for the end of a stream of
// unknown length and completes the upload: the spool's body must never
// return that error itself.
func TestCopyCutLeavesNothing(t *testing.T) {
	t.Parallel()
	const size, cut = 300_000, 123_457
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/wav")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(make([]byte, cut))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	for _, kind := range []string{"dir", "s3"} {
		for _, announced := range []int64{0, size} {
			t.Run(fmt.Sprintf("%s/size=%d", kind, announced), func(t *testing.T) {
				t.Parallel()
				f := newStore(t, kind)
				cp := &Copier{Spool: &Spool{Origin: u, Token: testToken, MaxAttempts: 1}, Store: f.st, PBX: testPBX}
				rec := Recording{ID: "1", Path: "/spoolview/recordings/a.wav", Start: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Size: announced}
				_, _, err := cp.Copy(context.Background(), []Recording{rec})
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("Copy of a file cut short = %v; want io.ErrUnexpectedEOF", err)
				}
				checkExact(t, f, map[string]string{})
			})
		}
	}
}

// TestCopyClash: a recording whose stored name holds another file (the
// PBX sent one id for two recordings: another size, or, none announced,
// another sha256 once fetched) is stored under AltID, its result saying
// so; the file already there is never replaced; copied again, it is
// found under AltID and not fetched into the store again.
func TestCopyClash(t *testing.T) {
	t.Parallel()
	for _, noSize := range []bool{false, true} {
		t.Run(fmt.Sprintf("nosize=%v", noSize), func(t *testing.T) {
			t.Parallel()
			e := recSetup(t, pbxsim.Options{Seed: 41}, noCloud)
			f := newStore(t, "dir")
			cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: testPBX}
			recs := e.recordings(noSize)
			sums := map[string]string{}
			for _, l := range e.truth(t) {
				sums[l.Path] = l.SHA256
			}
			a, b := recs[0], recs[1]
			b.ID, b.Start = a.ID, a.Start // b's file, listed under a's id and start
			res, _, err := cp.Copy(context.Background(), []Recording{a})
			if err != nil || res[0].Status != Copied {
				t.Fatalf("first: %+v, %v", res[0], err)
			}
			first := res[0].Name
			for range 2 {
				res, _, err = cp.Copy(context.Background(), []Recording{b})
				alt, _ := recstore.Name(testPBX, b.Start.UTC(), AltID(b))
				if err != nil || res[0].ID != AltID(b) || res[0].Name != alt || res[0].Clash != first || res[0].SHA256 != sums[b.Path] {
					t.Fatalf("another file under %s's name: %+v, %v; want stored as %s with sha256 %s", a.ID, res[0], err, alt, sums[b.Path])
				}
				got := f.contents(t)
				if got[first] != sums[a.Path] || got[alt] != sums[b.Path] || len(got) != 2 {
					t.Fatalf("store %v; want %s: %s and %s: %s", got, first, sums[a.Path], alt, sums[b.Path])
				}
			}
			if res[0].Status != Skipped {
				t.Errorf("copied again: %v, want skipped", res[0].Status)
			}
		})
	}
}

// TestCopyStoredThenVanished: a recording already stored (a run killed
// before its row was written) that the PBX no longer has, announcing no
// size: its stored file cannot be compared and is kept, the result
// Skipped with the stored size and sha256 (its row points at the file),
// not Vanished.
func TestCopyStoredThenVanished(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 43}, noCloud)
	f := newStore(t, "dir")
	cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: testPBX}
	r := e.recordings(true)[0]
	res, _, err := cp.Copy(context.Background(), []Recording{r})
	if err != nil || res[0].Status != Copied {
		t.Fatalf("first: %+v, %v", res[0], err)
	}
	first := res[0]
	r.Path = r.Path[:strings.LastIndex(r.Path, "/")+1] + "gone.wav" // answered 404
	res, _, err = cp.Copy(context.Background(), []Recording{r})
	if err != nil || res[0].Status != Skipped || res[0].Name != first.Name || res[0].SHA256 != first.SHA256 || res[0].Size != first.Size {
		t.Fatalf("stored, then gone from the PBX: %+v, %v; want skipped, %s with sha256 %s", res[0], err, first.Name, first.SHA256)
	}
	if got := f.contents(t); len(got) != 1 || got[first.Name] != first.SHA256 {
		t.Fatalf("store %v; want only %s: %s", got, first.Name, first.SHA256)
	}
}

// TestCopyLogsIDsQuoted: the copier's log lines (copied, vanished,
// refused) name a recording by its id quoted and cut to 80 bytes, never
// as sent: an id may be kilobytes long or hold a newline.
func TestCopyLogsIDsQuoted(t *testing.T) {
	t.Parallel()
	o := pbxsim.Options{Seed: 47}
	o.Recordings.Vanished = someIDs(t, o, 47, 1)
	e := recSetup(t, o, noCloud)
	f := newStore(t, "dir")
	var buf bytes.Buffer
	cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: testPBX, Concurrency: 1,
		Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	var recs []Recording
	for _, r := range e.recordings(false) { // one vanished first, then two others
		if strconv.FormatInt(o.Recordings.Vanished[0], 10) == r.ID {
			recs = append([]Recording{r}, recs...)
		} else if len(recs) < 3 {
			recs = append(recs, r)
		}
	}
	recs = recs[:3]
	recs[0], recs[1] = recs[1], recs[0]
	recs[2].Path = "/spoolview/recordings/2026/01/02/..%2F..%2Fetc%2Fx"
	long := strings.Repeat("x", 4096) + "\nlevel=ERROR msg=forged"
	for i := range recs {
		recs[i].ID, recs[i].IDKey = strconv.Itoa(i)+long, testIDKey(t, "copy-test-key-0123456789abcdefghijkl")
	}
	res, _, err := cp.Copy(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != Copied || res[1].Status != Vanished || res[2].Status != Refused {
		t.Fatalf("results %+v; want copied, vanished, refused", res)
	}
	out := buf.String()
	for _, msg := range []string{"recording copied", "recording vanished", "recording path refused"} {
		if !strings.Contains(out, msg) {
			t.Errorf("no %q line in the log:\n%.2000s", msg, out)
		}
	}
	if strings.Contains(out, strings.Repeat("x", 200)) || strings.Contains(out, "\nlevel=ERROR msg=forged") {
		t.Errorf("the log holds the id as sent:\n%.2000s", out)
	}
}

// syncingStore records the names Sync is given, and fails it with err.
type syncingStore struct {
	Store
	synced []string
	err    error
}

func (s *syncingStore) Sync(ctx context.Context, names []string) error {
	s.synced = append(s.synced, names...)
	if s.err != nil {
		return s.err
	}
	return s.Store.Sync(ctx, names)
}

// TestCopySyncsBeforeItSucceeds: Copy returns nil only once the store
// synced every file it copied or found stored (a folder store syncs
// their folders once a batch: the caller commits its cursor past them on
// that nil), and a Sync failing fails the batch.
func TestCopySyncsBeforeItSucceeds(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	o := pbxsim.Options{Seed: int64(seed % 1000)}
	o.Recordings.Vanished = someIDs(t, o, seed, 2)
	e := recSetup(t, o, noCloud)
	f := newStore(t, "dir")
	recs := e.recordings(false)
	want := wantStore(t, testPBX, e.truth(t))
	for _, pass := range []string{"copied", "skipped"} {
		st := &syncingStore{Store: f.st}
		cp := &Copier{Spool: e.spool(t), Store: st, PBX: testPBX, Concurrency: 3}
		if _, n, err := cp.Copy(context.Background(), recs); err != nil || n.Copied+n.Skipped != len(want) {
			t.Fatalf("%s: Copy = %+v, %v", pass, n, err)
		}
		slices.Sort(st.synced)
		if wantNames := slices.Sorted(maps.Keys(want)); !slices.Equal(st.synced, wantNames) {
			t.Errorf("%s: synced %d names %.200q; want the %d stored", pass, len(st.synced), st.synced, len(wantNames))
		}
	}
	// A failing Sync, on files just copied (a fresh store) and on files
	// found stored: none of them reads as stored, so the exporter counts
	// them failed and its oldest pending recording sees them.
	boom := errors.New("sync: input/output error")
	for _, c := range []struct {
		pass string
		st   Store
	}{{"copied", newStore(t, "dir").st}, {"skipped", f.st}} {
		cp := &Copier{Spool: e.spool(t), Store: &syncingStore{Store: c.st, err: boom}, PBX: testPBX}
		results, n, err := cp.Copy(context.Background(), recs)
		if !errors.Is(err, boom) {
			t.Errorf("%s: Copy with a failing Sync = %v; want its error", c.pass, err)
		}
		if n.Copied != 0 || n.Skipped != 0 || n.Failed != len(want) {
			t.Errorf("%s: Copy with a failing Sync counted %+v; want the %d stored failed", c.pass, n, len(want))
		}
		for i, r := range results {
			if _, stored := want[r.Name]; stored && (r.Status != Failed || !strings.Contains(r.Reason, boom.Error())) {
				t.Errorf("%s: recording %s (%s) is %v (%q) after a failing Sync; want failed with its error", c.pass, recs[i].ID, r.Name, r.Status, r.Reason)
			}
		}
	}
}

// gateStore holds every Put until gate is closed, counting the Puts
// entered (each one signalled on entered).
type gateStore struct {
	Store
	gate    chan struct{}
	entered chan string
}

func (s *gateStore) Put(ctx context.Context, name string, r io.Reader, want recstore.Want) (recstore.Object, error) {
	s.entered <- name
	<-s.gate
	return s.Store.Put(ctx, name, r, want)
}

// TestCopyBatchesShareConcurrency: two batches copied at once (the
// exporter starts a window's while the one before it finishes) copy at
// most Concurrency files at once between them, and both store every
// file exactly.
func TestCopyBatchesShareConcurrency(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	e := recSetup(t, pbxsim.Options{Seed: int64(seed % 1000)}, noCloud)
	f := newStore(t, "dir")
	recs := e.recordings(false)
	if len(recs) < 6 {
		t.Fatalf("the simulator made %d recordings; the test needs 6", len(recs))
	}
	half := len(recs) / 2
	st := &gateStore{Store: f.st, gate: make(chan struct{}), entered: make(chan string, len(recs))}
	cp := &Copier{Spool: e.spool(t), Store: st, PBX: testPBX, Concurrency: 2}
	errs := make(chan error, 2)
	for _, batch := range [][]Recording{recs[:half], recs[half:]} {
		go func() {
			_, n, err := cp.Copy(context.Background(), batch)
			if err == nil && n.Copied != len(batch) {
				err = fmt.Errorf("copied %d of %d", n.Copied, len(batch))
			}
			errs <- err
		}()
	}
	// Each batch alone would copy 2 at once (4 between them): only 2 may
	// enter the store before the gate opens. A third entering within the
	// wait below is the limit broken; none entering passes only when
	// the limit holds (the wait bounds the test, it orders nothing).
	<-st.entered
	<-st.entered
	select {
	case name := <-st.entered:
		t.Errorf("a third Put (%s) began while two held both places of Concurrency 2", name)
	case <-time.After(300 * time.Millisecond):
	}
	close(st.gate)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("Copy: %v", err)
		}
	}
	checkExact(t, f, wantStore(t, testPBX, e.truth(t)))
}

// methodCount counts the requests a transport carries, by method.
type methodCount struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (m *methodCount) RoundTrip(r *http.Request) (*http.Response, error) {
	m.mu.Lock()
	m.n[r.Method]++
	m.mu.Unlock()
	return m.base.RoundTrip(r)
}

func (m *methodCount) take() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.n
	m.n = map[string]int{}
	return n
}

// TestCopyS3ListsInsteadOfAsking: to S3, a batch's names are found
// absent by one listing of their folder, not one HEAD each (on versitygw,
// which closes every connection, a TLS handshake a file over https); a
// batch already stored is still asked name by name (Stored compares size
// and sha256), and skipped.
func TestCopyS3ListsInsteadOfAsking(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	e := recSetup(t, pbxsim.Options{Seed: int64(seed % 1000)}, noCloud)
	f := newStore(t, "s3")
	mc := &methodCount{base: http.DefaultTransport.(*http.Transport).Clone(), n: map[string]int{}}
	o := f.s3opt
	o.Transport = mc
	st, err := recstore.OpenS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	recs := e.recordings(false)
	cp := &Copier{Spool: e.spool(t), Store: st, PBX: testPBX, Concurrency: 4}
	mc.take()
	if _, n, err := cp.Copy(context.Background(), recs); err != nil || n.Copied != len(recs) {
		t.Fatalf("Copy = %+v, %v", n, err)
	}
	if n := mc.take(); n[http.MethodHead] != 0 || n[http.MethodPut] != len(recs) {
		t.Errorf("copying %d files to an empty store made %v requests; want no HEAD, a PUT a file", len(recs), n)
	}
	checkExact(t, f, wantStore(t, testPBX, e.truth(t)))
	if _, n, err := cp.Copy(context.Background(), recs); err != nil || n.Skipped != len(recs) {
		t.Fatalf("second Copy = %+v, %v", n, err)
	}
	if n := mc.take(); n[http.MethodHead] != len(recs) || n[http.MethodPut] != 0 {
		t.Errorf("copying %d files already stored made %v requests; want a HEAD a file, no PUT", len(recs), n)
	}
}

// TestStoredID: an id of 1 to 64 ASCII letters, digits, '-' or '_' (not
// starting with "h-" or "k-", no number in it) is stored as it is; any
// other, "k-" and a keyed hash (TestStoredIDHoldsNoNumber for numbers).
func TestStoredID(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		id   string
		kept bool
	}{
		{"1", true}, {"a-B_9", true}, {strings.Repeat("x", 64), true},
		{strings.Repeat("x", 65), false}, {"a.b", false}, {"a b", false}, {"é", false},
		{"a/b", false}, {"a\nb", false}, {"h-1", false}, {"H-1", true},
	} {
		got := StoredID(Recording{ID: c.id, Path: "/spoolview/recordings/x.wav", IDKey: testIDKey(t, "stored-id-loop-key-0123456789abcdefg")})
		if kept := got == c.id; kept != c.kept || !c.kept && (len(got) != 18 || !strings.HasPrefix(got, "k-")) {
			t.Errorf("StoredID(%q) = %q; want it kept: %v", c.id, got, c.kept)
		}
	}
}

// TestCopyS3RefusingTrailers: to an S3 server that refuses PUTs with a
// trailing checksum (400), the first file is fetched again once the store
// fell back to uploads in parts (recstore.ErrFetchAgain), and every file
// is stored exactly once with its bytes.
func TestCopyS3RefusingTrailers(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	e := recSetup(t, pbxsim.Options{Seed: int64(seed % 1000)}, noCloud)
	f := newStore(t, "s3")
	var refused atomic.Int64
	o := f.s3opt
	base := http.DefaultTransport.(*http.Transport).Clone()
	o.Transport = roundTripper(func(r *http.Request) (*http.Response, error) {
		if r.Method != http.MethodPut || r.Header.Get("X-Amz-Trailer") == "" {
			return base.RoundTrip(r)
		}
		refused.Add(1)
		if r.Body != nil {
			r.Body.Close()
		}
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>x-amz-trailer</Message></Error>`
		return &http.Response{StatusCode: http.StatusNotImplemented, Status: "501 Not Implemented", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: r}, nil
	})
	st, err := recstore.OpenS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	recs := e.recordings(false)
	cp := &Copier{Spool: e.spool(t), Store: st, PBX: testPBX, Concurrency: 4}
	if _, n, err := cp.Copy(context.Background(), recs); err != nil || n.Copied != len(recs) {
		t.Fatalf("Copy = %+v, %v", n, err)
	}
	if r := refused.Load(); r < 1 || r > 4 {
		t.Errorf("%d PUTs with a trailer refused; want 1 to 4 (those begun before the first refusal)", r)
	}
	checkExact(t, f, wantStore(t, testPBX, e.truth(t)))
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestCopyFindsNameOfBefore: a store written before ids were keyed, its
// exporter's state lost (review1, R2): a recording whose id holds a
// number, stored under that id as it was (LegacyID), is found there and
// Skipped under that name and id, not stored a second time under "k-";
// another recording's file under the old name is not taken for it (the
// same size and sha256, or compared when the PBX announces none): it is
// copied under its own name.
func TestCopyFindsNameOfBefore(t *testing.T) {
	t.Parallel()
	for _, noSize := range []bool{false, true} {
		t.Run(fmt.Sprintf("nosize=%v", noSize), func(t *testing.T) {
			t.Parallel()
			e := recSetup(t, pbxsim.Options{Seed: 47}, noCloud)
			f := newStore(t, "dir")
			cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: testPBX}
			recs := e.recordings(noSize)
			a, b := recs[0], recs[1]
			a.ID, b.ID = "rec-258-393761714455", "rec-259-393761714466"
			b.Start = a.Start
			// Stored before: a under its id of then; a's file under b's.
			olda, oldb := a, a
			olda.Key, oldb.Key = LegacyID(a), LegacyID(b)
			if _, _, err := cp.Copy(context.Background(), []Recording{olda, oldb}); err != nil {
				t.Fatal(err)
			}
			before := f.contents(t)
			res, cnt, err := cp.Copy(context.Background(), []Recording{a, b})
			if err != nil {
				t.Fatal(err)
			}
			nameA, _ := recstore.Name(testPBX, a.Start.UTC(), LegacyID(a))
			if r := res[0]; r.Status != Skipped || r.Name != nameA || r.ID != LegacyID(a) || r.SHA256 != before[nameA] {
				t.Errorf("a, stored under its id of before: %+v; want skipped as %s", r, nameA)
			}
			nameB, _ := recstore.Name(testPBX, b.Start.UTC(), StoredID(b))
			if r := res[1]; r.Status != Copied || r.Name != nameB || r.ID != StoredID(b) {
				t.Errorf("b, another file under its id of before: %+v; want copied as %s", r, nameB)
			}
			if got := f.contents(t); cnt.Copied != 1 || len(got) != 3 {
				t.Errorf("copied %d, store %v; want b's file added only", cnt.Copied, got)
			}
		})
	}
}

// TestCopyLargestFirst: a batch's files are fetched by the sizes the PBX
// announced, largest first, and those of unknown size last in list
// order, so that a batch does not end on one large file copied alone.
func TestCopyLargestFirst(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	e := recSetup(t, pbxsim.Options{Seed: int64(seed % 1000)}, noCloud)
	f := newStore(t, "dir")
	recs := e.recordings(false)
	if len(recs) < 6 {
		t.Fatalf("the simulator made %d recordings; the test needs 6", len(recs))
	}
	// Two of unknown size, which go last in list order.
	recs[1].Size, recs[4].Size = 0, 0
	sizes := map[string]int64{}
	var want []string
	for _, r := range recs {
		sizes[r.Path] = r.Size
		if r.Size == 0 {
			want = append(want, r.Path)
		}
	}
	distinct := map[int64]bool{}
	for _, r := range recs {
		distinct[r.Size] = true
	}
	if len(distinct) < 3 {
		t.Fatalf("the simulator's recordings have %d distinct sizes; the test needs 3", len(distinct))
	}
	cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: testPBX, Concurrency: 1}
	if _, n, err := cp.Copy(context.Background(), recs); err != nil || n.Copied != len(recs) {
		t.Fatalf("Copy: copied %d of %d, %v", n.Copied, len(recs), err)
	}
	var got []string
	for _, p := range e.seen.all() {
		if _, ok := sizes[p]; ok {
			got = append(got, p)
		}
	}
	if len(got) != len(recs) {
		t.Fatalf("the PBX served %d of the %d files", len(got), len(recs))
	}
	for i := 1; i < len(got)-len(want); i++ {
		if sizes[got[i]] > sizes[got[i-1]] {
			t.Errorf("file %d fetched (%d bytes) is larger than the one before it (%d bytes)", i, sizes[got[i]], sizes[got[i-1]])
			break
		}
	}
	if tail := got[len(got)-len(want):]; !slices.Equal(tail, want) {
		t.Errorf("the files of unknown size were fetched as %v, want last in list order %v", tail, want)
	}
}
