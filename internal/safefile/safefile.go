// Package safefile writes files so that a crash leaves the old content or
// the new, never a torn one, and locks files across processes. It is the
// one place for both, used by the token file store and the CSV sink, and
// it builds for every platform the binary ships for.
package safefile

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/gofrs/flock"
)

// ErrSymlink means a path that is written or locked is a symbolic link,
// which is never followed: someone planted it.
var ErrSymlink = errors.New("is a symbolic link, which is never followed")

// Write writes data to path with mode perm, less what the process's umask
// takes away (a file is never wider than the umask asks): a temporary file
// in the same folder is written, fsynced and renamed over path, then the
// folder is fsynced so that the rename is durable too. The folder must
// exist. A symbolic link at path is replaced, never followed.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteVia(path, "."+filepath.Base(path)+".tmp-", data, perm)
}

// WriteVia is Write with the temporary file's name chosen by the caller:
// tmpPrefix then random characters, in path's folder, so that a caller
// sharing the folder with others can recognise its own leftovers.
func WriteVia(path, tmpPrefix string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := CreateTemp(dir, tmpPrefix, perm)
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	return SyncDir(dir)
}

// CreateTemp creates a new file in dir, named prefix then at most ten
// random digits (as os.CreateTemp names them: config.MaxPBXIDBytes counts
// on that length), for writing, with mode perm less the umask
// (os.CreateTemp always makes 0600, which a caller's chmod would then
// widen past the umask). It never opens through a symbolic link.
func CreateTemp(dir, prefix string, perm os.FileMode) (*os.File, error) {
	return createTemp(os.OpenFile, dir, prefix, perm)
}

// CreateTempIn is CreateTemp in dir under root (a path relative to it):
// no symbolic link leads it outside root.
func CreateTempIn(root *os.Root, dir, prefix string, perm os.FileMode) (*os.File, error) {
	return createTemp(root.OpenFile, dir, prefix, perm)
}

func createTemp(open func(string, int, os.FileMode) (*os.File, error), dir, prefix string, perm os.FileMode) (*os.File, error) {
	for range 100 {
		b := make([]byte, 4)
		rand.Read(b)
		name := filepath.Join(dir, prefix+strconv.FormatUint(uint64(binary.BigEndian.Uint32(b)), 10))
		f, err := open(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|oNoFollow, perm)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, fmt.Errorf("create a file named %s… in %s: every name tried exists", prefix, dir)
}

// SyncDir fsyncs a folder, so that renames and removals in it are durable.
// Windows cannot open a folder for syncing and makes renames durable on
// its own: there it does nothing.
func SyncDir(dir string) error {
	return syncDir(os.Open, dir)
}

// SyncDirIn is SyncDir of dir under root (a path relative to it).
func SyncDirIn(root *os.Root, dir string) error {
	return syncDir(root.Open, dir)
}

func syncDir(open func(string) (*os.File, error), dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := open(dir)
	if err != nil {
		return fmt.Errorf("open folder %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}

// NotSymlink fails with ErrSymlink when path is a symbolic link; a path
// that does not exist is fine.
func NotSymlink(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", path, err)
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s %w", path, ErrSymlink)
	}
	return nil
}

// AppendLine appends line and a newline to the file at path, creating it
// with mode perm, never through a symbolic link, and syncs it. When the
// file does not end in a newline (a line torn by a kill, or a rewrite that
// left its last line open), a newline is written first, so the new line is
// never glued to the torn one, where every reader would skip it.
func AppendLine(path string, perm os.FileMode, line []byte) error {
	if err := NotSymlink(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_RDWR|oNoFollow, perm)
	if err != nil {
		return fmt.Errorf("open %s for appending: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("inspect %s: %w", path, err)
	}
	b := make([]byte, 0, len(line)+2)
	if n := info.Size(); n > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, n-1); err != nil {
			return fmt.Errorf("read the end of %s: %w", path, err)
		}
		if last[0] != '\n' {
			b = append(b, '\n')
		}
	}
	b = append(append(b, line...), '\n')
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// A Lock is an exclusive lock on a file, between processes: flock on
// Unix, LockFileEx on Windows. The operating system releases it when the
// process ends, however it ends.
type Lock struct {
	fl *flock.Flock
}

// NewLock returns the lock on the file at path, created with mode perm
// when missing. It is not taken yet.
func NewLock(path string, perm os.FileMode) *Lock {
	return &Lock{fl: flock.New(path, flock.SetPermissions(perm), flock.SetFlag(os.O_CREATE|os.O_RDWR|oNoFollow))}
}

// TryLock takes the lock without waiting; false when another holds it.
// A symbolic link at the lock's path is refused.
func (l *Lock) TryLock() (bool, error) {
	if err := NotSymlink(l.fl.Path()); err != nil {
		return false, err
	}
	ok, err := l.fl.TryLock()
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", l.fl.Path(), err)
	}
	return ok, nil
}

// Wait takes the lock, trying again every retry until ctx is done.
func (l *Lock) Wait(ctx context.Context, retry time.Duration) error {
	if err := NotSymlink(l.fl.Path()); err != nil {
		return err
	}
	ok, err := l.fl.TryLockContext(ctx, retry)
	if err != nil {
		return fmt.Errorf("lock %s: %w", l.fl.Path(), err)
	}
	if !ok {
		return fmt.Errorf("lock %s: %w", l.fl.Path(), context.Cause(ctx))
	}
	return nil
}

// Unlock releases the lock and closes its file.
func (l *Lock) Unlock() error {
	if err := l.fl.Unlock(); err != nil { // closes the file too
		return fmt.Errorf("unlock %s: %w", l.fl.Path(), err)
	}
	return nil
}

// Path is the lock file's path.
func (l *Lock) Path() string { return l.fl.Path() }
