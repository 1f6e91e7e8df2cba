package notify

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/notify/notifytest"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/sinks"
)

var rome = func() *time.Location {
	l, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		panic(err)
	}
	return l
}()

// at is a time on the 6th of December 2026 (or later days) in Rome.
func at(day, hour, minute int) time.Time {
	return time.Date(2026, 12, day, hour, minute, 0, 0, rome)
}

func failed(t time.Time, code int, endpoints ...string) Outcome {
	return Outcome{RunID: "run-" + t.Format("0102T1504"), At: t, ExitCode: code, Meaning: "meaning of " + string(rune('0'+code)),
		Advice: "what to do", Endpoints: endpoints, Error: "error at " + t.String()}
}

func succeeded(t time.Time) Outcome {
	return Outcome{RunID: "run-" + t.Format("0102T1504"), At: t, OK: true}
}

// process is a new process's tracker (no memory of its own) over the
// stores, sending to the receiver.
func process(rc *notifytest.Receiver, stores ...StateStore) *Tracker {
	tg, err := ParseTarget(rc.Server.URL + "/hook")
	if err != nil {
		panic(err)
	}
	return &Tracker{Notifier: &Notifier{Targets: []*Target{tg}}, PBX: "acme", Stores: stores, Zone: rome}
}

// kinds reads the kinds of the messages the receiver got.
func kinds(t *testing.T, rc *notifytest.Receiver) []string {
	t.Helper()
	var ks []string
	for _, r := range rc.Requests() {
		var g Generic
		if err := json.Unmarshal(r.Body, &g); err != nil {
			t.Fatal(err)
		}
		k := string(g.Kind)
		if g.Failure != nil && g.Failure.Reminder {
			k += " (reminder)"
		}
		ks = append(ks, k)
	}
	return ks
}

func wantKinds(t *testing.T, rc *notifytest.Receiver, want ...string) {
	t.Helper()
	got := kinds(t, rc)
	if len(got) != len(want) {
		t.Fatalf("the receiver got %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("the receiver got %v, want %v", got, want)
		}
	}
}

// Each run is a new process (run --once under an outside scheduler): only
// the state file remembers.
func TestFailureSentOnceThenDailyThenRecovered(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewReceiver(t)
	file := &FileState{Path: filepath.Join(t.TempDir(), "wildix-token.json.notify")}
	run := func(o Outcome) { process(rc, file).RunEnded(context.Background(), o) }

	run(succeeded(at(6, 1, 0)))
	wantKinds(t, rc)
	run(failed(at(6, 2, 0), 3))
	wantKinds(t, rc, "failure")
	for h := 3; h <= 7; h++ {
		run(failed(at(6, h, 0), 3))
	}
	wantKinds(t, rc, "failure")
	run(failed(at(7, 2, 0), 3)) // the next day: one reminder
	run(failed(at(7, 3, 0), 3))
	wantKinds(t, rc, "failure", "failure (reminder)")
	run(succeeded(at(7, 4, 0)))
	run(succeeded(at(7, 5, 0)))
	wantKinds(t, rc, "failure", "failure (reminder)", "recovered")

	var rec Generic
	json.Unmarshal(rc.Requests()[2].Body, &rec)
	if rec.Recovery.FailedRuns != 8 || !rec.Recovery.FailingSince.Equal(at(6, 2, 0)) {
		t.Errorf("recovery %+v: want 8 failed runs since %v", rec.Recovery, at(6, 2, 0))
	}
	run(failed(at(7, 6, 0), 3)) // failing again after the recovery: sent
	wantKinds(t, rc, "failure", "failure (reminder)", "recovered", "failure")
}

func TestADifferentFailureIsSent(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewReceiver(t)
	file := &FileState{Path: filepath.Join(t.TempDir(), "state")}
	run := func(o Outcome) { process(rc, file).RunEnded(context.Background(), o) }
	run(failed(at(6, 2, 0), 3))
	run(failed(at(6, 3, 0), 6))
	run(failed(at(6, 4, 0), 1, "call_history"))
	run(failed(at(6, 5, 0), 1, "call_history"))
	run(failed(at(6, 6, 0), 1, "colleagues", "call_history"))
	wantKinds(t, rc, "failure", "failure", "failure", "failure")
}

// A delivery that got nowhere is tried again at the next run.
func TestUndeliveredFailureIsTriedAgain(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewReceiver(t, 404)
	file := &FileState{Path: filepath.Join(t.TempDir(), "state")}
	process(rc, file).RunEnded(context.Background(), failed(at(6, 2, 0), 3))
	process(rc, file).RunEnded(context.Background(), failed(at(6, 3, 0), 3))
	process(rc, file).RunEnded(context.Background(), failed(at(6, 4, 0), 3))
	if n := len(rc.Requests()); n != 2 {
		t.Errorf("the receiver got %d requests, want 2 (refused, then delivered)", n)
	}
}

// unreachableDB is a pool to a port nothing listens on: the database is
// down.
func unreachableDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/test?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func migrated(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	schema, pool := pgtest.Schema(t)
	if err := sinks.NewPostgres(pool, schema, nil).Migrate(context.Background(), record.Builtin()); err != nil {
		t.Fatal(err)
	}
	return schema, pool
}

func TestPostgresStateDedupsAcrossProcesses(t *testing.T) {
	t.Parallel()
	schema, pool := migrated(t)
	rc := notifytest.NewReceiver(t)
	pg := &PostgresState{Pool: pool, Schema: schema}
	for h := 2; h <= 7; h++ {
		process(rc, pg).RunEnded(context.Background(), failed(at(6, h, 0), 3))
	}
	process(rc, pg).RunEnded(context.Background(), succeeded(at(6, 8, 0)))
	wantKinds(t, rc, "failure", "recovered")
}

// The database holding the state is down: the local file keeps it; when
// the database is back, the newer state (the file's) wins.
func TestDatabaseDownFallsBackToTheLocalFile(t *testing.T) {
	t.Parallel()
	schema, pool := migrated(t)
	rc := notifytest.NewReceiver(t)
	down := &PostgresState{Pool: unreachableDB(t), Schema: schema}
	up := &PostgresState{Pool: pool, Schema: schema}
	file := &FileState{Path: filepath.Join(t.TempDir(), "fallback")}
	process(rc, up, file).RunEnded(context.Background(), succeeded(at(6, 1, 0)))
	for h := 2; h <= 7; h++ {
		process(rc, down, file).RunEnded(context.Background(), failed(at(6, h, 0), 4))
	}
	wantKinds(t, rc, "failure")
	process(rc, up, file).RunEnded(context.Background(), succeeded(at(6, 8, 0)))
	wantKinds(t, rc, "failure", "recovered")
	st, err := up.LoadState(context.Background(), "acme")
	if err != nil || st.Failing {
		t.Errorf("the database's state after the recovery: %+v, %v; want not failing", st, err)
	}
}

// With no store at all, each process sends: never silent.
func TestNoStateSendsRatherThanStaysSilent(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewReceiver(t)
	dir := t.TempDir()
	notAFile := &FileState{Path: dir} // a folder: unreadable as a file
	down := &PostgresState{Pool: unreachableDB(t), Schema: "wildix"}
	for h := 2; h <= 4; h++ {
		process(rc, down, notAFile).RunEnded(context.Background(), failed(at(6, h, 0), 4))
	}
	wantKinds(t, rc, "failure", "failure", "failure")

	// One process (the worker) remembers on its own.
	rc2 := notifytest.NewReceiver(t)
	w := process(rc2, down, notAFile)
	for h := 2; h <= 4; h++ {
		w.RunEnded(context.Background(), failed(at(6, h, 0), 4))
	}
	w.RunEnded(context.Background(), succeeded(at(6, 5, 0)))
	wantKinds(t, rc2, "failure", "recovered")
}

func TestFileStateKeepsEachPBX(t *testing.T) {
	t.Parallel()
	f := &FileState{Path: filepath.Join(t.TempDir(), "state")}
	ctx := context.Background()
	a, b := State{Failing: true, Signature: "exit 3: "}, State{SummaryDay: "2026-12-06"}
	if err := f.SaveState(ctx, "a", a); err != nil {
		t.Fatal(err)
	}
	if err := f.SaveState(ctx, "b", b); err != nil {
		t.Fatal(err)
	}
	gotA, _ := f.LoadState(ctx, "a")
	gotB, _ := f.LoadState(ctx, "b")
	if gotA.Signature != a.Signature || gotB.SummaryDay != b.SummaryDay {
		t.Errorf("got %+v and %+v", gotA, gotB)
	}
	fi, err := os.Stat(f.Path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, %v; want 0600", fi.Mode(), err)
	}
	os.WriteFile(f.Path, []byte("{not json"), 0o600)
	if _, err := f.LoadState(ctx, "a"); err == nil {
		t.Error("a corrupt state file was read as empty")
	}
}

func TestDailySummaryOncePerDay(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewReceiver(t)
	file := &FileState{Path: filepath.Join(t.TempDir(), "state")}
	var days []string
	build := func(_ context.Context, day time.Time) (Summary, error) {
		days = append(days, day.Format(time.DateOnly))
		return Summary{RunsOK: 1, Calls: &CallFigures{Calls: 10}}, nil
	}
	eight := Clock{8, 0}
	summary := func(now time.Time) *Message {
		return process(rc, file).Summary(context.Background(), now, eight, build)
	}
	if m := summary(at(6, 7, 59)); m != nil {
		t.Fatal("sent before 08:00")
	}
	if m := summary(at(6, 8, 0)); m == nil || m.Summary.Day != "2026-12-05" {
		t.Fatalf("at 08:00: %+v, want the summary of the 5th", m)
	}
	if m := summary(at(6, 9, 30)); m != nil {
		t.Fatal("sent twice on the 6th")
	}
	if m := summary(at(7, 2, 0)); m != nil {
		t.Fatal("sent on the 7th before 08:00")
	}
	if m := summary(at(7, 10, 0)); m == nil || m.Summary.Day != "2026-12-06" {
		t.Fatalf("first run after 08:00 on the 7th: %+v, want the summary of the 6th", m)
	}
	wantKinds(t, rc, "summary", "summary")
	if len(days) != 2 {
		t.Errorf("built %v, want two days", days)
	}
}

func TestSummaryCarriesTheUnresolvedFailure(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewReceiver(t)
	file := &FileState{Path: filepath.Join(t.TempDir(), "state")}
	process(rc, file).RunEnded(context.Background(), failed(at(6, 2, 0), 3))
	m := process(rc, file).Summary(context.Background(), at(6, 8, 0), Clock{8, 0}, func(context.Context, time.Time) (Summary, error) {
		return Summary{}, errors.New("the database is down")
	})
	if m == nil || m.Summary.Failing != "meaning of 3" {
		t.Fatalf("summary %+v, want it to say what still fails", m)
	}
}

func TestSummaryCountsYesterdaysRuns(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewReceiver(t)
	file := &FileState{Path: filepath.Join(t.TempDir(), "state")}
	ok := func(at time.Time, rows int64) Outcome {
		o := succeeded(at)
		o.Results = []EndpointOutcome{{Endpoint: "call_history", Rows: rows}, {Endpoint: "colleagues", Rows: 4}}
		return o
	}
	bad := failed(at(5, 3, 0), 1, "call_history")
	bad.Results = []EndpointOutcome{{Endpoint: "call_history", Failed: true}, {Endpoint: "colleagues", Rows: 4}}
	for _, o := range []Outcome{ok(at(4, 2, 0), 1000), ok(at(5, 0, 30), 10), bad, ok(at(5, 23, 59), 20), ok(at(6, 2, 0), 7)} {
		process(rc, file).RunEnded(context.Background(), o)
	}
	m := process(rc, file).Summary(context.Background(), at(6, 8, 0), Clock{8, 0}, func(context.Context, time.Time) (Summary, error) {
		return Summary{}, nil
	})
	if m == nil {
		t.Fatal("no summary")
	}
	s := m.Summary
	if s.Day != "2026-12-05" || s.RunsOK != 2 || s.RunsFailed != 1 {
		t.Errorf("summary %+v: want 2 ok and 1 failed on the 5th", s)
	}
	want := []EndpointDay{{"call_history", 30, 2, 1, 0}, {"colleagues", 12, 3, 0, 0}}
	if len(s.Endpoints) != 2 || s.Endpoints[0] != want[0] || s.Endpoints[1] != want[1] {
		t.Errorf("endpoints %+v, want %+v", s.Endpoints, want)
	}
}

// TestSummaryCountsWarnedApart is review 41's R41-1: a run ending well
// with a warning for an endpoint (a rewrite in place under the
// pseudonymisation rule due, which a run does not complete) was counted
// in the daily summary as an ok run of it. Now it is counted apart and
// the text says so.
func TestSummaryCountsWarnedApart(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewReceiver(t)
	file := &FileState{Path: filepath.Join(t.TempDir(), "state")}
	for i, warned := range []bool{true, false} {
		o := succeeded(at(5, 2+i, 0))
		o.Results = []EndpointOutcome{{Endpoint: "call_history", Rows: 5}, {Endpoint: "pseudonymisation", Warned: warned}}
		process(rc, file).RunEnded(context.Background(), o)
	}
	m := process(rc, file).Summary(context.Background(), at(6, 8, 0), Clock{8, 0}, func(context.Context, time.Time) (Summary, error) {
		return Summary{}, nil
	})
	if m == nil {
		t.Fatal("no summary")
	}
	want := EndpointDay{Endpoint: "pseudonymisation", RunsOK: 1, RunsWarned: 1}
	if len(m.Summary.Endpoints) != 2 || m.Summary.Endpoints[1] != want {
		t.Errorf("endpoints %+v, want the second %+v", m.Summary.Endpoints, want)
	}
	if text := m.Text(); !strings.Contains(text, "- pseudonymisation: 0 rows, 1 run(s) ok, 0 failed, 1 with a warning") {
		t.Errorf("summary text does not count the warned run apart:\n%s", text)
	}
	// The top line too (review 42, R42-4): before, "2 ok, 0 failed".
	if m.Summary.RunsOK != 1 || m.Summary.RunsWarned != 1 || !strings.Contains(m.Text(), ": 1 ok, 0 failed, 1 with a warning.\n") {
		t.Errorf("summary's runs: %d ok, %d warned, want 1 and 1; text:\n%s", m.Summary.RunsOK, m.Summary.RunsWarned, m.Text())
	}
}
