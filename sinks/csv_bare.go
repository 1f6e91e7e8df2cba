package sinks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// A PBX's data files are found by the names the sink gives them
// (csvDataName), not only by their manifests: a manifest lost (deleted,
// left out of a restore) hides its file from the check of the rule,
// which would then trust a record restored from an older copy of the
// state while the file, written after it, holds rows under another rule
// (review 37, R37-1), or take the folder for one with rows it can tell
// from new ones while no cursor state is left (review 38, R38-2: every
// row written again). And only the manifests of such files count: a
// user's own *.manifest.json beside them tells nothing (review 36,
// R36-2).

// pbxFiles is one listing of the endpoints' folders for a PBX's files.
type pbxFiles struct {
	manifests []string            // the manifests of the PBX's data files, under the folder
	data      map[string][]string // manifest (under the folder) → the PBX's data files it belongs to
}

// listPBXFiles lists, in one read of each endpoint folder (a folder
// named as an endpoint is), the files whose names are the sink's data
// files' for pbx (csvDataName, of this PBX: not another PBX's whose
// name begins as this one's) and the manifests of those files, sorted. A
// manifest with no such data file beside it is not listed. A folder that
// cannot be read (not a folder) is passed over, as filepath.Glob does:
// the names are read as they are, without a path made and cleaned for
// each (review 37, R37-2: 20,000 files a check).
func (s *CSV) listPBXFiles(pbx string) (pbxFiles, error) {
	f := pbxFiles{data: map[string][]string{}}
	folders, err := os.ReadDir(s.opt.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	prefix := safeName(pbx) + "_"
	var mans []string
	for _, d := range folders {
		if !record.Identifier(d.Name()) {
			continue
		}
		names, err := readNames(filepath.Join(s.opt.Dir, d.Name()))
		if err != nil {
			continue
		}
		for _, base := range names {
			if !strings.HasPrefix(base, prefix) {
				continue
			}
			rel := d.Name() + string(filepath.Separator) + base
			if strings.HasSuffix(base, ".manifest.json") {
				mans = append(mans, rel)
				continue
			}
			if m := csvDataName.FindStringSubmatch(base); m != nil && m[1] == safeName(pbx) {
				man := manifestPath(rel)
				f.data[man] = append(f.data[man], rel)
			}
		}
	}
	for _, m := range mans {
		if len(f.data[m]) > 0 {
			f.manifests = append(f.manifests, m)
		}
	}
	slices.Sort(f.manifests)
	return f, nil
}

// readNames reads the names of the folder dir's entries.
func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// bareFile is a data file of the PBX whose manifest is missing.
type bareFile struct {
	Name string    // under the folder
	At   time.Time // when it was written, at the latest: its modification time, or its run's start by its name when later
	Run  string    // the run its name gives, "" for a backfill window's
}

// bareFiles returns the data files of f with no manifest, sorted by
// name, leaving out those a commit in progress (or one a crash left)
// names: a commit removes a file's manifest before it replaces the
// file and writes it again after (recoverPath). The pending records are
// read after the listing, and each file left is looked at again, so
// that a commit ending meanwhile is no loss either.
func (s *CSV) bareFiles(pbx string, f pbxFiles) ([]bareFile, error) {
	has := make(map[string]bool, len(f.manifests))
	for _, m := range f.manifests {
		has[m] = true
	}
	var bare []string
	for man, files := range f.data {
		if !has[man] {
			bare = append(bare, files...)
		}
	}
	if len(bare) == 0 {
		return nil, nil
	}
	pending, err := s.pendingNames(pbx)
	if err != nil {
		return nil, err
	}
	var out []bareFile
	for _, rel := range bare {
		path := filepath.Join(s.opt.Dir, rel)
		if pending[manifestPath(rel)] {
			continue
		}
		if _, err := os.Lstat(manifestPath(path)); err == nil {
			continue // written meanwhile
		}
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read the data files: %w", err)
		}
		b := bareFile{Name: rel, At: fi.ModTime()}
		if m := csvDataName.FindStringSubmatch(filepath.Base(rel)); m != nil {
			rest := strings.TrimPrefix(filepath.Base(rel), m[1]+"_")
			if run, _, ok := strings.Cut(rest, "_"); ok && run != "backfill" {
				b.Run = run
				if at, err := time.Parse("20060102T150405Z", run[:min(16, len(run))]); err == nil && at.After(b.At) {
					b.At = at
				}
			}
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b bareFile) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// readPending calls fn with the bytes of each of the PBX's pending
// commit records (<key>.pending.json; not dot files), what naming what is
// being read in errors. A record completed (removed) while listed is
// passed over.
func (s *CSV) readPending(pbx, what string, fn func(b []byte)) error {
	entries, err := os.ReadDir(s.stateDir(pbx))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", what, err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".pending.json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.stateDir(pbx), e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // completed meanwhile
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", what, err)
		}
		fn(b)
	}
	return nil
}

// pendingNames are the manifests (under the folder) of the files the
// PBX's pending commits rename, rewrite or remove.
func (s *CSV) pendingNames(pbx string) (map[string]bool, error) {
	names := map[string]bool{}
	err := s.readPending(pbx, "the pending commits", func(b []byte) {
		var p pending
		if json.Unmarshal(b, &p) != nil {
			return // damaged: the run's recovery says so
		}
		folder := p.Folder
		if folder == "" {
			folder = filepath.Base(filepath.Dir(p.Final))
		}
		add := func(name string) {
			if name != "" {
				names[manifestPath(filepath.Join(folder, filepath.Base(name)))] = true
			}
		}
		add(p.Final)
		for _, r := range p.Rewrites {
			add(r.Final)
		}
		for _, r := range p.Removes {
			add(r)
		}
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}
