package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// TestFileStoreRefusesSymlinks: a token file or a file of authorizations
// in progress that is a symbolic link is refused, naming the target, and
// neither read, written nor advised to chmod (which would change the
// target); a plain file readable by others gets the chmod advice for its
// own path.
func TestFileStoreRefusesSymlinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		link func(s *FileStore) string // the path made a link
		load func(s *FileStore) error
	}{
		{"token file", func(s *FileStore) string { return s.Path() },
			func(s *FileStore) error { _, err := s.Load(ctx, "pbx1"); return err }},
		{"pending file", func(s *FileStore) string { return s.PendingPath() },
			func(s *FileStore) error { _, err := s.LoadPending(ctx, "pbx1"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			real := fileStore(t, nil)
			if err := real.Save(ctx, "pbx1", &Record{AccessToken: "a", IssuedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if err := real.SavePending(ctx, "pbx1", &Pending{State: "s", Started: time.Now(), Expires: time.Now().Add(PendingTTL)}); err != nil {
				t.Fatal(err)
			}
			target := tc.link(real)
			if err := os.Chmod(target, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := NewFileStore(filepath.Join(dir, "tokens.json"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, tc.link(s)); err != nil {
				t.Fatal(err)
			}
			err = tc.load(s)
			if !errors.Is(err, safefile.ErrSymlink) || !strings.Contains(err.Error(), "is a symbolic link to "+target) || strings.Contains(err.Error(), "chmod") {
				t.Fatalf("through a link: %v", err)
			}
			if err := s.Save(ctx, "pbx1", &Record{AccessToken: "b", IssuedAt: time.Now()}); !errors.Is(err, safefile.ErrSymlink) && tc.name == "token file" {
				t.Fatalf("save through a link: %v", err)
			}
			if fi, err := os.Lstat(tc.link(s)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("the link was replaced: %v, %v", fi, err)
			}
			if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o644 {
				t.Fatalf("the target changed: %v, %v", fi, err)
			}
			// The target itself: readable by others, the advice names it.
			err = tc.load(real)
			if err == nil || !strings.Contains(err.Error(), "run chmod 600 "+target) {
				t.Fatalf("a file readable by others: %v", err)
			}
		})
	}
}
