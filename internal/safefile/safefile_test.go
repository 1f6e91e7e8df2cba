package safefile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteReplacesWholeAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, data := range []string{"first", "second, longer"} {
		if err := Write(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != data {
			t.Fatalf("read %q, want %q", got, data)
		}
	}
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", info.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("%d files in the folder, want 1 (no temporary left)", len(entries))
	}
}

func TestWriteReplacesAPlantedSymlinkInsteadOfFollowingIt(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "state.json")
	if err := os.Symlink(victim, p); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "keep" {
		t.Fatalf("the symlink's target was written: %q", got)
	}
}

func TestAppendAndLockRefuseSymlinks(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "runs.jsonl")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := AppendLine(link, 0o644, []byte("x")); !errors.Is(err, ErrSymlink) {
		t.Fatalf("AppendLine through a symlink: %v, want ErrSymlink", err)
	}
	if ok, err := NewLock(link, 0o644).TryLock(); !errors.Is(err, ErrSymlink) || ok {
		t.Fatalf("TryLock through a symlink: %v %v, want ErrSymlink", ok, err)
	}
}

// A line torn by a kill has no newline after it: the next line must start
// on its own line, not be glued to the torn one (review 33, R33-1).
func TestAppendLineNeverGluesToATornLine(t *testing.T) {
	tests := []struct{ name, before, want string }{
		{"new file", "", "{\"b\":2}\n"},
		{"whole lines", "{\"a\":1}\n", "{\"a\":1}\n{\"b\":2}\n"},
		{"torn last line", "{\"a\":1}\n{\"tor", "{\"a\":1}\n{\"tor\n{\"b\":2}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "runs.jsonl")
			if tc.before != "" {
				if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := AppendLine(path, 0o600, []byte(`{"b":2}`)); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("file holds %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLockExcludesAndWaits(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	a, b := NewLock(p, 0o600), NewLock(p, 0o600)
	if ok, err := a.TryLock(); err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	if ok, err := b.TryLock(); err != nil || ok {
		t.Fatalf("second lock while held: %v %v, want false", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx, 5*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait while held: %v, want a deadline error", err)
	}
	if err := a.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(context.Background(), 5*time.Millisecond); err != nil {
		t.Fatalf("Wait after release: %v", err)
	}
	if err := b.Unlock(); err != nil {
		t.Fatal(err)
	}
}
