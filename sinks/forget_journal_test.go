package sinks

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// journaled is a sink with a forget journal.
type journaled interface {
	ForgetJournal(ctx context.Context) ([]ForgetBegun, error)
	BeginForget(ctx context.Context, b ForgetBegun) error
	RecordForget(ctx context.Context, r *exporter.RunResult, b ForgetBegun, next *ForgetBegun) error
	ForgetFind(ctx context.Context, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error)
}

// TestForgetJournal, on both sinks: BeginForget keeps the earliest entry
// of an erasure (the attempt that found the most) beside other numbers'
// and the same number's searched otherwise (another Search); an entry of
// an earlier version (no Search) is completed by any search. RecordForget
// writes the ledger entry and drops the entries its forget completes, not
// the same number's searched otherwise (on PostgreSQL in one transaction,
// the row gone with the last entry); a failed one keeps next, under its
// own id, for what it left, and the forget completing that drops it; on
// CSV an entry whose id is in the ledger already (RecordForget killed
// between the two) is left out. The journal holds no number: forget's
// search finds nothing in it. Fails without beginForget's earliest kept
// (seen: the later attempt's 40 rows), and with entries matched by number
// alone (review 6, R6-3: the other search's entry dropped, or never
// written).
func TestForgetJournal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, k := testForgotten(t, "+393528510123")
	tagA, tagB := ForgetTag(k.Number("393528510123")), ForgetTag(k.Number("393528510999"))
	if strings.ContainsAny(tagA, "0123456789") || tagA == tagB || strings.Contains(tagA, k.Number("393528510123")) {
		t.Fatalf("tags %q, %q: want letters only, one per number", tagA, tagB)
	}
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	const intl, written = "--number with + or 00", "--number without + or 00"
	first := ForgetBegun{ID: exporter.NewRunID(t0), PBX: "x", Started: t0, Tag: tagA, Search: intl, Rows: 2330, Added: true}
	later := ForgetBegun{ID: exporter.NewRunID(t0.Add(time.Minute)), PBX: "y", Started: t0.Add(time.Minute), Tag: tagA, Search: intl, Rows: 40}
	other := ForgetBegun{ID: exporter.NewRunID(t0.Add(2 * time.Minute)), PBX: "x", Started: t0.Add(2 * time.Minute), Tag: tagB, Rows: 7}
	otherSearch := ForgetBegun{ID: exporter.NewRunID(t0.Add(3 * time.Minute)), PBX: "x", Started: t0.Add(3 * time.Minute), Tag: tagA, Search: written, Rows: 12}
	next := ForgetBegun{ID: exporter.NewRunID(t0.Add(4 * time.Minute)), PBX: "x", Started: t0, Tag: tagA, Search: intl, Rows: 3}
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (journaled, func(id string) bool)
	}{
		{"postgres", func(t *testing.T) (journaled, func(string) bool) {
			p, pool := newPostgres(t)
			return p, func(id string) bool {
				var n int
				if err := pool.QueryRow(ctx, "SELECT count(*) FROM export_runs WHERE run_id = $1", id).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n == 1
			}
		}},
		{"csv", func(t *testing.T) (journaled, func(string) bool) {
			s, err := NewCSV(CSVOptions{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			return s, func(id string) bool {
				has, err := s.ledgerHas("x", id)
				if err != nil {
					t.Fatal(err)
				}
				return has
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, inLedger := tc.open(t)
			read := func() []ForgetBegun {
				t.Helper()
				j, err := s.ForgetJournal(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for i := range j {
					j[i].Started = j[i].Started.UTC()
				}
				return j
			}
			if j := read(); len(j) != 0 {
				t.Fatalf("a new sink's journal: %v", j)
			}
			for _, b := range []ForgetBegun{first, later, other, otherSearch} {
				if err := s.BeginForget(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			if j := read(); !slices.EqualFunc(j, []ForgetBegun{first, other, otherSearch}, ForgetBegun.same) {
				t.Fatalf("journal %+v, want the number's first attempt (the later one, of another PBX, is the same erasure), the other number's and the number's searched otherwise", j)
			}
			found, err := s.ForgetFind(ctx, f, nil)
			if err != nil || found.Rows() != 0 {
				t.Errorf("forget's search found the number in the journal: %+v, %v", found, err)
			}
			// later completes first, and fails: first's counts are in the
			// ledger, failed; next stays for what it left.
			run := &exporter.RunResult{ID: first.ID, Mode: "forget", PBX: "x", Started: first.Started, Ended: t0.Add(time.Hour), Status: "failed",
				Endpoints: []exporter.EndpointResult{{Endpoint: "forget", Rows: 2327}}}
			if err := s.RecordForget(ctx, run, later, &next); err != nil {
				t.Fatal(err)
			}
			if j := read(); !slices.EqualFunc(j, []ForgetBegun{other, otherSearch, next}, ForgetBegun.same) || !inLedger(first.ID) {
				t.Fatalf("after a failed forget's ledger entry: journal %+v (want the other number's, the number's searched otherwise, and what the failed one left), in the ledger: %v", j, inLedger(first.ID))
			}
			run = &exporter.RunResult{ID: next.ID, Mode: "forget", PBX: "x", Started: next.Started, Ended: t0.Add(2 * time.Hour), Status: "ok",
				Endpoints: []exporter.EndpointResult{{Endpoint: "forget", Rows: 3}}}
			if err := s.RecordForget(ctx, run, first, nil); err != nil {
				t.Fatal(err)
			}
			if j := read(); !slices.EqualFunc(j, []ForgetBegun{other, otherSearch}, ForgetBegun.same) || !inLedger(next.ID) {
				t.Fatalf("after the completing ledger entry: journal %+v (want the other number's and the number's searched otherwise), in the ledger: %v", j, inLedger(next.ID))
			}
			// An entry of an earlier version, without Search: any search
			// of its number completes it.
			old := ForgetBegun{ID: exporter.NewRunID(t0.Add(5 * time.Minute)), PBX: "x", Started: t0.Add(5 * time.Minute), Tag: tagB, Rows: 7}
			if !old.SameErasure(ForgetBegun{Tag: tagB, Search: intl}) || !old.SameErasure(ForgetBegun{Tag: tagB, Search: written}) || old.SameErasure(first) {
				t.Error("an entry without Search: want it completed by any search of its number, and only of its number")
			}
			run = &exporter.RunResult{ID: otherSearch.ID, Mode: "forget", PBX: "x", Started: otherSearch.Started, Ended: t0.Add(3 * time.Hour), Status: "ok",
				Endpoints: []exporter.EndpointResult{{Endpoint: "forget", Rows: 12}}}
			if err := s.RecordForget(ctx, run, otherSearch, nil); err != nil {
				t.Fatal(err)
			}
			if j := read(); !slices.EqualFunc(j, []ForgetBegun{other}, ForgetBegun.same) {
				t.Fatalf("after the ledger entry of the number searched otherwise: journal %+v, want the other number's only", j)
			}
			if csv, ok := s.(*CSV); ok {
				// killed between the ledger entry and the journal's rewrite
				run.ID = other.ID
				if err := csv.FinishRun(ctx, run); err != nil {
					t.Fatal(err)
				}
				if j := read(); len(j) != 0 {
					t.Errorf("an entry recorded in the ledger is still read: %+v", j)
				}
				return
			}
			run.ID = other.ID
			if err := s.RecordForget(ctx, run, ForgetBegun{Tag: tagB, Search: intl}, nil); err != nil {
				t.Fatal(err)
			}
			if j := read(); len(j) != 0 {
				t.Errorf("journal after both recorded: %+v", j)
			}
		})
	}
}

// TestSameErasureCovers: a forget completes an interrupted erasure of the
// number when its search covers that one's (the same --number form,
// --national-forms if it had it, a superset of its keys), and only then
// (review 8, R8-2: after a key change every forget searched "K1 K2" and
// could never complete the entry searched under K1). Fails with the exact
// comparison of before.
func TestSameErasureCovers(t *testing.T) {
	t.Parallel()
	const intl, bare = "--number with + or 00 (national forms in clear too)", "--number without + or 00 (as written only)"
	for _, tc := range []struct {
		name, j, b string
		want       bool
	}{
		{"same", intl + ", pseudonym key(s) K1", intl + ", pseudonym key(s) K1", true},
		{"a key more", intl + ", pseudonym key(s) K1", intl + ", pseudonym key(s) K1 K2", true},
		{"a key fewer", intl + ", pseudonym key(s) K1 K2", intl + ", pseudonym key(s) K2", false},
		{"another key", intl + ", pseudonym key(s) K1", intl + ", pseudonym key(s) K2", false},
		{"--national-forms added", intl + ", pseudonym key(s) K1", intl + ", --national-forms, pseudonym key(s) K1 K2", true},
		{"--national-forms dropped", intl + ", --national-forms, pseudonym key(s) K1", intl + ", pseudonym key(s) K1 K2", false},
		{"another form", intl + ", pseudonym key(s) K1", bare + ", pseudonym key(s) K1", false},
		{"keys added to none", intl + ", no pseudonym key", intl + ", pseudonym key(s) K1", true},
		{"of an earlier version", "", bare + ", no pseudonym key", true},
	} {
		j := ForgetBegun{Tag: "t", Search: tc.j}
		if got := j.SameErasure(ForgetBegun{Tag: "t", Search: tc.b}); got != tc.want {
			t.Errorf("%s: entry searching %q completed by a forget searching %q: %v, want %v", tc.name, tc.j, tc.b, got, tc.want)
		}
		if j.SameErasure(ForgetBegun{Tag: "u", Search: tc.b}) {
			t.Errorf("%s: completed by a forget of another number", tc.name)
		}
	}
}

// TestBeginForgetWidened: an entry of the id of one in the journal
// replaces it (the earlier attempt's, widened to a wider search: review
// 10, R10-3); any other entry the new one completes keeps the journal as
// it is. Fails with the widened entry dropped.
func TestBeginForgetWidened(t *testing.T) {
	t.Parallel()
	j := ForgetBegun{ID: "r1", Tag: "t", Search: "--number with + or 00 (national forms in clear too), pseudonym key(s) a", Rows: 5}
	other := ForgetBegun{ID: "r2", Tag: "u", Search: j.Search, Rows: 1}
	w := j
	w.Search, w.Rows = j.Search+" b", 9
	if got := beginForget([]ForgetBegun{j, other}, w); !slices.EqualFunc(got, []ForgetBegun{w, other}, ForgetBegun.same) {
		t.Errorf("widened: journal %+v, want %+v", got, []ForgetBegun{w, other})
	}
	later := w
	later.ID = "r3"
	if got := beginForget([]ForgetBegun{j, other}, later); !slices.EqualFunc(got, []ForgetBegun{j, other}, ForgetBegun.same) {
		t.Errorf("a later attempt: journal %+v, want it kept", got)
	}
}
