package recstore

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// remover is what retention and erasure ask of a store.
type remover interface {
	Remove(ctx context.Context, name string) error
}

// TestRemove: on both stores, a removed recording is gone and the others
// stay; removing it again, or a name never stored, is no error; a name
// Name could not have built is refused.
func TestRemove(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mk   func(t *testing.T) fixture
	}{
		{"dir", func(t *testing.T) fixture { f, _ := dirFixture(t, DirOptions{}); return f }},
		{"s3", func(t *testing.T) fixture { f, _, _ := s3Fixture(t); return f }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := tc.mk(t)
			st := f.st.(remover)
			day := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
			a, _ := Name("pbx-test", day, "a")
			b, _ := Name("pbx-test", day, "b")
			c, _ := Name("pbx-test", day.AddDate(0, 1, 0), "c")
			for _, n := range []string{a, b, c} {
				if _, err := f.st.Put(ctx, n, bytes.NewReader([]byte("RIFF "+n)), Want{}); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range []string{a, a, c} {
				if err := st.Remove(ctx, n); err != nil {
					t.Fatalf("remove %s: %v", n, err)
				}
			}
			for _, n := range []string{a, c} {
				if _, err := f.read(t, n); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s after its removal: %v, want it gone", n, err)
				}
			}
			if got, err := f.read(t, b); err != nil || string(got) != "RIFF "+b {
				t.Fatalf("%s, not removed: %q, %v; want it kept", b, got, err)
			}
			never, _ := Name("pbx-test", day.AddDate(1, 0, 0), "never")
			if err := st.Remove(ctx, never); err != nil {
				t.Fatalf("remove a name never stored: %v", err)
			}
			if err := st.Remove(ctx, "pbx-test/../../etc/passwd"); err == nil {
				t.Fatal("a name Name could not build was taken")
			}
		})
	}
}

// TestDirRemoveTidiesAndRefusesLinks: removing a day's last recording
// removes its empty date folders and the partial copies a killed Put
// left; a symbolic link under a name is refused, not followed or removed.
func TestDirRemoveTidiesAndRefusesLinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, root := dirFixture(t, DirOptions{})
	d := f.st.(*Dir)
	day := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	a, _ := Name("pbx-test", day, "a")
	other, _ := Name("pbx-test", day.AddDate(0, 0, 1), "o")
	for _, n := range []string{a, other} {
		if _, err := d.Put(ctx, n, bytes.NewReader([]byte("RIFF")), Want{}); err != nil {
			t.Fatal(err)
		}
	}
	folder := filepath.Join(root, "pbx-test", "2025", "03", "01")
	partial := filepath.Join(folder, ".a.wav.partial-123")
	if err := os.WriteFile(partial, []byte("RI"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(folder); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the emptied day folder: %v, want it removed (with the partial copy)", err)
	}
	if _, err := os.Stat(filepath.Join(root, "pbx-test", "2025", "03")); err != nil {
		t.Fatalf("the month folder holding another day: %v, want it kept", err)
	}
	outside := filepath.Join(t.TempDir(), "secret.wav")
	os.WriteFile(outside, []byte("keep"), 0o600)
	link, _ := Name("pbx-test", day, "l")
	os.MkdirAll(folder, 0o700)
	if err := os.Symlink(outside, filepath.Join(root, filepath.FromSlash(link))); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, link); err == nil {
		t.Fatal("a symbolic link under a name was removed without a word")
	}
	if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(link))); err != nil {
		t.Fatalf("the link: %v, want it left for a person to look at", err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Fatal("the file the link points to changed")
	}
	os.Remove(filepath.Join(root, filepath.FromSlash(link)))
}
