package recstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// discardSweeper is what the exporter asks of both stores here.
type discardSweeper interface {
	Discard(ctx context.Context, name string) (bool, error)
	SweepPartials(ctx context.Context, folder string, before time.Time, inFlight, anyAge map[string]bool) (int, error)
}

// TestDiscardAndSweep: on both stores, Discard removes the file under a
// name (true), and nothing else: another name's file, the day's folder,
// partial copies (incomplete uploads); a name holding nothing is false,
// no error. SweepPartials removes the partial copies (aborts the
// incomplete uploads) of a day's folder begun before the time given,
// counting them, and keeps those begun after it (a Put running) and
// every complete file. Both refuse what Name could not have built; the
// store is named without a credential.
func TestDiscardAndSweep(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			day := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
			a, _ := Name("pbx-test", day, "a")
			b, _ := Name("pbx-test", day, "b")
			c, _ := Name("pbx-test", day, "c")
			other, _ := Name("pbx-test", day.AddDate(0, 0, 1), "a")
			var f fixture
			var leave func(name string, old bool) // what a killed copy of name leaves, begun long ago or now
			var root, secret string
			switch kind {
			case "dir":
				f, root = dirFixture(t, DirOptions{})
				n := 0
				leave = func(name string, old bool) {
					n++
					p := filepath.Join(root, filepath.FromSlash(name))
					os.MkdirAll(filepath.Dir(p), 0o700)
					tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".partial-"+strings.Repeat("7", n))
					if err := os.WriteFile(tmp, []byte("RI"), 0o600); err != nil {
						t.Fatal(err)
					}
					if old {
						past := time.Now().Add(-48 * time.Hour)
						if err := os.Chtimes(tmp, past, past); err != nil {
							t.Fatal(err)
						}
					}
				}
			case "s3":
				var o S3Options
				f, _, o = s3Fixture(t)
				secret = o.SecretKey
				core := minio.Core{Client: f.st.(*S3).c}
				leave = func(name string, old bool) {
					if _, err := core.NewMultipartUpload(ctx, o.Bucket, f.st.(*S3).Key(name), minio.PutObjectOptions{}); err != nil {
						t.Fatal(err)
					}
				}
			}
			d := f.st.(discardSweeper)
			for _, n := range []string{a, b, other} {
				if _, err := f.st.Put(ctx, n, bytes.NewReader([]byte("RIFF "+n)), Want{}); err != nil {
					t.Fatal(err)
				}
			}
			if kind == "dir" {
				// A complete file as old as the partial copies: never swept.
				past := time.Now().Add(-48 * time.Hour)
				if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(b)), past, past); err != nil {
					t.Fatal(err)
				}
			}
			leave(a, true)
			leave(c, true)
			leave(other, true)
			for _, step := range []struct {
				name string
				want bool
			}{{a, true}, {a, false}, {c, false}} {
				if ok, err := d.Discard(ctx, step.name); err != nil || ok != step.want {
					t.Fatalf("Discard(%s): %v, %v; want %v", step.name, ok, err, step.want)
				}
			}
			if _, err := f.read(t, a); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s discarded: %v, want it gone", a, err)
			}
			if len(f.leftovers(t)) != 3 {
				t.Fatalf("left beside the names: %q; want the three partial copies kept by Discard", f.leftovers(t))
			}
			// Begun before a time in the future: every one of the day's;
			// (S3) before a time past: none.
			before := time.Now().Add(time.Hour)
			if kind == "s3" {
				if n, err := d.SweepPartials(ctx, DayFolder(a), time.Now().Add(-time.Hour), nil, nil); err != nil || n != 0 {
					t.Fatalf("SweepPartials before an hour ago: %d, %v; want none aborted (begun since)", n, err)
				}
			} else {
				leave(b, false) // a Put running: written now
				before = time.Now().Add(-time.Hour)
			}
			if n, err := d.SweepPartials(ctx, DayFolder(a), before, nil, nil); err != nil || n != 2 {
				t.Fatalf("SweepPartials(%s): %d, %v; want the 2 partial copies of its day removed", DayFolder(a), n, err)
			}
			left := f.leftovers(t)
			if kind == "dir" && (len(left) != 2 || !strings.Contains(strings.Join(left, " "), "/02/.a.wav.partial-")) {
				t.Fatalf("left: %q; want the next day's and the running one's", left)
			}
			if kind == "s3" && len(left) != 1 {
				t.Fatalf("left: %q; want the next day's upload", left)
			}
			for _, n := range []string{b, other} {
				if got, err := f.read(t, n); err != nil || string(got) != "RIFF "+n {
					t.Fatalf("%s: %q, %v; want it kept", n, got, err)
				}
			}
			if kind == "dir" {
				if _, err := os.Stat(filepath.Join(root, "pbx-test", "2025", "03", "01")); err != nil {
					t.Fatalf("the day folder: %v, want it kept (copies may be writing into it)", err)
				}
			}
			if n, err := d.SweepPartials(ctx, "pbx-test/2026/01/01", before, nil, nil); err != nil || n != 0 {
				t.Fatalf("a day never written: %d, %v", n, err)
			}
			if _, err := d.Discard(ctx, "pbx-test/../../etc/passwd"); err == nil {
				t.Fatal("a name Name could not build was taken")
			}
			if _, err := d.SweepPartials(ctx, "pbx-test/../..", before, nil, nil); err == nil {
				t.Fatal("a folder Name could not build was taken")
			}
			// What is left, for the fixture's check that nothing is.
			for _, folder := range []string{DayFolder(a), DayFolder(other)} {
				if _, err := d.SweepPartials(ctx, folder, time.Now().Add(time.Hour), nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			s := f.st.(interface{ String() string }).String()
			if !strings.Contains(s, root) && kind == "dir" || kind == "s3" && (!strings.Contains(s, "bucket") || strings.Contains(s, secret)) {
				t.Fatalf("the store named %q", s)
			}
		})
	}
}

// TestDirDiscardRefusesLinks: a symbolic link under a name is refused,
// not followed nor removed; one named as a partial copy is not swept.
func TestDirDiscardRefusesLinks(t *testing.T) {
	t.Parallel()
	f, root := dirFixture(t, DirOptions{})
	link, _ := Name("pbx-test", time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC), "l")
	outside := filepath.Join(t.TempDir(), "secret.wav")
	os.WriteFile(outside, []byte("keep"), 0o600)
	p := filepath.Join(root, filepath.FromSlash(link))
	os.MkdirAll(filepath.Dir(p), 0o700)
	if err := os.Symlink(outside, p); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(filepath.Dir(p), ".l.wav.partial-1")
	if err := os.Symlink(outside, partial); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.(*Dir).Discard(context.Background(), link); err == nil {
		t.Fatal("a symbolic link under a name was removed without a word")
	}
	if n, err := f.st.(*Dir).SweepPartials(context.Background(), DayFolder(link), time.Now().Add(time.Hour), nil, nil); err != nil || n != 0 {
		t.Fatalf("SweepPartials: %d, %v; want the link left", n, err)
	}
	for _, q := range []string{p, partial} {
		if _, err := os.Lstat(q); err != nil {
			t.Fatalf("the link: %v, want it left", err)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Fatal("the file the link points to changed")
	}
	os.Remove(partial) // for the fixture's check that nothing partial is left
}

// TestS3SweepKeepsUnknownAndForeign (review 19, R19-8): an upload whose
// start the server did not send (no <Initiated>, read as the zero time)
// may be this run's own Put, so the sweep keeps it, however late before
// is; and an upload under a key in the day's folder that is not a
// recording's name (not as Name builds it) is not this store's partial
// copy, so it is kept too. Both were aborted.
func TestS3SweepKeepsUnknownAndForeign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, _, o := s3Fixture(t)
	plain := f.st.(*S3)
	dropInitiated := regexp.MustCompile(`<Initiated>[^<]*</Initiated>`)
	o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil || r.Method != http.MethodGet || !r.URL.Query().Has("uploads") {
			return resp, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		b = dropInitiated.ReplaceAll(b, nil)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return resp, nil
	})
	st, err := OpenS3(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	a, _ := Name("pbx-test", day, "a")
	core := minio.Core{Client: plain.c}
	foreign := DayFolder(a) + "/notes.txt"
	for _, key := range []string{plain.Key(a), plain.Key(foreign)} {
		if _, err := core.NewMultipartUpload(ctx, o.Bucket, key, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := st.SweepPartials(ctx, DayFolder(a), time.Now().Add(time.Hour), nil, nil); err != nil || n != 0 {
		t.Fatalf("SweepPartials with no start sent: %d, %v; want none aborted", n, err)
	}
	if left := f.leftovers(t); len(left) != 2 {
		t.Fatalf("left: %q; want both uploads kept", left)
	}
	// With the start sent, the recording's upload is swept, the foreign
	// key's kept.
	if n, err := plain.SweepPartials(ctx, DayFolder(a), time.Now().Add(time.Hour), nil, nil); err != nil || n != 1 {
		t.Fatalf("SweepPartials: %d, %v; want the recording's upload aborted", n, err)
	}
	left := f.leftovers(t)
	if len(left) != 1 || left[0] != plain.Key(foreign) {
		t.Fatalf("left: %q; want only %s", left, plain.Key(foreign))
	}
	for u := range plain.c.ListIncompleteUploads(ctx, o.Bucket, plain.Key(foreign), false) {
		if u.Err == nil {
			core.AbortMultipartUpload(ctx, o.Bucket, u.Key, u.UploadID) // for the fixture's check
		}
	}
}

// TestSweepKeepsInFlight (review 19, R19-2): on both stores, a partial
// copy (an incomplete upload) of a name in the in-flight set, one a Put
// of this run is writing or may write, is never swept, however old it
// looks (a store whose clock is hours behind): only the other name's.
func TestSweepKeepsInFlight(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			day := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
			a, _ := Name("pbx-test", day, "a")
			b, _ := Name("pbx-test", day, "b")
			var f fixture
			var leave func(name string)
			switch kind {
			case "dir":
				var root string
				f, root = dirFixture(t, DirOptions{})
				leave = func(name string) {
					p := filepath.Join(root, filepath.FromSlash(name))
					os.MkdirAll(filepath.Dir(p), 0o700)
					tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".partial-1")
					if err := os.WriteFile(tmp, []byte("RI"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			case "s3":
				var o S3Options
				f, _, o = s3Fixture(t)
				core := minio.Core{Client: f.st.(*S3).c}
				leave = func(name string) {
					if _, err := core.NewMultipartUpload(ctx, o.Bucket, f.st.(*S3).Key(name), minio.PutObjectOptions{}); err != nil {
						t.Fatal(err)
					}
				}
			}
			d := f.st.(discardSweeper)
			leave(a)
			leave(b)
			// Begun before a time an hour ahead: as a store's clock hours
			// behind makes a running Put's copy look.
			late := time.Now().Add(time.Hour)
			if n, err := d.SweepPartials(ctx, DayFolder(a), late, map[string]bool{a: true}, nil); err != nil || n != 1 {
				t.Fatalf("SweepPartials with %s in flight: %d, %v; want only %s's removed", a, n, err, b)
			}
			left := f.leftovers(t)
			if len(left) != 1 || !strings.Contains(left[0], "a.wav") {
				t.Fatalf("left: %q; want only %s's partial copy", left, a)
			}
			if n, err := d.SweepPartials(ctx, DayFolder(a), late, nil, nil); err != nil || n != 1 {
				t.Fatalf("SweepPartials, nothing in flight: %d, %v; want %s's removed", n, err, a)
			}
		})
	}
}

// TestSweepAnyAge (review 34, R34-1): on both stores, the partial copy
// (incomplete upload) of a name in anyAge, a recording not kept, is swept
// however young (begun now, after the time given); another name's young
// one is kept, and so is one of a name both in anyAge and in flight.
func TestSweepAnyAge(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			day := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
			a, _ := Name("pbx-test", day, "a")
			b, _ := Name("pbx-test", day, "b")
			c, _ := Name("pbx-test", day, "c")
			var f fixture
			var leave func(name string)
			switch kind {
			case "dir":
				var root string
				f, root = dirFixture(t, DirOptions{})
				leave = func(name string) {
					p := filepath.Join(root, filepath.FromSlash(name))
					os.MkdirAll(filepath.Dir(p), 0o700)
					tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".partial-1")
					if err := os.WriteFile(tmp, []byte("RI"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			case "s3":
				var o S3Options
				f, _, o = s3Fixture(t)
				core := minio.Core{Client: f.st.(*S3).c}
				leave = func(name string) {
					if _, err := core.NewMultipartUpload(ctx, o.Bucket, f.st.(*S3).Key(name), minio.PutObjectOptions{}); err != nil {
						t.Fatal(err)
					}
				}
			}
			d := f.st.(discardSweeper)
			leave(a)
			leave(b)
			leave(c)
			before := time.Now().Add(-time.Hour)
			if n, err := d.SweepPartials(ctx, DayFolder(a), before, map[string]bool{c: true}, map[string]bool{a: true, c: true}); err != nil || n != 1 {
				t.Fatalf("SweepPartials, %s not kept: %d, %v; want its young copy removed, and only it", a, n, err)
			}
			left := f.leftovers(t)
			if len(left) != 2 || strings.Contains(strings.Join(left, " "), "a.wav") {
				t.Fatalf("left: %q; want the copies of %s and %s only", left, b, c)
			}
			if n, err := d.SweepPartials(ctx, DayFolder(a), before, nil, map[string]bool{b: true, c: true}); err != nil || n != 2 {
				t.Fatalf("SweepPartials, %s and %s not kept, none in flight: %d, %v; want both removed", b, c, n, err)
			}
		})
	}
}
