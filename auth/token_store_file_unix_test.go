//go:build unix

package auth

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFileStoreRefusesWhatIsNoFile: a FIFO or a folder where the token
// file or the file of authorizations in progress should be is refused at
// once, naming the path and what it is: a FIFO opened for reading waits
// for a writer, and hung `run` (deaf to SIGTERM) and `authorize` for good.
func TestFileStoreRefusesWhatIsNoFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name, what string
		path       func(s *FileStore) string
		load       func(s *FileStore) error
		make       func(path string) error
	}{
		{"token file FIFO", "a named pipe", (*FileStore).Path,
			func(s *FileStore) error { _, err := s.Load(ctx, "pbx1"); return err },
			func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"pending file FIFO", "a named pipe", (*FileStore).PendingPath,
			func(s *FileStore) error { _, err := s.LoadPending(ctx, "pbx1"); return err },
			func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"token file folder", "a folder", (*FileStore).Path,
			func(s *FileStore) error { _, err := s.Load(ctx, "pbx1"); return err },
			func(p string) error { return os.Mkdir(p, 0o700) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := fileStore(t, nil)
			path := tc.path(s)
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- tc.load(s) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				// Let the stuck open return, so the test ends.
				if w, werr := os.OpenFile(path, os.O_WRONLY, 0); werr == nil {
					w.Close()
				}
				t.Fatalf("reading %s did not return within 10s", path)
			}
			if err == nil || !strings.Contains(err.Error(), path+" is "+tc.what+", not a file") {
				t.Fatalf("err = %v, want %s refused as %s", err, path, tc.what)
			}
		})
	}
}
