package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/simtest"
)

// suppressing is a sink whose batches apply a suppression list to every
// row before writing it, as the exporter's row hook does.
type suppressing struct {
	exporter.Sink
	s *Suppressor
}

func (x suppressing) Begin(ctx context.Context, b exporter.BatchInfo) (exporter.Batch, error) {
	bt, err := x.Sink.Begin(ctx, b)
	if err != nil {
		return nil, err
	}
	return suppressingBatch{bt, x.s, b.Endpoint}, nil
}

type suppressingBatch struct {
	exporter.Batch
	s *Suppressor
	e *record.Endpoint
}

func (b suppressingBatch) Write(ctx context.Context, rows []record.Row) error {
	for i := range rows {
		b.s.Apply(b.e, &rows[i])
	}
	return b.Batch.Write(ctx, rows)
}

type suppressStore interface {
	Suppression(ctx context.Context) (*Suppression, error)
	Suppress(ctx context.Context, f *Forgotten, pk *pseudonym.Keyed) (string, bool, error)
}

// TestSuppressionKeys: a list made without a pseudonym key keeps its own
// random key and is read without one; a list made with it keeps only its
// id, and is refused without it or with another key. No number is kept
// in clear.
func TestSuppressionKeys(t *testing.T) {
	t.Parallel()
	pk, _ := pseudonym.New([]byte(testPseudonymKey))
	other, _ := pseudonym.New([]byte(strings.Repeat("x", 32)))
	p, _ := newPostgres(t)
	c, err := NewCSV(CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := newPostgres(t)
	c2, err := NewCSV(CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	forgotten, err := NewForgotten("+390123456789")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		store suppressStore
		key   *pseudonym.Keyed
	}{{"postgres, own key", p, nil}, {"csv, own key", c, nil}, {"postgres, pseudonym key", p2, pk}, {"csv, pseudonym key", c2, pk}} {
		h, added, err := tc.store.Suppress(ctx, forgotten, tc.key)
		if err != nil || !added {
			t.Fatalf("%s: Suppress = %v, %v", tc.name, added, err)
		}
		if _, added, err := tc.store.Suppress(ctx, forgotten, tc.key); err != nil || added {
			t.Fatalf("%s: Suppress again = %v, %v; want not added", tc.name, added, err)
		}
		l, err := tc.store.Suppression(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(l)
		// The number and its national form (+39: without the code).
		if strings.Contains(string(b), "0123456789") || len(l.Numbers) != 2 || l.Numbers[0].Hash != h || l.Numbers[0].National || !l.Numbers[1].National {
			t.Fatalf("%s: list %s", tc.name, b)
		}
		if (l.Key == nil) != (tc.key != nil) {
			t.Errorf("%s: key kept with the list: %v", tc.name, l.Key != nil)
		}
		s, err := l.Suppressor(tc.key)
		if err != nil || s.Len() != 1 {
			t.Fatalf("%s: Suppressor = %v, %v", tc.name, s, err)
		}
		if !s.match("390123456789") || !s.match("+390123456789") || !s.match("0123456789") || s.match("390123456788") {
			t.Errorf("%s: matches the wrong numbers", tc.name)
		}
		// The national form's digits written internationally are another
		// country's number (review 30-fixes 1).
		if s.match("+0123456789") {
			t.Errorf("%s: the national form matched written internationally", tc.name)
		}
		if tc.key != nil {
			if !s.match(tc.key.Number("390123456789")) {
				t.Errorf("%s: the number's pseudonym is not matched", tc.name)
			}
			if s.match(tc.key.Number("0123456789")) {
				t.Errorf("%s: the national form's pseudonym is matched: it is also another country's number's", tc.name)
			}
			for _, k := range []*pseudonym.Keyed{nil, other} {
				if _, err := l.Suppressor(k); !errors.Is(err, ErrSuppressionKey) {
					t.Errorf("%s: Suppressor with key %v = %v, want ErrSuppressionKey", tc.name, k, err)
				}
			}
		} else if _, err := l.Suppressor(other); err != nil {
			t.Errorf("%s: a list with its own key refused with a pseudonym key: %v", tc.name, err)
		}
	}
}

// TestSuppressionSticksPostgres: after forget, exporting the whole
// history again through the suppression list changes nothing in the
// database, row for row: the PBX's records come back already erased.
// Without the list, the number comes back.
func TestSuppressionSticksPostgres(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	ctx := context.Background()
	h := exportHistory(t, p)
	f, cat := h.f, h.cat
	asked, _ := forgetNumber(t, f.Sim, h.calls)
	forgotten, err := NewForgotten(asked)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Suppress(ctx, forgotten, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ForgetErase(ctx, "x", forgotten, cat.All()); err != nil {
		t.Fatal(err)
	}
	erased := snapshot(t, pool)
	h.exportSuppressed(t, p)
	after := snapshot(t, pool)
	for tb, rows := range erased {
		if strings.HasPrefix(tb, "export_run") || tb == "export_state" || tb == "pbx_settings" {
			continue // the ledger and cursors of the runs
		}
		if !slices.Equal(rows, after[tb]) {
			t.Errorf("%s changed on the export after forget: %d rows before, %d after", tb, len(rows), len(after[tb]))
		}
	}
	found, err := p.ForgetFind(ctx, forgotten, cat.All())
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Places) > 0 {
		t.Fatalf("the number came back: %+v", found.Places)
	}
	// The proof has teeth: the same backfill without the list brings it back.
	h.backfillUnsuppressed(t, p)
	if found, err := p.ForgetFind(ctx, forgotten, cat.All()); err != nil || len(found.Places) == 0 {
		t.Fatalf("without the list the number did not come back (%v): the test proves nothing", err)
	}
}

// history is what both proofs that the suppression list sticks export:
// the simulator's calls, one a minute from start, through every built-in
// endpoint.
type history struct {
	f     *simtest.Fixture
	calls int64
	start time.Time
	cat   *record.Catalog
	sel   []record.Endpoint
}

// exportHistory exports a history of 300 calls once into sink (run r1).
func exportHistory(t *testing.T, sink exporter.Sink) history {
	t.Helper()
	h := history{calls: 300, start: time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)}
	h.f = simtest.New(t, pbxsim.Options{Calls: h.calls, CallsStart: h.start, CallGap: time.Minute})
	var err error
	if h.cat, err = record.NewCatalog(record.Builtin()); err != nil {
		t.Fatal(err)
	}
	if h.sel, err = h.cat.Select(nil); err != nil {
		t.Fatal(err)
	}
	if err := newExporter(t, h.f, sink).Run(context.Background(), "r1", "once", h.sel).Err(); err != nil {
		t.Fatal(err)
	}
	return h
}

// exportSuppressed exports the whole history again into sink through
// its suppression list (taken without a key): a forced backfill of the
// timed endpoints (run r2), then a run (r3).
func (h history) exportSuppressed(t *testing.T, sink interface {
	exporter.Sink
	Suppression(context.Context) (*Suppression, error)
}) {
	t.Helper()
	ctx := context.Background()
	l, err := sink.Suppression(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Suppressor(nil)
	if err != nil {
		t.Fatal(err)
	}
	x := newExporter(t, h.f, suppressing{sink, s})
	timed, bf := h.backfill()
	if err := x.Backfill(ctx, "r2", timed, bf).Err(); err != nil {
		t.Fatal(err)
	}
	if err := x.Run(ctx, "r3", "once", h.sel).Err(); err != nil {
		t.Fatal(err)
	}
}

// backfillUnsuppressed is exportSuppressed's backfill without the list
// (run r4): the proof's teeth.
func (h history) backfillUnsuppressed(t *testing.T, sink exporter.Sink) {
	t.Helper()
	timed, bf := h.backfill()
	if err := newExporter(t, h.f, sink).Backfill(context.Background(), "r4", timed, bf).Err(); err != nil {
		t.Fatal(err)
	}
}

// backfill is the forced backfill of the whole history: the endpoints
// with a time and a cursor, the days around the calls.
func (h history) backfill() ([]record.Endpoint, exporter.BackfillOptions) {
	var timed []record.Endpoint
	for _, e := range h.sel {
		if e.TimeField != "" && e.Cursor != "" {
			timed = append(timed, e)
		}
	}
	return timed, exporter.BackfillOptions{From: h.start.AddDate(0, 0, -1), To: h.start.AddDate(0, 0, 2), Window: 24 * time.Hour, Force: true}
}

// csvRows is every data row of every endpoint's files under dir, as the
// files hold them, sorted per endpoint (a redone window may move a row
// to another file).
func csvRows(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, e := range record.Builtin() {
		for _, r := range readCSV(t, dir, e.Name) {
			var cells []string
			for k, v := range r {
				cells = append(cells, k+"="+v)
			}
			slices.Sort(cells)
			out[e.Name] = append(out[e.Name], strings.Join(cells, "\x1f"))
		}
		slices.Sort(out[e.Name])
	}
	return out
}

// folderBytes is every file under dir with its content.
func folderBytes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		out[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestForgetCSV: on the CSV sink (gzip, safe formulas), ForgetFind
// changes no byte; ForgetErase erases every trace of the number and keeps
// every other row; a forced backfill of the whole history and a run
// through the suppression list afterwards change no row and bring nothing
// back; without the list they do.
func TestForgetCSV(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := NewCSV(CSVOptions{Dir: dir, Gzip: true, SafeFormulas: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := exportHistory(t, c)
	f, cat := h.f, h.cat
	pbx := f.URL.Host
	asked, _ := forgetNumber(t, f.Sim, h.calls)
	forgotten, err := NewForgotten(asked)
	if err != nil {
		t.Fatal(err)
	}
	bytesBefore := folderBytes(t, dir)
	before := csvRows(t, dir)
	found, err := c.ForgetFind(ctx, forgotten, cat.All())
	if err != nil {
		t.Fatal(err)
	}
	if found.Rows() == 0 || !slices.ContainsFunc(found.Places, func(p ForgetPlace) bool { return strings.HasPrefix(p.Name, "call_history/") }) {
		t.Fatalf("ForgetFind found %+v", found.Places)
	}
	if got := folderBytes(t, dir); !maps.Equal(got, bytesBefore) {
		t.Fatal("ForgetFind changed the folder")
	}
	if _, _, err := c.Suppress(ctx, forgotten, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ForgetErase(ctx, pbx, forgotten, cat.All()); err != nil {
		t.Fatal(err)
	}
	erased := csvRows(t, dir)
	for ep, rows := range before {
		got := erased[ep]
		if len(got) != len(rows) {
			t.Errorf("%s: %d rows after, %d before", ep, len(got), len(rows))
		}
		for _, r := range rows {
			if _, n := eraseText(r, forgotten.match); n == 0 && !slices.Contains(got, r) {
				t.Errorf("%s: a row without the number changed: %s", ep, r)
			}
		}
	}
	if found, err := c.ForgetFind(ctx, forgotten, cat.All()); err != nil || len(found.Places) > 0 {
		t.Fatalf("after erasure: %+v, %v", found, err)
	}
	h.exportSuppressed(t, c)
	// Snapshots are written whole by each run, in a file of their own:
	// the incremental endpoints' rows are the ones to stay as they were.
	if got := csvRows(t, dir); !maps.EqualFunc(got, erased, slices.Equal) {
		for _, ep := range []string{"call_history", "recordings"} {
			if !slices.Equal(got[ep], erased[ep]) {
				t.Errorf("%s changed on the exports after forget: %d rows, %d before", ep, len(got[ep]), len(erased[ep]))
			}
		}
	}
	if found, err := c.ForgetFind(ctx, forgotten, cat.All()); err != nil || len(found.Places) > 0 {
		t.Fatalf("the number came back: %+v, %v", found, err)
	}
	h.backfillUnsuppressed(t, c)
	if found, err := c.ForgetFind(ctx, forgotten, cat.All()); err != nil || len(found.Places) == 0 {
		t.Fatalf("without the list the number did not come back (%v): the test proves nothing", err)
	}
}

// TestSuppressionKeyMade: the key of a sink's recordings' ids (a sink in
// clear hashes them with it) is made by the first SuppressionKey, a
// random one kept with the suppression list, also when a pseudonym key
// is set (review1 R4: it took that key's id, so unsetting the key, which
// nothing used, made every start fail). The same key after, with the key
// set or not, and after a forget, which still hashes numbers with the
// pseudonym key; a list forget made first with it is still read with it
// (and refused without it). On both sinks.
func TestSuppressionKeyMade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const pkRaw = "suppression-key-test-0123456789abcdef"
	pk, err := pseudonym.New([]byte(pkRaw))
	if err != nil {
		t.Fatal(err)
	}
	type list interface {
		Suppression(ctx context.Context) (*Suppression, error)
		Suppress(ctx context.Context, f *Forgotten, pk *pseudonym.Keyed) (string, bool, error)
		SuppressionKey(ctx context.Context, o IDKeyOptions) (*pseudonym.Keyed, error)
	}
	forget := func(t *testing.T, s list, k *pseudonym.Keyed) {
		f, err := NewForgotten("+393528510009", k)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Suppress(ctx, f, k); err != nil {
			t.Fatalf("forget: %v", err)
		}
	}
	opts := func(k *pseudonym.Keyed) IDKeyOptions {
		if k == nil {
			return IDKeyOptions{}
		}
		return IDKeyOptions{Key: []byte(pkRaw)}
	}
	for _, kind := range []string{"csv", "postgres"} {
		open := func(t *testing.T) list {
			if kind == "csv" {
				s, _ := NewCSV(CSVOptions{Dir: t.TempDir()})
				return s
			}
			p, _ := newPostgres(t)
			if err := p.Migrate(ctx, record.Builtin()); err != nil {
				t.Fatal(err)
			}
			return p
		}
		for _, withPK := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/pk=%v", kind, withPK), func(t *testing.T) {
				t.Parallel()
				s := open(t)
				var given *pseudonym.Keyed
				if withPK {
					given = pk
				}
				k1, err := s.SuppressionKey(ctx, opts(given))
				if err != nil || k1 == nil {
					t.Fatalf("first: %v, %v", k1, err)
				}
				if k1.KeyID() == pk.KeyID() {
					t.Fatalf("key %s: the pseudonym key's, want one of the sink's own", k1.KeyID())
				}
				l, err := s.Suppression(ctx)
				if err != nil || l.IDKeys != nil || l.KeyID != "" || l.Key != nil || len(l.Numbers) != 0 {
					t.Fatalf("list %+v, %v; want no list key, no number, no id key", l, err)
				}
				if r := storedIDKeys(t, s); r.Keys[""] == nil || r.Keys[""].Key == nil {
					t.Fatalf("record %+v: want an id key of its own", r)
				}
				for _, k := range []*pseudonym.Keyed{given, nil, pk} {
					if k2, err := s.SuppressionKey(ctx, opts(k)); err != nil || k2.KeyID() != k1.KeyID() {
						t.Fatalf("again with key %v: %v, %v; want key %s again", k, k2, err, k1.KeyID())
					}
				}
				forget(t, s, given)
				if l, err = s.Suppression(ctx); err != nil || withPK && (l.KeyID != pk.KeyID() || l.Key != nil) || !withPK && l.Key == nil {
					t.Fatalf("list after forget %+v, %v; want the list keyed as forget makes it (pseudonym key: %v)", l, err, withPK)
				}
				if k2, err := s.SuppressionKey(ctx, opts(given)); err != nil || k2.KeyID() != k1.KeyID() {
					t.Fatalf("after forget: %v, %v; want key %s again", k2, err, k1.KeyID())
				}
			})
		}
		t.Run(kind+"/forget first", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			forget(t, s, pk)
			// A PBX that has written rows (Ruled) before keys were kept
			// named its recordings with the list's key then; one that
			// has not takes a new key.
			pbxState(t, s)
			ruled := opts(pk)
			ruled.Ruled = true
			if k, err := s.SuppressionKey(ctx, ruled); err != nil || k.KeyID() != pk.KeyID() {
				t.Fatalf("with the key: %v, %v; want the list's, the pseudonym key %s", k, err, pk.KeyID())
			}
			// Without it, and no recording stored under a keyed id: a new
			// key (TestRecordingsKeyRefusedWhenHeld: refused when one is).
			if k, err := s.SuppressionKey(ctx, IDKeyOptions{Ruled: true}); err != nil || k.KeyID() == pk.KeyID() {
				t.Fatalf("without the key: %v; want a new key", err)
			}
			if k, err := s.SuppressionKey(ctx, IDKeyOptions{PBX: "new", Key: []byte(pkRaw)}); err != nil || k.KeyID() == pk.KeyID() {
				t.Fatalf("a PBX without rows: %v, %v; want a new key", k, err)
			}
		})
	}
}

// storedIDKeys is the record of the keys of recordings' ids as the sink
// s stores it.
func storedIDKeys(t *testing.T, s any) *idKeyRecord {
	t.Helper()
	var b []byte
	switch s := s.(type) {
	case *CSV:
		b, _ = os.ReadFile(s.idKeysFile())
	case *Postgres:
		if err := s.pool.QueryRow(context.Background(), "SELECT state FROM "+s.ident("export_state")+" WHERE pbx = '' AND key = $1", idKeysKey).Scan(&b); err != nil {
			t.Fatal(err)
		}
	}
	r, err := decodeIDKeys(b, "test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pbxState gives the sink s a PBX's state (as a run of a release of
// before keys were kept by PBX left it).
func pbxState(t *testing.T, s any) {
	t.Helper()
	var err error
	switch s := s.(type) {
	case *CSV:
		dir := filepath.Join(s.opt.Dir, ".state", "x")
		if err = os.MkdirAll(dir, 0o700); err == nil {
			err = os.WriteFile(filepath.Join(dir, "call_history.json"), []byte(`{"seq":1}`), 0o600)
		}
	case *Postgres:
		_, err = s.pool.Exec(context.Background(), "INSERT INTO "+s.ident("export_state")+` (pbx, key, state) VALUES ('x', 'call_history', '{}')`)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// rawList is how a test reads and writes a sink's suppression list as
// stored: PostgreSQL's export_state row, the CSV folder's file.
type rawList struct {
	read  func() string
	write func(s string) // "" deletes it
	store interface {
		suppressStore
		TagSuppression(ctx context.Context, pk *pseudonym.Keyed) (bool, error)
		CheckSuppression(ctx context.Context) error
	}
	csv  *CSV
	pool *pgxpool.Pool
}

func rawLists(t *testing.T) map[string]func(t *testing.T) rawList {
	ctx := context.Background()
	return map[string]func(t *testing.T) rawList{
		"postgres": func(t *testing.T) rawList {
			p, pool := newPostgres(t)
			return rawList{store: p, pool: pool, read: func() string {
				var s string
				err := pool.QueryRow(ctx, "SELECT state::text FROM export_state WHERE pbx = '' AND key = $1", suppressionKey).Scan(&s)
				if err != nil && !errors.Is(err, pgx.ErrNoRows) {
					t.Fatal(err)
				}
				return s
			}, write: func(s string) {
				if _, err := pool.Exec(ctx, "DELETE FROM export_state WHERE pbx = '' AND key = $1", suppressionKey); err != nil {
					t.Fatal(err)
				}
				if s == "" {
					return
				}
				if _, err := pool.Exec(ctx, "INSERT INTO export_state (pbx, key, state) VALUES ('', $1, $2)", suppressionKey, s); err != nil {
					t.Fatal(err)
				}
			}}
		},
		"csv": func(t *testing.T) rawList {
			c, err := NewCSV(CSVOptions{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			return rawList{store: c, csv: c, read: func() string {
				b, err := os.ReadFile(c.suppressionFile())
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Fatal(err)
				}
				return string(b)
			}, write: func(s string) {
				if s == "" {
					if err := os.Remove(c.suppressionFile()); err != nil && !errors.Is(err, fs.ErrNotExist) {
						t.Fatal(err)
					}
					return
				}
				os.MkdirAll(filepath.Dir(c.suppressionFile()), 0o700)
				if err := os.WriteFile(c.suppressionFile(), []byte(s), 0o600); err != nil {
					t.Fatal(err)
				}
			}}
		},
	}
}

// TestSuppressionKeepsTags: the list keeps no forgotten number's
// pseudonym (nor the number), under the pseudonym key or its own, which
// rows and extracts of a pseudonymised sink carry (attack 4, F7); the
// rows' pseudonym and the number are still matched. A list written
// before, holding the pseudonyms, is read as it is and stored as tags by
// TagSuppression, once.
func TestSuppressionKeepsTags(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pk, _ := pseudonym.New([]byte(testPseudonymKey))
	const number = "+393471100028"
	for kind, open := range rawLists(t) {
		for _, withPK := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/pk=%v", kind, withPK), func(t *testing.T) {
				t.Parallel()
				var given *pseudonym.Keyed
				if withPK {
					given = pk
				}
				r := open(t)
				f, err := NewForgotten(number, given)
				if err != nil {
					t.Fatal(err)
				}
				// keyOf is the list's key; leaked, what a stored list
				// must not hold of f.
				keyOf := func() *pseudonym.Keyed {
					l, err := r.store.Suppression(ctx)
					if err != nil {
						t.Fatal(err)
					}
					k, err := l.keyed(given)
					if err != nil || k == nil {
						t.Fatalf("list key: %v, %v", k, err)
					}
					return k
				}
				leaked := func(raw string, k *pseudonym.Keyed) []string {
					var out []string
					for _, d := range f.forms() {
						for _, v := range []string{d, k.Number(d), pk.Number(d)} {
							if strings.Contains(raw, v) {
								out = append(out, v)
							}
						}
					}
					if strings.Contains(raw, `"p:`) {
						out = append(out, "a pseudonym")
					}
					return out
				}
				matches := func(when string) {
					l, err := r.store.Suppression(ctx)
					if err != nil {
						t.Fatal(err)
					}
					s, err := l.Suppressor(given)
					if err != nil || s.Len() != 1 {
						t.Fatalf("%s: Suppressor = %v, %v", when, s, err)
					}
					if !s.match("393471100028") || !s.match("+393471100028") || !s.match("3471100028") || s.match("+3471100028") || s.match("393471100029") {
						t.Errorf("%s: the list matches the wrong numbers", when)
					}
					if given != nil && (!s.match(given.Number("393471100028")) || s.match(given.Number("3471100028")) || s.match(given.Number("393471100029"))) {
						t.Errorf("%s: the list matches the wrong pseudonyms", when)
					}
				}
				if _, added, err := r.store.Suppress(ctx, f, given); err != nil || !added {
					t.Fatalf("Suppress = %v, %v", added, err)
				}
				k := keyOf()
				if l := leaked(r.read(), k); len(l) > 0 {
					t.Errorf("the list holds %v:\n%s", l, r.read())
				}
				matches("tags")

				// A list as written before tags: the pseudonyms
				// themselves.
				var old Suppression
				if err := json.Unmarshal([]byte(r.read()), &old); err != nil {
					t.Fatal(err)
				}
				for i, d := range f.forms() {
					old.Numbers[i].Hash = k.Number(d)
				}
				b, _ := json.Marshal(old)
				r.write(string(b))
				if l := leaked(r.read(), k); len(l) == 0 {
					t.Fatal("the list written as before holds no pseudonym: the test proves nothing")
				}
				matches("pseudonyms, before TagSuppression")
				if changed, err := r.store.TagSuppression(ctx, given); err != nil || !changed {
					t.Fatalf("TagSuppression = %v, %v; want changed", changed, err)
				}
				if l := leaked(r.read(), k); len(l) > 0 {
					t.Errorf("after TagSuppression the list holds %v:\n%s", l, r.read())
				}
				matches("after TagSuppression")
				if changed, err := r.store.TagSuppression(ctx, given); err != nil || changed {
					t.Fatalf("TagSuppression again = %v, %v; want unchanged", changed, err)
				}
				// Forgotten again after it, the number is already listed;
				// a forget on a list written before also tags it.
				if _, added, err := r.store.Suppress(ctx, f, given); err != nil || added {
					t.Fatalf("Suppress again = %v, %v; want already listed", added, err)
				}
				r.write(string(b))
				g, _ := NewForgotten("+393471100099", given)
				if _, added, err := r.store.Suppress(ctx, g, given); err != nil || !added {
					t.Fatalf("Suppress another = %v, %v", added, err)
				}
				if l := leaked(r.read(), k); len(l) > 0 {
					t.Errorf("after a forget the list written before holds %v:\n%s", l, r.read())
				}
			})
		}
	}
}

// forgetRun is forget's part in the list and the ledger: the number
// added to the list (unless it is ""), then the forget's entry in the run
// ledger, which says it added it when added.
func forgetRun(t *testing.T, r rawList, number string, added bool) {
	t.Helper()
	started := time.Now().UTC()
	if number != "" {
		f, _ := NewForgotten(number)
		_, got, err := r.store.Suppress(context.Background(), f, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got != added {
			t.Errorf("Suppress(%s) says added %v, want %v: forget's ledger note would count another number", number, got, added)
		}
	}
	e := exporter.EndpointResult{Endpoint: "forget", Rows: 1, Notes: []string{"call_history: 1 row(s) erased", "recording files removed: 0"}}
	if added {
		e.Notes = append(e.Notes, NoteSuppressed)
	}
	run := &exporter.RunResult{ID: exporter.NewRunID(started), Mode: "forget", PBX: "pbx-1", Started: started, Ended: time.Now().UTC(), Status: "ok", Endpoints: []exporter.EndpointResult{e}}
	// As forget's RecordForget writes it (written here, as its
	// signature is forget's).
	if r.csv != nil {
		if err := r.csv.FinishRun(context.Background(), run); err != nil {
			t.Fatal(err)
		}
		return
	}
	ctx := context.Background()
	if _, err := r.pool.Exec(ctx, `INSERT INTO export_runs (run_id, mode, pbx, started_at, ended_at, status, rows) VALUES ($1, $2, $3, $4, $5, $6, 1)`,
		run.ID, run.Mode, run.PBX, run.Started, run.Ended, run.Status); err != nil {
		t.Fatal(err)
	}
	if _, err := r.pool.Exec(ctx, `INSERT INTO export_run_endpoints (run_id, endpoint, rows, notes) VALUES ($1, $2, 1, $3)`, run.ID, e.Endpoint, e.Notes); err != nil {
		t.Fatal(err)
	}
}

// accept follows what err says to do to go on without the lost numbers:
// the SQL statement, or the file to write.
func accept(t *testing.T, r rawList, err error) {
	t.Helper()
	_, do, ok := strings.Cut(err.Error(), "record that in the list: ")
	if !ok {
		t.Fatalf("the error says nothing of how to go on: %v", err)
	}
	if r.pool != nil {
		if _, err := r.pool.Exec(context.Background(), do); err != nil {
			t.Fatalf("the statement the error gives: %v\n%s", err, do)
		}
		return
	}
	m := regexp.MustCompile(`write (\{.*\}) to (\S+)$`).FindStringSubmatch(do)
	if m == nil || m[2] != r.csv.suppressionFile() {
		t.Fatalf("no file to write in %q", do)
	}
	if cur := r.read(); cur != "" {
		field := regexp.MustCompile(`add ("erasures_undone_accepted":"[^"]+")`).FindStringSubmatch(do)
		r.write(strings.TrimSuffix(strings.TrimSpace(cur), "}") + "," + field[1] + "}")
		return
	}
	r.write(m[1])
}

// TestSuppressionCheckedAgainstLedger: a list holding fewer numbers than
// the run ledger's forgets added (deleted with the state, or restored
// from an older copy) is refused, naming where it was and what to do
// (attack 4, F4); a forget that added nothing is not counted; what the
// error says to do to go on all the same works, and forgets after it
// are checked again. A CSV folder whose state folder is gone whole,
// ledger with it, is refused when a data file records rows erased by
// forget.
// TestSuppressionNationalFormsAddNoNumber: a forget of a number listed
// already, written without + the first time (no national forms) and with
// + the second (its national forms new), adds no number: its ledger
// note would make the check count one more forget than the list holds,
// refusing every later run (review6, R6-1).
func TestSuppressionNationalFormsAddNoNumber(t *testing.T) {
	t.Parallel()
	for kind, open := range rawLists(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r := open(t)
			forgetRun(t, r, "393471110007", true)
			forgetRun(t, r, "+39 347 111 0007", false)
			if err := r.store.CheckSuppression(context.Background()); err != nil {
				t.Fatalf("CheckSuppression after a national form was added: %v", err)
			}
		})
	}
}

func TestSuppressionCheckedAgainstLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for kind, open := range rawLists(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r := open(t)
			check := func(when string, lost bool) error {
				t.Helper()
				err := r.store.CheckSuppression(ctx)
				if lost != errors.Is(err, ErrSuppressionLost) || !lost && err != nil {
					t.Fatalf("%s: CheckSuppression = %v; want lost %v", when, err, lost)
				}
				return err
			}
			check("empty", false)
			var lists []string
			for i, n := range []string{"+393471100028", "+393471100037"} {
				forgetRun(t, r, n, true)
				lists = append(lists, r.read())
				check(fmt.Sprintf("after forget %d", i+1), false)
			}
			forgetRun(t, r, "+393471100028", false) // already listed
			check("after a forget of a listed number", false)

			r.write("")
			err := check("list deleted", true)
			where := suppressionKey
			if r.csv != nil {
				where = r.csv.suppressionFile()
			}
			for _, s := range []string{where, "holds 0 number(s)", "records 2 forget(s)", "Restore the list from the backup", "README, Erasure"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the error does not say %q: %v", s, err)
				}
			}
			r.write(lists[0])
			check("an older list restored", true)
			r.write(lists[1])
			check("the list restored", false)

			r.write(lists[0])
			accept(t, r, check("an older list restored", true))
			check("erasures undone accepted", false)
			forgetRun(t, r, "+393471100046", true)
			check("a forget after", false)
			forgetRun(t, r, "", true)
			check("a forget after, its number not in the list", true)
			r.write("")
			accept(t, r, check("list deleted after accepting", true))
			check("erasures undone accepted again", false)

			if r.csv == nil {
				return
			}
			// The state folder deleted whole, the ledgers with it.
			dir := r.csv.opt.Dir
			if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
				t.Fatal(err)
			}
			// The forget stamp at the folder's top, left by the
			// removal, names the two numbers (R15-12); with it gone
			// too, nothing tells.
			err = check("state folder gone, no data file, the forget stamp there", true)
			if !strings.Contains(err.Error(), r.csv.stampFile()) || !strings.Contains(err.Error(), "2 of them missing") {
				t.Errorf("the error does not name the forget stamp and the 2 numbers missing: %v", err)
			}
			for _, stamp := range r.csv.stampFiles() { // both: the dot file and its copy without the dot
				if err := os.Remove(stamp); err != nil {
					t.Fatal(err)
				}
			}
			check("state folder gone, no data file", false)
			os.MkdirAll(filepath.Join(dir, "call_history"), 0o700)
			man := filepath.Join(dir, "call_history", "pbx-1_20261207T113550Z-133c3d_0001.manifest.json")
			if err := os.WriteFile(man, []byte(`{"file":"pbx-1_20261207T113550Z-133c3d_0001.csv","rows":600,"rows_replaced_retention":3}`), 0o600); err != nil {
				t.Fatal(err)
			}
			check("state folder gone, a data file pruned", false)
			if err := os.WriteFile(man, []byte(`{"file":"pbx-1_20261207T113550Z-133c3d_0001.csv","rows":600,"rows_replaced_forget":1}`), 0o600); err != nil {
				t.Fatal(err)
			}
			err = check("state folder gone, a data file erased by forget", true)
			if !strings.Contains(err.Error(), filepath.Join("call_history", "pbx-1_20261207T113550Z-133c3d_0001.csv")) {
				t.Errorf("the error names no data file: %v", err)
			}
			accept(t, r, err)
			check("state folder gone, erasures undone accepted", false)
		})
	}
}

// TestSuppressionCheckReadsManifestsWithLedger: a CSV folder whose list
// is empty and whose ledgers show no forget refuses (ErrSuppressionLost)
// when a data file's manifest counts rows erased by forget, even though
// the PBX's ledger is there (review 9, R9-1: a4b0d6c skipped the
// manifests of a PBX with a ledger, and an erasure was undone): .state
// restored from a copy taken before the first forget, or the forget run
// under another PBX's configuration (its entry in that PBX's ledger,
// since lost).
func TestSuppressionCheckReadsManifestsWithLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	write := func(t *testing.T, dir, p, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ledger := `{"mode":"run","endpoints":[]}` + "\n"
	for _, tc := range []struct {
		name, ledgers, manifest string
	}{
		{"state restored from before the forget", "a", "a_20261207T101010Z-0a1b2c_0001"},
		{"forget run under another PBX's id", "b", "b_20261207T101010Z-0a1b2c_0001"},
		{"backfill file", "a", "a_backfill_20261201_20261202"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, filepath.Join(".state", tc.ledgers, "runs.jsonl"), ledger)
			write(t, dir, filepath.Join("call_history", tc.manifest+".manifest.json"),
				`{"file":"`+tc.manifest+`.csv","rows_replaced_forget":1}`)
			s, err := NewCSV(CSVOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			err = s.CheckSuppression(ctx)
			if !errors.Is(err, ErrSuppressionLost) {
				t.Fatalf("CheckSuppression: %v; want %v", err, ErrSuppressionLost)
			}
			if !strings.Contains(err.Error(), tc.manifest+".csv") {
				t.Errorf("message %q does not name the data file", err)
			}
		})
	}
}

// TestSuppressionCheckReadsEachManifestOnce: in a CSV folder that never
// used forget, the lost-state check reads each data file's manifest once,
// at the first check after it was written, not at each of a run's two
// checks nor at every later run (review 6, R6-8), each run a process of
// its own (the mark is in .state). Then the state folder restored from a
// copy taken before a forget (R9-1): the mark there vouches for the
// manifests as they were, and the one forget rewrote since is read and
// refuses the run, naming its data file. Counted reads of real files.
func TestSuppressionCheckReadsEachManifestOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	ep := record.Builtin()[0]
	conv := &record.Converter{Endpoint: &ep}
	row := func(id int) record.Row {
		r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-01 10:00:00","to_name":"n%d","timezone":"+0100"}`, id, id)))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	const runs = 4
	for run := 1; run <= runs; run++ {
		s, err := NewCSV(CSVOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		// A run's two checks, at its start and under the PBX's lock:
		// the file the run before wrote is read at the first only.
		for check, want := range []int64{min(int64(run-1), 1), 0} {
			before := s.manifestReads.Load()
			if err := s.CheckSuppression(ctx); err != nil {
				t.Fatalf("run %d, check %d: %v", run, check+1, err)
			}
			if got := s.manifestReads.Load() - before; got != want {
				t.Fatalf("run %d, check %d: %d manifests read, want %d (%d data files)", run, check+1, got, want, run-1)
			}
		}
		id := fmt.Sprintf("r%d", run)
		b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: id, Endpoint: &ep, StateKey: ep.Name, Seq: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Write(ctx, []record.Row{row(run)}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, []byte(fmt.Sprintf(`{"cursor":%d}`, run)), exporter.Progress{}); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if err := s.FinishRun(ctx, &exporter.RunResult{ID: id, Mode: "once", PBX: "p", Started: now, Ended: now, Status: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.manifest.json")); len(files) != runs {
		t.Fatalf("%d manifests, want %d", len(files), runs)
	}
	s, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckSuppression(ctx); err != nil {
		t.Fatal(err)
	}
	// The nightly copy of .state, then forget erases call 2's name in
	// its file (EditRows as forget edits: the manifest counts it).
	backup := filepath.Join(t.TempDir(), "state")
	if err := os.CopyFS(backup, os.DirFS(filepath.Join(dir, ".state"))); err != nil {
		t.Fatal(err)
	}
	res, err := s.EditRows(ctx, "p", &ep, "forget", func(header, cells []string) (RowEdit, error) {
		i, j := slices.Index(header, "id"), slices.Index(header, "to_name")
		if cells[i] != "2" {
			return RowEdit{}, nil
		}
		c := slices.Clone(cells)
		c[j] = "erased"
		return RowEdit{Cells: c}, nil
	})
	if err != nil || res.Replaced != 1 {
		t.Fatalf("forget's edit: %+v, %v", res, err)
	}
	if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, ".state"), os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	s, err = NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	err = s.CheckSuppression(ctx)
	if !errors.Is(err, ErrSuppressionLost) {
		t.Fatalf("state restored from before the forget: %v; want %v", err, ErrSuppressionLost)
	}
	if !strings.Contains(err.Error(), filepath.Join("call_history", "p_r2_0001.csv")) {
		t.Errorf("the message names no data file (want call 2's, p_r2_0001.csv): %v", err)
	}
	if got := s.manifestReads.Load(); got != 1 {
		t.Errorf("%d manifests read, want 1: the one forget rewrote", got)
	}
}

// TestCSVSuppressionStateReadOncePerRun: a run asks for the folder's
// suppression list five times (tagged and checked at its start, again
// under the PBX's lock, then loaded) and reads the run ledgers at each
// check: each file is read once while it stays the same version, and a
// worker's next run reads again only what changed (its ledger, appended
// by the run's end). A forget by another process (the list replaced, its
// ledger line appended) is read at the next look, and so is an older
// list written in place over the file: the run then refuses. Reads of
// the real files counted.
func TestCSVSuppressionStateReadOncePerRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	other, err := NewCSV(CSVOptions{Dir: dir}) // forget's process
	if err != nil {
		t.Fatal(err)
	}
	forget := func(number string) { forgetRun(t, rawList{store: other, csv: other}, number, true) }
	forget("+393471100028")
	older, err := os.ReadFile(other.suppressionFile())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewCSV(CSVOptions{Dir: dir}) // the worker
	if err != nil {
		t.Fatal(err)
	}
	run := func(want int, wantReads [2]int64) {
		t.Helper()
		for range 2 { // at the run's start, then under the PBX's lock
			if _, err := s.TagSuppression(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.CheckSuppression(ctx); err != nil {
				t.Fatal(err)
			}
		}
		l, err := s.Suppression(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := l.added(); n != want {
			t.Fatalf("the list loaded holds %d numbers, want %d", n, want)
		}
		if got := [2]int64{s.listReads.Load(), s.ledgerReads.Load()}; got != wantReads {
			t.Fatalf("reads of the list and of the ledgers so far: %v, want %v", got, wantReads)
		}
		now := time.Now()
		if err := s.FinishRun(ctx, &exporter.RunResult{ID: exporter.NewRunID(now), Mode: "run", PBX: "pbx-1", Started: now, Ended: now, Status: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	run(1, [2]int64{1, 1})
	run(1, [2]int64{1, 2}) // the ledger the first run appended to
	forget("+393471100046")
	run(2, [2]int64{2, 3})
	// The older list written over the file in place (same file, other
	// content): read again, and refused.
	if err := os.WriteFile(s.suppressionFile(), older, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckSuppression(ctx); !errors.Is(err, ErrSuppressionLost) {
		t.Fatalf("an older list written in place: %v; want %v", err, ErrSuppressionLost)
	}
	if got := s.listReads.Load(); got != 3 {
		t.Fatalf("%d reads of the list, want 3", got)
	}
}

// TestSuppressionCheckStateRestoredBetweenForgets: a CSV folder's state
// folder restored from a copy taken after forget A and before forget B,
// the data files kept (attack 6, F1): the list (A) and the run ledger
// (A's forget) agree, but the manifest B's forget rewrote says the list
// held two numbers then, and the check refuses, naming that data file,
// having read that manifest alone (R6-8), and writes nothing. The list
// restored from after B passes, reading none (its mark has the file); so does the loss accepted as the
// message says, and a forget after it. Real files, forget's steps as
// cmd's forget takes them (the list, the edit, the ledger's entry).
func TestSuppressionCheckStateRestoredBetweenForgets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	ep := record.Builtin()[0]
	conv := &record.Converter{Endpoint: &ep}
	open := func() *CSV {
		t.Helper()
		s, err := NewCSV(CSVOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	var rows []record.Row
	for id := 1; id <= 3; id++ {
		r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-01 10:00:00","to_name":"n%d","timezone":"+0100"}`, id, id)))
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, []byte(`{"cursor":3}`), exporter.Progress{}); err != nil {
		t.Fatal(err)
	}
	forget := func(s *CSV, number, id string) {
		t.Helper()
		started := time.Now().UTC()
		f, _ := NewForgotten(number)
		if _, added, err := s.Suppress(ctx, f, nil); err != nil || !added {
			t.Fatalf("Suppress(%s): added %v, %v", number, added, err)
		}
		res, err := s.EditRows(ctx, "p", &ep, "forget", func(header, cells []string) (RowEdit, error) {
			if cells[slices.Index(header, "id")] != id {
				return RowEdit{}, nil
			}
			c := slices.Clone(cells)
			c[slices.Index(header, "to_name")] = "erased"
			return RowEdit{Cells: c}, nil
		})
		if err != nil || res.Replaced != 1 {
			t.Fatalf("forget's edit of call %s: %+v, %v", id, res, err)
		}
		e := exporter.EndpointResult{Endpoint: "forget", Rows: 1, Notes: []string{"call_history: 1 row(s) erased", NoteSuppressed}}
		if err := s.FinishRun(ctx, &exporter.RunResult{ID: exporter.NewRunID(started), Mode: "forget", PBX: "p", Started: started, Ended: time.Now().UTC(), Status: "ok", Endpoints: []exporter.EndpointResult{e}}); err != nil {
			t.Fatal(err)
		}
		if err := s.CheckSuppression(ctx); err != nil {
			t.Fatalf("after the forget of call %s: %v", id, err)
		}
	}
	copyState := func(to string) {
		t.Helper()
		if err := os.CopyFS(to, os.DirFS(filepath.Join(dir, ".state"))); err != nil {
			t.Fatal(err)
		}
	}
	restore := func(from string) {
		t.Helper()
		if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(filepath.Join(dir, ".state"), os.DirFS(from)); err != nil {
			t.Fatal(err)
		}
	}
	forget(s, "+393471100028", "1")
	afterA := filepath.Join(t.TempDir(), "state")
	copyState(afterA)
	forget(s, "+393471100037", "2")
	afterB := filepath.Join(t.TempDir(), "state")
	copyState(afterB)

	restore(afterA)
	s = open()
	mark, _ := os.ReadFile(s.checkedFile())
	err = s.CheckSuppression(ctx)
	if !errors.Is(err, ErrSuppressionLost) {
		t.Fatalf("state restored from between the forgets: %v; want %v", err, ErrSuppressionLost)
	}
	for _, want := range []string{filepath.Join("call_history", "p_r1_0001.csv"), forgetStampKey, "held 2 number(s)", "holds 1 number(s)", "copy taken after"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the message does not say %q: %v", want, err)
		}
	}
	if got := s.manifestReads.Load(); got != 1 {
		t.Errorf("%d manifests read, want 1: the one forget B rewrote", got)
	}
	if err := s.CheckSuppression(ctx); !errors.Is(err, ErrSuppressionLost) {
		t.Fatalf("second check: %v; want %v", err, ErrSuppressionLost)
	}
	if got, _ := os.ReadFile(s.checkedFile()); len(mark) == 0 || !bytes.Equal(got, mark) {
		t.Errorf("the refused checks changed the mark (%d bytes before)", len(mark))
	}

	restore(afterB)
	s = open()
	for i := range 2 {
		if err := s.CheckSuppression(ctx); err != nil {
			t.Fatalf("the list restored from after forget B: %v", err)
		}
		// The mark of the copy holds the file as B left it.
		if got := s.manifestReads.Load(); got != 0 {
			t.Errorf("check %d: %d manifests read, want 0 (the mark tells)", i+1, got)
		}
	}

	restore(afterA)
	s = open()
	file := s.suppressionFile()
	accept(t, rawList{csv: s, store: s,
		read: func() string { b, _ := os.ReadFile(file); return string(b) },
		write: func(v string) {
			if err := os.WriteFile(file, []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}}, s.CheckSuppression(ctx))
	s = open()
	if err := s.CheckSuppression(ctx); err != nil {
		t.Fatalf("erasures undone accepted: %v", err)
	}
	forget(s, "+393471100046", "3")
}
