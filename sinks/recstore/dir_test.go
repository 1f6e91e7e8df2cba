package recstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/safefile"
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

// TestDirPathWithPatternCharacters: a store whose path holds * [ or ?
// (a folder named by a person) works, and a killed copy's partial file is
// still removed. Partial files were found with a glob of the full path:
// "[" failed every Put, "[1]" left them behind.
func TestDirPathWithPatternCharacters(t *testing.T) {
	t.Parallel()
	for _, folder := range []string{"rec[", "rec[1]", "rec*", "rec?"} {
		root := filepath.Join(t.TempDir(), folder)
		if err := os.Mkdir(root, 0o700); err != nil {
			t.Fatal(err)
		}
		d, err := OpenDir(root, DirOptions{})
		if err != nil {
			t.Fatal(err)
		}
		name := testName(t, "pattern")
		final := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
			t.Fatal(err)
		}
		killed := filepath.Join(filepath.Dir(final), ".pattern.wav.partial-123")
		if err := os.WriteFile(killed, []byte("cut"), 0o600); err != nil {
			t.Fatal(err)
		}
		want := Want{Size: 100, SHA256: contentSum(t, 1, 100)}
		if _, err := d.Put(context.Background(), name, content(1, 100), want); err != nil {
			t.Errorf("%s: Put = %v", folder, err)
		}
		if _, err := os.Stat(killed); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: the partial file a killed copy left is still there (%v)", folder, err)
		}
		if _, ok, err := d.Stored(context.Background(), name, want); !ok || err != nil {
			t.Errorf("%s: Stored = %v, %v", folder, ok, err)
		}
	}
}

// TestDirSymlinks: a symbolic link planted in the store never leads a
// write or a read outside it, and a link under a final name is not taken
// for a stored recording (it is reported). A folder linked outside made
// Put write there; a linked final name made Stored say yes for whatever
// it pointed at.
func TestDirSymlinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T) (d *Dir, root, outside string) {
		parent := t.TempDir()
		root, outside = filepath.Join(parent, "store"), filepath.Join(parent, "outside")
		for _, p := range []string{root, outside} {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		d, err := OpenDir(root, DirOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			entries, _ := os.ReadDir(outside)
			for _, e := range entries {
				if e.Name() != "secret" {
					t.Errorf("written outside the store: %s", e.Name())
				}
			}
		})
		return d, root, outside
	}
	name := testName(t, "linked")
	t.Run("a folder linked outside", func(t *testing.T) {
		t.Parallel()
		for _, depth := range []int{1, 2, 4} { // pbx-test, its year, the day
			d, root, outside := setup(t)
			parts := strings.Split(name, "/")
			link := filepath.Join(root, filepath.Join(parts[:depth]...))
			if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, link); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Put(ctx, name, content(1, 100), Want{}); err == nil {
				t.Errorf("%s linked outside: Put succeeds", link)
			}
			if _, ok, err := d.Stored(ctx, name, Want{}); ok || err == nil {
				t.Errorf("%s linked outside: Stored = %v, %v; want an error", link, ok, err)
			}
		}
	})
	t.Run("a final name linked", func(t *testing.T) {
		t.Parallel()
		d, root, outside := setup(t)
		final := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
			t.Fatal(err)
		}
		// Outside the store, and inside it (another recording).
		secret := filepath.Join(outside, "secret")
		if err := os.WriteFile(secret, []byte("not a recording"), 0o600); err != nil {
			t.Fatal(err)
		}
		other := testName(t, "other")
		if _, err := d.Put(ctx, other, content(2, 100), Want{}); err != nil {
			t.Fatal(err)
		}
		for _, target := range []string{secret, "other.wav"} {
			os.Remove(final)
			if err := os.Symlink(target, final); err != nil {
				t.Fatal(err)
			}
			if o, ok, err := d.Stored(ctx, name, Want{}); ok || err == nil {
				t.Errorf("%s linked to %s: Stored = %+v, %v, %v; want an error", name, target, o, ok, err)
			}
			// A Put replaces the link, never writes through it.
			want := Want{Size: 100, SHA256: contentSum(t, 3, 100)}
			if _, err := d.Put(ctx, name, content(3, 100), want); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := d.Stored(ctx, name, want); !ok || err != nil {
				t.Errorf("Stored after the Put = %v, %v", ok, err)
			}
			if b, err := os.ReadFile(secret); err != nil || string(b) != "not a recording" {
				t.Errorf("the link's target changed: %q, %v", b, err)
			}
			if o, err := d.Stat(ctx, other); err != nil || o.SHA256 != contentSum(t, 2, 100) {
				t.Errorf("the other recording changed: %+v, %v", o, err)
			}
		}
	})
}

// TestDirSyncNeedsTheFolders: Sync syncs the folders of names stored; a
// name whose folder is not there (never stored) fails it.
func TestDirSyncNeedsTheFolders(t *testing.T) {
	t.Parallel()
	f, _ := dirFixture(t, DirOptions{})
	ctx := context.Background()
	stored, other := testName(t, "rec-1"), "pbx-test/2031/01/02/rec-2.wav"
	if _, err := f.st.Put(ctx, stored, content(1, 1000), Want{}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Sync(ctx, []string{stored}); err != nil {
		t.Errorf("Sync(%s) = %v", stored, err)
	}
	if err := f.st.Sync(ctx, []string{stored, other}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Sync(%s) = %v; want its folder missing", other, err)
	}
}

// TestDirSyncWalksUpToTheRoot: Sync syncs every folder holding a name of
// the batch up to the store's root (the file's day, month, year, PBX
// folders and the root: Put creates them and syncs none), each folder
// once, whatever the batch spans. The folders synced are seen through
// the store's syncDir, which still syncs them.
func TestDirSyncWalksUpToTheRoot(t *testing.T) {
	t.Parallel()
	day := func(pbx string, y, m, d int, id string) string {
		n, err := Name(pbx, time.Date(y, time.Month(m), d, 10, 0, 0, 0, time.UTC), id)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, c := range []struct {
		name    string
		batch   []string
		folders []string
	}{
		{"one day", []string{day("pbx-a", 2026, 5, 4, "r1"), day("pbx-a", 2026, 5, 4, "r2")},
			[]string{"pbx-a/2026/05/04", "pbx-a/2026/05", "pbx-a/2026", "pbx-a", "."}},
		{"two days of a month", []string{day("pbx-a", 2026, 5, 4, "r1"), day("pbx-a", 2026, 5, 31, "r2"), day("pbx-a", 2026, 5, 4, "r3")},
			[]string{"pbx-a/2026/05/04", "pbx-a/2026/05/31", "pbx-a/2026/05", "pbx-a/2026", "pbx-a", "."}},
		{"two months", []string{day("pbx-a", 2026, 5, 31, "r1"), day("pbx-a", 2026, 6, 1, "r2")},
			[]string{"pbx-a/2026/05/31", "pbx-a/2026/05", "pbx-a/2026/06/01", "pbx-a/2026/06", "pbx-a/2026", "pbx-a", "."}},
		{"two years", []string{day("pbx-a", 2026, 12, 31, "r1"), day("pbx-a", 2027, 1, 1, "r2")},
			[]string{"pbx-a/2026/12/31", "pbx-a/2026/12", "pbx-a/2026", "pbx-a/2027/01/01", "pbx-a/2027/01", "pbx-a/2027", "pbx-a", "."}},
		{"two PBXes", []string{day("pbx-a", 2026, 5, 4, "r1"), day("pbx-b", 2026, 5, 4, "r1")},
			[]string{"pbx-a/2026/05/04", "pbx-a/2026/05", "pbx-a/2026", "pbx-a", "pbx-b/2026/05/04", "pbx-b/2026/05", "pbx-b/2026", "pbx-b", "."}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f, _ := dirFixture(t, DirOptions{})
			d := f.st.(*Dir)
			ctx := context.Background()
			for i, name := range c.batch {
				if _, err := d.Put(ctx, name, content(uint64(i), 100), Want{}); err != nil {
					t.Fatal(err)
				}
			}
			var synced []string
			var mu sync.Mutex // the folders are synced side by side
			d.syncDir = func(root *os.Root, dir string) error {
				mu.Lock()
				synced = append(synced, filepath.ToSlash(dir))
				mu.Unlock()
				return safefile.SyncDirIn(root, dir)
			}
			if err := d.Sync(ctx, c.batch); err != nil {
				t.Fatalf("Sync = %v", err)
			}
			got, want := slices.Sorted(slices.Values(synced)), slices.Sorted(slices.Values(c.folders))
			if !slices.Equal(got, want) {
				t.Errorf("Sync of %q synced the folders %q; want each of %q once", c.batch, synced, want)
			}
		})
	}
}

// TestDirSyncSideBySide: Sync syncs a batch's folders side by side, not
// one after another (each waits for the disk's cache flush, and the end
// of a batch for them all): every folder's sync is held until all five of
// a new day's have begun. Synced one at a time, the first is let go only
// after 20 seconds, and the case fails.
func TestDirSyncSideBySide(t *testing.T) {
	t.Parallel()
	f, _ := dirFixture(t, DirOptions{})
	d := f.st.(*Dir)
	ctx := context.Background()
	name := testName(t, "rec-1")
	if _, err := d.Put(ctx, name, content(1, 100), Want{}); err != nil {
		t.Fatal(err)
	}
	const folders = 5 // day, month, year, PBX, the root
	var mu sync.Mutex
	began, late := 0, false
	all := make(chan struct{})
	d.syncDir = func(root *os.Root, dir string) error {
		mu.Lock()
		if began++; began == folders {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(20 * time.Second):
			mu.Lock()
			late = true
			mu.Unlock()
		}
		return safefile.SyncDirIn(root, dir)
	}
	if err := d.Sync(ctx, []string{name}); err != nil {
		t.Fatalf("Sync = %v", err)
	}
	if late || began != folders {
		t.Errorf("Sync began %d folder syncs, one waiting 20 s for the others (%v); want the %d side by side", began, late, folders)
	}
}

// readSizes is a source that records the largest read asked of it.
type readSizes struct {
	r   io.Reader
	max int
}

func (s *readSizes) Read(p []byte) (int, error) {
	s.max = max(s.max, len(p))
	return s.r.Read(p)
}

// TestDirPutCopiesInLargeReads: Put copies through its own buffer
// (copyBufSize, 256 KiB), not the 32 KiB one os.File's ReadFrom uses for
// a reader that is neither a file nor a socket: a read and a write a 32
// KiB were 4,900 of each for the bench's 29 files (730 with the buffer),
// a fifth of the exporter's CPU to a folder.
func TestDirPutCopiesInLargeReads(t *testing.T) {
	t.Parallel()
	f, _ := dirFixture(t, DirOptions{})
	src := &readSizes{r: content(5, 3<<20)}
	if _, err := f.st.Put(context.Background(), testName(t, "large-reads"), src, Want{Size: 3 << 20}); err != nil {
		t.Fatal(err)
	}
	if src.max < copyBufSize/2 {
		t.Errorf("Put read its source %d bytes at most at a time; want its %d-byte buffer", src.max, copyBufSize)
	}
}

// TestDirPutBuffersKept: Puts one after another reuse their copy buffer
// (256 KiB) instead of making one a file, whose pages were faulted in
// afresh each time. Not parallel: it counts the bytes the process
// allocates.
func TestDirPutBuffersKept(t *testing.T) {
	f, _ := dirFixture(t, DirOptions{})
	const files = 8
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range files {
		if _, err := f.st.Put(context.Background(), testName(t, fmt.Sprintf("buf-%d", i)), content(uint64(i), 1000), Want{Size: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc >= 3*copyBufSize {
		t.Errorf("%d Puts allocated %d bytes; want under %d (one %d-byte buffer kept, not one a file)", files, alloc, 3*copyBufSize, copyBufSize)
	}
}

// TestDirPresent: one listing a day folder tells the names stored (a
// symbolic link under a name is there, for Stored to refuse), those not,
// and those of a day whose folder does not exist.
func TestDirPresent(t *testing.T) {
	t.Parallel()
	f, root := dirFixture(t, DirOptions{})
	d := f.st.(*Dir)
	ctx := context.Background()
	day := func(dd int, id string) string {
		n, err := Name("pbx-test", time.Date(2026, 5, dd, 10, 0, 0, 0, time.UTC), id)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, n := range []string{day(4, "a1"), day(4, "a2"), day(5, "b1")} {
		if _, err := d.Put(ctx, n, content(7, 100), Want{Size: 100}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a1.wav", filepath.Join(root, filepath.FromSlash(day(4, "link")))); err != nil {
		t.Fatal(err)
	}
	got, err := d.Present(ctx, []string{day(4, "a1"), day(4, "a3"), day(4, "link"), day(5, "b1"), day(5, "b2"), day(6, "c1")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{day(4, "a1"): true, day(4, "a3"): false, day(4, "link"): true, day(5, "b1"): true, day(5, "b2"): false, day(6, "c1"): false}
	if !maps.Equal(got, want) {
		t.Errorf("Present = %v; want %v", got, want)
	}
	if _, err := d.Present(ctx, []string{"../../etc/x"}); err == nil {
		t.Error("Present accepts a name Name could not build")
	}
}
