package recstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"path/filepath"

	"github.com/minio/minio-go/v7"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// String names the store for a message: "folder <its path>".
func (d *Dir) String() string { return "folder " + d.root }

// String names the store for a message: its bucket and endpoint's host,
// and the prefix when there is one (never a credential).
func (s *S3) String() string {
	if s.prefix == "" {
		return "S3 " + s.where
	}
	return fmt.Sprintf("S3 %s, prefix %q", s.where, s.prefix)
}

// Discard removes what copies of name that no row names left in the
// store (a run that failed, or was killed, after storing the file of a
// recording it now must not keep): the file stored under name when
// withFile (false: it is another recording's, kept), and the partial
// copies a killed Put of name left beside it. Unlike Remove it leaves the
// name's folders, even empty: the run's copies may be putting other
// files into them at the same time. It returns how many files it
// removed, the partial copies included; nothing there is not an error,
// so discarding twice removes once. A symbolic link or anything else that
// is not a regular file under the name is refused, not removed. Safe for
// concurrent use with other names.
func (d *Dir) Discard(ctx context.Context, name string, withFile bool) (int, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("discard %s: %w", name, err)
	}
	root, err := d.open()
	if err != nil {
		return 0, fmt.Errorf("discard %s: %w", name, err)
	}
	defer root.Close()
	p := filepath.FromSlash(name)
	dir := filepath.Dir(p)
	if _, err := root.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return 0, nil // its day never had a file
	}
	n := 0
	if withFile {
		switch err := notRegular(root.Lstat(p)); {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return 0, fmt.Errorf("discard %s: %w", name, err)
		default:
			if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return 0, fmt.Errorf("discard %s: %w", name, err)
			}
			n++
		}
	}
	parts, err := removePartials(root, dir, filepath.Base(p))
	n += parts
	if err != nil {
		return n, fmt.Errorf("discard %s: its partial copies: %w", name, err)
	}
	if n > 0 {
		if err := safefile.SyncDirIn(root, dir); err != nil {
			return n, fmt.Errorf("discard %s: %w", name, err)
		}
	}
	return n, nil
}

// Discard removes what copies of name that no row names left in the
// bucket: the object stored under name when withFile (false: it is
// another recording's, kept), and the incomplete uploads of it a killed
// Put left (a Put of known size sends one PUT, which leaves nothing when
// cut; one sent in parts leaves an upload). It returns how many objects
// and uploads it removed; nothing there is not an error. On a versioned
// bucket the server keeps earlier versions, as for Remove.
func (s *S3) Discard(ctx context.Context, name string, withFile bool) (int, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	key := s.Key(path.Clean(name))
	n := 0
	var lerr error
	var ids []string
	// Read to its end: the listing's goroutine ends only so.
	for u := range s.c.ListIncompleteUploads(ctx, s.bucket, key, false) {
		switch {
		case u.Err != nil:
			lerr = u.Err
		case u.Key == key:
			ids = append(ids, u.UploadID)
		}
	}
	if lerr != nil {
		return 0, fmt.Errorf("discard %s: list its incomplete uploads: %w", name, lerr)
	}
	for _, id := range ids {
		err := minio.Core{Client: s.c}.AbortMultipartUpload(ctx, s.bucket, key, id)
		if err != nil && minio.ToErrorResponse(err).Code != "NoSuchUpload" {
			return n, fmt.Errorf("discard %s: abort an upload left by an earlier copy: %w", name, err)
		}
		n++
	}
	if !withFile {
		return n, nil
	}
	if _, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
			return n, nil
		}
		return n, fmt.Errorf("discard %s: %w", name, err)
	}
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil && minio.ToErrorResponse(err).Code != "NoSuchKey" {
		return n, fmt.Errorf("discard %s: %w", name, err)
	}
	return n + 1, nil
}
