package exporter_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// The policy by time windows (incremental_time.go): a PBX that ignores
// filter[id], its present played by a clock following the simulator's
// newest call.

// callStart is call id's start as the PBX sends it: PBX-local wall time.
func callStart(t *testing.T, sim *pbxsim.Sim, id int64) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(sim.CallJSON(id), &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m["start"].(string)
	return s
}

// present is the simulator's present: the end of its newest call, later
// by ahead.
func present(sim *pbxsim.Sim, ahead *atomic.Int64) func() time.Time {
	return func() time.Time { return sim.Call(sim.MaxCallID()).End.Add(time.Duration(ahead.Load())) }
}

// TestTimeWindowsBusyPBX: calls arrive while the first run reads (3 after
// every call-history request, a second apart, as a busy PBX finishes
// them): the run stops at its watermark, the PBX's present at its start
// less EXPORT_SETTLE, and exits 0 with every call there at its start and
// begun by the watermark exported once, and none begun after it; the next
// run, on a quiet PBX past the settle margin, exports the rest, each call
// once. Before, such a run read up to the present second, where records
// kept changing, and failed committing nothing.
func TestTimeWindowsBusyPBX(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			f, x, _ := newPagingExporter(t, pbxsim.Options{Calls: 3000, CallGap: time.Second, IgnoreFilter: []string{"id"},
				LiveInsertEvery: 1, LiveInsertBatch: 3}, sink, 100)
			var ahead atomic.Int64
			clock := present(f.Sim, &ahead)
			// The run reads the clock once, when it starts by time windows.
			var began atomic.Pointer[time.Time]
			var before atomic.Int64 // the calls on the PBX then
			x.Now = func() time.Time {
				now := clock()
				if began.CompareAndSwap(nil, &now) {
					before.Store(f.Sim.MaxCallID())
				}
				return now
			}
			r1 := runCalls(t, x)
			f.Sim.Quiet()
			settled := began.Load().In(x.Zone).Add(-exporter.DefaultSettle).Format("2006-01-02 15:04:05")
			if r1.Err != nil || r1.Paging != "time-windows" {
				t.Fatalf("first run: paging %q, err %v", r1.Paging, r1.Err)
			}
			if f.Sim.Stats.LiveInserted.Load() < 3*r1.Requests/2 {
				t.Fatalf("%d calls arrived during %d requests: the case proves nothing", f.Sim.Stats.LiveInserted.Load(), r1.Requests)
			}
			got := exported(t)
			var early int
			for id := int64(1); id <= f.Sim.MaxCallID(); id++ {
				start := callStart(t, f.Sim, id)
				switch {
				case got[id] > 1:
					t.Fatalf("call %d exported %d times", id, got[id])
				case start > settled && got[id] > 0:
					t.Fatalf("call %d begun at %s, after the watermark %s, exported by the first run", id, start, settled)
				case id <= before.Load() && start <= settled && got[id] != 1:
					t.Fatalf("call %d, there when the run began and begun at %s, by the watermark %s, not exported", id, start, settled)
				case id <= before.Load() && start <= settled:
					early++
				}
			}
			t.Logf("first run: %d requests, %d calls there at its start by the watermark, %d exported", r1.Requests, early, len(got))
			if early < 2500 || int64(len(got)) != r1.Rows {
				t.Fatalf("%d calls by the watermark, %d exported, %d rows handed over", early, len(got), r1.Rows)
			}
			ahead.Store(int64(exporter.DefaultSettle + time.Minute))
			if r2 := runCalls(t, x); r2.Err != nil || r1.Rows+r2.Rows != int64(len(f.Sim.CallIDs())) {
				t.Fatalf("second run: %d rows after %d, err %v; the PBX holds %d calls", r2.Rows, r1.Rows, r2.Err, len(f.Sim.CallIDs()))
			}
			wantExact(t, f.Sim, exported(t))
		})
	}
}

// TestTimeWindowsFailingLateCommitsEarlier: the PBX fails for good late
// in a first run by time windows: the windows read whole before the
// failure are committed with the time cursor, the error says where the
// next run reads from, and the next run exports the rest, each call once.
func TestTimeWindowsFailingLateCommitsEarlier(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			f, x, _ := newPagingExporter(t, pbxsim.Options{Calls: 3000, IgnoreFilter: []string{"id"}}, sink, 100)
			failing := &failAfter{Lister: x.Client}
			failing.after.Store(25)
			x.Client = failing
			x.BatchSize = 1 << 20 // no commit but those the failure makes
			r1 := runCalls(t, x)
			if r1.Err == nil || !strings.Contains(r1.Err.Error(), "the windows before it were committed: the next run reads from") {
				t.Fatalf("first run: err %v, want the failure saying where the next run reads from", r1.Err)
			}
			got := exported(t)
			if r1.Rows < 1000 || int64(len(got)) != r1.Rows {
				t.Fatalf("first run: %d rows committed, %d calls in the sink; want the windows before the failure, over 1,000 calls", r1.Rows, len(got))
			}
			b, err := sink.State(context.Background(), "pbx", "call_history")
			var st struct{ Time string }
			if err != nil || json.Unmarshal(b, &st) != nil || st.Time == "" || !strings.Contains(r1.Err.Error(), st.Time) {
				t.Fatalf("state %s, %v: want the newest time read, named in the error %v", b, err, r1.Err)
			}
			failing.after.Store(1 << 30)
			if r2 := runCalls(t, x); r2.Err != nil || r1.Rows+r2.Rows != 3000 {
				t.Fatalf("second run: %d rows after %d, err %v; want the 3,000 calls in all", r2.Rows, r1.Rows, r2.Err)
			}
			wantExact(t, f.Sim, exported(t))
		})
	}
}

// TestTimeWindowsFailingFirstWindow: the first window of a run by time
// windows fails (the PBX down for every filter[start] request): the
// error says nothing was committed and where the next run reads from,
// once, with no time before 1970 nor the first run's 1970 start as a
// newest time read; a first run reads from the start again, a later one
// from the look-back before the newest time an earlier run read, its
// state untouched.
func TestTimeWindowsFailingFirstWindow(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, _ := tg.open(t)
			f, x, _ := newPagingExporter(t, pbxsim.Options{Calls: 300, IgnoreFilter: []string{"id"}}, sink, 100)
			f.Sim.Quiet()
			down := &failTimes{Lister: x.Client}
			down.on.Store(true)
			x.Client = down
			check := func(r exporter.EndpointResult, want string) {
				t.Helper()
				msg := ""
				if r.Err != nil {
					msg = r.Err.Error()
				}
				said := msg[strings.Index(msg, "; ")+1:] // after the window's name, which may be in 1970
				if r.Err == nil || r.Rows != 0 || !strings.Contains(msg, want) || strings.Count(msg, "the next run") != 1 ||
					strings.Contains(msg, "were committed") || strings.Contains(msg, "handed over") || strings.Contains(said, "1969") || strings.Contains(said, "1970") {
					t.Fatalf("err %v, %d rows; want nothing committed, saying once %q", r.Err, r.Rows, want)
				}
			}
			check(runCalls(t, x), "; nothing was committed: the next run reads from the start, as this one did")
			if b, err := sink.State(context.Background(), "pbx", "call_history"); err != nil || len(b) != 0 {
				t.Fatalf("state %s, %v after a first run that committed nothing; want none", b, err)
			}
			down.on.Store(false)
			if r := runCalls(t, x); r.Err != nil || r.Rows != 300 {
				t.Fatalf("second run: %d rows, %v; want the 300 calls", r.Rows, r.Err)
			}
			before, err := sink.State(context.Background(), "pbx", "call_history")
			var st struct{ Time string }
			if err != nil || json.Unmarshal(before, &st) != nil || st.Time == "" {
				t.Fatalf("state %s, %v: want the newest time read", before, err)
			}
			down.on.Store(true)
			from := mustWall(t, st.Time).Add(-exporter.DefaultLookBack).Format("2006-01-02 15:04:05")
			check(runCalls(t, x), "; nothing was committed: the next run reads from "+from+" again (the newest time an earlier run read, "+st.Time+", less the look-back)")
			if after, err := sink.State(context.Background(), "pbx", "call_history"); err != nil || string(after) != string(before) {
				t.Fatalf("state %s, %v after a run that committed nothing; want it untouched: %s", after, err, before)
			}
		})
	}
}

// failTimes is a PBX failing every request asking filter[start] while on.
type failTimes struct {
	paging.Lister
	on atomic.Bool
}

func (l *failTimes) List(ctx context.Context, path string, q url.Values, n *pbx.Counts) (*pbx.ListPage, error) {
	if l.on.Load() && q.Has("filter[start][from]") {
		n.Requests.Add(1)
		return nil, &pbx.APIError{Status: http.StatusServiceUnavailable, Reason: "down"}
	}
	return l.Lister.List(ctx, path, q, n)
}

func mustWall(t *testing.T, s string) time.Time {
	t.Helper()
	w, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// failAfter is a PBX that fails every request after its first after.
type failAfter struct {
	paging.Lister
	after, n atomic.Int64
}

func (l *failAfter) List(ctx context.Context, path string, q url.Values, n *pbx.Counts) (*pbx.ListPage, error) {
	if l.n.Add(1) > l.after.Load() {
		n.Requests.Add(1)
		return nil, &pbx.APIError{Status: http.StatusServiceUnavailable, Reason: "down"}
	}
	return l.Lister.List(ctx, path, q, n)
}

// TestTimeWindowsNightlyRequests: the nightly run on a quiet PBX read by
// time windows, a day of 40 calls and the 6 hours of look-back fitting a
// page of 100, costs at most 3 requests, and exports the day's calls.
func TestTimeWindowsNightlyRequests(t *testing.T) {
	t.Parallel()
	sink, exported := targets[0].open(t)
	f, x, _ := newPagingExporter(t, pbxsim.Options{Calls: 400, CallGap: 36 * time.Minute, IgnoreFilter: []string{"id"}}, sink, 100)
	var ahead atomic.Int64
	ahead.Store(int64(time.Hour))
	x.Now = present(f.Sim, &ahead)
	if r := runCalls(t, x); r.Err != nil || r.Rows != 400 || r.Paging != "time-windows" {
		t.Fatalf("first run: %d rows, paging %q, err %v", r.Rows, r.Paging, r.Err)
	}
	f.Sim.InsertCalls(40)
	r := runCalls(t, x)
	if r.Err != nil || r.Rows != 40 {
		t.Fatalf("nightly run: %d rows, err %v; want the day's 40 calls", r.Rows, r.Err)
	}
	if r.Requests > 3 {
		t.Fatalf("nightly run: %d requests, want at most 3", r.Requests)
	}
	t.Logf("nightly run: %d requests", r.Requests)
	wantExact(t, f.Sim, exported(t))
}

// TestTimeWindowsOffsetLearnt: without WILDIX_TIMEZONE, on a PBX whose
// records carry their UTC offset (+0100 here, Europe/Rome in January), a
// first run knows no offset: it reads up to now in the zone furthest
// behind UTC less EXPORT_SETTLE, says so in the ledger, and stores the
// offset of the newest record read; the second run reads up to the PBX's
// present less EXPORT_SETTLE at that offset, exactly: every call begun by
// then exported once, none begun after. Before, every run read up to
// UTC-12, leaving 13 hours of a European PBX's calls to the next run.
func TestTimeWindowsOffsetLearnt(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			f, x, _ := newPagingExporter(t, pbxsim.Options{Calls: 300, CallGap: 10 * time.Minute, IgnoreFilter: []string{"id"}}, sink, 100)
			rome := x.Zone
			x.Zone = nil
			const wall = "2006-01-02 15:04:05"
			// exact checks that the calls exported are those begun by
			// settled, each once.
			exact := func(run string, settled string) {
				t.Helper()
				got := exported(t)
				var in, out int
				for _, id := range f.Sim.CallIDs() {
					start := callStart(t, f.Sim, id)
					switch {
					case got[id] > 1:
						t.Fatalf("%s: call %d exported %d times", run, id, got[id])
					case start <= settled && got[id] != 1:
						t.Fatalf("%s: call %d begun at %s, by the watermark %s, not exported", run, id, start, settled)
					case start > settled && got[id] != 0:
						t.Fatalf("%s: call %d begun at %s, after the watermark %s, exported", run, id, start, settled)
					case start <= settled:
						in++
					default:
						out++
					}
				}
				if in == 0 || out == 0 {
					t.Fatalf("%s: %d calls by the watermark %s, %d after: the case proves nothing", run, in, settled, out)
				}
				t.Logf("%s: %d calls by the watermark %s exported, %d after it left", run, in, settled, out)
			}

			now := f.Sim.Call(f.Sim.MaxCallID()).End.Add(30 * time.Second)
			x.Now = func() time.Time { return now }
			r1 := runCalls(t, x)
			if r1.Err != nil || r1.Paging != "time-windows" {
				t.Fatalf("first run: paging %q, err %v", r1.Paging, r1.Err)
			}
			wantNote(t, r1, "WILDIX_TIMEZONE is not set and no UTC offset of the PBX is stored yet")
			exact("first run", now.UTC().Add(-12*time.Hour-exporter.DefaultSettle).Format(wall))
			b, err := sink.State(context.Background(), "pbx", "call_history")
			var st struct {
				UTCOffset *int `json:"utc_offset"`
			}
			if err == nil {
				err = json.Unmarshal(b, &st)
			}
			if err != nil || st.UTCOffset == nil || *st.UTCOffset != 3600 {
				t.Fatalf("state after the first run %s (%v): want the records' offset, +0100, kept as utc_offset 3600", b, err)
			}

			// Calls arrive; the second run's present is 30 s after the
			// start of the fourth newest call, the three after it dated
			// in the PBX's future.
			f.Sim.InsertCalls(100)
			now = f.Sim.Call(f.Sim.MaxCallID() - 3).Start.Add(30 * time.Second)
			r2 := runCalls(t, x)
			if r2.Err != nil {
				t.Fatalf("second run: %v", r2.Err)
			}
			if strings.Contains(strings.Join(r2.Notes, "\n"), "no UTC offset") {
				t.Fatalf("second run notes %q: the offset was stored", r2.Notes)
			}
			exact("second run", now.In(rome).Add(-exporter.DefaultSettle).Format(wall))

			// The next run, past the settle margin, exports the rest.
			now = f.Sim.Call(f.Sim.MaxCallID()).End.Add(exporter.DefaultSettle + time.Minute)
			if r3 := runCalls(t, x); r3.Err != nil {
				t.Fatalf("third run: %v", r3.Err)
			}
			wantExact(t, f.Sim, exported(t))
		})
	}
}
