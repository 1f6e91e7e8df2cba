package recstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Each calls fn with the name of every file stored under pbx's folder
// (<pbx>/…, as Name builds names), in no set order, until fn returns an
// error, which Each returns: `check` lists them to find those no row
// names. A partial copy, and anything else Name could not have built, is
// left out. A pbx folder that does not exist holds none.
func (d *Dir) Each(ctx context.Context, pbx string, fn func(name string) error) error {
	if err := checkPart("PBX id", pbx, 90, "._-"); err != nil {
		return err
	}
	root, err := d.open()
	if err != nil {
		return err
	}
	defer root.Close()
	err = fs.WalkDir(root.FS(), pbx, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == pbx && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.Type().IsRegular() || checkName(p) != nil {
			return nil
		}
		return fn(p)
	})
	if err != nil {
		return fmt.Errorf("list %s in %v: %w", pbx, d, err)
	}
	return nil
}

// Each calls fn with the name of every object stored under pbx's folder
// of the prefix, as the folder store's Each.
func (s *S3) Each(ctx context.Context, pbx string, fn func(name string) error) error {
	if err := checkPart("PBX id", pbx, 90, "._-"); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.Key(pbx + "/"), Recursive: true})
	var err error
	for o := range ch {
		if o.Err != nil {
			err = fmt.Errorf("list %s in %v: %w", pbx, s, o.Err)
			break
		}
		name := strings.TrimPrefix(o.Key, s.prefix)
		if checkName(name) != nil {
			continue
		}
		if err = fn(name); err != nil {
			break
		}
	}
	cancel()
	for range ch {
		// Read to its end: the listing's goroutine ends only so.
	}
	return err
}
