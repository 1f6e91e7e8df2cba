package sinks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/internal/safefile"
)

// Forget stamps say which numbers the suppression list held when a
// forget had added its own (forgetStamp): each entry of the list as a
// short digest of its tag (stampTag), so that the check can prove that
// the list holds every one of them still, not only as many (attack 7, F1:
// the list {A} restored from a copy taken before forget B, then forget C,
// gave {A,C}, as many numbers as B's stamp counted, and B's calls were
// written again). A forget writes its stamp into each manifest it
// rewrites (forgetStampKey), and, in the CSV folder, into stampFile,
// outside the state folder: a forget whose number is in no row, or whose
// rows were in files it emptied and removed, rewrites no manifest
// (R15-12), and a restore of the state folder alone leaves that file as
// it is.

// stampTag is what a forget stamp keeps of the list's entry n: a digest
// of its tag cut to 48 bits ("n" before it for a national form). It
// tells nothing of the number to anyone without the list's key (the tag
// is a keyed hash), and a missing entry is matched by chance by another
// entry of a list of a million once in about 280 million.
func stampTag(n SuppressedNumber) string {
	sum := sha256.Sum256([]byte("wildix-export forget stamp\x00" + n.Hash))
	t := hex.EncodeToString(sum[:6])
	if n.National {
		return "n" + t
	}
	return t
}

// sectionTag is stampTag of the entry n of the list's section i: "k"
// before it in a section but the first (Suppression.More), so that a
// list lacking a number in each of its sections is told lacking one
// number, not one per key, and the first section's tags read as before.
func sectionTag(i int, n SuppressedNumber) string {
	if i > 0 {
		return "k" + stampTag(n)
	}
	return stampTag(n)
}

// stamp is the forget stamp of the list as it is now, at at: a forget's,
// once it has added its number (every entry is a tag then: add tags a
// list written before tags).
func (l *Suppression) stamp(at time.Time) *forgetStamp {
	st := &forgetStamp{Numbers: l.numbers(), At: at.UTC(), Tags: make([]string, 0, len(l.Numbers))}
	for i, sec := range l.sections() { // every key's (attack 9, F4)
		for _, n := range *sec.numbers {
			st.Tags = append(st.Tags, sectionTag(i, n))
		}
	}
	return st
}

// listView is the list as stamps are compared with it.
type listView struct {
	numbers int             // its numbers, national forms apart
	tags    map[string]bool // its entries' stampTag
	// untagged: the list keeps some entries as pseudonyms (written
	// before tags, and not tagged yet: the pseudonym key is missing,
	// which stops the run anyway); stamps are compared by count then.
	untagged bool
}

func (l *Suppression) view() listView {
	v := listView{numbers: l.numbers(), tags: make(map[string]bool, len(l.Numbers))}
	for i, sec := range l.sections() {
		for _, n := range *sec.numbers {
			v.tags[sectionTag(i, n)] = true
			v.untagged = v.untagged || strings.HasPrefix(n.Hash, pseudonym.NumberPrefix)
		}
	}
	return v
}

// lacking is what a list lacks of a stamp: numbers, national forms, and
// entries of its sections under other keys than its first (sectionTag).
type lacking struct{ numbers, national, keyed int }

// lost reports whether the list lacks numbers or national forms: those
// an export would write again. Entries lacking only under its other keys
// (a section lost, its numbers all in the first) are no lost number
// (review 44, R44-3): the runs under that key apply the list's random
// key's section when it holds every number, else are refused
// (sectionFor) saying to run forget again, and CheckSuppression only
// warns (keyedOnly).
func (m lacking) lost() bool { return m.numbers+m.national > 0 }

// lacks is what the list lacks of the entries st names. A stamp without
// tags (written by the release before them) tells only how many numbers
// the list held: the list lacks the difference, when it holds fewer.
func (v listView) lacks(st *forgetStamp) lacking {
	if st.Tags == nil || v.untagged {
		return lacking{numbers: max(st.Numbers-v.numbers, 0)}
	}
	var m lacking
	for _, t := range st.Tags {
		switch {
		case v.tags[t]:
		case strings.HasPrefix(t, "k"):
			m.keyed++
		case strings.HasPrefix(t, "n"):
			m.national++
		default:
			m.numbers++
		}
	}
	return m
}

// String says what is missing, for the check's message.
func (m lacking) String() string {
	s := fmt.Sprintf("%d of them missing from it now", m.numbers)
	if m.national > 0 {
		s += fmt.Sprintf(" (and %d national form(s) of numbers)", m.national)
	}
	if m.keyed > 0 {
		s += fmt.Sprintf(" (and %d entries under its other keys)", m.keyed)
	}
	return s
}

// stampFile is the CSV folder's forget stamp: the stamp of the list as
// the last forget left it, written by Suppress under the list's lock.
// It is at the folder's top, not in the state folder, so that a restore
// of the state folder alone (the list and the run ledgers together, from
// a copy taken before a forget) leaves it as the last forget wrote it.
func (s *CSV) stampFile() string {
	return filepath.Join(s.opt.Dir, ".suppressed.stamp.json")
}

// plainStampFile is the same stamp again, under a name without the
// leading dot (attack 8, F2): a backup or restore that skips dot files
// (the state folder restored apart, from a copy taken between two
// forgets) skips stampFile too, and a forget that rewrote no data file
// left no other trace of its number. Both are written at every forget;
// the check reads both. Its name is the program's own (R31-1: the name
// before, suppressed.stamp.json, is one a user may give a file of
// theirs, which the check read as the stamp and refused every run on).
func (s *CSV) plainStampFile() string {
	return filepath.Join(s.opt.Dir, "wildix-export.forget-stamp.json")
}

// oldPlainStampFile is the name plainStampFile had before (R31-1): read
// only when it is provably a stamp the program wrote (ourStamp), never
// written, and removed by the next forget when it is ours.
func (s *CSV) oldPlainStampFile() string {
	return filepath.Join(s.opt.Dir, "suppressed.stamp.json")
}

// stampFiles are the folder's forget stamps, the dot file first.
func (s *CSV) stampFiles() []string {
	return []string{s.stampFile(), s.plainStampFile()}
}

// readStamp reads the folder's forget stamp at path (once while it stays
// the same version: cachedState); nil when there is none. A damaged one
// is refused (exit 2), saying what to do.
func (s *CSV) readStamp(path string) (*forgetStamp, error) {
	var reads atomic.Int64
	v, err := s.cachedState(path, "", &reads, func(b []byte) (any, error) {
		var st forgetStamp
		if err := json.Unmarshal(b, &st); err != nil || st.At.IsZero() {
			return nil, fmt.Errorf("%w: the forget stamp %s is damaged (%v): it says which numbers the suppression list held when the last forget ended; restore it from the backup taken with the data files, or, only knowing that the list is whole (no forget since the list's copy was taken), remove it: the next forget writes it again",
				record.ErrConfig, path, errText(err, "no time"))
		}
		return &st, nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return v.(*forgetStamp), nil
}

// readOldStamp reads the stamp under its old name (oldPlainStampFile):
// nil when there is none, or when the file is not one the program wrote
// (ourStamp): a user's file of that name counts for nothing (R31-1), nor
// does anything but a regular file, nor one that cannot be read (review
// 44, R44-4: a directory of that name failed every run); the program
// wrote it as a regular file it could read.
func (s *CSV) readOldStamp() (*forgetStamp, error) {
	path := s.oldPlainStampFile()
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err == nil && !info.Mode().IsRegular() {
		s.opt.Log.Debug("not a forget stamp: not a regular file", "file", path, "mode", info.Mode().String())
		return nil, nil
	}
	var b []byte
	if err == nil {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		s.opt.Log.Debug("not a forget stamp: cannot be read", "file", path, "err", err)
		return nil, nil
	}
	return ourStamp(b), nil
}

// ourStamp is b read as a forget stamp when it is exactly one as the
// program writes it: an object of "numbers" (at least one: a forget has
// added its number), "at" and "tags" (each stampTag's shape) and nothing
// else; nil otherwise.
func ourStamp(b []byte) *forgetStamp {
	var st forgetStamp
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if d.Decode(&st) != nil || d.More() || st.At.IsZero() || st.Numbers < 1 || len(st.Tags) < st.Numbers {
		return nil
	}
	for _, t := range st.Tags {
		if h := strings.TrimPrefix(t, "n"); len(h) != 12 || strings.Trim(h, "0123456789abcdef") != "" {
			return nil
		}
	}
	return &st
}

// errText is err's text, or otherwise when err is nil.
func errText(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

// writeStamp replaces the folder's forget stamp by the stamp of l at at,
// atomically. The caller holds the list's lock, and has written l: a
// stamp is never of entries the list file lacks. The temporaries a
// process killed while writing it left are removed first.
func (s *CSV) writeStamp(l *Suppression, at time.Time) error {
	s.removeStaleStampTemps()
	b, _ := json.Marshal(l.stamp(at))
	for _, path := range s.stampFiles() {
		if err := safefile.Write(path, b, fileMode); err != nil {
			return fmt.Errorf("write the forget stamp %s (which numbers the suppression list holds, kept outside the state folder): %w", path, err)
		}
	}
	// The stamp under its old name, ours, is older than these: gone.
	if st, err := s.readOldStamp(); err == nil && st != nil {
		os.Remove(s.oldPlainStampFile())
	}
	return nil
}

// removeStaleStampTemps removes the temporary files of the forget stamp
// (safefile.Write's, beside it) older than this process: a process
// killed while writing it left them. The caller holds the list's lock,
// under which alone the stamp is written.
func (s *CSV) removeStaleStampTemps() {
	var prefixes []string
	for _, path := range s.stampFiles() {
		prefixes = append(prefixes, "."+filepath.Base(path)+".tmp-")
	}
	entries, err := os.ReadDir(s.opt.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(e.Name(), p) }) || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(s.started) {
			if os.Remove(filepath.Join(s.opt.Dir, e.Name())) == nil {
				s.opt.Log.Info("removed a temporary file a killed process left", "file", filepath.Join(s.opt.Dir, e.Name()))
			}
		}
	}
}

// stampEvidence adds to ev each of the folder's forget stamps
// (stampFiles, and the stamp under its old name when it is the
// program's: readOldStamp) made after accepted that names entries the list (v)
// lacks, when it is newer than the stamp ev names already.
func (s *CSV) stampEvidence(ev *manifestEvidence, v listView, accepted time.Time) error {
	for _, path := range append(s.stampFiles(), s.oldPlainStampFile()) {
		var st *forgetStamp
		var err error
		if path == s.oldPlainStampFile() {
			st, err = s.readOldStamp()
		} else {
			st, err = s.readStamp(path)
		}
		if err != nil {
			return err
		}
		if st == nil || !st.At.After(accepted) {
			continue
		}
		m := v.lacks(st)
		if m.lost() && (ev.newer == "" || st.At.After(ev.stamp.At)) {
			ev.newer, ev.fromStampFile, ev.stamp, ev.lacking = path, true, *st, m
		}
		ev.keyedOnly(path, m)
	}
	return nil
}

// packChecked is the mark m as written: each stamp's tags kept once, in
// Stamps by a digest of them, and named by it (checkedForget.Tags); a
// forget's stamp is the same in every manifest it rewrote.
func packChecked(m manifestsChecked) manifestsChecked {
	out := manifestsChecked{Files: m.Files, Forgets: make(map[string]checkedForget, len(m.Forgets))}
	for rel, c := range m.Forgets {
		if c.Stamp != nil && c.Stamp.Tags != nil {
			sum := sha256.Sum256([]byte(strings.Join(c.Stamp.Tags, ",")))
			ref := hex.EncodeToString(sum[:8])
			if out.Stamps == nil {
				out.Stamps = map[string][]string{}
			}
			out.Stamps[ref] = c.Stamp.Tags
			st := *c.Stamp
			st.Tags, c.Stamp, c.Tags = nil, &st, ref
		}
		out.Forgets[rel] = c
	}
	return out
}

// unpackChecked is packChecked undone: each stamp with its tags. An entry
// naming tags the mark lacks (a mark damaged, or edited) is left out: its
// manifest is read again.
func unpackChecked(m manifestsChecked) manifestsChecked {
	out := manifestsChecked{Files: m.Files, Forgets: make(map[string]checkedForget, len(m.Forgets))}
	for rel, c := range m.Forgets {
		if c.Tags != "" {
			tags, ok := m.Stamps[c.Tags]
			if !ok || c.Stamp == nil {
				continue
			}
			st := *c.Stamp
			st.Tags, c.Stamp, c.Tags = tags, &st, ""
		}
		out.Forgets[rel] = c
	}
	return out
}

// keyedOnly notes in ev a stamp (of the data file or stamp file name)
// naming entries the list lacks under its other keys only (lacking.lost),
// keeping the one naming the most.
func (ev *manifestEvidence) keyedOnly(name string, m lacking) {
	if !m.lost() && m.keyed > ev.keyed {
		ev.keyed, ev.keyedIn = m.keyed, name
	}
}

// warnSections is the warning of a list whose stamps name entries it
// lacks under its keys other than its first, and no number (keyedOnly):
// a section lost or restored from an older copy, every number kept.
func warnSections(log *slog.Logger, ev manifestEvidence) {
	if ev.keyed == 0 {
		return
	}
	log.Warn("the suppression list lacks entries under its keys other than its first that a forget stamp names: a key's section of the list was lost or restored from an older copy; no forgotten number is missing, and a PBX writing under that key is refused (exit 2) until `wildix-export forget` is run again for each forgotten number with its configuration and every key of the list given, unless the list's random key's section holds every number (README, Erasure)",
		"entries", ev.keyed, "stamp", ev.keyedIn)
}
