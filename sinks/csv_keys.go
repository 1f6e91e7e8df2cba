package sinks

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/safefile"
)

// The key index: which keys each committed data file of an incremental
// endpoint holds, so that a record is in the export folder once, whatever
// backfills, nightly runs and --force did. A row's key here is what the
// file shows of it: its key columns' cells (joined by NUL when the key
// has several fields), so that it can be read back from any file.
//
// The index lives in the PBX's state folder, one file per endpoint
// (<endpoint>~keys.json, a name no state key can take), beside the
// cursor. Whole-number keys are kept as ranges, so that it stays small:
// a file of consecutive call ids is one pair of numbers. The index is
// changed only by commits (the change is in the commit's pending record,
// applied again after a crash) and, when it is missing or a data file is
// not in it (a folder written by an earlier version), rebuilt from the
// files themselves.

// keySet is the keys one data file holds: whole-number keys (written in
// their canonical form) as sorted, disjoint, non-adjacent ranges [lo, hi]
// flattened into pairs, every other key in Other, sorted.
type keySet struct {
	Ranges []int64  `json:"ranges,omitempty"`
	Other  []string `json:"other,omitempty"`
}

func (k *keySet) count() int64 {
	var n int64
	for i := 0; i+1 < len(k.Ranges); i += 2 {
		n += k.Ranges[i+1] - k.Ranges[i] + 1
	}
	return n + int64(len(k.Other))
}

// wholeKey reports whether key is a whole number written canonically
// (no sign but minus, no leading zero), and its value.
func wholeKey(key string) (int64, bool) {
	if key == "" || len(key) > 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(key, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != key {
		return 0, false
	}
	return n, true
}

// keyCollector gathers the keys of the rows a batch or a file scan writes,
// in any order, and tells a key seen before. Keys arriving in ascending
// order (the usual case) cost one range each run; others a map entry.
type keyCollector struct {
	ranges []int64 // pairs, ascending: keys that arrived above every earlier one
	out    map[int64]struct{}
	other  map[string]struct{}
}

// add records key; it reports false when key was already there.
func (c *keyCollector) add(key string) bool {
	n, ok := wholeKey(key)
	if !ok {
		if c.other == nil {
			c.other = map[string]struct{}{}
		}
		if _, seen := c.other[key]; seen {
			return false
		}
		c.other[key] = struct{}{}
		return true
	}
	l := len(c.ranges)
	switch {
	case l == 0 || n > c.ranges[l-1]+1:
		c.ranges = append(c.ranges, n, n)
		return true
	case n == c.ranges[l-1]+1:
		c.ranges[l-1] = n
		return true
	}
	if inRanges(c.ranges, n) {
		return false
	}
	if c.out == nil {
		c.out = map[int64]struct{}{}
	}
	if _, seen := c.out[n]; seen {
		return false
	}
	c.out[n] = struct{}{}
	return true
}

// has reports whether key was added.
func (c *keyCollector) has(key string) bool {
	n, ok := wholeKey(key)
	if !ok {
		_, seen := c.other[key]
		return seen
	}
	if inRanges(c.ranges, n) {
		return true
	}
	_, seen := c.out[n]
	return seen
}

// inRanges reports whether n lies in sorted, disjoint pairs.
func inRanges(r []int64, n int64) bool {
	i := sort.Search(len(r)/2, func(i int) bool { return r[2*i+1] >= n })
	return i < len(r)/2 && r[2*i] <= n
}

// set returns what was collected, normalised.
func (c *keyCollector) set() *keySet {
	ks := &keySet{}
	if len(c.out) == 0 {
		ks.Ranges = slices.Clone(c.ranges)
	} else {
		pairs := slices.Clone(c.ranges)
		for n := range c.out {
			pairs = append(pairs, n, n)
		}
		ks.Ranges = mergeRanges(pairs)
	}
	for k := range c.other {
		ks.Other = append(ks.Other, k)
	}
	slices.Sort(ks.Other)
	return ks
}

// mergeRanges sorts pairs and merges those that overlap or touch.
func mergeRanges(pairs []int64) []int64 {
	type iv struct{ lo, hi int64 }
	ivs := make([]iv, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		ivs = append(ivs, iv{pairs[i], pairs[i+1]})
	}
	slices.SortFunc(ivs, func(a, b iv) int {
		if a.lo < b.lo {
			return -1
		}
		if a.lo > b.lo {
			return 1
		}
		return 0
	})
	out := make([]int64, 0, len(pairs))
	for _, v := range ivs {
		if l := len(out); l > 0 && v.lo <= out[l-1]+1 {
			out[l-1] = max(out[l-1], v.hi)
			continue
		}
		out = append(out, v.lo, v.hi)
	}
	return out
}

// keyIndex is the stored index of one PBX's endpoint: file name → keys.
type keyIndex struct {
	Files map[string]*keySet `json:"files"`
}

func (s *CSV) indexPath(pbx, endpoint string) string {
	return filepath.Join(s.stateDir(pbx), safeName(endpoint)+"~keys.json")
}

// readIndex reads the stored index; ok is false when there is none.
func (s *CSV) readIndex(pbx, endpoint string) (idx *keyIndex, ok bool, err error) {
	b, err := os.ReadFile(s.indexPath(pbx, endpoint))
	if errors.Is(err, fs.ErrNotExist) {
		return &keyIndex{Files: map[string]*keySet{}}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the key index of %s: %w", endpoint, err)
	}
	idx = &keyIndex{}
	if err := json.Unmarshal(b, idx); err != nil {
		return nil, false, fmt.Errorf("the key index %s is damaged (%v): remove it, and it is rebuilt from the files", s.indexPath(pbx, endpoint), err)
	}
	if idx.Files == nil {
		idx.Files = map[string]*keySet{}
	}
	return idx, true, nil
}

func (s *CSV) writeIndex(pbx, endpoint string, idx *keyIndex) error {
	if _, err := s.mkStateDir(pbx); err != nil {
		return err
	}
	b, _ := json.Marshal(idx)
	if err := safefile.Write(s.indexPath(pbx, endpoint), b, fileMode); err != nil {
		return fmt.Errorf("write the key index of %s: %w", endpoint, err)
	}
	return nil
}

// applyIndex sets the entries of a commit in the stored index (nil
// removes one). Applying the same change twice gives the same index.
func (s *CSV) applyIndex(pbx, endpoint string, change map[string]*keySet) error {
	idx, _, err := s.readIndex(pbx, endpoint)
	if err != nil {
		return err
	}
	for name, ks := range change {
		if ks == nil {
			delete(idx.Files, name)
		} else {
			idx.Files[name] = ks
		}
	}
	return s.writeIndex(pbx, endpoint, idx)
}

// loadIndex returns the endpoint's index, brought in line with its folder:
// a data file of this PBX's incremental batches that the index does not
// know (a folder written by an earlier version) is read for its keys; an
// entry whose file is gone is dropped. Pending commits must have been
// completed first.
func (s *CSV) loadIndex(pbx string, ep *record.Endpoint, dir string) (*keyIndex, error) {
	idx, stored, err := s.readIndex(pbx, ep.Name)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	changed := !stored
	present := map[string]bool{}
	prefix := safeName(pbx) + "_"
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || !(strings.HasSuffix(name, ".csv") || strings.HasSuffix(name, ".csv.gz")) {
			continue
		}
		present[name] = true
		if _, known := idx.Files[name]; known {
			continue
		}
		if _, foreign := s.foreign.Load(filepath.Join(dir, name)); foreign {
			continue
		}
		var m struct {
			PBX      string `json:"pbx"`
			Snapshot bool   `json:"snapshot"`
		}
		mb, err := os.ReadFile(manifestPath(filepath.Join(dir, name)))
		if err != nil || json.Unmarshal(mb, &m) != nil || m.PBX != pbx || m.Snapshot {
			// Another PBX's (whose id starts the same), a snapshot, or
			// a file without its manifest, which no commit made.
			s.foreign.Store(filepath.Join(dir, name), true)
			continue
		}
		var c keyCollector
		if err := scanRows(filepath.Join(dir, name), csvKeyColumns(ep), func(key string, _ []byte) error {
			c.add(key) // an empty key is kept too: it is never looked up
			return nil
		}); err != nil {
			return nil, fmt.Errorf("read the keys of %s: %w", name, err)
		}
		idx.Files[name] = c.set()
		changed = true
	}
	for name := range idx.Files {
		if !present[name] {
			s.opt.Log.Warn("a data file in the key index is gone; its records are no longer in the folder", "file", name)
			delete(idx.Files, name)
			changed = true
		}
	}
	if changed {
		if err := s.writeIndex(pbx, ep.Name, idx); err != nil {
			return nil, err
		}
	}
	return idx, nil
}

// csvKeyColumns names the columns of ep's key fields, in key order.
func csvKeyColumns(ep *record.Endpoint) []string {
	out := make([]string, 0, len(ep.Key))
	for _, k := range ep.Key {
		for _, c := range ep.Columns {
			if c.Field == k {
				out = append(out, c.Name)
			}
		}
	}
	return out
}

// rowKey is a row's key as its file shows it: the key columns' cells
// (a quoted line break reads back as \n), joined by NUL.
func rowKey(cells []string, idx []int) string {
	if len(idx) == 1 {
		return strings.ReplaceAll(cells[idx[0]], "\r\n", "\n")
	}
	parts := make([]string, len(idx))
	for i, j := range idx {
		parts[i] = strings.ReplaceAll(cells[j], "\r\n", "\n")
	}
	return strings.Join(parts, "\x00")
}

// digest identifies a row's bytes as the CSV writer writes them, within
// one process (two 64-bit hashes of independent seeds: a changed row
// passes for unchanged with a chance of 2^-128).
type digest [2]uint64

// hasher computes digests; each sink has its own seeds.
type hasher [2]maphash.Seed

func newHasher() hasher { return hasher{maphash.MakeSeed(), maphash.MakeSeed()} }

func (h hasher) of(raw []byte) digest {
	return digest{maphash.Bytes(h[0], raw), maphash.Bytes(h[1], raw)}
}

// scanRows reads a data file (gzip-compressed when named .gz) and calls
// fn with each row's key and its bytes exactly as in the file (valid
// only during the call); the header is not passed. keyCols names the key
// columns, which the header must hold.
func scanRows(path string, keyCols []string, fn func(key string, raw []byte) error) error {
	return scanFile(path, keyCols, nil, fn)
}

// scanFile streams a data file's records with their exact bytes: the
// header's through headerRaw (when set), then each row's key and bytes
// through row. Records are split as encoding/csv writes them (RFC 4180,
// "\n" line ends, quotes doubled inside quoted fields), without decoding
// more than the key's cells.
//
// One loop (62 lines) on purpose: it is the byte-level splitter on the
// nightly run's hot path (bench csv-once), and its quote state lives in
// its local variables.
func scanFile(path string, keyCols []string, headerRaw func([]byte) error, row func(key string, raw []byte) error) error {
	src, err := openData(path)
	if err != nil {
		return err
	}
	defer src.Close()
	var idx []int // key columns' indexes, once the header is read
	buf := make([]byte, 0, 256<<10)
	off := 0 // buf[off:] is not read yet
	eof := false
	for {
		n := recordEnd(buf[off:], eof)
		if n == 0 {
			if eof {
				if off < len(buf) {
					return fmt.Errorf("read %s: a record is cut short", path)
				}
				return nil
			}
			buf = buf[:copy(buf, buf[off:])]
			off = 0
			if len(buf) == cap(buf) {
				buf = slices.Grow(buf, cap(buf))
			}
			m, err := src.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+m]
			if err == io.EOF {
				eof = true
			} else if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			continue
		}
		raw := buf[off : off+n]
		off += n
		if idx == nil {
			header, err := csv.NewReader(bytes.NewReader(raw)).Read()
			if err != nil {
				return fmt.Errorf("read %s: header: %w", path, err)
			}
			idx = make([]int, len(keyCols))
			for i, k := range keyCols {
				if idx[i] = slices.Index(header, k); idx[i] < 0 {
					return fmt.Errorf("%s has no column %q: it was not written by this program, or was edited", filepath.Base(path), k)
				}
			}
			if headerRaw != nil {
				if err := headerRaw(raw); err != nil {
					return err
				}
			}
		} else {
			key, err := recordKey(raw, idx)
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			if err := row(key, raw); err != nil {
				return err
			}
		}
	}
}

// recordEnd is the length of the first whole record in buf, its line end
// included (at the end of the input, what is left), or 0.
func recordEnd(buf []byte, atEOF bool) int {
	// A line end ends the record when the quotes before it pair up.
	quotes, from := 0, 0
	for {
		e := bytes.IndexByte(buf[from:], '\n')
		if e < 0 {
			break
		}
		quotes += bytes.Count(buf[from:from+e], []byte{'"'})
		from += e + 1
		if quotes%2 == 0 {
			return from
		}
	}
	if atEOF && (quotes+bytes.Count(buf[from:], []byte{'"'}))%2 == 0 {
		return len(buf)
	}
	return 0
}

// recordKey reads the cells at idx of one record, as encoding/csv reads
// them, and joins them as rowKey does.
func recordKey(raw []byte, idx []int) (string, error) {
	raw = bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte("\n")), []byte("\r"))
	if len(idx) == 1 && idx[0] == 0 && len(raw) > 0 && raw[0] != '"' {
		// The usual case: the key is the first column, not quoted.
		if e := bytes.IndexByte(raw, ','); e >= 0 {
			return string(raw[:e]), nil
		}
		return string(raw), nil
	}
	want := slices.Max(idx)
	cells := make([]string, want+1)
	col, p := 0, 0
	for col <= want {
		var cell []byte
		if p < len(raw) && raw[p] == '"' {
			var b []byte
			q := p + 1
			for {
				e := bytes.IndexByte(raw[q:], '"')
				if e < 0 {
					return "", fmt.Errorf("a quoted field is not closed")
				}
				b = append(b, raw[q:q+e]...)
				q += e + 1
				if q < len(raw) && raw[q] == '"' {
					b = append(b, '"')
					q++
					continue
				}
				break
			}
			cell, p = b, q
		} else {
			e := bytes.IndexByte(raw[p:], ',')
			if e < 0 {
				e = len(raw) - p
			}
			cell, p = raw[p:p+e], p+e
		}
		cells[col] = string(cell)
		col++
		if col <= want {
			if p >= len(raw) || raw[p] != ',' {
				return "", fmt.Errorf("a record has fewer fields than its header")
			}
			p++
		}
	}
	return rowKey(cells, idx), nil
}

// keyLookup finds the files that hold a key, from an index.
type keyLookup struct {
	ivs   []interval // by lo
	maxHi []int64    // maxHi[i]: the highest hi of ivs[:i+1]
	other map[string][]string
	// doubled counts the keys the index finds in more than one file (a
	// folder written by a version before the index), doubledIn names two
	// such files.
	doubled   int64
	doubledIn []string
}

type interval struct {
	lo, hi int64
	file   string
}

func newKeyLookup(idx *keyIndex) *keyLookup {
	l := &keyLookup{other: map[string][]string{}}
	names := make([]string, 0, len(idx.Files))
	for name := range idx.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ks := idx.Files[name]
		for i := 0; i+1 < len(ks.Ranges); i += 2 {
			l.ivs = append(l.ivs, interval{ks.Ranges[i], ks.Ranges[i+1], name})
		}
		for _, k := range ks.Other {
			l.other[k] = append(l.other[k], name)
		}
	}
	slices.SortStableFunc(l.ivs, func(a, b interval) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	l.maxHi = make([]int64, len(l.ivs))
	top := "" // the file of maxHi[i-1]
	for i, v := range l.ivs {
		l.maxHi[i] = v.hi
		if i > 0 {
			// A file's own ranges are disjoint: an overlap is two files'.
			if prev := l.maxHi[i-1]; v.lo <= prev {
				l.doubled += min(v.hi, prev) - v.lo + 1
				if l.doubledIn == nil {
					l.doubledIn = []string{top, v.file}
				}
			}
			l.maxHi[i] = max(v.hi, l.maxHi[i-1])
		}
		if l.maxHi[i] == v.hi {
			top = v.file
		}
	}
	for _, files := range l.other {
		if len(files) > 1 {
			l.doubled += int64(len(files) - 1)
			if l.doubledIn == nil {
				l.doubledIn = files[:2]
			}
		}
	}
	return l
}

// holders appends to dst the files holding key, except those in skip.
func (l *keyLookup) holders(dst []string, key string, skip []string) []string {
	n, ok := wholeKey(key)
	if !ok {
		for _, f := range l.other[key] {
			if !slices.Contains(skip, f) {
				dst = append(dst, f)
			}
		}
		return dst
	}
	i := sort.Search(len(l.ivs), func(i int) bool { return l.ivs[i].lo > n }) - 1
	for ; i >= 0 && l.maxHi[i] >= n; i-- {
		if v := l.ivs[i]; v.hi >= n && !slices.Contains(skip, v.file) && !slices.Contains(dst, v.file) {
			dst = append(dst, v.file)
		}
	}
	return dst
}

// rewrite is a committed data file rewritten without the rows a commit
// replaces: what its pending record says of it.
type rewrite struct {
	Tmp      string          `json:"tmp"`   // temporary name of the new content
	Final    string          `json:"final"` // the file's name
	SHA256   string          `json:"sha256"`
	Manifest json.RawMessage `json:"manifest"`
}

// rewriteFile writes, under a temporary name beside it, the file dir/name
// with the rows whose key is in update in their new form (update's bytes
// in place of the first such row, later ones dropped) and without those
// whose key is in drop: its header and its other rows byte for byte,
// compressed again when it is. It returns the rewrite (its manifest
// updated from the file's) and the keys left.
// It takes six parameters: the file (pbx, dir, name), how its rows are
// keyed, and the edit (drop, update); each caller has them apart, and a
// struct for one call would only rename them.
func (s *CSV) rewriteFile(pbx, dir, name string, keyCols []string, drop map[string]bool, update map[string][]byte) (rewrite, *keySet, error) {
	path := filepath.Join(dir, name)
	tmpF, err := safefile.CreateTemp(dir, tmpName(pbx, name), fileMode)
	if err != nil {
		return rewrite{}, nil, fmt.Errorf("rewrite %s: %w", name, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmpF.Close()
			os.Remove(tmpF.Name())
		}
	}()
	w := newTmpData(tmpF, strings.HasSuffix(name, ".gz"))
	var kept keyCollector
	var rows, removed, updated int64
	err = scanFile(path, keyCols, func(raw []byte) error {
		_, err := w.Write(raw)
		return err
	}, func(key string, raw []byte) error {
		if drop[key] {
			removed++
			return nil
		}
		if nb, ok := update[key]; ok {
			if !kept.add(key) {
				removed++ // the file held it twice: once is kept
				return nil
			}
			if raw[len(raw)-1] != '\n' {
				nb = bytes.TrimSuffix(nb, []byte("\n"))
			}
			updated++
			rows++
			_, err := w.Write(nb)
			return err
		}
		kept.add(key)
		rows++
		_, err := w.Write(raw)
		return err
	})
	var h string
	var size int64
	if err == nil {
		h, size, err = w.finish()
	}
	if err != nil {
		return rewrite{}, nil, fmt.Errorf("rewrite %s: %w", name, err)
	}
	man, err := updatedManifest(path, rows, size, h, map[string]int64{"rows_replaced": removed, "rows_updated": updated}, nil)
	if err != nil {
		return rewrite{}, nil, fmt.Errorf("rewrite %s: %w", name, err)
	}
	ok = true
	return rewrite{Tmp: filepath.Base(tmpF.Name()), Final: name, SHA256: h, Manifest: man}, kept.set(), nil
}

// fileDigests reads a data file's rows: key → digest of the row's bytes.
func fileDigests(path string, keyCols []string, h hasher) (map[string]digest, error) {
	out := map[string]digest{}
	err := scanRows(path, keyCols, func(key string, raw []byte) error {
		if _, seen := out[key]; !seen {
			out[key] = h.of(raw)
		}
		return nil
	})
	return out, err
}

// rowBytes encodes one record as the CSV writer writes it into a file,
// with w writing into buf.
func rowBytes(buf *bytes.Buffer, w *csv.Writer, rec []string) []byte {
	buf.Reset()
	w.Write(rec)
	w.Flush()
	return buf.Bytes()
}

// keepUnread carries into a redone window's file the rows of the files it
// replaces (the same name, and the same name with or without .gz) that
// this batch neither read nor finds in another file: calls the PBX no
// longer sends (deleted there since, a retention purge), which the folder
// keeps, as PostgreSQL keeps their rows. After a backfill the window's
// file is the only one holding its calls (the nightly runs leave them
// there), so replacing it without them lost them. The rows are copied
// byte for byte after the batch's own.
func (b *csvBatch) keepUnread() error {
	k := b.keys
	b.w.Flush()
	if err := b.w.Error(); err != nil {
		return fmt.Errorf("write %s: %w", b.tmp, err)
	}
	var holders []string
	for _, name := range k.own {
		if _, known := k.index.Files[name]; !known {
			continue
		}
		err := scanRows(filepath.Join(k.dir, name), k.cols, func(key string, raw []byte) error {
			// An empty key cannot be told apart: such rows are all written.
			if key == "" || k.written.has(key) || k.skipped.has(key) || k.inPlace.has(key) {
				return nil
			}
			if holders = k.lookup.holders(holders[:0], key, k.own); len(holders) > 0 {
				return nil
			}
			if _, err := b.data.Write(raw); err != nil {
				return err
			}
			if raw[len(raw)-1] != '\n' {
				if _, err := b.data.Write([]byte{'\n'}); err != nil {
					return err
				}
			}
			k.written.add(key)
			k.kept++
			b.rows++
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("keep the rows of %s the PBX no longer sends: %w", name, err)
		}
	}
	return nil
}
