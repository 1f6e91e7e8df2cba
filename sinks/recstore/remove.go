package recstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"

	"github.com/minio/minio-go/v7"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// Remove deletes the recording stored under name (built by Name) and what
// a killed Put of it left beside it, then the name's day, month and year
// folders when that left them empty. A name with nothing stored is not an
// error: removing twice removes once. A symbolic link or anything else
// that is not a regular file under the name is refused, not removed: the
// store never writes one. Safe for concurrent use with other names.
func (d *Dir) Remove(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	root, err := d.open()
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	defer root.Close()
	p := filepath.FromSlash(name)
	dir := filepath.Dir(p)
	switch err := notRegular(root.Lstat(p)); {
	case errors.Is(err, fs.ErrNotExist):
		// Not stored, or its folder gone (a day folder already removed).
		if _, derr := root.Stat(dir); errors.Is(derr, fs.ErrNotExist) {
			return nil
		}
	case err != nil:
		return fmt.Errorf("remove %s: %w", name, err)
	default:
		if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	if err := removePartials(root, dir, filepath.Base(p)); err != nil {
		return fmt.Errorf("remove %s: its partial copies: %w", name, err)
	}
	if err := safefile.SyncDirIn(root, dir); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	// The date's folders, innermost first, while empty (a folder holding
	// anything is not removed: the error is the sign to stop).
	for i := 0; i < 3; i++ {
		if root.Remove(dir) != nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	return nil
}

// Remove deletes the object stored under name (built by Name) and aborts
// any upload of it a killed Put left. A name with nothing stored is not
// an error: removing twice removes once. On a versioned bucket the
// server keeps earlier versions (a delete marker hides them): its
// lifecycle rules decide how long. A key without s3:DeleteObject, or
// without s3:ListBucketMultipartUploads or s3:AbortMultipartUpload, gets
// an error matching ErrDenied, naming them.
func (s *S3) Remove(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	key := s.Key(path.Clean(name))
	if err := s.c.RemoveIncompleteUpload(ctx, s.bucket, key); err != nil {
		// A listing of the name's uploads, then an abort of each (R45-1).
		return fmt.Errorf("remove %s: abort earlier uploads: %w", name, denied(err, "s3:ListBucketMultipartUploads and s3:AbortMultipartUpload"))
	}
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil
		}
		return fmt.Errorf("remove %s: %w", name, denied(err, "s3:DeleteObject"))
	}
	return nil
}
