package recstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"github.com/minio/minio-go/v7"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// ErrNotRegular is the folder store's error for a name under which is
// something else than a regular file or nothing (a folder, a device): the
// store never writes one, and neither reads nor removes it. (A symbolic
// link is safefile.ErrSymlink.)
var ErrNotRegular = errors.New("is not a regular file")

// Planted reports whether err, a store's error for one name (or a day
// folder's), is that name's own, met again by every later run: what is
// under it is not a file the store wrote (a symbolic link, a folder:
// planted; ErrNotRegular, safefile.ErrSymlink, ENOTDIR, EISDIR, ELOOP),
// or a folder of its path leads outside the store's folder (os.Root's
// "path escapes from parent", matched by its value: rootEscapes). Any
// other error is the store's (down, unreachable, not writable, refusing
// a permission), which is not one name's.
func Planted(err error) bool {
	if err == nil {
		return false
	}
	if esc := rootEscapes(); esc != nil && errors.Is(err, esc) {
		return true
	}
	return errors.Is(err, ErrNotRegular) || errors.Is(err, safefile.ErrSymlink) ||
		errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ELOOP)
}

// rootEscapes is the error value os.Root gives a path that leads outside
// it, which the os package does not export: taken once from a path that
// escapes lexically ("..", refused before any file is looked at), so that
// Planted matches it by value, not by its text. Nil if os.Root ever stops
// refusing so (TestPlanted fails then).
var rootEscapes = sync.OnceValue(func() error {
	r, err := os.OpenRoot(os.TempDir())
	if err != nil {
		return nil
	}
	defer r.Close()
	_, err = r.Lstat("..")
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return nil
})

// ErrDenied marks the S3 server refusing a request for want of a
// permission of the store's key (403 AccessDenied): configuration, not a
// server busy or down, which the next run meets again until the key is
// given the permission the error names.
var ErrDenied = errors.New("refused for want of a permission")

// denied wraps err, a request's error, with ErrDenied and the permission
// perm the request needs when the server answered AccessDenied, saying
// what to set; any other error it returns as it is.
func denied(err error, perm string) error {
	if err == nil || minio.ToErrorResponse(err).Code != "AccessDenied" {
		return err
	}
	return fmt.Errorf("%w: %w: give the key of EXPORT_RECORDINGS_S3_ACCESS_KEY %s on the bucket (docs/sinks.md, Recordings)", err, ErrDenied, perm)
}
