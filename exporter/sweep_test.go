package exporter_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// The sweep: every PBX behaviour the exporter is documented to survive,
// alone and in seeded random combinations, each over many seeds (the
// number of calls, the page size, the concurrency and the behaviour's own
// figures drawn from the seed), run in process: the simulator's own list
// logic (pbxsim.Sim.List) as the PBX, an in-memory sink, no HTTP, no
// database. Each case runs three incremental exports and checks the
// guarantee docs/reliability.md gives the behaviour: the first run ok
// with every call up to its cursor exported once (or, where calls keep
// arriving on a PBX read without keys, a loud failure with nothing wrong
// committed); the PBX then goes quiet and the second run leaves every
// call on the PBX exported exactly once; the third exports nothing.

var sweepSeeds = flag.Int("sweep.seeds", 200, "seeds of each behaviour of TestSweep (and random combinations)")

// simLister is the simulator's own list logic (pbxsim.Sim.List) as the
// exporter's Lister, in process: no HTTP, no socket; the exporter's
// envelope parser reads the answer.
type simLister struct{ sim *pbxsim.Sim }

func (l simLister) List(ctx context.Context, path string, q url.Values, n *pbx.Counts) (*pbx.ListPage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.Requests.Add(1)
	status, body := l.sim.List(path, q)
	if status != http.StatusOK {
		return nil, &pbx.APIError{Status: status, Reason: pbx.Reason(body)}
	}
	return pbx.ParseList(body)
}

// memSink is a sink in memory that keeps what a real one keeps: states,
// and the rows of committed batches only (an aborted batch leaves none).
type memSink struct {
	mu        sync.Mutex
	states    map[string][]byte
	committed map[int64]int // call id → committed how many times
}

func newMemSink() *memSink {
	return &memSink{states: map[string][]byte{}, committed: map[int64]int{}}
}

func (s *memSink) State(_ context.Context, _, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.states[key], nil
}

func (s *memSink) Begin(_ context.Context, b exporter.BatchInfo) (exporter.Batch, error) {
	return &memBatch{sink: s, key: b.StateKey}, nil
}

func (s *memSink) LockPBX(context.Context, string) (func(), error)      { return func() {}, nil }
func (s *memSink) StartRun(context.Context, *exporter.RunResult) error  { return nil }
func (s *memSink) FinishRun(context.Context, *exporter.RunResult) error { return nil }

type memBatch struct {
	sink *memSink
	key  string
	ids  []int64
	done bool
}

func (b *memBatch) Write(_ context.Context, rows []record.Row) error {
	if b.done {
		panic("write after commit")
	}
	for _, r := range rows {
		b.ids = append(b.ids, r.Cursor)
	}
	return nil
}

func (b *memBatch) Commit(_ context.Context, state []byte, _ exporter.Progress) error {
	b.sink.mu.Lock()
	defer b.sink.mu.Unlock()
	for _, id := range b.ids {
		b.sink.committed[id]++
	}
	b.sink.states[b.key] = append([]byte(nil), state...)
	b.done = true
	return nil
}

func (b *memBatch) Abort(context.Context) error { b.ids = nil; return nil }

// sweepCase is one PBX and one exporter, drawn from a seed.
type sweepCase struct {
	o    pbxsim.Options
	x    exporter.Exporter
	name string
	// arriving: calls keep arriving during the first run on a PBX that
	// may be read without keys, where a loud failure is allowed.
	arriving bool
}

// behaviour sets one documented PBX behaviour on a case.
type behaviour struct {
	name string
	set  func(c *sweepCase, r *rand.Rand)
}

var behaviours = []behaviour{
	{"purge", func(c *sweepCase, r *rand.Rand) {
		c.o.DeleteAfter, c.o.DeleteOldest = 1+r.IntN(6), 1+r.Int64N(c.o.Calls)
	}},
	{"random deletions", func(c *sweepCase, r *rand.Rand) {
		c.o.DeleteAfter, c.o.DeleteRandom = 1+r.IntN(6), 1+r.IntN(int(c.o.Calls))
	}},
	{"live inserts", func(c *sweepCase, r *rand.Rand) {
		// For a while: a PBX taking calls faster than pages of one or two
		// can be read is read by no way in a bounded number of requests
		// (a run then stops loudly at EXPORT_MAX_PAGES).
		c.o.LiveInsertEvery, c.o.LiveInsertBatch, c.o.LiveInsertMax = 1+r.IntN(4), 1+r.IntN(3), 1+r.Int64N(c.o.Calls)
	}},
	{"cap 1-7", func(c *sweepCase, r *rand.Rand) { c.o.MaxCount = 1 + r.IntN(7) }},
	{"cap 250", func(c *sweepCase, r *rand.Rand) {
		c.o.MaxCount, c.o.Calls, c.x.PageSize = 250, 260+r.Int64N(500), 1000
	}},
	{"sort ignored", func(c *sweepCase, r *rand.Rand) { c.o.IgnoreSort = true }},
	{"filter ignored", func(c *sweepCase, r *rand.Rand) { c.o.IgnoreFilter = []string{"id"} }},
	{"sort and filter ignored", func(c *sweepCase, r *rand.Rand) {
		c.o.IgnoreSort, c.o.IgnoreFilter = true, []string{"id"}
	}},
	{"from exclusive", func(c *sweepCase, r *rand.Rand) { c.o.FilterFromExclusive = []string{"id"} }},
	{"to exclusive", func(c *sweepCase, r *rand.Rand) { c.o.FilterToExclusive = true }},
	{"total number", func(c *sweepCase, r *rand.Rand) { c.o.Total = "number" }},
	{"total absent", func(c *sweepCase, r *rand.Rand) { c.o.Total = "absent" }},
	{"pages of 1-4", func(c *sweepCase, r *rand.Rand) { c.x.PageSize = 1 + r.IntN(4) }},
}

// newSweepCase draws a case from seed with the behaviours set on it.
func newSweepCase(seed uint64, set ...behaviour) *sweepCase {
	r := rand.New(rand.NewPCG(seed, 0x5eeb))
	c := &sweepCase{
		o: pbxsim.Options{Seed: int64(seed), Calls: 10 + r.Int64N(150), CacheCalls: true},
		x: exporter.Exporter{PBX: "pbx", Zone: time.UTC, PageSize: 5 + r.IntN(60), Concurrency: 1 + r.IntN(4),
			BatchSize: 1 + r.IntN(100), MaxPages: 100000},
	}
	var names []string
	for _, b := range set {
		b.set(c, r)
		names = append(names, b.name)
	}
	ignored := c.o.IgnoreSort || len(c.o.IgnoreFilter) > 0 || c.o.MaxCount > 0 && c.o.MaxCount < 3 || c.x.PageSize < 3
	c.arriving = c.o.LiveInsertEvery > 0 && ignored
	c.name = fmt.Sprintf("%s/seed=%d/calls=%d,page=%d,conc=%d,batch=%d", strings.Join(names, "+"), seed, c.o.Calls,
		c.x.PageSize, c.x.Concurrency, c.x.BatchSize)
	return c
}

// run plays the case's three exports and returns what is wrong, "" if
// nothing.
func (c *sweepCase) run() string {
	sim := pbxsim.New(c.o)
	sink := newMemSink()
	x := c.x
	x.Client, x.Sink = simLister{sim}, sink
	ep := record.Builtin()[:1]
	exported := func() (dup []int64) {
		for id, n := range sink.committed {
			if n > 1 || id < 1 || id > sim.MaxCallID() {
				dup = append(dup, id)
			}
		}
		slices.Sort(dup)
		return dup
	}
	missing := func(upTo int64) (out []int64) {
		for _, id := range sim.CallIDs() {
			if id <= upTo && sink.committed[id] == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	res := x.Run(context.Background(), "run-1", "once", ep).Endpoints[0]
	switch {
	case res.Err != nil && !c.arriving:
		return fmt.Sprintf("first run failed: %v (notes %q)", res.Err, res.Notes)
	case len(exported()) > 0:
		return fmt.Sprintf("first run: calls committed twice or never on the PBX: %v", exported())
	case res.Err == nil && res.Paging != paging.ByTimeWindows.String() && len(missing(res.Cursor)) > 0:
		return fmt.Sprintf("first run ok (%s, cursor %d) but missing %v", res.Paging, res.Cursor, missing(res.Cursor))
	}
	sim.Quiet()
	res = x.Run(context.Background(), "run-2", "once", ep).Endpoints[0]
	switch {
	case res.Err != nil:
		return fmt.Sprintf("second run, on a quiet PBX, failed: %v (notes %q)", res.Err, res.Notes)
	case len(exported()) > 0:
		return fmt.Sprintf("second run: calls committed twice or never on the PBX: %v", exported())
	case len(missing(sim.MaxCallID())) > 0:
		return fmt.Sprintf("second run (%s): missing %v of %d calls", res.Paging, missing(sim.MaxCallID()), sim.CallCount())
	}
	if res = x.Run(context.Background(), "run-3", "once", ep).Endpoints[0]; res.Err != nil || res.Rows != 0 {
		return fmt.Sprintf("third run, nothing new: rows %d, err %v", res.Rows, res.Err)
	}
	return ""
}

// TestSweep runs each behaviour alone over -sweep.seeds seeds, then as
// many random combinations of two to four behaviours. A failure names the
// behaviours, the seed and what was drawn from it.
func TestSweep(t *testing.T) {
	t.Parallel()
	seeds := uint64(*sweepSeeds)
	if raceEnabled {
		seeds = min(seeds, 20) // the race detector makes each run ten times slower
	}
	for _, b := range behaviours {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for seed := range seeds {
				c := newSweepCase(seed, b)
				if bad := c.run(); bad != "" {
					t.Fatalf("%s: %s", c.name, bad)
				}
			}
		})
	}
	t.Run("combinations", func(t *testing.T) {
		t.Parallel()
		for seed := range seeds {
			r := rand.New(rand.NewPCG(seed, 0xc0b0))
			var set []behaviour
			for _, i := range r.Perm(len(behaviours))[:2+r.IntN(3)] {
				set = append(set, behaviours[i])
			}
			c := newSweepCase(seed, set...)
			if bad := c.run(); bad != "" {
				t.Fatalf("%s: %s", c.name, bad)
			}
		}
	})
}

// backfill plays two backfills of every call's day, windows of one to
// twelve hours, and returns what is wrong, "" if nothing: each window is
// committed only when read whole, so after the second (which redoes the
// windows the first could not prove) every call on the PBX is exported
// exactly once; nothing is committed twice, nor a call never on the PBX.
func (c *sweepCase) backfill(r *rand.Rand) string {
	sim := pbxsim.New(c.o)
	sink := newMemSink()
	x := c.x
	x.Client, x.Sink = simLister{sim}, sink
	o := exporter.BackfillOptions{From: time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC),
		Window: time.Duration(1+r.IntN(12)) * time.Hour}
	wrong := func() (out []int64) {
		for id, n := range sink.committed {
			if n > 1 || id < 1 || id > sim.MaxCallID() {
				out = append(out, id)
			}
		}
		return out
	}
	res := x.Backfill(context.Background(), "backfill-1", record.Builtin()[:1], o).Endpoints[0]
	if bad := wrong(); len(bad) > 0 {
		return fmt.Sprintf("first backfill (%s, err %v): calls committed twice or never on the PBX: %v", res.Paging, res.Err, bad)
	}
	res = x.Backfill(context.Background(), "backfill-2", record.Builtin()[:1], o).Endpoints[0]
	var missing []int64
	for _, id := range sim.CallIDs() {
		if sink.committed[id] == 0 {
			missing = append(missing, id)
		}
	}
	switch bad := wrong(); {
	case res.Err != nil:
		return fmt.Sprintf("second backfill failed: %v (notes %q)", res.Err, res.Notes)
	case len(bad) > 0 || len(missing) > 0:
		return fmt.Sprintf("second backfill (%s): committed twice or never on the PBX %v; missing %v", res.Paging, bad, missing)
	}
	return ""
}

// TestSweepBackfill runs backfills against each behaviour but calls
// arriving (a backfill promises the calls there when it starts, which a
// PBX taking calls in the range keeps moving), over a quarter of the
// seeds: by key, by key ranges and by offset inside the windows.
func TestSweepBackfill(t *testing.T) {
	t.Parallel()
	seeds := uint64(*sweepSeeds / 4)
	if raceEnabled {
		seeds = min(seeds, 10)
	}
	for _, b := range behaviours {
		if b.name == "live inserts" {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for seed := range seeds {
				c := newSweepCase(seed, b)
				if bad := c.backfill(rand.New(rand.NewPCG(seed, 0xbac))); bad != "" {
					t.Fatalf("%s: %s", c.name, bad)
				}
			}
		})
	}
}
