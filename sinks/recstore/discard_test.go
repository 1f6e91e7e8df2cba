package recstore

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// TestDiscard: on both stores, Discard removes the file under a name and
// what killed copies of it left (partial files; incomplete uploads),
// counting each; keeps the file when told it is another recording's
// (the leftovers still go); keeps the other names and, on a folder, the
// day's folder; is no error on a name holding nothing, or whose day was
// never written; refuses a name Name could not have built; and names
// its store without a credential.
func TestDiscard(t *testing.T) {
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
			var leave func(name string) // what a killed copy of name leaves
			var root, secret string
			switch kind {
			case "dir":
				f, root = dirFixture(t, DirOptions{})
				n := 0
				leave = func(name string) {
					n++
					p := filepath.Join(root, filepath.FromSlash(name))
					os.MkdirAll(filepath.Dir(p), 0o700)
					if err := os.WriteFile(filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".partial-"+strings.Repeat("7", n)), []byte("RI"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			case "s3":
				var o S3Options
				f, _, o = s3Fixture(t)
				secret = o.SecretKey
				core := minio.Core{Client: f.st.(*S3).c}
				leave = func(name string) {
					if _, err := core.NewMultipartUpload(ctx, o.Bucket, f.st.(*S3).Key(name), minio.PutObjectOptions{}); err != nil {
						t.Fatal(err)
					}
				}
			}
			d := f.st.(interface {
				Discard(ctx context.Context, name string, withFile bool) (int, error)
			})
			for _, n := range []string{a, b} {
				if _, err := f.st.Put(ctx, n, bytes.NewReader([]byte("RIFF "+n)), Want{}); err != nil {
					t.Fatal(err)
				}
			}
			leave(a)
			leave(a)
			leave(b)
			leave(c)
			for _, step := range []struct {
				name     string
				withFile bool
				want     int
			}{{a, true, 3}, {a, true, 0}, {b, false, 1}, {c, true, 1}} {
				if n, err := d.Discard(ctx, step.name, step.withFile); err != nil || n != step.want {
					t.Fatalf("Discard(%s, %v): %d removed, %v; want %d", step.name, step.withFile, n, err, step.want)
				}
			}
			if left := f.leftovers(t); len(left) > 0 {
				t.Fatalf("left beside the names: %q", left)
			}
			if _, err := f.read(t, a); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s discarded: %v, want it gone", a, err)
			}
			if got, err := f.read(t, b); err != nil || string(got) != "RIFF "+b {
				t.Fatalf("%s, discarded without its file: %q, %v; want it kept", b, got, err)
			}
			if kind == "dir" {
				if _, err := os.Stat(filepath.Join(root, "pbx-test", "2025", "03", "01")); err != nil {
					t.Fatalf("the day folder: %v, want it kept (copies may be writing into it)", err)
				}
			}
			never, _ := Name("pbx-test", day.AddDate(1, 0, 0), "never")
			if n, err := d.Discard(ctx, never, true); err != nil || n != 0 {
				t.Fatalf("a name whose day was never written: %d, %v", n, err)
			}
			if _, err := d.Discard(ctx, "pbx-test/../../etc/passwd", true); err == nil {
				t.Fatal("a name Name could not build was taken")
			}
			s := f.st.(interface{ String() string }).String()
			if !strings.Contains(s, root) && kind == "dir" || kind == "s3" && (!strings.Contains(s, "bucket") || strings.Contains(s, secret)) {
				t.Fatalf("the store named %q", s)
			}
		})
	}
}

// TestDirDiscardRefusesLinks: a symbolic link under a name is refused,
// not followed nor removed.
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
	if _, err := f.st.(*Dir).Discard(context.Background(), link, true); err == nil {
		t.Fatal("a symbolic link under a name was removed without a word")
	}
	if _, err := os.Lstat(p); err != nil {
		t.Fatalf("the link: %v, want it left", err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Fatal("the file the link points to changed")
	}
}
