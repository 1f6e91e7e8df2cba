//go:build unix

package safefile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteNeverWiderThanTheUmask: the mode asked is narrowed by the
// umask, as open(2) does, never forced past it (a chmod after
// os.CreateTemp made a state file 0644 under umask 077). Not parallel: the
// umask is the process's.
func TestWriteNeverWiderThanTheUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	p := filepath.Join(t.TempDir(), "state.json")
	if err := Write(p, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v under umask 077, want -rw-------", info.Mode().Perm())
	}
}
