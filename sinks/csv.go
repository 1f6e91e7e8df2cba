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
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
// a batch does not write a row another file holds unchanged, and a row
// that changed replaces the old one, whose file is rewritten without it
// in the same commit. Batches of one endpoint must not overlap (the
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
	// crash, set by tests, is asked at each point of completing a commit
	// whether to stop there, as a process killed there would.
	crash func() bool
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
	// Rewrites are committed files of the folder rewritten without the
	// rows this commit replaces; they are renamed before the data file,
	// so that a record is never in two files, even mid-way.
	Rewrites []rewrite `json:"rewrites,omitempty"`
	// Index sets entries of the folder's key index (file → its keys).
	Index map[string]*keySet `json:"index,omitempty"`
}

// State implements exporter.Sink.
func (s *CSV) State(_ context.Context, pbx, key string) ([]byte, error) {
	if err := s.recoverAll(pbx); err != nil {
		return nil, err
	}
	// A run that finds nothing new begins no batch: the leftovers of a
	// run killed mid-batch are cleaned here too, not only by Begin.
	if dir := filepath.Join(s.opt.Dir, key); record.Identifier(key) && safefile.NotSymlink(dir) == nil {
		s.removeStale(dir, tmpPrefix(pbx))
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
// may have rewritten files the nightly cursor's batches read. Once done,
// it costs nothing until a commit fails again.
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
// It stays one function (91 lines): its checks must all run before its
// first rename, and reading them in that order in one place is the proof
// that a crash at any point leaves the folder before or after the commit.
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
	if p.Final != "" || len(p.Rewrites) > 0 {
		steps, err := s.pendingSteps(pbx, &p)
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
		// Rewritten files first: a record leaves its old file before it
		// appears in the new one. Each file's manifest goes before its
		// data is replaced and comes back after, so that a file with a
		// manifest always matches it.
		for _, st := range steps {
			if st.state == stepReady {
				if err := os.Remove(manifestPath(st.final)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("complete interrupted commit: %w", err)
				}
				if s.crashed() {
					return errCrashed
				}
				if err := os.Rename(st.tmp, st.final); err != nil {
					return fmt.Errorf("complete interrupted commit: %w", err)
				}
				if err := safefile.SyncDir(filepath.Dir(st.final)); err != nil {
					return err
				}
				if s.crashed() {
					return errCrashed
				}
			}
			man := manifestPath(st.final)
			if err := safefile.WriteVia(man, tmpPrefix(pbx)+filepath.Base(man)+".tmp-", st.manifest, fileMode); err != nil {
				return err
			}
			if s.crashed() {
				return errCrashed
			}
		}
		if crashed {
			s.opt.Log.Info("completed a commit interrupted by a crash", "file", steps[len(steps)-1].final)
		}
	}
	if len(p.Index) > 0 {
		if err := s.applyIndex(pbx, p.Folder, p.Index); err != nil {
			return err
		}
		if s.crashed() {
			return errCrashed
		}
	}
	st, _ := json.Marshal(p.csvState)
	if err := safefile.Write(strings.TrimSuffix(path, ".pending.json")+".json", st, fileMode); err != nil {
		return err
	}
	if s.crashed() {
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
func (s *CSV) Begin(_ context.Context, b exporter.BatchInfo) (exporter.Batch, error) {
	if err := s.recoverAll(b.PBX); err != nil {
		return nil, err
	}
	dir, err := s.mkdir(b.Endpoint.Name)
	if err != nil {
		return nil, err
	}
	s.removeStale(dir, tmpPrefix(b.PBX))
	s.removeStale(s.stateDir(b.PBX), ".")
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
	bt := &csvBatch{sink: s, info: b, f: f, tmp: tmp, final: filepath.Join(dir, name), sum: sha256.New()}
	if !b.Snapshot {
		if err := bt.openIndex(dir); err != nil {
			bt.discard()
			return nil, err
		}
	}
	var w io.Writer = io.MultiWriter(f, bt.sum)
	if s.opt.Gzip {
		bt.gz = gzip.NewWriter(w)
		w = bt.gz
	}
	bt.out = w
	bt.w = csv.NewWriter(w)
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

type csvBatch struct {
	sink       *CSV
	info       exporter.BatchInfo
	f          *os.File
	gz         *gzip.Writer
	w          *csv.Writer
	out        io.Writer // what w writes into (compressed after, when gz)
	sum        hash.Hash
	tmp, final string
	rows       int64
	rec        []string
	done       bool
	badTimes   int64 // times outside years 0001-9999, written empty

	// Incremental batches only (nil for snapshots): the folder's keys.
	keys *batchKeys
}

// batchKeys is what an incremental batch knows and decides of the keys
// of its folder (csv_keys.go).
type batchKeys struct {
	dir     string
	cols    []string // key columns' names
	colIdx  []int    // and their indexes in a record
	lookup  *keyLookup
	index   *keyIndex
	written keyCollector // keys of the rows this batch wrote
	skipped keyCollector // keys left in the file holding them unchanged
	nSkip   int
	drop    map[string]map[string]bool // file → keys whose rows this batch replaces
	digests map[string]map[string]digest
	holders []string
	scratch bytes.Buffer
	sw      *csv.Writer
	hash    hasher // of this batch: its digests are compared only with each other
	dups    int64  // rows of a key the batch had already written, dropped
	kept    int64  // rows of a redone window's earlier file it did not read, kept
}

// openIndex loads the folder's key index for an incremental batch.
func (b *csvBatch) openIndex(dir string) error {
	idx, err := b.sink.loadIndex(b.info.PBX, b.info.Endpoint, dir)
	if err != nil {
		return err
	}
	k := &batchKeys{dir: dir, cols: csvKeyColumns(b.info.Endpoint), lookup: newKeyLookup(idx), index: idx,
		drop: map[string]map[string]bool{}, digests: map[string]map[string]digest{}, hash: newHasher()}
	for _, c := range k.cols {
		k.colIdx = append(k.colIdx, b.info.Endpoint.Column(c))
	}
	k.sw = csv.NewWriter(&k.scratch)
	b.keys = k
	return nil
}

// place decides where the row in b.rec goes: false when it is not to be
// written (another file holds it unchanged, or this batch wrote its key
// already). A row another file holds in another form is written, and its
// old row dropped from that file when the batch commits.
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
	if k.nSkip > 0 && k.skipped.has(key) {
		k.dups++
		return false, nil
	}
	k.holders = k.lookup.holders(k.holders[:0], key, filepath.Base(b.final))
	if len(k.holders) > 0 {
		d := k.hash.of(rowBytes(&k.scratch, k.sw, b.rec))
		var same, held int
		for _, h := range k.holders {
			ds, err := k.fileDigests(h)
			if err != nil {
				return false, err
			}
			if old, ok := ds[key]; ok {
				held++
				if old == d {
					same++
				}
			}
		}
		if held == 1 && same == 1 {
			if k.written.has(key) {
				k.dups++ // a second version in this batch: the first is kept
			} else {
				k.skipped.add(key)
				k.nSkip++
			}
			return false, nil
		}
		if !k.written.add(key) {
			k.dups++
			return false, nil
		}
		for _, h := range k.holders {
			if _, ok := k.digests[h][key]; ok {
				if k.drop[h] == nil {
					k.drop[h] = map[string]bool{}
				}
				k.drop[h][key] = true
			}
		}
		return true, nil
	}
	if !k.written.add(key) {
		k.dups++
		return false, nil
	}
	return true, nil
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
func (b *csvBatch) Write(_ context.Context, rows []record.Row) error {
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
func (b *csvBatch) Commit(_ context.Context, state []byte, _ exporter.Progress) error {
	s := b.sink
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := b.decide(state); err != nil {
		return err
	}
	// From here the commit has happened; recover finishes it if we crash.
	if err := s.recover(b.info.PBX, b.info.StateKey, false); err != nil {
		// Left pending: the next batch or run completes it first.
		s.swept.Delete(b.info.PBX)
		return err
	}
	if k := b.keys; k != nil && (k.nSkip > 0 || len(k.drop) > 0 || k.dups > 0 || k.kept > 0) {
		var replaced int
		for _, keys := range k.drop {
			replaced += len(keys)
		}
		s.opt.Log.Info("rows already in the export folder", "endpoint", b.info.Endpoint.Name, "file", filepath.Base(b.final),
			"unchanged_not_written", k.nSkip, "changed_replaced", replaced, "files_rewritten", len(k.drop), "repeated_in_batch", k.dups,
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
// It stays one function (99 lines) for the same reason as recoverPath: the
// durable steps (data synced and closed, rewrites written, then the one
// pending record) are the commit protocol's order, read top to bottom.
// Splitting the data file's finish from the record's making is the first
// cut when it grows again.
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
	if b.gz != nil {
		if err := b.gz.Close(); err != nil {
			b.discard()
			return fmt.Errorf("compress %s: %w", b.tmp, err)
		}
	}
	if err := b.f.Sync(); err != nil {
		b.discard()
		return fmt.Errorf("sync %s: %w", b.tmp, err)
	}
	info, err := b.f.Stat()
	if err != nil {
		b.discard()
		return err
	}
	if err := b.f.Close(); err != nil {
		b.discard()
		return err
	}
	prev, err := s.readState(b.info.PBX, b.info.StateKey)
	if err != nil {
		b.discard()
		return err
	}
	p := pending{csvState: csvState{Seq: 1, State: state}}
	if prev != nil {
		p.Seq = prev.Seq + 1
	}
	// An incremental batch with no rows moves only the cursor: no file.
	keepFile := b.rows > 0 || b.info.Snapshot || b.info.Window != nil
	if keepFile && b.keys != nil {
		if err := b.replace(&p); err != nil {
			b.discard()
			return err
		}
	}
	if keepFile {
		p.Folder, p.Tmp, p.Final = b.info.Endpoint.Name, filepath.Base(b.tmp), filepath.Base(b.final)
		p.File = p.Final
		p.SHA256 = hex.EncodeToString(b.sum.Sum(nil))
		m := map[string]any{
			"file": filepath.Base(b.final), "rows": b.rows, "bytes": info.Size(), "sha256": p.SHA256,
			"pbx": b.info.PBX, "endpoint": b.info.Endpoint.Name, "run_id": b.info.RunID, "batch": b.info.Seq,
			"snapshot": b.info.Snapshot, "state_key": b.info.StateKey, "state": json.RawMessage(state),
			"columns": append(columnNames(b.info.Endpoint), "extra"), "gzip": b.gz != nil,
			"created_at": nowUTC(),
		}
		if b.info.Window != nil {
			m["window"] = map[string]string{"from": b.info.Window.From, "to": b.info.Window.To, "time": "PBX-local, from inclusive, to exclusive"}
		}
		if b.keys != nil {
			// What the key index did: rows another file holds unchanged
			// (not written), rows replacing an older form in another file.
			m["rows_held_elsewhere"] = b.keys.nSkip
			var replaced int
			for _, keys := range b.keys.drop {
				replaced += len(keys)
			}
			m["rows_replacing"] = replaced
			if b.info.Window != nil {
				// Rows of the window's earlier file that this read did
				// not return (deleted on the PBX since): kept.
				m["rows_not_sent_again"] = b.keys.kept
			}
		}
		p.Manifest, _ = json.MarshalIndent(m, "", "  ")
	} else {
		os.Remove(b.tmp)
	}
	pb, _ := json.Marshal(p)
	dir, err := s.mkStateDir(b.info.PBX)
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

// replace adds to the commit the files rewritten without the rows this
// batch replaces, and the key index's new entries: this file's keys, and
// the keys left in each rewritten file.
func (b *csvBatch) replace(p *pending) error {
	k := b.keys
	p.Index = map[string]*keySet{filepath.Base(b.final): k.written.set()}
	names := make([]string, 0, len(k.drop))
	for name := range k.drop {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		r, left, err := b.sink.rewriteWithout(b.info.PBX, k.dir, name, k.cols, k.drop[name])
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
	b.f.Close()
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

// StartRun implements exporter.Sink; the CSV ledger records finished runs.
func (s *CSV) StartRun(context.Context, *exporter.RunResult) error { return nil }

// FinishRun implements exporter.Sink: one JSON line per run appended to
// Dir/.state/<pbx>/runs.jsonl.
func (s *CSV) FinishRun(_ context.Context, r *exporter.RunResult) error {
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
	}{ID: r.ID, Mode: r.Mode, PBX: r.PBX, Started: r.Started, Ended: r.Ended, Status: r.Status}
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
	f, err := safefile.OpenAppend(filepath.Join(dir, "runs.jsonl"), fileMode)
	if err != nil {
		return fmt.Errorf("record the run: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("record the run: %w", err)
	}
	return f.Sync()
}
