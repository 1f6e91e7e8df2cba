package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// stampFolder is a CSV folder of PBX "p" holding calls, and forget's
// steps on it as cmd's forget takes them (the list, the edit, the ledger's
// entry), for the tests of the forget stamps.
type stampFolder struct {
	t   *testing.T
	dir string
	ep  record.Endpoint
	s   *CSV
}

// newStampFolder commits one batch per element of batches, each holding
// the calls of the ids given.
func newStampFolder(t *testing.T, batches ...[]int) *stampFolder {
	t.Helper()
	ctx := context.Background()
	f := &stampFolder{t: t, dir: t.TempDir(), ep: record.Builtin()[0]}
	f.open()
	conv := &record.Converter{Endpoint: &f.ep}
	for i, ids := range batches {
		var rows []record.Row
		for _, id := range ids {
			r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-01 10:00:00","to_name":"n%d","timezone":"+0100"}`, id, id)))
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, r)
		}
		b, err := f.s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &f.ep, StateKey: f.ep.Name, Seq: i + 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Write(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, []byte(fmt.Sprintf(`{"cursor":%d}`, i+1)), exporter.Progress{}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// open opens the folder again: a new process.
func (f *stampFolder) open() {
	f.t.Helper()
	s, err := NewCSV(CSVOptions{Dir: f.dir})
	if err != nil {
		f.t.Fatal(err)
	}
	f.s = s
}

// forget forgets number as cmd's forget does: the list first (its
// error returned), then the rows of the call id erased (0: the number is
// in no row; drop: the row removed rather than rewritten), then the
// ledger's entry; the check must pass after it.
func (f *stampFolder) forget(number string, id int, drop bool) error {
	f.t.Helper()
	ctx := context.Background()
	started := time.Now().UTC()
	n, err := NewForgotten(number)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, added, err := f.s.Suppress(ctx, n, nil); err != nil || !added {
		return fmt.Errorf("Suppress(%s): added %v: %w", number, added, err)
	}
	res, err := f.s.EditRows(ctx, "p", &f.ep, "forget", func(header, cells []string) (RowEdit, error) {
		if cells[slices.Index(header, "id")] != fmt.Sprint(id) {
			return RowEdit{}, nil
		}
		if drop {
			return RowEdit{Drop: true}, nil
		}
		c := slices.Clone(cells)
		c[slices.Index(header, "to_name")] = "erased"
		return RowEdit{Cells: c}, nil
	})
	if want := int64(min(id, 1)); err != nil || res.Replaced+res.Dropped != want {
		f.t.Fatalf("forget's edit of call %d: %+v, %v; want %d row(s) changed", id, res, err, want)
	}
	e := exporter.EndpointResult{Endpoint: "forget", Rows: res.Replaced + res.Dropped, Notes: []string{NoteSuppressed}}
	if err := f.s.FinishRun(ctx, &exporter.RunResult{ID: exporter.NewRunID(started), Mode: "forget", PBX: "p", Started: started, Ended: time.Now().UTC(), Status: "ok", Endpoints: []exporter.EndpointResult{e}}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.CheckSuppression(ctx); err != nil {
		f.t.Fatalf("the check after the forget of %s: %v", number, err)
	}
	return nil
}

// copyState copies the state folder, as a backup would, and returns
// where.
func (f *stampFolder) copyState() string {
	f.t.Helper()
	to := filepath.Join(f.t.TempDir(), "state")
	if err := os.CopyFS(to, os.DirFS(filepath.Join(f.dir, ".state"))); err != nil {
		f.t.Fatal(err)
	}
	return to
}

// restoreState replaces the state folder by the copy from, the data
// files kept, and opens the folder again.
func (f *stampFolder) restoreState(from string) {
	f.t.Helper()
	if err := os.RemoveAll(filepath.Join(f.dir, ".state")); err != nil {
		f.t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(f.dir, ".state"), os.DirFS(from)); err != nil {
		f.t.Fatal(err)
	}
	f.open()
}

// wantLost checks that err refuses the list, its message saying each of
// says.
func wantLost(t *testing.T, what string, err error, says ...string) {
	t.Helper()
	if !errors.Is(err, ErrSuppressionLost) {
		t.Fatalf("%s: %v; want %v", what, err, ErrSuppressionLost)
	}
	for _, want := range says {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: the message does not say %q: %v", what, want, err)
		}
	}
}

// TestSuppressionStampSaysWhich: the forget stamps name which numbers the
// list held, not only how many (attack 7, F1 HIGH). List {A}; forget B
// (list {A,B}); the state folder restored from the copy taken after A;
// forget C: the stamp of B counted 2 and the list {A,C} holds 2, so the
// check passed and B's calls were written again, exit 0. Now forget C is
// refused before it changes anything (Suppress runs the check, exit 2),
// and a list {A,C} made all the same (as a release without that check
// would) is refused by the check, naming the data file B rewrote and how
// many of its numbers the list lacks; with the stamp outside the state
// folder removed too, the manifest's stamp alone refuses it.
func TestSuppressionStampSaysWhich(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newStampFolder(t, []int{1, 2, 3})
	if err := f.forget("+393471100028", 1, false); err != nil {
		t.Fatal(err)
	}
	afterA := f.copyState()
	if err := f.forget("+393471100037", 2, false); err != nil {
		t.Fatal(err)
	}
	f.restoreState(afterA)
	list, _ := os.ReadFile(f.s.suppressionFile())

	err := f.forget("+393471100046", 3, false)
	wantLost(t, "forget C into the restored list", err, "Restore the list")
	if !errors.Is(err, record.ErrConfig) {
		t.Errorf("forget C into the restored list: %v; want it to match record.ErrConfig (exit 2)", err)
	}
	if got, _ := os.ReadFile(f.s.suppressionFile()); string(got) != string(list) {
		t.Errorf("the refused forget changed the list:\n%s\nwas\n%s", got, list)
	}

	// C added without the check, as a release before it did.
	c, _ := NewForgotten("+393471100046")
	if err := f.s.updateSuppression(ctx, "add", func(l *Suppression) (bool, error) {
		_, added, err := l.addAll(c, nil, time.Now())
		return added, err
	}); err != nil {
		t.Fatal(err)
	}
	wantLost(t, "the list {A,C}", f.s.CheckSuppression(ctx),
		filepath.Join("call_history", "p_r1_0001.csv"), forgetStampKey, "held 2 number(s)", "1 of them missing")

	for _, stamp := range f.s.stampFiles() { // both: the dot file and its copy without the dot
		if err := os.Remove(stamp); err != nil {
			t.Fatal(err)
		}
	}
	f.open()
	wantLost(t, "the list {A,C}, the stamp file removed", f.s.CheckSuppression(ctx),
		filepath.Join("call_history", "p_r1_0001.csv"), "1 of them missing")
}

// TestSuppressionStampWithoutRowsChanged: a forget that changed no row
// (its number in no row, or in rows of a file it emptied and so removed
// with its manifest) rewrote no manifest, so no manifest says what the
// list held (R15-12, R16-4): the state folder restored from a copy
// taken before it passed the check. Now each forget writes the stamp
// outside the state folder too (stampFile), which a restore of that
// folder leaves as it is, and the check refuses, naming it; the state
// folder deleted whole is refused too. The list restored from after the
// forget passes.
func TestSuppressionStampWithoutRowsChanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		id   int  // B's call: 0 for none
		drop bool // its rows removed: the file emptied
	}{
		{name: "in no row"},
		{name: "its file emptied", id: 4, drop: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newStampFolder(t, []int{1, 2, 3}, []int{4})
			if err := f.forget("+393471100028", 1, false); err != nil {
				t.Fatal(err)
			}
			afterA := f.copyState()
			if err := f.forget("+393471100037", tc.id, tc.drop); err != nil {
				t.Fatal(err)
			}
			if tc.drop {
				if _, err := os.Stat(filepath.Join(f.dir, "call_history", "p_r1_0002.csv")); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("the file of call 4 is still there (%v): the test proves nothing", err)
				}
			}
			afterB := f.copyState()

			f.restoreState(afterA)
			wantLost(t, "the state folder restored from between the forgets", f.s.CheckSuppression(ctx),
				f.s.stampFile(), "held 2 number(s)", "1 of them missing", "copy taken after")

			if err := os.RemoveAll(filepath.Join(f.dir, ".state")); err != nil {
				t.Fatal(err)
			}
			f.open()
			wantLost(t, "the state folder deleted", f.s.CheckSuppression(ctx))

			f.restoreState(afterB)
			if err := f.s.CheckSuppression(ctx); err != nil {
				t.Fatalf("the list restored from after forget B: %v", err)
			}
		})
	}
}

// TestSuppressNationalFormsKept: a forget of a number listed already
// without its national forms (forgotten as written), given with + the
// second time, adds its national forms to the list, and the list is
// written with them: Suppress reported the list unchanged as no number
// was new, and the forms were never written, so a later export wrote
// the number again in its national form (a row's "3471110007").
func TestSuppressNationalFormsKept(t *testing.T) {
	t.Parallel()
	for kind, open := range rawLists(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r := open(t)
			forgetRun(t, r, "393471110007", true)
			forgetRun(t, r, "+39 347 111 0007", false)
			l, err := decodeSuppression([]byte(r.read()))
			if err != nil {
				t.Fatal(err)
			}
			sup, err := l.Suppressor(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !sup.match("3471110007") {
				t.Errorf("the list written does not erase the number's national form: %s", r.read())
			}
		})
	}
}

// TestSuppressionStampMark: the mark of the manifests checked keeps each
// forget's stamp with its tags, each list of tags once however many
// manifests that forget rewrote, so that a list changed since is
// compared with them without reading a manifest again (R6-8): the list
// {A,C} where forget B's manifests said {A,B} is refused from the mark,
// no manifest read.
func TestSuppressionStampMark(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newStampFolder(t, []int{1, 5}, []int{2, 6})
	if err := f.forget("+393471100028", 1, false); err != nil {
		t.Fatal(err)
	}
	afterA, _ := os.ReadFile(f.s.suppressionFile())
	// B is in both files: its forget rewrites both manifests.
	n, _ := NewForgotten("+393471100037")
	if _, _, err := f.s.Suppress(ctx, n, nil); err != nil {
		t.Fatal(err)
	}
	res, err := f.s.EditRows(ctx, "p", &f.ep, "forget", func(header, cells []string) (RowEdit, error) {
		if id := cells[slices.Index(header, "id")]; id != "2" && id != "5" {
			return RowEdit{}, nil
		}
		return RowEdit{Drop: true}, nil
	})
	if err != nil || res.Rewritten != 2 {
		t.Fatalf("forget B's edit: %+v, %v; want 2 files rewritten", res, err)
	}
	f.open()
	if err := f.s.CheckSuppression(ctx); err != nil {
		t.Fatal(err)
	}
	var mark manifestsChecked
	b, _ := os.ReadFile(f.s.checkedFile())
	if err := json.Unmarshal(b, &mark); err != nil {
		t.Fatal(err)
	}
	if len(mark.Forgets) != 2 || len(mark.Stamps) != 1 {
		t.Fatalf("the mark keeps %d manifests counting a forget and %d lists of tags; want 2 and 1 (B's stamp, in both, kept once): %s", len(mark.Forgets), len(mark.Stamps), b)
	}

	// The list {A,C}, the stamp outside the state folder gone: the mark
	// alone tells.
	if err := os.WriteFile(f.s.suppressionFile(), afterA, 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := NewForgotten("+393471100046")
	if err := f.s.updateSuppression(ctx, "add", func(l *Suppression) (bool, error) {
		_, added, err := l.addAll(c, nil, time.Now())
		return added, err
	}); err != nil {
		t.Fatal(err)
	}
	for _, stamp := range f.s.stampFiles() { // both: the dot file and its copy without the dot
		if err := os.Remove(stamp); err != nil {
			t.Fatal(err)
		}
	}
	f.open()
	wantLost(t, "the list {A,C}", f.s.CheckSuppression(ctx), "held 2 number(s)", "1 of them missing")
	if got := f.s.manifestReads.Load(); got != 0 {
		t.Errorf("%d manifest(s) read; want 0: the mark tells", got)
	}
}

// TestSuppressionCheckManifestGone: a manifest listed and removed before
// it is read (a prune, a forget or a user removing it and its data file
// between the two) tells nothing, and the check goes on (review 16,
// R16-6: it failed the run).
func TestSuppressionCheckManifestGone(t *testing.T) {
	t.Parallel()
	f := newStampFolder(t, []int{1, 2}, []int{3})
	if err := f.forget("+393471100028", 1, false); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(f.dir, "*", "*.manifest.json"))
	if err != nil || len(files) != 2 {
		t.Fatalf("manifests %v, %v; want 2", files, err)
	}
	// The second file's only row dropped: retention removes it with
	// its manifest once listed.
	if _, err := f.s.EditRows(context.Background(), "p", &f.ep, "retention", func(header, cells []string) (RowEdit, error) {
		return RowEdit{Drop: cells[slices.Index(header, "id")] == "3"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if _, err := os.Stat(strings.TrimSuffix(name, ".manifest.json") + ".csv"); strings.Contains(name, "_0002") != errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the data file of %s: %v; want it gone with its manifest alone", name, err)
		}
	}
	f.open()
	l, err := f.s.Suppression(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := f.s.manifestsEvidence(files, l.view(), time.Time{})
	if err != nil {
		t.Fatalf("a manifest gone since the listing: %v", err)
	}
	if want := filepath.Join("call_history", "p_r1_0001.csv"); ev.erased != want || ev.newer != "" {
		t.Errorf("evidence %+v; want the first file's erasure, no stamp the list lacks", ev)
	}
	if ev.mark == nil || len(ev.mark.Files)+len(ev.mark.Forgets) != 1 {
		t.Errorf("the mark made %+v; want the first manifest alone", ev.mark)
	}

	// A manifest gone, its data file there (a rewrite's instant, or a
	// user): passed over, and said; gone with its data file: passed
	// over, nothing said.
	var logs bytes.Buffer
	s, err := NewCSV(CSVOptions{Dir: f.dir, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(f.dir, "call_history", "p_r9_0001")
	if err := os.WriteFile(kept+".csv", []byte("id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(f.dir, "call_history", "p_r9_0002")
	ev, err = s.manifestsEvidence([]string{gone + ".manifest.json"}, l.view(), time.Time{})
	if err != nil || ev.erased != "" || logs.Len() > 0 {
		t.Fatalf("a manifest gone with its data file: %+v, %v; logged %q", ev, err, logs.String())
	}
	ev, err = s.manifestsEvidence([]string{kept + ".manifest.json"}, l.view(), time.Time{})
	if err != nil || ev.erased != "" || ev.mark != nil && len(ev.mark.Files)+len(ev.mark.Forgets) > 0 {
		t.Fatalf("a manifest gone, its data file there: %+v, %v", ev, err)
	}
	if !strings.Contains(logs.String(), "manifest was gone") || !strings.Contains(logs.String(), filepath.Join("call_history", "p_r9_0001.csv")) {
		t.Errorf("a manifest gone, its data file there: the log says %q", logs.String())
	}
}

// TestSuppressionKeyMessageCountsNumbers: the refusal of a list made
// with another pseudonym key counts the list's numbers as forget counts
// them, not each national form kept beside a number (review 16, R16-3).
func TestSuppressionKeyMessageCountsNumbers(t *testing.T) {
	t.Parallel()
	pk, err := pseudonym.New([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	var l Suppression
	f, _ := NewForgotten("+39 347 111 0007")
	if _, _, err := l.addAll(f, pk, time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(l.Numbers) < 2 {
		t.Fatalf("the list holds %d entries: no national form, the test proves nothing", len(l.Numbers))
	}
	_, err = l.Suppressor(nil)
	if !errors.Is(err, ErrSuppressionKey) || !strings.Contains(err.Error(), "forgotten numbers (1)") {
		t.Errorf("Suppressor without the key: %v; want %v counting 1 number", err, ErrSuppressionKey)
	}
}

// TestSuppressRefusedIntoLostList: a forget into a list that lost
// numbers (here the list restored from before forget B, the run ledger
// holding B) is refused before it changes the list, exit 2 (Suppress
// runs the check): its number added, the list restored from the backup
// as the message says would lack it, and in a CSV folder its stamp
// would no longer name B (attack 7, F1).
func TestSuppressRefusedIntoLostList(t *testing.T) {
	t.Parallel()
	for kind, open := range rawLists(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r := open(t)
			forgetRun(t, r, "+393471100028", true)
			afterA := r.read()
			forgetRun(t, r, "+393471100037", true)
			r.write(afterA)
			f, _ := NewForgotten("+393471100046")
			_, _, err := r.store.Suppress(context.Background(), f, nil)
			wantLost(t, "forget C", err, "records 2 forget(s)", "Restore the list")
			if !errors.Is(err, record.ErrConfig) {
				t.Errorf("forget C: %v; want it to match record.ErrConfig (exit 2)", err)
			}
			if got := r.read(); got != afterA {
				t.Errorf("the refused forget changed the list:\n%s\nwas\n%s", got, afterA)
			}
		})
	}
}
