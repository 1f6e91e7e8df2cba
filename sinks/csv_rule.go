package sinks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
)

// Each CSV data file's manifest carries the pseudonymisation rule and key
// id its rows were written under ("privacy", the run's rule: never the
// key) and when the run that wrote it started ("run_started"), written
// with the file and kept by every rewrite (updatedManifest keeps the
// fields it does not set). The state folder is not the only witness of
// the rule then (attack 7, F9): with .state, or .state/<pbx>, lost (not
// restored, a volume mounted without it) the rule file and the run
// ledger are gone together, and the folder still holding the rows would
// otherwise be taken for a first export, any rule fitting.

// runRule is the rule a run applies, from its start (StartRun), for the
// manifests of the files it writes.
type runRule struct {
	privacy exporter.Privacy
	started time.Time
}

// manifestRule is what a PBX's data files' manifests say of the rule
// their rows were written under (CSV.manifestRule).
type manifestRule struct {
	files  int               // the PBX's data files (their manifests)
	rule   *exporter.Privacy // the rule of the newest file carrying one (by its run's start); nil: none carries one
	file   string            // that file, under the folder
	noRule string            // a file whose manifest carries no rule (an earlier release's), "" if none
}

// manifestRule reads the manifest of each of pbx's data files in every
// endpoint's folder, once each, and returns the rule of the newest file
// carrying one (the run that started last): after a forced change the
// files of before keep the earlier rule, and the newest file's is the
// rule the rows are written under now. A run that only rewrote files of
// before (rows updated in place) leaves their rule as it was: the rule
// then found is the earlier one, and a run under the new one is refused
// (the safe direction; --force accepts it). A manifest removed while it
// is read (a prune, a forget beside) is no evidence and is skipped.
// Called only when the PBX's rule file is missing: a folder of thousands
// of files reads them all, once per check.
func (s *CSV) manifestRule(pbx string) (manifestRule, error) {
	var mr manifestRule
	paths, err := filepath.Glob(filepath.Join(s.opt.Dir, "*", safeName(pbx)+"_*.manifest.json"))
	if err != nil {
		return mr, fmt.Errorf("read the data files' pseudonymisation rule: %w", err)
	}
	var newest time.Time
	for _, path := range paths {
		rel, _ := filepath.Rel(s.opt.Dir, path)
		if strings.HasPrefix(rel, ".") {
			continue // the state folder, or a temporary file
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return mr, fmt.Errorf("read the data files' pseudonymisation rule: %w", err)
		}
		var m struct {
			PBX     string            `json:"pbx"`
			File    string            `json:"file"`
			Privacy *exporter.Privacy `json:"privacy"`
			Started time.Time         `json:"run_started"`
		}
		if json.Unmarshal(b, &m) == nil && m.PBX != pbx {
			continue // another PBX's whose name begins as this one's
		}
		mr.files++
		name := rel
		if m.File != "" {
			name = filepath.Join(filepath.Dir(rel), filepath.Base(m.File))
		}
		if m.Privacy == nil || m.Privacy.Rule == "" {
			if mr.noRule == "" {
				mr.noRule = name
			}
			continue
		}
		if mr.rule == nil || m.Started.After(newest) {
			r := exporter.Privacy{Rule: m.Privacy.Rule, KeyID: m.Privacy.KeyID}
			mr.rule, mr.file, newest = &r, name, m.Started
		}
	}
	return mr, nil
}
