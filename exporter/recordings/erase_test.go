package recordings

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// eraseCase is one recording given to Erase, its file stored as an
// earlier run with no row would have left it (or not), and what must
// become of it.
type eraseCase struct {
	what    string
	removed bool // its file must be removed; else kept as it is
	kept    bool // reported in Erased.Kept (no proof either way)
}

// TestErase (attack 6 F12, review 15 R15-1/R15-2/R15-4, attack 7
// F4/F5/F7): on both stores, with sizes announced and not, Erase removes
// a file only when it is the recording's own, proven by the PBX's file's
// size and sha256: the recording's file under its name, under its clash
// name (AltID; another recording's file under its name kept) and under
// its name on the day after (a time-zone change),
// and with the PBX now announcing another size. It keeps: a file a saved
// row names, or the run is using, though the very same bytes; another
// recording's file under its clash name's recording's name, another
// file of the same size under its name, and its file changed since
// (the last byte), each under its own name (R19-3) or, for a clash,
// its clash name, a file whose
// recording the PBX no longer serves (404), and one whose file the PBX
// answers 500 for after every retry, all these reported in Kept with
// their names and no error, the why naming no host or path (R19-7).
// Run again, it removes nothing.
func TestErase(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		store  string
		noSize bool
	}{{"dir", false}, {"dir", true}, {"s3", false}} {
		t.Run(fmt.Sprintf("%s/nosize=%v", c.store, c.noSize), func(t *testing.T) {
			t.Parallel()
			testErase(t, c.store, c.noSize)
		})
	}
}

// testErase is TestErase on one store. It stays one function (about 110
// lines): each case's setting up beside what it checks.
func testErase(t *testing.T, store string, noSize bool) {
	ctx := context.Background()
	e := recSetup(t, pbxsim.Options{Seed: 5, Calls: 120}, noCloud)
	var broken string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.EscapedPath() == broken {
			http.Error(w, "Internal error", http.StatusInternalServerError)
			return
		}
		e.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	sp := e.spool(t)
	sp.Origin, _ = url.Parse(front.URL)
	sp.MaxAttempts = 3
	f := newStore(t, store)
	var logs bytes.Buffer
	cp := &Copier{Spool: sp, Store: f.st, PBX: "pbx-test", Concurrency: 2, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	recs := usable(t, e, e.recordings(noSize))
	if len(recs) < 11 {
		t.Fatalf("%d recordings: the test needs 11", len(recs))
	}
	cases := []eraseCase{
		{what: "stored under its name", removed: true},
		{what: "stored under its clash name", removed: true},
		{what: "another recording's file of its size under its name", kept: true},
		{what: "stored under its name a day later", removed: true},
		{what: "named by a saved row"},
		{what: "named by this run"},
		{what: "the PBX announcing another size now", removed: true},
		{what: "gone from the PBX", kept: true},
		{what: "the PBX answering 500", kept: true},
		{what: "stored under its name, its last byte other than the PBX's now", kept: true},
		{what: "a clash stored under its clash name, its last byte other than the PBX's now", kept: true},
	}
	put := func(name string, r Recording) {
		t.Helper()
		var body bytes.Buffer
		if _, err := sp.Fetch(ctx, r.Path, func(b io.Reader, _ int64) error {
			body.Reset()
			_, err := body.ReadFrom(b)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.Put(ctx, name, &body, recstore.Want{}); err != nil {
			t.Fatal(err)
		}
	}
	changed := func(name string, r Recording) {
		t.Helper()
		var body bytes.Buffer
		if _, err := sp.Fetch(ctx, r.Path, func(b io.Reader, _ int64) error {
			body.Reset()
			_, err := body.ReadFrom(b)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		b := body.Bytes()
		b[len(b)-1] ^= 1
		if _, err := f.st.Put(ctx, name, bytes.NewReader(b), recstore.Want{}); err != nil {
			t.Fatal(err)
		}
	}
	named, inUse := map[string]bool{}, map[string]bool{}
	var clashHeld string
	give := make([]Recording, len(cases))
	names := make([]string, len(cases))
	for i := range cases {
		r := recs[i]
		give[i] = r
		names[i], _ = cp.name(r)
		switch i {
		case 1:
			// R15-2: stored under its clash name, since another
			// recording's file held its name, and still does.
			if _, err := f.st.Put(ctx, names[i], bytes.NewReader([]byte("RIFF another recording's")), recstore.Want{}); err != nil {
				t.Fatal(err)
			}
			clashHeld = names[i]
			alt := r
			alt.Key = AltID(r)
			names[i], _ = cp.name(alt)
			put(names[i], r)
		case 2:
			size := r.Size
			if size <= 0 {
				size = 1000
			}
			if _, err := f.st.Put(ctx, names[i], bytes.NewReader(bytes.Repeat([]byte("R"), int(size))), recstore.Want{}); err != nil {
				t.Fatal(err)
			}
		case 3:
			names[i], _ = recstore.Name(cp.PBX, r.Start.UTC().Add(24*time.Hour), storedKey(r))
			put(names[i], r)
		case 4:
			put(names[i], r)
			named[names[i]] = true
		case 5:
			put(names[i], r)
			inUse[names[i]] = true
		case 6:
			put(names[i], r)
			give[i].Size = r.Size + 10
		case 7:
			put(names[i], r)
			give[i].Path = strings.Replace(r.Path, ".wav", "-gone.wav", 1)
		case 8:
			put(names[i], r)
			broken = r.Path
		case 9:
			// R19-3: the PBX changed its file since (attack 7 F5).
			changed(names[i], r)
		case 10:
			// The same under its clash name, a clash the list showed
			// (Key set): no other recording's file can be there.
			give[i].Key = AltID(r)
			names[i], _ = cp.name(give[i])
			changed(names[i], r)
		default:
			put(names[i], r)
		}
	}
	before := f.contents(t)
	rows := func(_ context.Context, ns []string) (map[string]bool, error) {
		out := map[string]bool{}
		for _, n := range ns {
			out[n] = named[n]
		}
		return out, nil
	}
	out, err := cp.Erase(ctx, give, rows, inUse)
	if err != nil {
		t.Fatal(err)
	}
	after := f.contents(t)
	wantRemoved, wantKept := 0, map[string]bool{}
	for i, c := range cases {
		_, there := after[names[i]]
		switch {
		case c.removed && there:
			t.Errorf("recording %s: its file under %s kept; want it removed", c.what, names[i])
		case !c.removed && (!there || after[names[i]] != before[names[i]]):
			t.Errorf("recording %s: the file under %s removed or changed; want it kept", c.what, names[i])
		}
		if c.removed {
			wantRemoved++
		}
		if c.kept {
			wantKept[names[i]] = true
		}
	}
	if after[clashHeld] == "" || after[clashHeld] != before[clashHeld] {
		t.Errorf("the file of another recording under %s, whose clash name was erased: removed or changed; want it kept", clashHeld)
	}
	// Under the erased recording's own name, no row naming it: kept and
	// reported (R19-3), as no proof says whose it is.
	wantKept[clashHeld] = true
	if out.Removed != wantRemoved || len(out.Kept) != len(wantKept) {
		t.Errorf("Erase: %d removed, kept %+v; want %d removed, %d kept", out.Removed, out.Kept, wantRemoved, len(wantKept))
	}
	for _, k := range out.Kept {
		if !wantKept[k.Name] || k.Why == "" || !strings.Contains(logs.String(), k.Name) {
			t.Errorf("kept %+v: want one of %v, with why, its name in a warning", k, wantKept)
		}
	}
	for _, r := range give {
		if strings.Contains(logs.String(), r.Path) {
			t.Errorf("the log names a recording's path: %s", logs.String())
			break
		}
	}
	// R19-7: a kept file's why (the Warn, the run ledger) names a class
	// of error, never the PBX's host nor the folders of a recording's path
	// (in the simulator, the recording's id).
	for _, k := range out.Kept {
		for _, r := range give {
			dir := r.Path[:strings.LastIndexByte(r.Path, '/')+1]
			if strings.Contains(k.Why, sp.Origin.Host) || strings.Contains(k.Why, dir) || strings.Contains(logs.String(), dir) {
				t.Errorf("kept %+v: the why or the log names the PBX's host %s or a path's folders %s", k, sp.Origin.Host, dir)
			}
		}
	}
	if !strings.Contains(logs.String(), "the PBX answered 500") {
		t.Errorf("no warning says the PBX answered 500: %s", logs.String())
	}
	if out, err := cp.Erase(ctx, give, rows, inUse); err != nil || out.Removed != 0 {
		t.Fatalf("Erase again: %d removed, %v; want nothing to remove", out.Removed, err)
	}
}

// usable is recs without those vanished from the simulator or whose path
// is refused: Copy never stores a file of them.
func usable(t *testing.T, e *env, recs []Recording) []Recording {
	t.Helper()
	gone := map[string]bool{}
	for _, r := range e.sim.Recordings() {
		if r.Vanished || CheckFileName(r.FileName) != nil {
			gone[r.Path] = true
		}
	}
	origin, _ := url.Parse(e.pbx.URL)
	var out []Recording
	for _, r := range recs {
		if _, err := spoolURL(origin, r.Path); err == nil && !gone[r.Path] {
			out = append(out, r)
		}
	}
	return out
}

// noDiscard is a store without Discard.
type noDiscard struct{ Store }

// TestEraseStoreCannotRemove: with a store that cannot remove a file,
// Erase is no error: nothing stored, nothing to do; a file there that
// may be the recording's is kept and reported, not an error failing the
// run's window.
func TestEraseStoreCannotRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := recSetup(t, pbxsim.Options{Seed: 5, Calls: 60}, noCloud)
	f := newStore(t, "dir")
	cp := &Copier{Spool: e.spool(t), Store: noDiscard{f.st}, PBX: "pbx-test"}
	recs := usable(t, e, e.recordings(false))
	none := func(context.Context, []string) (map[string]bool, error) { return map[string]bool{}, nil }
	if out, err := cp.Erase(ctx, recs[:2], none, nil); err != nil || out.Removed != 0 || len(out.Kept) != 0 {
		t.Fatalf("nothing stored: %+v, %v; want nothing done, no error", out, err)
	}
	if _, _, err := cp.Copy(ctx, recs[:1]); err != nil {
		t.Fatal(err)
	}
	out, err := cp.Erase(ctx, recs[:2], none, nil)
	name, _ := cp.name(recs[0])
	if err != nil || out.Removed != 0 || len(out.Kept) != 1 || out.Kept[0].Name != name {
		t.Fatalf("a file stored: %+v, %v; want %s kept, reported, no error", out, err, name)
	}
	if got := f.contents(t); got[name] == "" {
		t.Fatalf("%s removed", name)
	}
}

// TestEraseUnreadableKept: a symbolic link, or a folder, under a name a
// recording not kept may have been stored under (planted: the store
// never writes one) is neither followed nor removed, and no error: it is
// kept and reported naming the store, so that no run fails on it for
// good. (Erase tells these from a store down, which is its error, by the
// store's error values, recstore.Planted: R24-1; sinks/recstore
// TestPlanted checks each kind.)
func TestEraseUnreadableKept(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 5, Calls: 60}, noCloud)
	f := newStore(t, "dir")
	cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: "pbx-test"}
	recs := usable(t, e, e.recordings(false))[:2]
	link, _ := cp.name(recs[0])
	p := filepath.Join(f.dir, filepath.FromSlash(link))
	os.MkdirAll(filepath.Dir(p), 0o700)
	outside := filepath.Join(t.TempDir(), "x.wav")
	os.WriteFile(outside, []byte("keep"), 0o600)
	if err := os.Symlink(outside, p); err != nil {
		t.Fatal(err)
	}
	folder, _ := cp.name(recs[1])
	q := filepath.Join(f.dir, filepath.FromSlash(folder))
	if err := os.MkdirAll(filepath.Join(q, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	none := func(context.Context, []string) (map[string]bool, error) { return map[string]bool{}, nil }
	out, err := cp.Erase(context.Background(), recs, none, nil)
	if err != nil || len(out.Kept) != 2 || out.Kept[0].Name != link || out.Kept[1].Name != folder ||
		!strings.Contains(out.Kept[0].Why, "folder "+f.dir) || !strings.Contains(out.Kept[1].Why, "folder "+f.dir) {
		t.Fatalf("Erase: %+v, %v; want %s and %s kept, reported naming the folder %s, no error", out, err, link, folder, f.dir)
	}
	if _, err := os.Lstat(p); err != nil {
		t.Fatalf("the link: %v, want it left", err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Fatal("the file the link points to changed")
	}
	if _, err := os.Stat(filepath.Join(q, "inside")); err != nil {
		t.Fatalf("the folder: %v, want it left", err)
	}
}

// TestEraseSinkFailing: the sink failing to tell whether a row names a
// file found (the database gone, say) is Erase's error, the file left
// and nothing counted, as for the store down (R24-1): the caller writes
// no row saying erased of it, and the next run does it again. A sink
// that cannot tell at all (ErrNoNamer) keeps the file, reported, no
// error.
func TestEraseSinkFailing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := recSetup(t, pbxsim.Options{Seed: 5, Calls: 60}, noCloud)
	f := newStore(t, "dir")
	cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: "pbx-test"}
	r := usable(t, e, e.recordings(false))[0]
	if _, _, err := cp.Copy(ctx, []Recording{r}); err != nil {
		t.Fatal(err)
	}
	name, _ := cp.name(r)
	down := errors.New("read recordings: connection refused")
	failing := func(context.Context, []string) (map[string]bool, error) { return nil, down }
	out, err := cp.Erase(ctx, []Recording{r}, failing, nil)
	if !errors.Is(err, down) || !strings.Contains(err.Error(), "the sink could not tell") || out.Removed != 0 || len(out.Kept) != 0 {
		t.Errorf("Erase, the sink failing: %+v, %v; want its error, nothing counted", out, err)
	}
	cannot := func(context.Context, []string) (map[string]bool, error) { return nil, ErrNoNamer }
	out, err = cp.Erase(ctx, []Recording{r}, cannot, nil)
	if err != nil || out.Removed != 0 || len(out.Kept) != 1 || out.Kept[0].Name != name {
		t.Errorf("Erase, a sink that cannot tell: %+v, %v; want %s kept, reported, no error", out, err, name)
	}
	if got := f.contents(t); got[name] == "" {
		t.Fatalf("%s removed", name)
	}
}
