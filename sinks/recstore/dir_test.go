package recstore

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// dirFixture is a Dir store in its own folder of the real file system,
// inside a parent that must hold nothing else: what a hostile name could
// write outside the store would show there.
func dirFixture(t *testing.T, o DirOptions) (fixture, string) {
	t.Helper()
	parent := t.TempDir()
	root := filepath.Join(parent, "store")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(root, o)
	if err != nil {
		t.Fatal(err)
	}
	leftovers := func(t *testing.T) []string {
		var left []string
		filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && strings.Contains(e.Name(), ".partial-") {
				left = append(left, p)
			}
			return nil
		})
		return left
	}
	t.Cleanup(func() {
		entries, _ := os.ReadDir(parent)
		if len(entries) != 1 {
			t.Errorf("the store's parent folder holds %d entries; want only the store", len(entries))
		}
		// No partial file is left once every Put returned.
		if left := leftovers(t); len(left) > 0 {
			t.Errorf("partial files left: %q", left)
		}
	})
	read := func(t *testing.T, name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
	}
	return fixture{st: d, read: read, leftovers: leftovers}, root
}

func TestDirContract(t *testing.T) {
	t.Parallel()
	runContract(t, func(t *testing.T) fixture { f, _ := dirFixture(t, DirOptions{}); return f })
}

// TestDirModes: files 0600 and folders 0700 by default, 0640 and 0750
// with GroupReadable, never wider than the umask allows.
func TestDirModes(t *testing.T) {
	// No t.Parallel: the umask is the process's.
	for _, c := range []struct {
		umask         int
		o             DirOptions
		file, folders fs.FileMode
	}{
		{0o022, DirOptions{}, 0o600, 0o700},
		{0o022, DirOptions{GroupReadable: true}, 0o640, 0o750},
		{0o077, DirOptions{GroupReadable: true}, 0o600, 0o700},
	} {
		old := syscall.Umask(c.umask)
		f, root := dirFixture(t, c.o)
		name := testName(t, "mode")
		_, err := f.st.Put(context.Background(), name, content(1, 100), Want{})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != c.file {
			t.Errorf("umask %03o, %+v: file mode %v; want %v", c.umask, c.o, st.Mode().Perm(), c.file)
		}
		for p := filepath.Dir(filepath.Join(root, filepath.FromSlash(name))); p != root; p = filepath.Dir(p) {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != c.folders {
				t.Errorf("umask %03o, %+v: folder %s mode %v; want %v", c.umask, c.o, p, st.Mode().Perm(), c.folders)
			}
		}
	}
}

func TestOpenDirNeedsAFolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := OpenDir(filepath.Join(dir, "not-mounted"), DirOptions{}); err == nil || !strings.Contains(err.Error(), "mount") {
		t.Errorf("OpenDir of a missing folder = %v; want an error saying to create or mount it", err)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := OpenDir(file, DirOptions{}); err == nil {
		t.Error("OpenDir of a file succeeds")
	}
}

// TestDirKilledMidCopy: a process killed while copying leaves nothing
// under the final name (its partial file beside it), and the next copy
// completes the name and removes the partial file.
func TestDirKilledMidCopy(t *testing.T) {
	t.Parallel()
	f, root := dirFixture(t, DirOptions{})
	testKilledMidCopy(t, f, func(name string) childJob {
		return childJob{Dir: root, Name: name, Size: 4 << 20}
	}, 10)
}

// TestDirPeakMemory: 500 MB copied with a peak resident memory under
// 100 MiB, measured in a child process (skipped with -short).
func TestDirPeakMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("copies 500 MB")
	}
	t.Parallel()
	f, root := dirFixture(t, DirOptions{})
	testPeakMemory(t, f, childJob{Dir: root, Name: testName(t, "big"), Size: 500e6}, 100<<10)
}
