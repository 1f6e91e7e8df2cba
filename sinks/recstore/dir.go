package recstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// DirOptions configure a Dir.
type DirOptions struct {
	// GroupReadable creates files 0640 and folders 0750 (default 0600 and
	// 0700): for a backup or archiving job that reads the store as a
	// member of its group. As every file the program writes, never wider
	// than the process's umask allows (under umask 077, 0600 and 0700).
	GroupReadable bool
}

// Dir stores recordings as files under a folder, typically a mounted
// volume or NAS. A file is written under a temporary name beside its final
// one (".<id>.wav.partial-<random>"), synced and renamed, so a reader never
// sees a partial file; Sync then syncs the folders of a batch of names,
// once each, so that stored files survive a power cut. Every path is
// resolved inside the folder (os.Root): a symbolic link planted in the
// store never leads outside it. Safe for
// concurrent use with different names; one writer per name (the
// exporter's run lock), since a Put removes the partial files another
// left for the same name.
type Dir struct {
	root             string
	fileMode, dirMod fs.FileMode
	// syncDir syncs a folder for Sync (nil: safefile.SyncDirIn); a test
	// sees through it which folders a batch synced.
	syncDir func(root *os.Root, dir string) error
	// bufs holds Put's copy buffers (*[]byte of copyBufSize) for the next
	// Puts: a buffer a file was 64 pages faulted in afresh each (the
	// exporter's page faults to a folder: 2,500 a bench run of 29 files,
	// the plain copy's 1,000). A free list of keptBufs at most, not a
	// sync.Pool: a pool empties at each garbage collection (and drops a
	// quarter of what it is given under the race detector), so buffers
	// were made again at random.
	bufs chan *[]byte
}

// keptBufs is the most copy buffers a Dir keeps (2 MiB): as many Puts at
// once as a run's copies usually are; more make their own.
const keptBufs = 8

// buffer is a copy buffer, a kept one when there is one.
func (d *Dir) buffer() *[]byte {
	select {
	case b := <-d.bufs:
		return b
	default:
	}
	b := make([]byte, copyBufSize)
	return &b
}

// keep gives b back for the next Put, unless keptBufs are kept already.
func (d *Dir) keep(b *[]byte) {
	select {
	case d.bufs <- b:
	default:
	}
}

// OpenDir opens the store at root, a folder that must exist: a volume that
// is not mounted must not be replaced by a folder on the container's own
// disk.
func OpenDir(root string, o DirOptions) (*Dir, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("recordings folder %s: %w (create it, or mount the volume, first)", root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("recordings folder %s: not a folder", root)
	}
	d := &Dir{root: root, fileMode: 0o600, dirMod: 0o700, bufs: make(chan *[]byte, keptBufs)}
	if o.GroupReadable {
		d.fileMode, d.dirMod = 0o640, 0o750
	}
	return d, nil
}

// open opens the store's root for one call: every path below it is
// resolved inside it, so no symbolic link in the store (a folder, a final
// name) leads a write or a read outside it. Opened per call, not once,
// so that a volume mounted again later is the one written to.
func (d *Dir) open() (*os.Root, error) {
	r, err := os.OpenRoot(d.root)
	if err != nil {
		return nil, fmt.Errorf("recordings folder %s: %w", d.root, err)
	}
	return r, nil
}

// Put copies r to name (built by Name), checking it against want. On
// success the file is under its final name, its content synced; the name
// itself is durable once Sync(name) returned (one folder sync per batch,
// not per file: the run's cost of a power-cut-proof store). On any error
// (including a cancelled ctx, checked between reads) nothing is left under
// it but what was there before, and the partial file is removed. A
// process killed during Put leaves a partial file beside the name, which
// the next Put of that name removes. A folder of the store that is a
// symbolic link leading outside it is refused.
// It stays one function (about 60 lines): partial file, copy, check,
// sync, rename, in the order that keeps a kill from leaving anything but
// a partial file, read best in one body.
func (d *Dir) Put(ctx context.Context, name string, r io.Reader, want Want) (Object, error) {
	if err := checkName(name); err != nil {
		return Object{}, err
	}
	if err := checkWant(want); err != nil {
		return Object{}, fmt.Errorf("store %s: %w", name, err)
	}
	root, err := d.open()
	if err != nil {
		return Object{}, fmt.Errorf("store %s: %w", name, err)
	}
	defer root.Close()
	dir, base := filepath.Split(filepath.FromSlash(name))
	// The name's folder opened once, resolved inside the store: the
	// partial files' listing, the temporary file and the rename below
	// take no path walk of their own (os.Root opens each folder of a
	// path in turn: five levels, three times a file).
	day, err := d.folder(root, filepath.Clean(dir))
	if err != nil {
		return Object{}, fmt.Errorf("store %s: %w", name, err)
	}
	defer day.Close()
	if err := removePartials(day, ".", base); err != nil {
		return Object{}, fmt.Errorf("store %s: %w", name, err)
	}
	f, err := safefile.CreateTempIn(day, ".", "."+base+".partial-", d.fileMode)
	if err != nil {
		return Object{}, fmt.Errorf("store %s: %w", name, err)
	}
	tmp := filepath.Base(f.Name())
	ok := false
	defer func() {
		if !ok {
			f.Close()
			day.Remove(tmp)
		}
	}()
	v := newVerifier(r, want)
	buf := d.buffer()
	defer d.keep(buf)
	if _, err := io.CopyBuffer(onlyWriter{f}, ctxReader{ctx, v}, *buf); err != nil {
		return Object{}, fmt.Errorf("store %s: %w", name, err)
	}
	if !v.done() {
		return Object{}, fmt.Errorf("store %s: the copy ended before its source", name)
	}
	if err := f.Sync(); err != nil {
		return Object{}, fmt.Errorf("store %s: sync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return Object{}, fmt.Errorf("store %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return Object{}, fmt.Errorf("store %s: %w", name, err)
	}
	if err := day.Rename(tmp, base); err != nil {
		return Object{}, fmt.Errorf("store %s: %w", name, err)
	}
	ok = true
	return Object{Name: name, Size: v.n, SHA256: v.sum()}, nil
}

// Sync makes the names durable, each put or found stored before: it syncs
// every folder holding one, up to the store's root, once each, so that a
// rename into it, or its creation, survives a power cut. A name found
// stored needs it too: a run killed after its rename, before its Sync,
// left it in the page cache only. The folders are synced side by side
// (syncAtOnce): each sync of a folder waits for the disk's cache flush,
// and a batch's end waits for them all (5 folders for a new day: 5-10 ms
// each on a loaded disk, one after another). Safe for concurrent use.
func (d *Dir) Sync(ctx context.Context, names []string) error {
	var dirs []string
	done := map[string]bool{}
	for _, name := range names {
		if err := checkName(name); err != nil {
			return err
		}
		for dir := filepath.Dir(filepath.FromSlash(name)); !done[dir]; dir = filepath.Dir(dir) {
			done[dir] = true
			dirs = append(dirs, dir)
			if dir == "." {
				break
			}
		}
	}
	if len(dirs) == 0 {
		return nil
	}
	root, err := d.open()
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	defer root.Close()
	syncDir := d.syncDir
	if syncDir == nil {
		syncDir = safefile.SyncDirIn
	}
	errs := make([]error, len(dirs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(syncAtOnce, len(dirs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := ctx.Err(); err != nil {
					errs[i] = fmt.Errorf("sync %s: %w", dirs[i], err)
				} else if err := syncDir(root, dirs[i]); err != nil {
					errs[i] = fmt.Errorf("sync: %w", err)
				}
			}
		}()
	}
	for i := range dirs {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// syncAtOnce is how many folders a Sync syncs at once.
const syncAtOnce = 8

// Stat returns the file stored under name, its sha256 computed by reading
// it (a local read, cheaper than fetching it again from the PBX). An
// absent file is an error matching fs.ErrNotExist; a symbolic link or
// anything else that is not a regular file is an error matching
// safefile.ErrSymlink or naming what it is: the store never writes one, so
// someone planted it, and it is not taken for a stored recording.
func (d *Dir) Stat(ctx context.Context, name string) (Object, error) {
	if err := checkName(name); err != nil {
		return Object{}, err
	}
	root, err := d.open()
	if err != nil {
		return Object{}, fmt.Errorf("stat %s: %w", name, err)
	}
	defer root.Close()
	p := filepath.FromSlash(name)
	if err := notRegular(root.Lstat(p)); err != nil {
		return Object{}, fmt.Errorf("stat %s: %w", name, err)
	}
	f, err := root.Open(p)
	if err != nil {
		return Object{}, fmt.Errorf("stat %s: %w", name, err)
	}
	defer f.Close()
	// What was opened, in case the name changed since the Lstat.
	if err := notRegular(f.Stat()); err != nil {
		return Object{}, fmt.Errorf("stat %s: %w", name, err)
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, ctxReader{ctx, f}, make([]byte, copyBufSize))
	if err != nil {
		return Object{}, fmt.Errorf("stat %s: %w", name, err)
	}
	return Object{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// notRegular passes an error on, and refuses what is not a regular file.
func notRegular(fi fs.FileInfo, err error) error {
	switch {
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return safefile.ErrSymlink
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%w (%v)", ErrNotRegular, fi.Mode().Type())
	}
	return nil
}

// Stored reports whether name holds a file that is what want announces
// (any complete file when want is zero), and returns it: a file already
// stored is not copied again.
func (d *Dir) Stored(ctx context.Context, name string, want Want) (Object, bool, error) {
	return stored(ctx, d.Stat, name, want)
}

// Present reports, for each of names, whether its folder holds an entry
// under that name: one listing of each folder of the names (a day's), in
// place of a lookup a name (Stored, which resolves the name's five
// folders in turn). A name present is for Stored to judge (a symbolic
// link, a folder or another file is not the recording announced); one
// absent is absent when it is put only with one writer per name (the
// exporter's run lock), as Put requires.
func (d *Dir) Present(ctx context.Context, names []string) (map[string]bool, error) {
	folders := map[string][]string{}
	for _, name := range names {
		if err := checkName(name); err != nil {
			return nil, err
		}
		dir := path.Dir(name)
		folders[dir] = append(folders[dir], name)
	}
	root, err := d.open()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	out := make(map[string]bool, len(names))
	for dir, in := range folders {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		have, err := entries(root, filepath.FromSlash(dir))
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		for _, name := range in {
			out[name] = have[path.Base(name)]
		}
	}
	return out, nil
}

// entries is the set of names in dir (relative to root); empty when dir
// does not exist.
func entries(root *os.Root, dir string) (map[string]bool, error) {
	f, err := root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	return have, nil
}

func stored(ctx context.Context, stat func(context.Context, string) (Object, error), name string, want Want) (Object, bool, error) {
	if err := checkWant(want); err != nil {
		return Object{}, false, fmt.Errorf("check %s: %w", name, err)
	}
	o, err := stat(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return Object{}, false, nil
	}
	if err != nil {
		return Object{}, false, err
	}
	return o, o.matches(want), nil
}

// folder opens dir (relative to root) as a root of its own, creating it
// and the folders above it first when it does not exist.
func (d *Dir) folder(root *os.Root, dir string) (*os.Root, error) {
	r, err := root.OpenRoot(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return r, err
	}
	if err := d.mkdirs(root, dir); err != nil {
		return nil, err
	}
	return root.OpenRoot(dir)
}

// mkdirs creates dir (relative to root) and the folders above it, each
// with the store's mode; Sync makes them durable.
func (d *Dir) mkdirs(root *os.Root, dir string) error {
	if st, err := root.Stat(dir); err == nil && st.IsDir() {
		return nil
	}
	cur := "."
	for _, p := range strings.Split(dir, string(filepath.Separator)) {
		next := filepath.Join(cur, p)
		if err := root.Mkdir(next, d.dirMod); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		cur = next
	}
	return nil
}

// removePartials removes what a killed Put of the same name left in dir.
// The folder is listed, not globbed: the store's path may hold * or [.
func removePartials(root *os.Root, dir, base string) error {
	f, err := root.Open(dir)
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "."+base+".partial-") {
			continue
		}
		if err := root.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// ctxReader ends a copy when its context is done, checked between reads.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// onlyWriter hides a file's ReadFrom, so that io.CopyBuffer writes with
// the buffer it is given: os.File's ReadFrom copies from any reader but a
// file or a socket through a 32 KiB buffer of its own.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }
