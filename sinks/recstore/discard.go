package recstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"path/filepath"
	"strings"
	"time"

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

// Discard removes the file stored under name (built by Name) and reports
// whether there was one. It is for a file the caller proved to be a
// recording the exporter must not keep that no row names (a run that
// failed or was killed stored it; exporter/recordings, Erase): the store
// proves nothing itself. Unlike Remove it leaves the name's folders, even
// empty (a run's copies may be putting files into them at the same time)
// and the partial copies beside it (SweepPartials: those of a Put still
// running are not to be touched). A symbolic link or anything else that
// is not a regular file under the name is refused, not removed.
func (d *Dir) Discard(ctx context.Context, name string) (bool, error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("discard %s: %w", name, err)
	}
	root, err := d.open()
	if err != nil {
		return false, fmt.Errorf("discard %s: %w", name, err)
	}
	defer root.Close()
	p := filepath.FromSlash(name)
	switch err := notRegular(root.Lstat(p)); {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("discard %s: %w", name, err)
	}
	if err := root.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("discard %s: %w", name, err)
	}
	if err := safefile.SyncDirIn(root, filepath.Dir(p)); err != nil {
		return true, fmt.Errorf("discard %s: %w", name, err)
	}
	return true, nil
}

// Discard removes the object stored under name (built by Name), as the
// folder store's Discard, and reports whether there was one. On a
// versioned bucket the server keeps earlier versions, as for Remove. A
// key without s3:DeleteObject (or s3:GetObject) gets an error matching
// ErrDenied, naming the permission.
func (s *S3) Discard(ctx context.Context, name string) (bool, error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	key := s.Key(path.Clean(name))
	if _, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
			return false, nil
		}
		return false, fmt.Errorf("discard %s: %w", name, s.headRefused(ctx, key, err, "s3:GetObject"))
	}
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return false, nil
		}
		return false, fmt.Errorf("discard %s: %w", name, denied(err, "s3:DeleteObject"))
	}
	return true, nil
}

// checkFolder refuses a folder that is not a day's folder as Name builds
// it: <pbx>/<YYYY>/<MM>/<DD>.
func checkFolder(folder string) error {
	if err := checkName(folder + "/x.wav"); err != nil {
		return fmt.Errorf("folder %s: expected <pbx>/<YYYY>/<MM>/<DD> as recstore.Name builds it", quoteShort(folder))
	}
	return nil
}

// DayFolder is the folder of a name built by Name: <pbx>/<YYYY>/<MM>/<DD>.
func DayFolder(name string) string { return path.Dir(name) }

// SweepPartials removes from folder, a day's folder of the store
// (<pbx>/<YYYY>/<MM>/<DD>, DayFolder), the partial copies
// (".<id>.wav.partial-…") last written before before: what a Put killed
// before it renamed its copy left, never a final name. A Put removes
// those of its own name, but a recording that is not copied again (a
// number of its call forgotten since, older than the retention, no
// longer listed) kept them for good, bytes of a voice included. The
// caller gives as before its run's start, less a margin for the store's
// clock: a Put still running writes its partial copy, and is left alone.
// Whatever its time, the partial copy of a name in inFlight (those a Put
// of the caller's run is writing or may write; nil: none) is left too:
// a store's clock hours behind makes a running Put's copy look old.
// Whatever its time, that of a name in anyAge and not in inFlight is
// removed: the names of recordings not kept, which no Put of the run
// writes (R34-1: a young copy left, its row committed erased, no later
// run would remove it). Five parameters: the folder, and the three rules
// of what is left, each its own caller's knowledge.
// It returns how many it removed; a folder that does not exist holds
// none. A symbolic link, or anything not a regular file, is left.
func (d *Dir) SweepPartials(ctx context.Context, folder string, before time.Time, inFlight, anyAge map[string]bool) (int, error) {
	if err := checkFolder(folder); err != nil {
		return 0, err
	}
	root, err := d.open()
	if err != nil {
		return 0, fmt.Errorf("sweep %s: %w", folder, err)
	}
	defer root.Close()
	dir := filepath.FromSlash(folder)
	f, err := root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sweep %s: %w", folder, err)
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("sweep %s: %w", folder, err)
	}
	n := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("sweep %s: %w", folder, err)
		}
		if !isPartial(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		id, _, _ := strings.Cut(e.Name()[1:], ".wav.partial-")
		name := folder + "/" + id + ".wav"
		if inFlight[name] {
			continue // a Put of this run may be writing it, whatever its time
		}
		if fi, err := e.Info(); !anyAge[name] && (err != nil || !fi.ModTime().Before(before)) {
			continue // gone since, or written during this run
		}
		switch err := root.Remove(filepath.Join(dir, e.Name())); {
		case err == nil:
			n++
		case !errors.Is(err, fs.ErrNotExist):
			return n, fmt.Errorf("sweep %s: %w", folder, err)
		}
	}
	if n > 0 {
		if err := safefile.SyncDirIn(root, dir); err != nil {
			return n, fmt.Errorf("sweep %s: %w", folder, err)
		}
	}
	return n, nil
}

// isPartial reports whether an entry's name is a partial copy's, as Put
// names them: "." + <id>.wav + ".partial-" + random.
func isPartial(entry string) bool {
	base, _, ok := strings.Cut(entry, ".wav.partial-")
	return ok && strings.HasPrefix(base, ".") && checkPart("recording id", base[1:], 64, "-_") == nil
}

// SweepPartials aborts the incomplete multipart uploads of recordings'
// names (as Name builds them) under folder, a day's folder (DayFolder),
// begun before before: what a Put killed before it completed its upload
// left, invisible but kept (and billed) by the server, recording bytes
// included. One whose start the server did not send is kept (it may be
// this run's), with a warning, unless its name is in anyAge; one of a
// name in inFlight is kept whatever its start. The folder store's
// SweepPartials says why and what before, inFlight and anyAge are. It
// returns how many it aborted.
func (s *S3) SweepPartials(ctx context.Context, folder string, before time.Time, inFlight, anyAge map[string]bool) (int, error) {
	if err := checkFolder(folder); err != nil {
		return 0, err
	}
	prefix := s.Key(folder + "/")
	type upload struct{ key, id string }
	var left []upload
	var lerr error
	undated := 0
	// Read to its end: the listing's goroutine ends only so. Only keys
	// shaped as a recording's name in this folder are this store's
	// partial copies; an upload whose start the server did not send (the
	// zero time) may be a Put of this run's, so it is kept, unless its
	// name is anyAge's.
	for u := range s.c.ListIncompleteUploads(ctx, s.bucket, prefix, true) {
		switch name := strings.TrimPrefix(u.Key, s.prefix); {
		case u.Err != nil:
			lerr = u.Err
		case strings.Contains(strings.TrimPrefix(u.Key, prefix), "/") || checkName(name) != nil || inFlight[name]:
		case anyAge[name]:
			left = append(left, upload{u.Key, u.UploadID})
		case u.Initiated.IsZero():
			undated++
		case u.Initiated.Before(before):
			left = append(left, upload{u.Key, u.UploadID})
		}
	}
	if lerr != nil {
		return 0, fmt.Errorf("sweep %s: list incomplete uploads: %w", folder, lerr)
	}
	if undated > 0 {
		s.log.Warn("recording store: incomplete uploads kept, the server did not say when they began",
			"folder", folder, "uploads", undated)
	}
	n := 0
	for _, u := range left {
		err := minio.Core{Client: s.c}.AbortMultipartUpload(ctx, s.bucket, u.key, u.id)
		if err != nil && minio.ToErrorResponse(err).Code != "NoSuchUpload" {
			return n, fmt.Errorf("sweep %s: abort an upload left by an earlier copy: %w", folder, err)
		}
		n++
	}
	return n, nil
}
