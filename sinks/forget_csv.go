package sinks

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/safefile"
)

// csvShape is how the rows of a data file of e with header are erased:
// e's key columns and typed columns of times and booleans skipped,
// numeric columns searched only (cellNumeric), "extra" and JSON columns
// as JSON, the rest (columns the catalog no longer has too) as text.
func csvShape(e *record.Endpoint, header []string) *rowShape {
	sh := &rowShape{}
	key := map[string]bool{}
	for _, k := range e.Key {
		key[k] = true
	}
	for _, h := range header {
		k := cellText
		if h == "extra" {
			k = cellJSON
		}
		if i := e.Column(h); i >= 0 {
			c := e.Columns[i]
			switch {
			case key[c.Field]:
				k = cellSkip
			case c.Type == record.JSON:
				k = cellJSON
			case c.Type == record.BigInt, c.Type == record.Integer, c.Type == record.Numeric:
				k = cellNumeric
			case c.Type != record.Text:
				k = cellSkip
			}
		}
		sh.add(h, k)
	}
	sh.pairUp()
	sh.wholeNumbers(e)
	return sh
}

// isDataFile reports whether name is a committed data file's.
func isDataFile(name string) bool {
	return !strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".csv") || strings.HasSuffix(name, ".csv.gz"))
}

// csvDataName matches the name CSV.Begin gives a data file: the PBX's
// safeName, then the run's id (exporter.NewRunID) and the batch's number,
// or "backfill" and the window's bounds; .csv or .csv.gz. Submatch 1 is
// the PBX's safeName.
var csvDataName = regexp.MustCompile(`^([^.][^/]*?)_(?:\d{8}T\d{6}Z-[0-9a-f]+_\d{4,}|backfill_\d{8}T\d{6}_\d{8}T\d{6})\.csv(?:\.gz)?$`)

// csvNamedDataFiles lists the files of dir's endpoint folders (a folder
// named as an endpoint is) whose names are the sink's data files'
// (csvDataName), each with the PBX its name gives, sorted by name under
// dir: with their manifests lost, what is left of which PBX exported
// there. Any other file (a user's own CSV file, a temporary file) is
// none (review 28, R28-5: every .csv counted, and a folder holding a
// user's CSV was refused as one whose state is lost).
func csvNamedDataFiles(dir string) ([]LostState, error) {
	var out []LostState
	for _, pattern := range []string{"*.csv", "*.csv.gz"} {
		paths, err := filepath.Glob(filepath.Join(dir, "*", pattern))
		if err != nil {
			return nil, err
		}
		for _, path := range paths {
			rel, err := filepath.Rel(dir, path)
			if err != nil || !record.Identifier(filepath.Dir(rel)) {
				continue
			}
			m := csvDataName.FindStringSubmatch(filepath.Base(rel))
			if m == nil {
				continue
			}
			pbx, err := url.PathUnescape(m[1])
			if err != nil || safeName(pbx) != m[1] {
				continue // not a name the sink gives
			}
			out = append(out, LostState{PBX: pbx, File: rel})
		}
	}
	slices.SortFunc(out, func(a, b LostState) int { return strings.Compare(a.File, b.File) })
	return out, nil
}

// stateJudge judges, PBX by PBX, whether a PBX whose data file is found
// has lost its state (csvHasState of .state/<pbx>): each PBX once, by
// its own state folder, never by another PBX's or by the folder's
// (review 26, R26-3).
type stateJudge struct {
	dir    string
	judged map[string]bool
	lost   map[string]string // PBX → one of its data files
}

func newStateJudge(dir string) *stateJudge {
	return &stateJudge{dir: dir, judged: map[string]bool{}, lost: map[string]string{}}
}

// judge judges pbx (none: "") once, file being one of its data files.
func (j *stateJudge) judge(pbx, file string) error {
	if pbx == "" || j.judged[pbx] {
		return nil
	}
	j.judged[pbx] = true
	has, err := csvHasState(filepath.Join(j.dir, ".state", safeName(pbx)))
	if err == nil && !has {
		j.lost[pbx] = file
	}
	return err
}

// judgeNamed judges the PBX of each data file found by its name
// (csvNamedDataFiles): its manifest lost too, no manifest named it. A
// PBX with such a file whose manifest is missing is lost also when its
// state folder holds no cursor state (csvHasCursorState), whatever else
// it holds, as a run judges it (review 43, R43-5: a run ledger left
// alone made forget take the folder for one with state, exit 0, while
// the run refuses it: nothing tells which calls the files hold).
func (j *stateJudge) judgeNamed() error {
	named, err := csvNamedDataFiles(j.dir)
	if err != nil {
		return err
	}
	bare := map[string]bool{}
	for _, n := range named {
		if err := j.judge(n.PBX, n.File); err != nil {
			return err
		}
		if _, lost := j.lost[n.PBX]; lost || bare[n.PBX] {
			continue
		}
		if _, err := os.Lstat(filepath.Join(j.dir, manifestPath(n.File))); !errors.Is(err, fs.ErrNotExist) {
			continue // its manifest is there (or cannot be told gone)
		}
		bare[n.PBX] = true
		has, err := csvHasCursorState(filepath.Join(j.dir, ".state", safeName(n.PBX)))
		if err != nil {
			return err
		}
		if !has {
			j.lost[n.PBX] = n.File
		}
	}
	return nil
}

// result is each PBX judged lost, sorted by PBX.
func (j *stateJudge) result() []LostState {
	var out []LostState
	for pbx, file := range j.lost {
		out = append(out, LostState{PBX: pbx, File: file})
	}
	slices.SortFunc(out, func(a, b LostState) int { return strings.Compare(a.PBX, b.PBX) })
	return out
}

// CSVStateLost returns each PBX of the CSV export folder dir whose data
// files remain while its state is lost (.state, or .state/<pbx>, gone or
// holding no state: csvHasState; or, for a data file whose manifest is
// missing, no cursor state: judgeNamed), sorted by PBX, with one of its data
// files each: a data file a manifest names (of the manifest's PBX), or
// one named as the sink names them (csvNamedDataFiles: of the PBX its
// name gives). Each PBX is judged by its own state folder (review 26,
// R26-3): a PBX with no data file there (one that never exported into
// the folder, or a new one beside others) is never lost, whatever the
// others' state; a user's own CSV file is no data file (R28-5). It only
// reads: a run may ask it before it writes anything, and keep only its
// own PBX's entry.
func CSVStateLost(dir string) ([]LostState, error) {
	j := newStateJudge(dir)
	err := csvDataManifests(dir, func(file string, m dataManifest) error { return j.judge(m.PBX, file) })
	if err == nil {
		err = j.judgeNamed()
	}
	if err != nil {
		return nil, fmt.Errorf("read the data files of %s: %w", dir, err)
	}
	return j.result(), nil
}

// ForgetFind searches every file of the export folder for f, reading
// only: each endpoint's data files row by row, and every other file (the
// states, manifests, the run ledgers) as text. It returns the rows (of
// other files: the lines) mentioning f per file, by path under Dir, and
// the recordings stored for calls with it.
//
// It stays one function (about 60 lines): the walk of the folder decides
// per file how it is read (data file, or any other as text), and one
// walk is what shows that no file of the folder goes unread.
func (s *CSV) ForgetFind(ctx context.Context, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error) {
	found := &ForgetFound{}
	data := map[string]bool{}
	for i := range endpoints {
		e := &endpoints[i]
		dir := filepath.Join(s.opt.Dir, e.Name)
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("search %s: %w", e.Name, s.advise(err))
		}
		for _, de := range entries {
			if !de.Type().IsRegular() || !isDataFile(de.Name()) {
				continue
			}
			rel := filepath.Join(e.Name, de.Name())
			data[rel] = true
			n, objects, numeric, err := s.findInData(filepath.Join(dir, de.Name()), e, f)
			if err != nil {
				return nil, fmt.Errorf("search %s: %w", rel, err)
			}
			found.add(rel, n)
			found.Numeric = append(found.Numeric, numeric...)
			found.Recordings = append(found.Recordings, objects...)
		}
	}
	err := filepath.WalkDir(s.opt.Dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.opt.Dir, path)
		if !de.Type().IsRegular() || data[rel] || rel == filepath.Join(".state", ".suppressed.json") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var n int64
		for _, line := range strings.Split(string(b), "\n") {
			if _, c := eraseText(line, f.match); c > 0 {
				n++
			}
		}
		found.add(rel, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("search EXPORT_CSV_DIR: %w", s.advise(err))
	}
	slices.SortFunc(found.Places, func(a, b ForgetPlace) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(found.Recordings)
	found.Recordings = slices.Compact(found.Recordings)
	slices.Sort(found.Numeric)
	found.Numeric = slices.Compact(found.Numeric)
	found.numericHow = csvNumericHow
	return found, nil
}

// findInData counts the rows of the data file at path mentioning f, and
// returns the stored objects of those that are recordings, and the
// numeric columns holding f ("table.column": they cannot hold Erased).
func (s *CSV) findInData(path string, e *record.Endpoint, f *Forgotten) (int64, []string, []string, error) {
	r, err := openData(path)
	if err != nil {
		return 0, nil, nil, err
	}
	defer r.Close()
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return 0, nil, nil, nil
	}
	if err != nil {
		return 0, nil, nil, err
	}
	sh := csvShape(e, header)
	obj, status, kc := -1, -1, recordingKeyColumn(e, header)
	if e.Files != "" {
		obj, status = slices.Index(header, "object"), slices.Index(header, "status")
	}
	var n int64
	var objects, numeric []string
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return n, objects, numeric, nil
		}
		if err != nil {
			return 0, nil, nil, err
		}
		if len(row) != len(header) {
			return 0, nil, nil, fmt.Errorf("a row of %d cells under a header of %d", len(row), len(header))
		}
		object := ""
		if obj >= 0 && (status < 0 || fileStored(row[status])) {
			object = row[obj] // a file stored (attack 1, B3)
		}
		keyTells := kc >= 0 && recordingKeyMentions(row[kc], f)
		num := sh.numericMentions(row, f.match)
		for _, j := range num {
			if c := e.Name + "." + header[j]; !slices.Contains(numeric, c) {
				numeric = append(numeric, c)
			}
		}
		if f.eraseRow(sh, row) > 0 || len(num) > 0 || keyTells {
			n++
			if object != "" {
				objects = append(objects, object)
			}
		}
	}
}

// RecordForget writes an erasure in the run ledger of r.PBX, as
// FinishRun does a run's, then drops the forget journal's entries the
// forget b completes (SameErasure) and, when next is not nil (a failed
// erasure), keeps next for what it left. next is written first, beside
// the entries: killed before the ledger entry, those still count (the
// completing forget takes the earliest); killed after it, an entry whose
// id is in the ledger is left out by ForgetJournal, so the erasure is
// counted once and next stays.
func (s *CSV) RecordForget(ctx context.Context, r *exporter.RunResult, b ForgetBegun, next *ForgetBegun) error {
	if next != nil {
		journal, err := s.readForgetJournal()
		if err != nil {
			return err
		}
		if err := s.writeForgetJournal(append(journal, *next)); err != nil {
			return err
		}
	}
	if err := s.FinishRun(ctx, r); err != nil {
		return err
	}
	journal, err := s.readForgetJournal()
	if err != nil {
		return err
	}
	// next is in journal already: endForget drops it with the rest
	// (its Search is b's), and adds it again at the end.
	left := endForget(journal, b, next)
	if slices.EqualFunc(left, journal, ForgetBegun.same) {
		return nil
	}
	return s.writeForgetJournal(left)
}

// forgetJournalFile is where the CSV sink keeps the forget journal
// (ForgetBegun): in the state folder, beside the suppression list.
func (s *CSV) forgetJournalFile() string {
	return filepath.Join(s.opt.Dir, ".state", ".forget-journal.json")
}

// ForgetJournal reads the folder's forget journal: the forgets begun and
// not recorded (killed midway). An entry whose id is in its PBX's run
// ledger was recorded (RecordForget killed before dropping it): left out.
// An entry continuing a failed forget (Continues) is judged by that
// forget's ledger entry: missing, the entry's Counted is left out (no
// entry counted those files: review 18, R18-1); recorded ok, the erasure
// was completed under that id, and the entry is left out.
func (s *CSV) ForgetJournal(context.Context) ([]ForgetBegun, error) {
	journal, err := s.readForgetJournal()
	if err != nil {
		return nil, err
	}
	var out []ForgetBegun
	for _, j := range journal {
		status, err := s.ledgerStatus(j.PBX, j.ID)
		if err != nil {
			return nil, err
		}
		if status != "" {
			continue
		}
		if j.Continues != "" {
			if status, err = s.ledgerStatus(j.PBX, j.Continues); err != nil {
				return nil, err
			}
			switch status {
			case "":
				j.Counted = nil
			case "ok":
				continue
			}
		}
		out = append(out, j)
	}
	return out, nil
}

// readForgetJournal reads the journal file as it is.
func (s *CSV) readForgetJournal() (_ []ForgetBegun, err error) {
	defer func() { err = s.advise(err) }()
	b, err := os.ReadFile(s.forgetJournalFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the forget journal: %w", err)
	}
	var journal []ForgetBegun
	if err := json.Unmarshal(b, &journal); err != nil {
		return nil, fmt.Errorf("read the forget journal %s: %w", s.forgetJournalFile(), err)
	}
	return journal, nil
}

// ledgerHas reports whether pbx's run ledger holds the run id.
func (s *CSV) ledgerHas(pbx, id string) (bool, error) {
	status, err := s.ledgerStatus(pbx, id)
	return status != "", err
}

// ledgerStatus is the status of the run id in pbx's run ledger ("" when
// it holds none; "recorded" for an entry without one).
func (s *CSV) ledgerStatus(pbx, id string) (string, error) {
	f, err := os.Open(filepath.Join(s.opt.Dir, ".state", safeName(pbx), "runs.jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the run ledger of %s: %w", pbx, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var line struct {
			ID     string `json:"run_id"`
			Status string `json:"status"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.ID == id {
			return cmp.Or(line.Status, "recorded"), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read the run ledger of %s: %w", pbx, err)
	}
	return "", nil
}

// BeginForget adds b to the folder's forget journal, before forget
// changes anything, unless it holds an entry b completes already.
func (s *CSV) BeginForget(ctx context.Context, b ForgetBegun) error {
	journal, err := s.ForgetJournal(ctx)
	if err != nil {
		return err
	}
	return s.writeForgetJournal(beginForget(journal, b))
}

// ForgetRemoving writes in the folder's forget journal, in the entry id,
// that the erasure is removing the recording file whose tag is file
// (ForgetFileTag) from the store whose identity is store: written just
// before the file is removed. Forget holds every PBX's lock meanwhile.
func (s *CSV) ForgetRemoving(_ context.Context, id, store, file string) error {
	journal, err := s.readForgetJournal()
	if err != nil {
		return err
	}
	if !markRemoving(journal, id, store, file) {
		return fmt.Errorf("write the forget journal: it has no entry %s, written at this forget's start: run forget again", id)
	}
	return s.writeForgetJournal(journal)
}

// writeForgetJournal replaces the journal by journal (none: the file
// removed), atomically. Forget holds every PBX's lock meanwhile.
func (s *CSV) writeForgetJournal(journal []ForgetBegun) error {
	var err error
	if len(journal) == 0 {
		if err = os.Remove(s.forgetJournalFile()); errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	} else if _, err = s.mkdir(".state"); err == nil {
		b, _ := json.Marshal(journal)
		err = safefile.Write(s.forgetJournalFile(), b, fileMode)
	}
	if err != nil {
		return fmt.Errorf("write the forget journal: %w", s.advise(err))
	}
	return nil
}

// ForgetErase rewrites every row of the folder's data files mentioning
// f, every PBX's (those exporting into it, ForgetScope, and pbx), each
// file atomically (EditRows: its manifest and key index with it), marks
// the recordings' rows Erased, and rewrites each PBX's state files and
// run ledger where they mention it; then searches the whole folder again
// and fails, naming the files, when the number is still anywhere (a
// numeric column, which cannot hold Erased, named with what to do; a file
// forget does not know). The caller holds every PBX's export lock, as on
// PostgreSQL, which erases every PBX's rows too: one erasure of the sink,
// whichever PBX's configuration runs it (review 6, R6-3). The recordings'
// files must be removed before (ForgetFind lists them). It returns the
// rows changed per endpoint or state folder.
func (s *CSV) ForgetErase(ctx context.Context, pbx string, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error) {
	scope, err := s.ForgetScope(ctx)
	if err != nil {
		return nil, err
	}
	pbxes := scope.PBXes
	if !slices.Contains(pbxes, pbx) {
		pbxes = append(pbxes, pbx)
	}
	done := &ForgetFound{}
	for i := range endpoints {
		e := &endpoints[i]
		var n int64
		for _, pbx := range pbxes {
			taken, err := s.recordingKeys(ctx, pbx, e)
			if err != nil {
				return done, fmt.Errorf("erase in %s: %w", e.Name, err)
			}
			if err := s.dropOldRecordingKeys(ctx, pbx, e, f, taken); err != nil {
				return done, fmt.Errorf("erase in %s: %w", e.Name, err)
			}
			res, err := s.EditRows(ctx, pbx, e, "forget", s.forgetEdit(pbx, e, f, taken))
			if err != nil {
				return done, fmt.Errorf("erase in %s: %w", e.Name, err)
			}
			n += res.Replaced
		}
		done.add(e.Name, n)
	}
	for _, pbx := range pbxes {
		n, err := s.eraseStateFiles(pbx, f)
		if err != nil {
			return done, err
		}
		done.add(filepath.Join(".state", safeName(pbx)), n)
	}
	left, err := s.ForgetFind(ctx, f, endpoints)
	if err != nil {
		return done, err
	}
	if len(left.Numeric) > 0 {
		return done, left.numericThere(left.Numeric, csvNumericHow)
	}
	return done, left.stillThere("a file forget does not know, or a data file of a PBX no state folder of .state names: report it")
}

// csvNumericHow is how to set a numeric cell to NULL in a data file.
const csvNumericHow = "in each file named, make that cell empty: an empty cell is NULL"

// forgetEdit is ForgetErase's edit of e's rows of pbx: each row
// mentioning f rewritten with it erased, a recording's row also marked
// erased, and given a new key when its key tells the number
// (recordingKeyFor; a key tied to nothing when taken, the keys of e's
// rows, holds it: a run that did not know the row's old key wrote one
// under it). A file's shape is learnt from its header, again when the
// header differs.
func (s *CSV) forgetEdit(pbx string, e *record.Endpoint, f *Forgotten, taken map[string]bool) EditFunc {
	var sh *rowShape
	var shHeader []string
	var marks map[int]string // a recording's row: column → its erased value
	kc := -1                 // a recording's key column (forget_recordings.go)
	return func(header, row []string) (RowEdit, error) {
		if sh == nil || !slices.Equal(header, shHeader) {
			sh, shHeader = csvShape(e, header), slices.Clone(header)
			kc = recordingKeyColumn(e, header)
			if e.Files != "" {
				marks = map[int]string{}
				for c, v := range map[string]string{"status": Erased, "reason": exporter.RecordingErasedReason, "object": "", "stored_size": "", "sha256": ""} {
					if j := slices.Index(header, c); j >= 0 {
						marks[j] = v
					}
				}
			}
		}
		cells := make([]string, len(row))
		for j, c := range row {
			cells[j] = s.unquoteCell(c)
		}
		if f.eraseRow(sh, cells) == 0 && !(kc >= 0 && recordingKeyMentions(cells[kc], f)) {
			return RowEdit{}, nil
		}
		for j, v := range marks {
			cells[j] = v
		}
		if kc >= 0 && recordingKeyTells(cells[kc]) {
			cell := func(name string) string {
				if j := slices.Index(header, name); j >= 0 {
					return s.unquoteCell(row[j])
				}
				return ""
			}
			if cells[kc] = f.recordingKeyFor(pbx, cells[kc], cell("id"), cell("path")); taken[cells[kc]] {
				cells[kc] = erasedKey()
			}
		}
		for j := range cells {
			if sh.kinds[j] == cellText {
				cells[j] = s.cell(record.Text, cells[j])
			}
		}
		return RowEdit{Cells: cells}, nil
	}
}

// dropOldRecordingKeys removes from pbx's states and from the state each
// of e's manifests holds the recent keys of the rows forgetEdit re-keys
// (forget_recordings.go), each file atomically. It runs before the rows
// are rewritten, found by a dry run of the same edit: a crash between
// the two leaves the rows' old keys, found again by the next forget.
//
// It stays whole (about 60 lines): the dry run that finds the keys and
// the rewrite of the states and the manifests must read the same keys,
// which one body keeps in sight.
func (s *CSV) dropOldRecordingKeys(ctx context.Context, pbx string, e *record.Endpoint, f *Forgotten, taken map[string]bool) error {
	if e.Files == "" {
		return nil
	}
	old := map[string]bool{}
	edit := s.forgetEdit(pbx, e, f, taken)
	_, err := s.EditRows(ctx, pbx, e, "forget", func(header, row []string) (RowEdit, error) {
		ed, err := edit(header, row)
		if kc := recordingKeyColumn(e, header); err == nil && kc >= 0 && ed.Cells != nil && ed.Cells[kc] != row[kc] {
			old[s.unquoteCell(row[kc])] = true
		}
		return RowEdit{}, err // a dry run: nothing written
	})
	if err != nil || len(old) == 0 {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var paths []string
	dir := filepath.Join(s.opt.Dir, e.Name)
	files, err := s.ownFiles(pbx, dir)
	if err != nil {
		return err
	}
	for _, of := range files {
		paths = append(paths, manifestPath(filepath.Join(dir, of.Name)))
	}
	entries, err := os.ReadDir(s.stateDir(pbx))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read the state folder: %w", err)
	}
	for _, de := range entries {
		if name := de.Name(); de.Type().IsRegular() && strings.HasSuffix(name, ".json") && !strings.HasPrefix(name, ".") &&
			!strings.HasSuffix(name, ".pending.json") && !strings.Contains(name, "~") {
			paths = append(paths, filepath.Join(s.stateDir(pbx), name))
		}
	}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("remove the old keys from %s: %w", path, err)
		}
		var doc map[string]json.RawMessage
		if json.Unmarshal(b, &doc) != nil {
			continue // not a state's file
		}
		st, ok := withoutRecent(doc["state"], old)
		if !ok {
			continue
		}
		doc["state"] = st
		if strings.HasSuffix(path, ".manifest.json") {
			b, _ = json.MarshalIndent(doc, "", "  ")
		} else {
			b, _ = json.Marshal(doc)
		}
		if err := safefile.WriteVia(path, tmpPrefix(pbx)+filepath.Base(path)+".tmp-", b, fileMode); err != nil {
			return fmt.Errorf("remove the old keys from %s: %w", path, err)
		}
	}
	return nil
}

// recordingKeys are the keys of e's rows of pbx, when e is recordings
// (nil for another endpoint), read by a dry run of EditRows.
func (s *CSV) recordingKeys(ctx context.Context, pbx string, e *record.Endpoint) (map[string]bool, error) {
	if e.Files == "" {
		return nil, nil
	}
	keys := map[string]bool{}
	_, err := s.EditRows(ctx, pbx, e, "forget", func(header, row []string) (RowEdit, error) {
		if kc := recordingKeyColumn(e, header); kc >= 0 {
			keys[s.unquoteCell(row[kc])] = true
		}
		return RowEdit{}, nil
	})
	return keys, err
}

// unquoteCell is a text cell's value as the sink was given it: without
// the quote EXPORT_CSV_SAFE_FORMULAS puts before a formula's start.
func (s *CSV) unquoteCell(c string) string {
	if s.opt.SafeFormulas && len(c) > 1 && c[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(c[1])) {
		return c[1:]
	}
	return c
}

// eraseStateFiles rewrites, each atomically, the files of pbx's state
// folder that mention f: the states (JSON) and the run ledger (a JSON
// object a line). The key indexes hold keys and digests only, and
// pending commits are completed before (EditRows). It returns the lines
// or files changed.
func (s *CSV) eraseStateFiles(pbx string, f *Forgotten) (int64, error) {
	dir := s.stateDir(pbx)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("erase in the state folder: %w", s.advise(err))
	}
	var total int64
	for _, de := range entries {
		name := de.Name()
		if !de.Type().IsRegular() || strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".json") || name == "runs.jsonl") ||
			strings.HasSuffix(name, ".pending.json") || strings.Contains(name, "~") {
			continue
		}
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			return total, fmt.Errorf("erase in %s: %w", path, s.advise(err))
		}
		lines := strings.Split(string(b), "\n")
		var n int64
		for i, l := range lines {
			out, c := f.eraseLine([]byte(l))
			if c > 0 {
				lines[i] = string(out)
				n++
			}
		}
		if n == 0 {
			continue
		}
		if err := safefile.Write(path, []byte(strings.Join(lines, "\n")), fileMode); err != nil {
			return total, fmt.Errorf("erase in %s: %w", path, s.advise(err))
		}
		total += n
	}
	return total, nil
}
