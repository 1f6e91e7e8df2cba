// Package sinks holds where exported rows go: CSV files (CSV) and
// PostgreSQL tables (Postgres). Both implement exporter.Sink and commit
// each batch's rows together with the state that covers them.
package sinks

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/safefile"
)

// CSVOptions configure the CSV sink.
type CSVOptions struct {
	Dir          string
	Gzip         bool
	SafeFormulas bool // prefix text cells starting with = + - @ with a quote
	Log          *slog.Logger
}

// fileMode is the mode of every file the CSV sink creates (data,
// manifests, state, the run log), less what the umask takes away: the
// data holds names and numbers, which no other local user should read.
const fileMode = 0o600

// CSV writes a file per endpoint, run and batch under Dir/<endpoint>/:
// RFC 4180, UTF-8, a header, the catalog's columns then "extra" (a JSON
// object of the fields the catalog does not know), times in RFC 3339 UTC
// (with the fraction of a second, to the microsecond, when there is one).
//
// A file is written under a temporary name and renamed when complete, so a
// reader never sees a partial file under a final name. Next to it, a
// manifest (rows, sha256, run, window). State lives in Dir/.state/<pbx>/.
// A commit is decided by a pending record written after the data is on
// disk and before it is renamed; a crash after that point is completed
// on the next start, a crash before it leaves only a temporary file, which
// is removed.
//
// Each record of an incremental endpoint is in one file only (csv_keys.go):
// a batch does not write a row another file holds unchanged, a row that
// changed is updated in place in the file holding it, in the same commit,
// and a redone backfill window takes its records from the other files. Batches of one endpoint must not overlap (the
// exporter commits them one after another); a CSV is safe for concurrent
// use by batches of different endpoints.
type CSV struct {
	opt     CSVOptions
	started time.Time
	cleaned sync.Map // folders already rid of stale temporary files
	// mu serialises completing commits: a commit's own and the sweep of
	// the commits a crash or a failure left (recoverAll).
	mu      sync.Mutex
	swept   sync.Map // PBXes whose pending commits were all completed
	foreign sync.Map // data files the key index leaves out (another PBX's, snapshots)
	warned  sync.Map // endpoints whose records held twice were warned of
	// crash, set by tests, is asked at each point of completing a commit
	// whether to stop there, as a process killed there would.
	crash func() bool
	// syncDir, set by tests to watch the order of durable steps, stands
	// for safefile.SyncDir.
	syncDir func(dir string) error
	rules   pendingRules // the pseudonymisation rule a run stores with its first commit (privacy.go)
	runs    sync.Map     // run id → runRule: the rule each run's manifests carry (csv_rule.go)
	rekeyed sync.Map     // run id → *rekeyedRows: rows it left in other files in its own form (rewrite_keys.go)
	// state keeps what the sink made of state files it reads more than
	// once a run (csv_statecache.go).
	state stateCache
	// manifestReads, listReads, ledgerReads and markReads count the
	// reads of data files' manifests by the lost-state check
	// (forgetEvidence), of the suppression list, of run ledgers by the
	// check and of its mark of the manifests checked, for tests.
	manifestReads, listReads, ledgerReads, markReads atomic.Int64
}

func (s *CSV) syncFolder(dir string) error {
	if s.syncDir != nil {
		return s.syncDir(dir)
	}
	return safefile.SyncDir(dir)
}

// errCrashed is a commit stopped by CSV.crash.
var errCrashed = errors.New("stopped as if killed (test)")

func (s *CSV) crashed() bool { return s.crash != nil && s.crash() }

// NewCSV returns a CSV sink writing under o.Dir, which it creates.
func NewCSV(o CSVOptions) (*CSV, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create EXPORT_CSV_DIR %s: %w", o.Dir, err)
	}
	return &CSV{opt: o, started: time.Now()}, nil
}

// advise adds to err what to do when it is the export folder's disk
// that refused: full, read-only, or not writable by this user. What was
// committed is kept in every case.
func (s *CSV) advise(err error) error {
	var do string
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		do = "its disk is full: free space there (or move EXPORT_CSV_DIR to a larger disk) and rerun"
	case errors.Is(err, syscall.EROFS):
		do = "it is on a read-only file system: mount it writable (or set EXPORT_CSV_DIR to a writable folder) and rerun"
	case errors.Is(err, fs.ErrPermission):
		do = "this user may not write there: give it write access (or set EXPORT_CSV_DIR to a folder it owns) and rerun"
	default:
		return err
	}
	return fmt.Errorf("%w; EXPORT_CSV_DIR %s: %s; what was committed is kept", err, s.opt.Dir, do)
}

// safeName encodes s for use as one path element: letters, digits, -, _
// and non-leading dots are kept, every other byte becomes %XX, so the
// mapping is one to one and no name can be "." or ".." or hold a slash.
func safeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || (c == '.' && i > 0) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func (s *CSV) stateDir(pbx string) string {
	return filepath.Join(s.opt.Dir, ".state", safeName(pbx))
}

// mkdir creates the folder Dir/elems…, refusing any of its folders under
// Dir that is a symbolic link: files written through them would land
// outside the export folder.
func (s *CSV) mkdir(elems ...string) (string, error) {
	dir := s.opt.Dir
	for _, e := range elems {
		dir = filepath.Join(dir, e)
		if err := safefile.NotSymlink(dir); err != nil {
			return "", err
		}
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("create %s: %w", dir, err)
		}
	}
	return dir, nil
}

func (s *CSV) mkStateDir(pbx string) (string, error) { return s.mkdir(".state", safeName(pbx)) }

type csvState struct {
	Seq   int64           `json:"seq"`
	File  string          `json:"file,omitempty"`
	State json.RawMessage `json:"state"`
}

type pending struct {
	csvState
	Folder   string          `json:"folder,omitempty"`   // the endpoint's folder under Dir
	Tmp      string          `json:"tmp,omitempty"`      // data file's temporary name
	Final    string          `json:"final,omitempty"`    // data file's final name
	SHA256   string          `json:"sha256,omitempty"`   // of the data file
	Manifest json.RawMessage `json:"manifest,omitempty"` // to write next to it
	// Rewrites are committed files of the folder rewritten: rows changed
	// on the PBX updated in place, rows the data file takes dropped. They
	// are renamed before the data file, so that a record is never in two
	// files, even mid-way (docs/sinks.md, "Each record once").
	Rewrites []rewrite `json:"rewrites,omitempty"`
	// Removes are files of the folder the data file replaces under
	// another name (a redone window's file with or without .gz): removed
	// first, with their manifest.
	Removes []string `json:"removes,omitempty"`
	// Index sets entries of the folder's key index (file → its keys).
	Index map[string]*keySet `json:"index,omitempty"`
	// Edit marks an edit of stored rows (csv_edit.go): no state to save.
	Edit bool `json:"edit,omitempty"`
	// Rule is the pseudonymisation rule the commit stores (privacy.go).
	Rule *storedRule `json:"privacy_rule,omitempty"`
}

// State implements exporter.Sink.
func (s *CSV) State(_ context.Context, pbx, key string) (_ []byte, err error) {
	defer func() { err = s.advise(err) }()
	if err := s.recoverAll(pbx); err != nil {
		return nil, err
	}
	st, err := s.readState(pbx, key)
	if err != nil || st == nil {
		return nil, err
	}
	return st.State, nil
}

func (s *CSV) readState(pbx, key string) (*csvState, error) {
	b, err := os.ReadFile(filepath.Join(s.stateDir(pbx), safeName(key)+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var st csvState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file of %s is damaged (%v): remove it to export from the start", key, err)
	}
	return &st, nil
}

// recoverAll completes the commits a crash left (or a failure, of this
// process) for pbx, every state key's: a backfill window's pending commit
// may have rewritten files the nightly cursor's batches read. Then it
// removes the temporary files a killed process left in every endpoint's
// folder and the state folder: a run that finds nothing new, or a
// backfill whose windows are all done, begins no batch, so Begin alone
// would leave them. Once done, it costs nothing until a commit fails
// again.
func (s *CSV) recoverAll(pbx string) error {
	if _, done := s.swept.Load(pbx); done {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := s.stateDir(pbx)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read state folder: %w", err)
	}
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, ".pending.json") && !strings.HasPrefix(name, ".") {
			if err := s.recoverPath(pbx, filepath.Join(dir, name), true); err != nil {
				return err
			}
		}
	}
	s.removeStale(dir, ".")
	s.removeStaleListTemps()
	folders, err := os.ReadDir(s.opt.Dir)
	if err != nil {
		return fmt.Errorf("read EXPORT_CSV_DIR: %w", err)
	}
	for _, f := range folders {
		if folder := filepath.Join(s.opt.Dir, f.Name()); f.IsDir() && record.Identifier(f.Name()) && safefile.NotSymlink(folder) == nil {
			s.removeStale(folder, tmpPrefix(pbx))
		}
	}
	s.swept.Store(pbx, true)
	return nil
}

// recover completes a commit whose pending record was written: the one
// Commit is making, or one a crash interrupted (crashed). The caller
// holds s.mu.
func (s *CSV) recover(pbx, key string, crashed bool) error {
	return s.recoverPath(pbx, filepath.Join(s.stateDir(pbx), safeName(key)+".pending.json"), crashed)
}

// recoverPath is recover of the pending record at path. The files it
// renames and writes are rebuilt from names (the endpoint's folder under
// Dir, file names without any folder), never taken from the record as
// paths. Files are checked before any is renamed: a commit whose data is
// gone or damaged is discarded whole (its state is not saved, so its rows
// are exported again); one found half applied is completed.
//
// It stays one function (about 105 lines; finishCommit writes what the
// data files' renames allow): its checks must all run before its first
// rename, and reading them in that order in one place is the proof that a
// crash at any point leaves the folder before or after the commit.
func (s *CSV) recoverPath(pbx, path string, crashed bool) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pending commit: %w", err)
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil {
		// Written atomically, so damage is not from a crash of ours.
		return fmt.Errorf("pending commit %s is damaged (%v): remove it and rerun", path, err)
	}
	var steps []step
	if p.Final != "" || len(p.Rewrites) > 0 || len(p.Removes) > 0 {
		steps, err = s.pendingSteps(pbx, &p)
		if err != nil {
			return fmt.Errorf("pending commit %s: %w: remove it and rerun", path, err)
		}
		gone := ""
		applied := false
		for i := range steps {
			st := &steps[i]
			switch st.check() {
			case stepReady:
			case stepApplied:
				applied = true
			default:
				gone = st.final
			}
		}
		removes, err := s.pendingRemoves(pbx, &p)
		if err != nil {
			return fmt.Errorf("pending commit %s: %w: remove it and rerun", path, err)
		}
		for _, old := range removes {
			// In the index when the commit was decided, so on disk then:
			// gone now, it was removed by an earlier try.
			if _, err := os.Lstat(old); errors.Is(err, fs.ErrNotExist) {
				applied = true
			}
		}
		if gone != "" {
			if applied {
				return fmt.Errorf("pending commit %s was partly completed and the new content of %s is gone or damaged: is another program writing in EXPORT_CSV_DIR? Remove the pending record and redo the range with backfill --force", path, gone)
			}
			s.opt.Log.Warn("discarding an unfinished commit whose data is gone or damaged", "file", gone)
			for _, st := range steps {
				os.Remove(st.tmp)
			}
			return errors.Join(os.Remove(path), vanished(crashed, gone))
		}
		// Removed and rewritten files first: a record taken by the new
		// file leaves its old one before it appears there. Each file's
		// manifest goes before its data is replaced and comes back
		// after (finishCommit, once every file is in place and its
		// folder synced), so that a file with a manifest always
		// matches it.
		folders := map[string]bool{}
		for _, old := range removes {
			for _, f := range []string{manifestPath(old), old} {
				if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("complete interrupted commit: %w", err)
				}
			}
			folders[filepath.Dir(old)] = true
			if s.crashed() {
				return errCrashed
			}
		}
		for _, st := range steps {
			if st.state != stepReady {
				continue
			}
			if err := os.Remove(manifestPath(st.final)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("complete interrupted commit: %w", err)
			}
			if s.crashed() {
				return errCrashed
			}
			if err := os.Rename(st.tmp, st.final); err != nil {
				return fmt.Errorf("complete interrupted commit: %w", err)
			}
			folders[filepath.Dir(st.final)] = true
			if s.crashed() {
				return errCrashed
			}
		}
		// The renames and removals durable before any manifest, index
		// or state names their outcome: one sync of their folder (the
		// endpoint's) for all of them, not one a file.
		for _, dir := range slices.Sorted(maps.Keys(folders)) {
			if err := s.syncFolder(dir); err != nil {
				return err
			}
			if s.crashed() {
				return errCrashed
			}
		}
		if crashed && len(steps) > 0 {
			s.opt.Log.Info("completed a commit interrupted by a crash", "file", steps[len(steps)-1].final)
		}
	}
	return s.finishCommit(pbx, path, &p, steps)
}

// finishCommit writes what the pending record at path decided besides
// its data files, once they are in place: each step's manifest, the key
// index, the pseudonymisation rule and the state (the cursor); then it
// removes the record. Each file is written as safefile.Write writes one
// (its temporary file synced, renamed, its folder synced), and the files
// side by side: one wait for the disk, where one after another a
// commit's syncs were 10-40 ms of a run on a loaded disk (issue 29's
// bench, bench/README.md). Their order is free: the record is removed only
// once every one of them is durable, and until then recovery writes them
// all again; none names a data file not durably in place (recoverPath
// synced their folder first).
func (s *CSV) finishCommit(pbx, path string, p *pending, steps []step) error {
	var writes []func() error
	for _, st := range steps {
		man := manifestPath(st.final)
		writes = append(writes, func() error {
			return safefile.WriteVia(man, tmpPrefix(pbx)+filepath.Base(man)+".tmp-", st.manifest, fileMode)
		})
	}
	if len(p.Index) > 0 {
		writes = append(writes, func() error { return s.applyIndex(pbx, p.Folder, p.Index) })
	}
	if !p.Edit {
		writes = append(writes, func() error {
			// The rule just before the state (privacy.go).
			if err := s.saveRule(pbx, p.Rule); err != nil {
				return err
			}
			st, _ := json.Marshal(p.csvState)
			return safefile.Write(strings.TrimSuffix(path, ".pending.json")+".json", st, fileMode)
		})
	}
	// A process killed while they are written leaves any of them done
	// and the others not: the crash hook (tests) is asked once for each,
	// in order, before any starts, and each it stops is left unwritten
	// while the others are written, then the commit stops (review 6,
	// R6-6: it stopped only once all were written).
	stopped := false
	for i := range writes {
		if s.crashed() {
			writes[i], stopped = nil, true
		}
	}
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, write := range writes {
		if write == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = write()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if stopped || s.crashed() {
		return errCrashed
	}
	return os.Remove(path)
}

// A step of a pending commit: one file renamed into place and its
// manifest written.
type step struct {
	tmp, final, sha string
	manifest        []byte
	state           int
}

const (
	stepReady   = iota + 1 // the new content waits under its temporary name
	stepApplied            // already in place
	stepGone               // neither: lost or damaged
)

func (st *step) check() int {
	if _, err := os.Lstat(st.tmp); err == nil {
		if sum, err := fileSHA256(st.tmp); err == nil && sum == st.sha {
			st.state = stepReady
		} else {
			st.state = stepGone
		}
		return st.state
	}
	st.state = stepGone
	if sum, err := fileSHA256(st.final); err == nil && (sum == st.sha || st.sha == "") {
		st.state = stepApplied
	}
	return st.state
}

// pendingSteps lists the files of a pending commit: the rewritten ones,
// then the data file.
func (s *CSV) pendingSteps(pbx string, p *pending) ([]step, error) {
	var steps []step
	for _, r := range p.Rewrites {
		tmp, final, err := s.pendingFiles(pbx, &pending{Folder: p.Folder, Tmp: r.Tmp, Final: r.Final})
		if err != nil {
			return nil, err
		}
		steps = append(steps, step{tmp: tmp, final: final, sha: r.SHA256, manifest: r.Manifest})
	}
	if p.Final != "" {
		tmp, final, err := s.pendingFiles(pbx, p)
		if err != nil {
			return nil, err
		}
		steps = append(steps, step{tmp: tmp, final: final, sha: p.SHA256, manifest: p.Manifest})
	}
	return steps, nil
}

// pendingRemoves rebuilds the paths of the files a pending commit
// removes, as pendingFiles does: data files of this PBX in the endpoint's
// folder.
func (s *CSV) pendingRemoves(pbx string, p *pending) ([]string, error) {
	var out []string
	for _, name := range p.Removes {
		if !record.Identifier(p.Folder) || filepath.Base(name) != name || !strings.HasPrefix(name, safeName(pbx)+"_") ||
			!(strings.HasSuffix(name, ".csv") || strings.HasSuffix(name, ".csv.gz")) {
			return nil, fmt.Errorf("file %q to remove is not a data file of this PBX", name)
		}
		out = append(out, filepath.Join(s.opt.Dir, p.Folder, name))
	}
	return out, nil
}

// vanished is the error of a commit in progress whose data file is gone
// or damaged: the commit fails (its state is not saved, so its rows are
// exported again). A crashed commit found so at start was never reported
// as done: discarding it is not a failure.
func vanished(crashed bool, final string) error {
	if crashed {
		return nil
	}
	return fmt.Errorf("the data file of this commit (%s) vanished or changed before the commit completed: nothing was committed; is another program writing in EXPORT_CSV_DIR?", final)
}

// pendingFiles rebuilds the paths of a pending commit's data file, under
// its temporary and its final name, from the names the record holds: an
// endpoint folder directly under Dir, file names of this PBX. Records of
// older versions held paths: only their last elements are used.
func (s *CSV) pendingFiles(pbx string, p *pending) (tmp, final string, err error) {
	folder := p.Folder
	if folder == "" {
		folder = filepath.Base(filepath.Dir(p.Final))
	}
	tmpName, finalName := filepath.Base(p.Tmp), filepath.Base(p.Final)
	if !record.Identifier(folder) {
		return "", "", fmt.Errorf("folder %q is not an endpoint's", folder)
	}
	if !strings.HasPrefix(finalName, safeName(pbx)+"_") || !strings.HasPrefix(tmpName, ".") || !strings.Contains(tmpName, ".tmp-") {
		return "", "", fmt.Errorf("file names %q and %q are not this PBX's", tmpName, finalName)
	}
	dir := filepath.Join(s.opt.Dir, folder)
	return filepath.Join(dir, tmpName), filepath.Join(dir, finalName), nil
}

func manifestPath(data string) string {
	return strings.TrimSuffix(strings.TrimSuffix(data, ".gz"), ".csv") + ".manifest.json"
}

// updatedManifest is the manifest of the data file at path, updated for
// its new content (rows, bytes, sha256, updated_at) with each count in
// add added to the counter it names (written even when it adds 0), and
// each field of with set to its value (forget's stamp, forgetStampKey).
// Its six parameters are the manifest's own fields (the new content's
// rows, size and sha256; the counters to add; the fields to set): each
// caller has them apart, and a struct would only carry them here.
func updatedManifest(path string, rows, size int64, sha string, add map[string]int64, with map[string]any) ([]byte, error) {
	mb, err := os.ReadFile(manifestPath(path))
	if err != nil {
		return nil, fmt.Errorf("its manifest: %w", err)
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("its manifest is damaged: %w", err)
	}
	set := func(k string, v any) { m[k], _ = json.Marshal(v) }
	for k, n := range add {
		var before int64
		json.Unmarshal(m[k], &before)
		set(k, before+n)
	}
	for k, v := range with {
		set(k, v)
	}
	set("rows", rows)
	set("bytes", size)
	set("sha256", sha)
	set("updated_at", nowUTC())
	return json.MarshalIndent(m, "", "  ")
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Begin implements exporter.Sink.
func (s *CSV) Begin(_ context.Context, b exporter.BatchInfo) (_ exporter.Batch, err error) {
	defer func() { err = s.advise(err) }()
	if err := s.recoverAll(b.PBX); err != nil {
		return nil, err
	}
	dir, err := s.mkdir(b.Endpoint.Name)
	if err != nil {
		return nil, err
	}
	var name string
	if b.Window != nil {
		compact := strings.NewReplacer("-", "", ":", "", " ", "T")
		name = fmt.Sprintf("%s_backfill_%s_%s", safeName(b.PBX), compact.Replace(b.Window.From), compact.Replace(b.Window.To))
	} else {
		name = fmt.Sprintf("%s_%s_%04d", safeName(b.PBX), b.RunID, b.Seq)
	}
	name += ".csv"
	if s.opt.Gzip {
		name += ".gz"
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	tmp := filepath.Join(dir, tmpName(b.PBX, name)+hex.EncodeToString(suffix))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fileMode)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	bt := &csvBatch{sink: s, info: b, data: newTmpData(f, s.opt.Gzip), tmp: tmp, final: filepath.Join(dir, name)}
	if !b.Snapshot {
		if err := bt.openIndex(dir); err != nil {
			bt.discard()
			return nil, err
		}
	}
	bt.w = csv.NewWriter(bt.data)
	header := make([]string, 0, len(b.Endpoint.Columns)+1)
	for _, c := range b.Endpoint.Columns {
		header = append(header, c.Name)
	}
	bt.rec = make([]string, len(header)+1)
	if err := bt.w.Write(append(header, "extra")); err != nil {
		bt.Abort(context.Background())
		return nil, err
	}
	return bt, nil
}

// tmpPrefix starts the names of a PBX's temporary data files: the PBX's
// safeName then "~", which safeName never produces, so that no PBX's
// prefix is the start of another's ("a" and "a_b" give ".a~" and ".a_b~").
func tmpPrefix(pbx string) string { return "." + safeName(pbx) + "~" }

// tmpName starts the temporary name of the data file name: tmpPrefix,
// then name without its .csv or .csv.gz, so that a reader's glob *.csv*
// (DuckDB's, which lets * match a leading dot, as docs/reporting.md uses
// it) never takes a temporary file, whose rows a committed file holds too
// (a rewritten file's copy) or will hold. A PBX id holding ".csv" itself
// still shows it in tmpPrefix.
func tmpName(pbx, name string) string {
	return tmpPrefix(pbx) + strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), ".csv") + ".tmp-"
}

// openData opens the data file at path to read its content, decompressed
// when it is a .gz; the caller closes it.
func openData(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, nil
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("decompress %s: %w", path, err)
	}
	return gzipFile{gz, f}, nil
}

// gzipFile is a compressed data file's content: Close closes both.
type gzipFile struct {
	*gzip.Reader
	f *os.File
}

func (g gzipFile) Close() error {
	g.Reader.Close()
	return g.f.Close()
}

// tmpData is a data file's content being written under its temporary
// name (a batch's new file, an edited or rewritten one): what is written
// is counted into its sha256 and, for a .gz file, compressed first. The
// caller removes the file when a write or finish fails.
type tmpData struct {
	f   *os.File
	gz  *gzip.Writer // nil when the file is not compressed
	sum hash.Hash
	w   io.Writer
}

// newTmpData writes into f, compressed when compress; it owns f from here.
func newTmpData(f *os.File, compress bool) *tmpData {
	t := &tmpData{f: f, sum: sha256.New()}
	t.w = io.MultiWriter(f, t.sum)
	if compress {
		t.gz = gzip.NewWriter(t.w)
		t.w = t.gz
	}
	return t
}

func (t *tmpData) Write(p []byte) (int, error) { return t.w.Write(p) }

// finish ends the content: the compressed stream closed, the file synced
// and closed, so that a pending record may name it. It returns the
// content's sha256 (hex) and size on disk.
func (t *tmpData) finish() (sha string, size int64, err error) {
	if t.gz != nil {
		if err := t.gz.Close(); err != nil {
			return "", 0, fmt.Errorf("compress %s: %w", t.f.Name(), err)
		}
	}
	if err := t.f.Sync(); err != nil {
		return "", 0, err
	}
	info, err := t.f.Stat()
	if err != nil {
		return "", 0, err
	}
	if err := t.f.Close(); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(t.sum.Sum(nil)), info.Size(), nil
}

// removeStale deletes temporary files (named prefix….tmp-…) left in dir
// before this process started: the remains of runs that crashed before
// committing. A pending commit names its data by its final name, and a
// temporary data file it still needs is renamed by recover before this.
func (s *CSV) removeStale(dir, prefix string) {
	if _, done := s.cleaned.LoadOrStore(dir+"\x00"+prefix, true); done {
		return // once per folder and process: later files are this process's own
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) || !strings.Contains(e.Name(), ".tmp-") {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(s.started) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// listTempsOf are the files of the state folder itself (the folder's,
// not a PBX's) that are replaced by safefile.Write, whose temporary is
// "." + name + ".tmp-" + digits: the suppression list, the forget journal
// (sinks/forget_csv.go) and the mark of the manifests checked.
var listTempsOf = []string{".suppressed.json", ".forget-journal.json", ".suppressed.checked.json"}

// removeStaleListTemps deletes, once per process, the temporaries of
// listTempsOf a killed process left in .state (attack 6, F2: a forget
// killed while it replaced the list or the journal left a stale copy of
// either for good): only names of exactly that form, modified before
// this process started, and under the list's lock (TryLock: when another
// process holds it, they are left for a later start). The journal's
// writer, forget, holds every PBX's lock, and a run comes here under its
// PBX's; a forget started after this process makes newer files.
func (s *CSV) removeStaleListTemps() {
	dir := filepath.Join(s.opt.Dir, ".state")
	if _, done := s.cleaned.LoadOrStore(dir+"\x00list", true); done {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var stale []string
	for _, e := range entries {
		if isListTemp(e.Name()) && e.Type().IsRegular() {
			if info, err := e.Info(); err == nil && info.ModTime().Before(s.started) {
				stale = append(stale, e.Name())
			}
		}
	}
	if len(stale) == 0 {
		return
	}
	lock := safefile.NewLock(filepath.Join(dir, ".suppressed.lock"), fileMode)
	if ok, err := lock.TryLock(); err != nil || !ok {
		s.cleaned.Delete(dir + "\x00list")
		return
	}
	defer lock.Unlock()
	for _, name := range stale {
		if err := os.Remove(filepath.Join(dir, name)); err == nil {
			s.opt.Log.Info("removed a temporary file a killed process left", "file", filepath.Join(dir, name))
		}
	}
}

// isListTemp reports whether name is a temporary of one of listTempsOf.
func isListTemp(name string) bool {
	for _, f := range listTempsOf {
		if n, ok := strings.CutPrefix(name, "."+f+".tmp-"); ok && n != "" {
			if _, err := strconv.ParseUint(n, 10, 64); err == nil {
				return true
			}
		}
	}
	return false
}

type csvBatch struct {
	sink       *CSV
	info       exporter.BatchInfo
	data       *tmpData
	w          *csv.Writer // writes into data
	tmp, final string
	rows       int64
	rec        []string
	done       bool
	badTimes   int64       // times outside years 0001-9999, written empty
	rule       *storedRule // the pseudonymisation rule the commit stores, nil if none

	// Incremental batches only (nil for snapshots): the folder's keys.
	keys *batchKeys
}

// batchKeys is what an incremental batch knows and decides of the keys
// of its folder (csv_keys.go).
type batchKeys struct {
	dir    string
	cols   []string // key columns' names
	colIdx []int    // and their indexes in a record
	lookup *keyLookup
	index  *keyIndex
	// own are the files this batch's file replaces: its final name and,
	// for a backfill window, the same name with or without .gz (the
	// window written before EXPORT_CSV_GZIP changed), whose rows are
	// not "held elsewhere".
	own []string
	// redo: a window done before is redone (only backfill --force does
	// that): its file takes every record of the window from the files
	// holding it, so that afterwards it holds the window's records.
	redo     bool
	written  keyCollector // keys of the rows this batch's file holds
	skipped  keyCollector // keys left in the file holding them unchanged
	inPlace  keyCollector // keys left in the file holding them, in their new form
	nSkip    int
	nInPlace int
	nUpd     int // rows changed on the PBX, updated in the file holding them
	nMoved   int // rows taken into this batch's file from other files
	// drop: file → keys whose rows leave it (taken by this batch's file,
	// or held by another file too: a folder of an earlier version).
	drop map[string]map[string]bool
	// update: file → key → the row's new bytes, written in place of its
	// old ones, so that a changed record never changes file.
	update  map[string]map[string][]byte
	digests map[string]map[string]digest
	holders []string
	held    []string
	scratch bytes.Buffer
	sw      *csv.Writer
	hash    hasher // of this batch: its digests are compared only with each other
	dups    int64  // rows of a key the batch had already written, dropped
	kept    int64  // rows of a redone window's earlier file it did not read, kept
	// confirmed: file → keys of its rows this batch left there in the
	// batch's own form (held unchanged, or updated in place): under its
	// run's key (rewrite_keys.go, noteRekeyed).
	confirmed map[string][]string
}

// openIndex loads the folder's key index for an incremental batch.
func (b *csvBatch) openIndex(dir string) error {
	idx, err := b.sink.loadIndex(b.info.PBX, b.info.Endpoint, dir)
	if err != nil {
		return err
	}
	k := &batchKeys{dir: dir, cols: csvKeyColumns(b.info.Endpoint), lookup: newKeyLookup(idx), index: idx,
		own: []string{filepath.Base(b.final)}, drop: map[string]map[string]bool{}, update: map[string]map[string][]byte{},
		digests: map[string]map[string]digest{}, hash: newHasher()}
	if b.info.Window != nil {
		if other := otherVariant(k.own[0]); idx.Files[other] != nil {
			k.own = append(k.own, other)
		}
		st, err := b.sink.readState(b.info.PBX, b.info.StateKey)
		if err != nil {
			return err
		}
		k.redo = st != nil
	}
	for _, c := range k.cols {
		k.colIdx = append(k.colIdx, b.info.Endpoint.Column(c))
	}
	k.sw = csv.NewWriter(&k.scratch)
	b.keys = k
	b.sink.warnDoubles(b.info.PBX, b.info.Endpoint.Name, k.lookup)
	return nil
}

// otherVariant is a data file's name with .gz added or taken away.
func otherVariant(name string) string {
	if s, ok := strings.CutSuffix(name, ".gz"); ok {
		return s
	}
	return name + ".gz"
}

// warnDoubles warns, once per process and endpoint, of records the
// index finds in more than one file: a folder written by a version
// before the key index. A commit touching such a record keeps it once;
// a redone window takes all of its own.
func (s *CSV) warnDoubles(pbx, endpoint string, l *keyLookup) {
	if l.doubled == 0 {
		return
	}
	if _, done := s.warned.LoadOrStore(pbx+"\x00"+endpoint, true); done {
		return
	}
	s.opt.Log.Warn("records in more than one file of the export folder, written by a version before the key index: redo the backfilled range once with backfill --force to keep each once",
		"endpoint", endpoint, "records", l.doubled, "files", l.doubledIn)
}

// place decides where the row in b.rec goes: false when this batch's
// file is not to hold it. A row another file holds unchanged is left
// there; one it holds in another form is updated there, in place (the
// record never changes file, so no reader sees it twice or not at all);
// a redone window takes every row of its window from the other files.
//
// It stays one function (about 75 lines): the cases (new key, held
// unchanged, held in another form, a redone window) are exclusive and read
// as one switch over the same key state; split, each piece would take that
// state and the batch's maps as parameters.
func (b *csvBatch) place() (bool, error) {
	k := b.keys
	for _, i := range k.colIdx {
		if b.rec[i] == "" {
			// A key value its column could not hold (written empty): the
			// file cannot tell such rows apart, so none is left out.
			return true, nil
		}
	}
	key := rowKey(b.rec, k.colIdx)
	if (k.nSkip > 0 && k.skipped.has(key)) || (k.nInPlace > 0 && k.inPlace.has(key)) {
		k.dups++ // a second version in this batch: the first is kept
		return false, nil
	}
	k.holders = k.lookup.holders(k.holders[:0], key, k.own)
	if len(k.holders) == 0 {
		if !k.written.add(key) {
			k.dups++
			return false, nil
		}
		return true, nil
	}
	if k.written.has(key) {
		k.dups++
		return false, nil
	}
	raw := rowBytes(&k.scratch, k.sw, b.rec)
	d := k.hash.of(raw)
	k.held = k.held[:0]
	same := ""
	for _, h := range k.holders {
		ds, err := k.fileDigests(h)
		if err != nil {
			return false, err
		}
		if old, ok := ds[key]; ok {
			k.held = append(k.held, h)
			if old == d && same == "" {
				same = h
			}
		}
	}
	switch {
	case len(k.held) == 0: // the index was wrong: no file holds it
		k.written.add(key)
		return true, nil
	case k.redo:
		for _, h := range k.held {
			k.dropFrom(h, key)
		}
		k.written.add(key)
		k.nMoved++
		return true, nil
	case len(k.held) == 1 && same != "":
		k.skipped.add(key)
		k.nSkip++
		k.confirm(same, key)
		return false, nil
	}
	keep := same
	if keep == "" {
		keep = k.held[0]
		if k.update[keep] == nil {
			k.update[keep] = map[string][]byte{}
		}
		k.update[keep][key] = bytes.Clone(raw)
		k.nUpd++
	}
	for _, h := range k.held {
		if h != keep {
			k.dropFrom(h, key) // held twice: a folder of an earlier version
		}
	}
	k.inPlace.add(key)
	k.nInPlace++
	k.confirm(keep, key)
	return false, nil
}

func (k *batchKeys) dropFrom(file, key string) {
	if k.drop[file] == nil {
		k.drop[file] = map[string]bool{}
	}
	k.drop[file][key] = true
}

// fileDigests reads a file's row digests once per batch.
func (k *batchKeys) fileDigests(name string) (map[string]digest, error) {
	if ds, ok := k.digests[name]; ok {
		return ds, nil
	}
	ds, err := fileDigests(filepath.Join(k.dir, name), k.cols, k.hash)
	if errors.Is(err, fs.ErrNotExist) {
		ds, err = map[string]digest{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the rows of %s: %w", name, err)
	}
	k.digests[name] = ds
	return ds, nil
}

// rfc3339Year reports whether t, in UTC, has a year RFC 3339 can write.
func rfc3339Year(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1 && y <= 9999
}

// Write implements exporter.Batch.
func (b *csvBatch) Write(_ context.Context, rows []record.Row) (err error) {
	defer func() { err = b.sink.advise(err) }()
	cols := b.info.Endpoint.Columns
	for _, r := range rows {
		for i, v := range r.Values {
			if t, ok := v.(time.Time); ok && !rfc3339Year(t) {
				b.badTimes++ // RFC 3339 has four-digit years only
				v = nil
			}
			b.rec[i] = b.sink.cell(cols[i].Type, v)
		}
		b.rec[len(cols)] = string(r.Extra)
		if b.keys != nil {
			write, err := b.place()
			if err != nil {
				return err
			}
			if !write {
				continue
			}
		}
		if err := b.w.Write(b.rec); err != nil {
			return fmt.Errorf("write %s: %w", b.tmp, err)
		}
		b.rows++
	}
	return nil
}

// rfc3339Micro is RFC 3339 with the fraction of a second, when there is
// one, to the microsecond: what PostgreSQL keeps of it.
const rfc3339Micro = "2006-01-02T15:04:05.999999Z07:00"

func (s *CSV) cell(t record.Type, v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		if s.opt.SafeFormulas && v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
			return "'" + v
		}
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case time.Time:
		return v.UTC().Format(rfc3339Micro)
	case bool:
		return strconv.FormatBool(v)
	case record.Decimal:
		return string(v)
	case json.RawMessage:
		var b bytes.Buffer
		if json.Compact(&b, v) == nil {
			return b.String()
		}
		return string(v)
	}
	return fmt.Sprint(v)
}

// Commit implements exporter.Batch.
func (b *csvBatch) Commit(_ context.Context, state []byte, _ exporter.Progress) (err error) {
	defer func() { err = b.sink.advise(err) }()
	s := b.sink
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := b.decide(state); err != nil {
		return err
	}
	// From here the commit has happened; recover finishes it if we crash.
	s.noteRekeyed(b.info.RunID, b.keys)
	if err := s.recover(b.info.PBX, b.info.StateKey, false); err != nil {
		// Left pending: the next batch or run completes it first.
		s.swept.Delete(b.info.PBX)
		return err
	}
	if b.rule != nil {
		s.rules.done(b.info.PBX, *b.rule)
	}
	if k := b.keys; k != nil && (k.nSkip > 0 || k.nInPlace > 0 || len(k.drop) > 0 || k.dups > 0 || k.kept > 0) {
		s.opt.Log.Info("rows already in the export folder", "endpoint", b.info.Endpoint.Name, "file", filepath.Base(b.final),
			"unchanged_not_written", k.nSkip, "changed_updated_in_place", k.nUpd, "taken_from_other_files", k.nMoved,
			"doubles_removed", k.dropped()-k.nMoved, "files_rewritten", len(k.rewritten()), "repeated_in_batch", k.dups,
			"kept_not_sent_again", k.kept)
	}
	if b.badTimes > 0 {
		b.sink.opt.Log.Warn("times outside years 0001-9999 written as empty cells", "endpoint", b.info.Endpoint.Name,
			"file", filepath.Base(b.final), "values", b.badTimes)
	}
	return nil
}

// decide makes the data durable and writes the pending record that decides
// the commit; what is left (the renames, the state) recover completes.
//
// It stays one function (74 lines) for the same reason as recoverPath:
// the durable steps (data synced and closed, rewrites written, then the
// one pending record) are the commit protocol's order, read top to
// bottom. The data file's finish (tmpData.finish) and its manifest are
// their own functions.
func (b *csvBatch) decide(state []byte) error {
	s := b.sink
	if b.keys != nil && b.info.Window != nil {
		if err := b.keepUnread(); err != nil {
			b.discard()
			return err
		}
	}
	b.w.Flush()
	if err := b.w.Error(); err != nil {
		b.discard()
		return fmt.Errorf("write %s: %w", b.tmp, err)
	}
	sha, size, err := b.data.finish()
	if err != nil {
		b.discard()
		return err
	}
	prev, err := s.readState(b.info.PBX, b.info.StateKey)
	if err != nil {
		b.discard()
		return err
	}
	p := pending{csvState: csvState{Seq: 1, State: state}}
	if r, ok := s.rules.take(b.info.PBX, b.info.RunID); ok {
		p.Rule, b.rule = &r, &r
	}
	if prev != nil {
		p.Seq = prev.Seq + 1
	}
	// An incremental batch with no rows moves only the cursor or marks
	// its window done: no file. A backfill window is no exception (a day
	// without calls, every call held by other files, or every call older
	// than EXPORT_RETENTION, which must not come back even as a file
	// holding only a header), unless the window has a file from an
	// earlier backfill, which this one replaces.
	keepFile := b.rows > 0 || b.info.Snapshot || b.info.Window != nil && b.keys != nil && b.keys.ownKnown()
	if b.keys != nil {
		if err := b.replace(&p, keepFile); err != nil {
			b.discard()
			return err
		}
	}
	if keepFile {
		p.Folder, p.Tmp, p.Final = b.info.Endpoint.Name, filepath.Base(b.tmp), filepath.Base(b.final)
		p.File = p.Final
		p.SHA256 = sha
		p.Manifest = b.manifest(state, sha, size)
	} else {
		os.Remove(b.tmp)
	}
	pb, _ := json.Marshal(p)
	dir, err := s.mkStateDir(b.info.PBX)
	if err == nil && (keepFile || len(p.Rewrites) > 0) {
		// The temporary files' names on disk before the record naming
		// them: else a power cut could keep the record and lose them
		// after recovery had removed or rewritten other files.
		err = s.syncFolder(filepath.Dir(b.tmp))
	}
	if err == nil {
		err = safefile.Write(filepath.Join(dir, safeName(b.info.StateKey)+".pending.json"), pb, fileMode)
	}
	if err != nil {
		if keepFile {
			os.Remove(b.tmp)
		}
		for _, r := range p.Rewrites {
			os.Remove(filepath.Join(filepath.Dir(b.tmp), r.Tmp))
		}
		return fmt.Errorf("commit: %w", err)
	}
	b.done = true
	return nil
}

// manifest is the manifest of the batch's file, whose content has the
// sha256 sha and size bytes, committed with state.
func (b *csvBatch) manifest(state []byte, sha string, size int64) []byte {
	m := map[string]any{
		"file": filepath.Base(b.final), "rows": b.rows, "bytes": size, "sha256": sha,
		"pbx": b.info.PBX, "endpoint": b.info.Endpoint.Name, "run_id": b.info.RunID, "batch": b.info.Seq,
		"snapshot": b.info.Snapshot, "state_key": b.info.StateKey, "state": json.RawMessage(state),
		"columns": append(columnNames(b.info.Endpoint), "extra"), "gzip": b.data.gz != nil,
		"created_at": nowUTC(),
	}
	if b.info.Window != nil {
		m["window"] = map[string]string{"from": b.info.Window.From, "to": b.info.Window.To, "time": "PBX-local, from inclusive, to exclusive"}
	}
	if v, ok := b.sink.runs.Load(b.info.RunID); ok && v.(runRule).privacy.Rule != "" {
		// The rule its rows are written under, and when its run began,
		// which tells the newest file (csv_rule.go).
		m["privacy"], m["run_started"] = v.(runRule).privacy, v.(runRule).started.UTC().Format(time.RFC3339Nano)
	}
	if b.keys != nil {
		// What the key index did: rows another file holds unchanged
		// (not written), rows changed on the PBX updated in the file
		// holding them (not written here), rows taken from other files.
		m["rows_held_elsewhere"] = b.keys.nSkip
		m["rows_updated_elsewhere"] = b.keys.nUpd
		m["rows_taken_from_other_files"] = b.keys.nMoved
		if b.info.Window != nil {
			// Rows of the window's earlier file that this read did
			// not return (deleted on the PBX since): kept.
			m["rows_not_sent_again"] = b.keys.kept
		}
	}
	man, _ := json.MarshalIndent(m, "", "  ")
	return man
}

// replace adds to the commit the files rewritten (rows updated in place,
// rows taken by this batch's file or held twice dropped), the earlier
// variant of a redone window's file to remove, and the key index's new
// entries: this file's keys, and the keys left in each rewritten file.
func (b *csvBatch) replace(p *pending, keepFile bool) error {
	k := b.keys
	p.Folder = b.info.Endpoint.Name
	p.Index = map[string]*keySet{}
	if keepFile {
		p.Index[filepath.Base(b.final)] = k.written.set()
	}
	for _, name := range k.own[1:] {
		p.Removes = append(p.Removes, name)
		p.Index[name] = nil
	}
	for _, name := range k.rewritten() {
		r, left, err := b.sink.rewriteFile(b.info.PBX, k.dir, name, k.cols, k.drop[name], k.update[name])
		if err != nil {
			for _, done := range p.Rewrites {
				os.Remove(filepath.Join(k.dir, done.Tmp))
			}
			p.Rewrites = nil
			return fmt.Errorf("commit: %w", err)
		}
		p.Rewrites = append(p.Rewrites, r)
		p.Index[name] = left
	}
	return nil
}

// ownKnown reports whether a window's file (either variant, .csv or
// .csv.gz) is in the folder's key index: written by an earlier backfill.
func (k *batchKeys) ownKnown() bool {
	for _, name := range k.own {
		if _, ok := k.index.Files[name]; ok {
			return true
		}
	}
	return false
}

// rewritten names the files this batch rewrites, sorted.
func (k *batchKeys) rewritten() []string {
	var names []string
	for name := range k.drop {
		names = append(names, name)
	}
	for name := range k.update {
		if k.drop[name] == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// dropped is the number of rows this batch drops from other files.
func (k *batchKeys) dropped() int {
	n := 0
	for _, keys := range k.drop {
		n += len(keys)
	}
	return n
}

func nowUTC() string { return time.Now().UTC().Format(time.RFC3339) }

func columnNames(e *record.Endpoint) []string {
	out := make([]string, len(e.Columns))
	for i, c := range e.Columns {
		out[i] = c.Name
	}
	return out
}

func (b *csvBatch) discard() {
	b.done = true
	b.data.f.Close()
	os.Remove(b.tmp)
}

// Abort implements exporter.Batch.
func (b *csvBatch) Abort(context.Context) error {
	if b.done {
		return nil
	}
	b.discard()
	return nil
}

// StartRun implements exporter.Sink; the CSV ledger records finished
// runs. It keeps the run's rule for the manifests of the files the run
// writes (csv_rule.go).
func (s *CSV) StartRun(_ context.Context, r *exporter.RunResult) error {
	s.runs.Store(r.ID, runRule{privacy: exporter.Privacy{Rule: r.Privacy.Rule, KeyID: r.Privacy.KeyID}, started: r.Started})
	return nil
}

// FinishRun implements exporter.Sink: one JSON line per run appended to
// Dir/.state/<pbx>/runs.jsonl.
func (s *CSV) FinishRun(_ context.Context, r *exporter.RunResult) (err error) {
	defer func() { err = s.advise(err) }()
	type ep struct {
		Endpoint string   `json:"endpoint"`
		Rows     int64    `json:"rows"`
		Pages    int64    `json:"pages"`
		Retries  int64    `json:"retries"`
		Error    string   `json:"error,omitempty"`
		Paging   string   `json:"paging,omitempty"`
		Notes    []string `json:"notes,omitempty"`
		Filtered int64    `json:"filtered,omitempty"`
		Vanished int64    `json:"vanished,omitempty"`
	}
	line := struct {
		ID        string    `json:"run_id"`
		Mode      string    `json:"mode"`
		PBX       string    `json:"pbx"`
		Started   time.Time `json:"started"`
		Ended     time.Time `json:"ended"`
		Status    string    `json:"status"`
		Endpoints []ep      `json:"endpoints"`
		// Privacy is the rule the run applied; none for an erasure
		// (forget applies no rule), as PostgreSQL's ledger leaves it NULL.
		Privacy *exporter.Privacy `json:"privacy,omitempty"`
	}{ID: r.ID, Mode: r.Mode, PBX: r.PBX, Started: r.Started, Ended: r.Ended, Status: r.Status}
	s.runs.Delete(r.ID)
	s.rekeyed.Delete(r.ID) // read by its AfterRun only (EarlierKeyRows), which ran before
	if p := r.Privacy; p.Rule != "" {
		p.Changed = s.rules.changedBy(r.ID)
		line.Privacy = &p
	}
	for _, e := range r.Endpoints {
		x := ep{Endpoint: e.Endpoint, Rows: e.Rows, Pages: e.Pages, Retries: e.Retries,
			Paging: e.Paging, Notes: e.Notes, Filtered: e.Filtered, Vanished: e.Vanished}
		if e.Err != nil {
			x.Error = e.Err.Error()
		}
		line.Endpoints = append(line.Endpoints, x)
	}
	b, _ := json.Marshal(line)
	dir, err := s.mkStateDir(r.PBX)
	if err != nil {
		return fmt.Errorf("record the run: %w", err)
	}
	if err := safefile.AppendLine(filepath.Join(dir, "runs.jsonl"), fileMode, b); err != nil {
		return fmt.Errorf("record the run: %w", err)
	}
	return nil
}
