package recstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/sinks/recstore/recstoretest"
)

// TestPlanted: the folder store's errors for a name whose file is not
// one the store wrote (a symbolic link, a folder under the name, a day
// folder that is a link leading outside the store) match Planted by
// their values, not their texts (review 32 asked for values); those of
// the store failing (its folder gone, a day folder not writable) do not,
// nor does an S3 refusal for want of a permission.
func TestPlanted(t *testing.T) {
	t.Parallel()
	if rootEscapes() == nil {
		t.Fatal("os.Root's error for a path leading outside it was not found: Planted cannot tell a folder planted outside the store")
	}
	ctx := context.Background()
	day := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		plant   func(t *testing.T, root, name string)
		planted bool
	}{
		{"link", func(t *testing.T, root, name string) {
			p := filepath.Join(root, filepath.FromSlash(name))
			must(t, os.Symlink(filepath.Join(t.TempDir(), "x.wav"), p))
		}, true},
		{"folder", func(t *testing.T, root, name string) {
			p := filepath.Join(root, filepath.FromSlash(name))
			must(t, os.Mkdir(p, 0o700))
		}, true},
		{"day-folder-outside", func(t *testing.T, root, name string) {
			outside := t.TempDir()
			must(t, os.WriteFile(filepath.Join(outside, filepath.Base(name)), []byte("RIFF"), 0o600))
			day := filepath.Join(root, filepath.FromSlash(filepath.Dir(name)))
			must(t, os.Remove(day))
			must(t, os.Symlink(outside, day))
		}, true},
		{"store-gone", func(t *testing.T, root, name string) {
			must(t, os.Rename(root, root+".away"))
			t.Cleanup(func() { os.Rename(root+".away", root) })
		}, false},
		{"day-folder-unwritable", func(t *testing.T, root, name string) {
			must(t, os.WriteFile(filepath.Join(root, filepath.FromSlash(name)), []byte("RIFF"), 0o600))
			recstoretest.Unwritable(t, filepath.Join(root, filepath.FromSlash(filepath.Dir(name))))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			d, err := OpenDir(root, DirOptions{})
			must(t, err)
			name, err := Name("pbx-test", day, "a")
			must(t, err)
			must(t, os.MkdirAll(filepath.Join(root, filepath.FromSlash(filepath.Dir(name))), 0o700))
			tc.plant(t, root, name)
			_, _, serr := d.Stored(ctx, name, Want{})
			_, derr := d.Discard(ctx, name)
			if tc.planted {
				if !Planted(serr) || !Planted(derr) {
					t.Errorf("Stored: %v (Planted %v), Discard: %v (Planted %v); want both planted", serr, Planted(serr), derr, Planted(derr))
				}
				return
			}
			// The store failing: Discard's error is not one name's
			// (Stored takes a folder gone for a file absent: nil).
			if derr == nil || Planted(derr) || Planted(serr) {
				t.Errorf("Stored: %v, Discard: %v; want the store's errors, not planted", serr, derr)
			}
		})
	}
	if Planted(denied(errors.New("x"), "s3:DeleteObject")) || Planted(nil) {
		t.Error("Planted(a permission refused, or nil): want false")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
