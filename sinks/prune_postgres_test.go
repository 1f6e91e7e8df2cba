package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// rowsText is every row of a table for pbx, as text, sorted.
func rowsText(t *testing.T, pool *pgxpool.Pool, table, pbx string) []string {
	t.Helper()
	rows, err := pgx.CollectRows(must(pool.Query(context.Background(),
		"SELECT t::text FROM "+pgx.Identifier{table}.Sanitize()+" t WHERE pbx = $1", pbx)), pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rows)
	return rows
}

// TestPostgresPrune: the simulator's calls (with call groups) exported,
// then pruned at a cut in their middle, in batches of 97 rows: exactly
// the calls the simulator started before the cut are gone, every other
// row is as it was, byte for byte; the stored group tables equal a
// rebuild from the legs left; the quarantined record of an old call goes,
// a newer one's stays; snapshots, states and the ledger are untouched;
// a second prune finds nothing.
func TestPostgresPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, pool := newPostgres(t)
	f := simtest.New(t, pbxsim.Options{Calls: 1200, CallGap: 10 * time.Minute,
		GroupFields: pbxsim.GroupFields{GroupIDs: true, UniqueID: true}})
	if err := newExporter(t, f, p).Run(ctx, "r1", "once", defaultEndpoints()).Err(); err != nil {
		t.Fatal(err)
	}
	pbx := f.URL.Host
	n := f.Sim.CallCount()
	cut := f.Sim.Call(n / 2).Start.Add(time.Second)
	var keep []int64
	for id := int64(1); id <= n; id++ {
		if !f.Sim.Call(id).Start.Before(cut) {
			keep = append(keep, id)
		}
	}
	if len(keep) == 0 || int64(len(keep)) == n {
		t.Fatalf("the cut keeps %d calls of %d: the test needs some on each side", len(keep), n)
	}
	// Quarantined records (as a refused row leaves them): an old call's and a newer one's.
	oldID, newID := int64(1), keep[0]
	for _, id := range []int64{oldID, newID} {
		if _, err := pool.Exec(ctx, `INSERT INTO export_quarantine (pbx, endpoint, key, run_id, field, error, record)
VALUES ($1, 'call_history', $2, 'r1', 'cost', 'refused', $3)`, pbx, fmt.Sprint(-id), string(f.Sim.CallJSON(id))); err != nil {
			t.Fatal(err)
		}
	}
	untouched := map[string][]string{}
	for _, tb := range []string{"colleagues", "contacts", "export_state", "call_groups"} {
		untouched[tb] = rowsText(t, pool, tb, pbx)
	}
	ledger := rowsText(t, pool, "export_runs", pbx)
	kept := map[int64]string{}
	for _, id := range keep {
		var s string
		if err := pool.QueryRow(ctx, "SELECT t::text FROM call_history t WHERE pbx = $1 AND id = $2", pbx, id).Scan(&s); err != nil {
			t.Fatalf("call %d before the prune: %v", id, err)
		}
		kept[id] = s
	}
	var groupsBefore int64
	pool.QueryRow(ctx, "SELECT count(*) FROM group_calls_stored WHERE pbx = $1", pbx).Scan(&groupsBefore)

	got, err := p.Prune(ctx, pbx, record.Builtin(), cut, PruneOptions{Batch: 97})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pruned: %+v", got)
	counts := map[string]int64{}
	for _, c := range got {
		counts[c.Table] += c.Rows
	}
	if want := n - int64(len(keep)); counts["call_history"] != want {
		t.Fatalf("call_history: %d rows pruned, the simulator started %d calls before the cut", counts["call_history"], want)
	}
	if counts["export_quarantine"] != 1 {
		t.Fatalf("export_quarantine: %d rows pruned, want the old call's 1", counts["export_quarantine"])
	}
	var left, old int64
	pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE start_time < $2) FROM call_history WHERE pbx = $1", pbx, cut).Scan(&left, &old)
	if left != int64(len(keep)) || old != 0 {
		t.Fatalf("call_history holds %d rows (%d before the cut), want the %d the simulator started after it", left, old, len(keep))
	}
	for _, id := range keep {
		var s string
		if err := pool.QueryRow(ctx, "SELECT t::text FROM call_history t WHERE pbx = $1 AND id = $2", pbx, id).Scan(&s); err != nil || s != kept[id] {
			t.Fatalf("call %d after the prune: %v, changed: %v", id, err, s != kept[id])
		}
	}
	var qkeys []string
	qkeys, _ = pgx.CollectRows(must(pool.Query(ctx, "SELECT key FROM export_quarantine WHERE pbx = $1", pbx)), pgx.RowTo[string])
	if fmt.Sprint(qkeys) != fmt.Sprint([]string{fmt.Sprint(-newID)}) {
		t.Fatalf("quarantine holds %v, want the newer call's record alone", qkeys)
	}
	for tb, rows := range untouched {
		if now := rowsText(t, pool, tb, pbx); fmt.Sprint(now) != fmt.Sprint(rows) {
			t.Fatalf("%s changed", tb)
		}
	}
	if now := rowsText(t, pool, "export_runs", pbx); fmt.Sprint(now) != fmt.Sprint(ledger) {
		t.Fatal("the run ledger changed")
	}
	// The stored group tables, kept by the triggers, equal a rebuild.
	stored := rowsText(t, pool, "group_calls_stored", pbx)
	members := rowsText(t, pool, "group_number_members", pbx)
	intervals := rowsText(t, pool, "group_intervals_stored", pbx)
	if len(stored) == 0 || int64(len(stored)) >= groupsBefore {
		t.Fatalf("group_calls_stored: %d rows left of %d: the test needs group calls on each side", len(stored), groupsBefore)
	}
	if counts["group_calls_stored"] != groupsBefore-int64(len(stored)) {
		t.Fatalf("group_calls_stored: %d counted pruned, %d gone", counts["group_calls_stored"], groupsBefore-int64(len(stored)))
	}
	if _, err := pool.Exec(ctx, "SELECT group_calls_rebuild($1)", pbx); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rowsText(t, pool, "group_calls_stored", pbx)) != fmt.Sprint(stored) ||
		fmt.Sprint(rowsText(t, pool, "group_number_members", pbx)) != fmt.Sprint(members) ||
		fmt.Sprint(rowsText(t, pool, "group_intervals_stored", pbx)) != fmt.Sprint(intervals) {
		t.Fatal("the stored group tables after the prune differ from a rebuild from the legs left")
	}
	again, err := p.Prune(ctx, pbx, record.Builtin(), cut, PruneOptions{Batch: 97})
	if err != nil || again.Total() != 0 {
		t.Fatalf("a second prune: %+v, %v; want nothing", again, err)
	}
}

// failingRemover removes from a real store until told to fail.
type failingRemover struct {
	store  *recstore.Dir
	failAt int // the call that fails (1-based), 0 never
	calls  int
}

func (r *failingRemover) Remove(ctx context.Context, name string) error {
	if r.calls++; r.calls == r.failAt {
		return errors.New("the store refused (test)")
	}
	return r.store.Remove(ctx, name)
}

func (r *failingRemover) Present(ctx context.Context, names []string) (map[string]bool, error) {
	return r.store.Present(ctx, names)
}

func (r *failingRemover) Stat(ctx context.Context, name string) (recstore.Object, error) {
	return r.store.Stat(ctx, name)
}

// TestPostgresPruneRecordings: the recordings' rows of old calls go with
// their stored files, the files first: a store failing in a batch leaves
// that batch's rows (a later prune removes them), never a row gone whose
// file is kept. Without a store, the rows are kept.
func TestPostgresPruneRecordings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, pool := newPostgres(t)
	root := t.TempDir()
	store, err := recstore.OpenDir(root, recstore.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	names := map[string]string{} // recording → object
	for i := 0; i < 10; i++ {
		start := cut.Add(time.Duration(i-6) * 24 * time.Hour) // 6 old, 4 newer
		id := fmt.Sprintf("rec%d", i)
		name, _ := recstore.Name("p", start, id)
		if _, err := store.Put(ctx, name, bytes.NewReader([]byte("RIFF")), recstore.Want{}); err != nil {
			t.Fatal(err)
		}
		names[id] = name
		if _, err := pool.Exec(ctx, `INSERT INTO recordings (pbx, recording, start_time, object, status, raw, run_id)
VALUES ('p', $1, $2, $3, 'copied', '{}', 'r1')`, id, start, name); err != nil {
			t.Fatal(err)
		}
	}
	stored := func(id string) bool {
		_, err := os.Stat(filepath.Join(root, filepath.FromSlash(names[id])))
		return err == nil
	}
	rows := func() []string {
		ids, _ := pgx.CollectRows(must(pool.Query(ctx, "SELECT recording FROM recordings ORDER BY recording")), pgx.RowTo[string])
		return ids
	}
	eps := record.Builtin()
	if got, err := p.Prune(ctx, "p", eps, cut, PruneOptions{}); err != nil || len(rows()) != 10 || got.Total() != 0 {
		t.Fatalf("without a store: %+v, %v, rows %v; want every row kept", got, err, rows())
	}
	// Batches of 4: the store fails at the 6th file, in the second batch.
	_, err = p.Prune(ctx, "p", eps, cut, PruneOptions{Batch: 4, Recordings: &failingRemover{store: store, failAt: 6}})
	if err == nil {
		t.Fatal("the store's failure was not reported")
	}
	for id := range names {
		// A file removed in the failed batch keeps its row: the next
		// prune removes both (removing twice is no error).
		if stored(id) && !slices.Contains(rows(), id) {
			t.Fatalf("recording %s: its row is gone and its file kept", id)
		}
	}
	if len(rows()) != 6 {
		t.Fatalf("rows %v after a failure in the second batch: want the first batch's 4 gone", rows())
	}
	got, err := p.Prune(ctx, "p", eps, cut, PruneOptions{Batch: 4, Recordings: store})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"rec6", "rec7", "rec8", "rec9"}; fmt.Sprint(rows()) != fmt.Sprint(want) {
		t.Fatalf("rows %v, want %v", rows(), want)
	}
	for id := range names {
		if stored(id) != slices.Contains(rows(), id) {
			t.Fatalf("recording %s: stored %v, row %v", id, stored(id), slices.Contains(rows(), id))
		}
	}
	t.Logf("pruned: %+v", got)
}

// TestPostgresPruneQuarantinedRecording: a recording whose row PostgreSQL
// refused may have had its file stored: pruned, its quarantined record
// goes with the file it would be stored under (the file first), a newer
// one's record and file stay; without a store both are kept (review
// 30-retention F4: never a record gone with its file kept).
func TestPostgresPruneQuarantinedRecording(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, pool := newPostgres(t)
	root := t.TempDir()
	store, err := recstore.OpenDir(root, recstore.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	names := map[string]string{}
	for id, start := range map[string]time.Time{"qold": cut.Add(-48 * time.Hour), "qnew": cut.Add(time.Hour)} {
		name, _ := recstore.Name("p", start.UTC(), id)
		if _, err := store.Put(ctx, name, bytes.NewReader([]byte("RIFF")), recstore.Want{}); err != nil {
			t.Fatal(err)
		}
		names[id] = name
		raw := fmt.Sprintf(`{"id":%q,"file_name":"a.wav","url":"/x","time":"%d","length":"5"}`, id, start.Unix())
		if _, err := pool.Exec(ctx, `INSERT INTO export_quarantine (pbx, endpoint, key, run_id, field, error, record)
VALUES ('p', 'recordings', $1, 'r1', 'size', 'refused', $2)`, id, raw); err != nil {
			t.Fatal(err)
		}
	}
	stored := func(id string) bool {
		_, err := os.Stat(filepath.Join(root, filepath.FromSlash(names[id])))
		return err == nil
	}
	quarantined := func() string {
		k, _ := pgx.CollectRows(must(pool.Query(ctx, "SELECT key FROM export_quarantine ORDER BY key")), pgx.RowTo[string])
		return fmt.Sprint(k)
	}
	eps := record.Builtin()
	if _, err := p.Prune(ctx, "p", eps, cut, PruneOptions{}); err != nil || quarantined() != "[qnew qold]" || !stored("qold") {
		t.Fatalf("without a store: %v, quarantine %s, old file stored %v: want both kept", err, quarantined(), stored("qold"))
	}
	if _, err := p.Prune(ctx, "p", eps, cut, PruneOptions{Recordings: &failingRemover{store: store, failAt: 1}}); err == nil || quarantined() != "[qnew qold]" {
		t.Fatalf("the store failing: %v, quarantine %s: want an error and the record kept", err, quarantined())
	}
	got, err := p.Prune(ctx, "p", eps, cut, PruneOptions{Recordings: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pruned: %+v", got)
	if quarantined() != "[qnew]" || stored("qold") || !stored("qnew") {
		t.Fatalf("quarantine %s, old file stored %v, new %v: want the old record and its file gone, the new ones kept", quarantined(), stored("qold"), stored("qnew"))
	}
}
