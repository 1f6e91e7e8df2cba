package sinks

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/safefile"
)

// Editing stored rows: retention (prune.go) and erasure on request
// remove or rewrite rows the export folder already holds. Each data file
// is edited by one commit of the protocol csv.go describes: the new
// content under a temporary name, synced; then a pending record
// (<endpoint>~edit.pending.json in the PBX's state folder) naming it, the
// file's new manifest and the key index's new entry; then the rename,
// the manifest, the index, and the record removed. A process killed
// before the record leaves the file as it was (its temporary file is
// removed on the next start); after it, the next start completes the
// edit. A file left with no row is removed with its manifest, in the
// same way.

// RowEdit is what an edit does to one stored row; the zero value keeps
// it as it is.
type RowEdit struct {
	Drop bool
	// Cells, when not nil, replace the row's cells, in the file's header
	// order (the endpoint's columns, then "extra"), written as stored
	// (times RFC 3339 UTC; with EXPORT_CSV_SAFE_FORMULAS, text starting
	// with = + - @ quoted).
	Cells []string
}

// EditFunc decides the fate of one stored row from its file's header and
// its cells as the file holds them. It must not keep either slice. An
// error stops the edit; files already edited stay edited. A function
// that only looks (counts matches) and keeps every row changes nothing:
// a dry run.
type EditFunc func(header, row []string) (RowEdit, error)

// EditResult counts what an edit did.
type EditResult struct {
	Files     int   // data files read
	Rewritten int   // files rewritten without, or with new forms of, some rows
	Removed   int   // files removed with their manifest: every row dropped
	Rows      int64 // rows read
	Dropped   int64 // rows removed
	Replaced  int64 // rows given new cells
}

// EditRows passes every stored row of ep's data files of pbx (those its
// manifest says are this PBX's: incremental batches, backfill windows and
// snapshots alike) through edit, and writes back each file edit changed,
// each atomically (see above), updating its manifest (rows, bytes,
// sha256, updated_at, and the counters rows_removed_<reason> and
// rows_replaced_<reason>) and the endpoint's key index. reason is a short
// lower-case word ("retention", "forget").
//
// It completes first the commits a crash left, and must not run while a
// batch of ep for pbx is open (the exporter's lock is held around both).
// Safe for concurrent use with batches of other endpoints. A row's new
// cells must keep its key unless the endpoint is a snapshot's: its key
// is the record's identity for later batches.
func (s *CSV) EditRows(ctx context.Context, pbx string, ep *record.Endpoint, reason string, edit EditFunc) (EditResult, error) {
	return s.editFiles(ctx, csvEdit{pbx: pbx, ep: ep, reason: reason, edit: edit})
}

// csvEdit is one edit of ep's data files of pbx: EditRows's arguments,
// and pick, which takes the files to edit (every file when nil) and is
// called for each file just before its rows are.
type csvEdit struct {
	pbx    string
	ep     *record.Endpoint
	reason string
	pick   func(ownFile) bool
	edit   EditFunc
	// stamp is written into each manifest a forget's edit rewrites
	// (forgetStampKey): which numbers the suppression list held then
	// (attack 6, F1; attack 7, F1).
	stamp *forgetStamp
	// under, set by a rewrite applying a run's rule to every row, is
	// the fields it sets in each manifest it rewrites (CSV.ruleStamp).
	under map[string]any
}

// editFiles is EditRows of the files e.pick takes.
func (s *CSV) editFiles(ctx context.Context, e csvEdit) (res EditResult, err error) {
	defer func() { err = s.advise(err) }()
	if !record.Identifier(e.reason) {
		return res, fmt.Errorf("edit reason %q: expected a lower-case word", e.reason)
	}
	if err := s.recoverAll(e.pbx); err != nil {
		return res, err
	}
	if e.reason == "forget" {
		// Forget adds its number to the list before it changes a row
		// (cmd suppressForget), so the list holds at least this many
		// numbers, these ones, while the state is whole:
		// CheckSuppression refuses a list restored from a copy older
		// than this edit.
		l, err := s.Suppression(ctx)
		if err != nil {
			return res, err
		}
		e.stamp = l.stamp(time.Now())
	}
	dir := filepath.Join(s.opt.Dir, e.ep.Name)
	if err := safefile.NotSymlink(dir); err != nil {
		return res, err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return res, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var idx *keyIndex
	if e.ep.Mode == record.Incremental {
		if idx, err = s.loadIndex(e.pbx, e.ep, dir); err != nil {
			return res, err
		}
	}
	files, err := s.ownFiles(e.pbx, dir)
	if err != nil {
		return res, err
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if e.pick != nil && !e.pick(f) {
			continue
		}
		indexed := idx != nil && idx.Files[f.Name] != nil
		if err := s.editFile(e, f.Name, indexed, &res); err != nil {
			return res, fmt.Errorf("edit %s/%s: %w", e.ep.Name, f.Name, err)
		}
	}
	return res, nil
}

// ownFile is a committed data file: its name, and its content as its
// manifest describes it (its size checked on disk: "" when it differs).
type ownFile struct {
	Name, SHA256 string
}

// ownFiles lists the committed data files of pbx in dir, sorted: those
// with a manifest naming pbx (another PBX's id may start the same).
func (s *CSV) ownFiles(pbx, dir string) ([]ownFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []ownFile
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, safeName(pbx)+"_") || !(strings.HasSuffix(name, ".csv") || strings.HasSuffix(name, ".csv.gz")) {
			continue
		}
		var m struct {
			PBX    string `json:"pbx"`
			SHA256 string `json:"sha256"`
			Bytes  int64  `json:"bytes"`
		}
		mb, err := os.ReadFile(manifestPath(filepath.Join(dir, name)))
		if err != nil || json.Unmarshal(mb, &m) != nil || m.PBX != pbx {
			continue
		}
		f := ownFile{Name: name}
		if info, err := e.Info(); err == nil && info.Size() == m.Bytes {
			f.SHA256 = m.SHA256
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b ownFile) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (s *CSV) editPendingPath(pbx, endpoint string) string {
	return filepath.Join(s.stateDir(pbx), safeName(endpoint)+"~edit.pending.json")
}

// editFile edits one data file: its new content written under a
// temporary name, then committed by a pending record that recoverPath
// completes. The caller holds s.mu.
func (s *CSV) editFile(e csvEdit, name string, indexed bool, res *EditResult) error {
	dir := filepath.Join(s.opt.Dir, e.ep.Name)
	res.Files++
	ed, err := writeEdited(e, dir, name)
	if err != nil {
		return err
	}
	res.Rows += ed.read
	if ed.tmp == "" {
		return stampManifest(filepath.Join(dir, name), e.under) // no row changed
	}
	p, err := editPending(e, dir, name, ed, indexed)
	if err != nil {
		os.Remove(ed.tmp)
		return err
	}
	path := s.editPendingPath(e.pbx, e.ep.Name)
	pb, _ := json.Marshal(p)
	_, err = s.mkStateDir(e.pbx)
	if err == nil && ed.rows > 0 {
		err = s.syncFolder(dir) // the temporary file's name durable before the record naming it
	}
	if err == nil && s.crashed() {
		return errCrashed
	}
	if err == nil {
		err = safefile.Write(path, pb, fileMode)
	}
	if err != nil {
		os.Remove(ed.tmp)
		return fmt.Errorf("commit: %w", err)
	}
	if s.crashed() {
		return errCrashed
	}
	if err := s.recoverPath(e.pbx, path, false); err != nil {
		s.swept.Delete(e.pbx) // left pending: the next batch or run completes it first
		return err
	}
	if ed.rows == 0 {
		res.Removed++
	} else {
		res.Rewritten++
	}
	s.opt.Log.Debug("data file edited", "endpoint", e.ep.Name, "file", name, "reason", e.reason,
		"rows_removed", ed.dropped, "rows_replaced", ed.replaced, "rows_left", ed.rows)
	res.Dropped += ed.dropped
	res.Replaced += ed.replaced
	return nil
}

// editPending is the pending record that commits ed, the new content of
// dir/name: the file rewritten (its manifest updated) or, with no row
// left, removed; and its key index entry when indexed.
func editPending(e csvEdit, dir, name string, ed *edited, indexed bool) (pending, error) {
	p := pending{Folder: e.ep.Name, Edit: true}
	if ed.rows == 0 {
		os.Remove(ed.tmp)
		p.Removes = []string{name}
	} else {
		add := map[string]int64{}
		if ed.dropped > 0 {
			add["rows_removed_"+e.reason] = ed.dropped
		}
		if ed.replaced > 0 {
			add["rows_replaced_"+e.reason] = ed.replaced
		}
		with := maps.Clone(e.under)
		if e.stamp != nil && ed.dropped+ed.replaced > 0 {
			with = map[string]any{forgetStampKey: e.stamp}
		}
		man, err := updatedManifest(filepath.Join(dir, name), ed.rows, ed.size, ed.sha, add, with)
		if err != nil {
			return p, err
		}
		p.Rewrites = []rewrite{{Tmp: filepath.Base(ed.tmp), Final: name, SHA256: ed.sha, Manifest: man}}
	}
	if indexed {
		p.Index = map[string]*keySet{name: nil}
		if ed.rows > 0 {
			p.Index[name] = ed.keys.set()
		}
	}
	return p, nil
}

// edited is a data file's new content, under its temporary name.
type edited struct {
	tmp, sha                      string
	size                          int64
	read, rows, dropped, replaced int64
	keys                          keyCollector // of the rows kept
}

// writeEdited writes, under a temporary name beside it, dir/name with the
// rows e.edit drops left out and those it replaces in their new form: the
// header and every other row byte for byte, compressed again when it is.
// The temporary file is made at the first change (the rows before it
// copied from the file again), so that a file edit leaves as it is costs
// a read only; it is closed and synced, or removed on error. ed.tmp is
// empty when nothing changed.
func writeEdited(e csvEdit, dir, name string) (_ *edited, err error) {
	x := &editWriter{e: e, dir: dir, name: name, path: filepath.Join(dir, name), ed: &edited{}}
	x.cw = csv.NewWriter(&x.scratch)
	defer func() {
		if err != nil && x.w != nil {
			x.w.f.Close()
			os.Remove(x.ed.tmp)
		}
	}()
	err = scanFile(x.path, csvKeyColumns(e.ep), x.readHeader, x.row)
	if err != nil || x.w == nil {
		return x.ed, err
	}
	if x.ed.sha, x.ed.size, err = x.w.finish(); err != nil {
		return nil, err
	}
	return x.ed, nil
}

// editWriter is writeEdited's pass over one file's rows.
type editWriter struct {
	e               csvEdit
	dir, name, path string
	ed              *edited
	w               *tmpData // nil until the first change
	off             int64    // bytes of the file's content (uncompressed) read so far
	header          []string
	keyIdx          []int // the key columns' indexes in header
	scratch         bytes.Buffer
	cw              *csv.Writer // writes into scratch
}

func (x *editWriter) readHeader(raw []byte) error {
	h, err := csv.NewReader(bytes.NewReader(raw)).Read()
	if err != nil {
		return err
	}
	x.header = h
	for _, k := range csvKeyColumns(x.e.ep) {
		x.keyIdx = append(x.keyIdx, slices.Index(x.header, k))
	}
	x.off += int64(len(raw))
	return nil
}

// start makes the temporary file at the first change, with the content
// read before it.
func (x *editWriter) start() error {
	f, err := safefile.CreateTemp(x.dir, tmpName(x.e.pbx, x.name), fileMode)
	if err != nil {
		return err
	}
	x.ed.tmp, x.w = f.Name(), newTmpData(f, strings.HasSuffix(x.name, ".gz"))
	return copyPrefix(x.w, x.path, x.off)
}

func (x *editWriter) row(key string, raw []byte) error {
	ed := x.ed
	ed.read++
	n := int64(len(raw))
	cells, err := csv.NewReader(bytes.NewReader(raw)).Read()
	if err != nil {
		return fmt.Errorf("row %d: %w", ed.read, err)
	}
	e, err := x.e.edit(x.header, cells)
	if err != nil {
		return err
	}
	changed := e.Drop
	if !e.Drop && e.Cells != nil {
		if len(e.Cells) != len(x.header) {
			return fmt.Errorf("row %d: the edit gave %d cells for %d columns", ed.read, len(e.Cells), len(x.header))
		}
		nb := rowBytes(&x.scratch, x.cw, e.Cells)
		if raw[len(raw)-1] != '\n' {
			nb = bytes.TrimSuffix(nb, []byte("\n"))
		}
		if !bytes.Equal(nb, raw) {
			changed = true
			ed.replaced++
			key = rowKey(e.Cells, x.keyIdx)
			raw = nb
		}
	}
	if changed && x.w == nil {
		if err := x.start(); err != nil {
			return err
		}
	}
	x.off += n
	if e.Drop {
		ed.dropped++
		return nil
	}
	ed.keys.add(key)
	ed.rows++
	if x.w == nil {
		return nil
	}
	_, err = x.w.Write(raw)
	return err
}

// copyPrefix copies the first n bytes of the data file at path's content
// (uncompressed, when it is) to w.
func copyPrefix(w io.Writer, path string, n int64) error {
	src, err := openData(path)
	if err != nil {
		return err
	}
	defer src.Close()
	if _, err := io.CopyN(w, src, n); err != nil {
		return fmt.Errorf("copy the rows of %s kept: %w", path, err)
	}
	return nil
}
