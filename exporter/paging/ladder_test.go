package paging

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// The sweep: every PBX behaviour paging is documented to survive, alone
// and in seeded random combinations, each over many seeds (the number of
// calls, the page size, the concurrency and the behaviour's own figures
// drawn from the seed), read in process (the simulator's own list logic,
// Sim.List, as the Lister; no HTTP, no database) down the ladder as an
// incremental run and a backfill window read it. Each read is checked
// against the guarantee docs/reliability.md gives: every span handed over
// holds every call of its range that is still on the PBX, once, in key
// order; a read the key rungs cannot finish falls to Last with what it
// handed over exact, and Last, on a quiet PBX, reads the rest exactly.

var sweepSeeds = flag.Int("sweep.seeds", 200, "seeds of each behaviour of TestLadderSweep (and random combinations)")

// sweepCase is one PBX and one reader, drawn from a seed.
type sweepCase struct {
	o          pbxsim.Options
	size, conc int
	name       string
	// arriving: calls keep arriving on a PBX that may be read without
	// keys, where a read may stop loudly (EXPORT_MAX_PAGES).
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
		c.o.LiveInsertEvery, c.o.LiveInsertBatch, c.o.LiveInsertMax = 1+r.IntN(4), 1+r.IntN(3), 1+r.Int64N(c.o.Calls)
	}},
	{"cap 1-7", func(c *sweepCase, r *rand.Rand) { c.o.MaxCount = 1 + r.IntN(7) }},
	{"cap 250", func(c *sweepCase, r *rand.Rand) { c.o.MaxCount, c.o.Calls, c.size = 250, 260+r.Int64N(500), 1000 }},
	{"sort ignored", func(c *sweepCase, r *rand.Rand) { c.o.IgnoreSort = true }},
	{"filter ignored", func(c *sweepCase, r *rand.Rand) { c.o.IgnoreFilter = []string{"id"} }},
	{"sort and filter ignored", func(c *sweepCase, r *rand.Rand) { c.o.IgnoreSort, c.o.IgnoreFilter = true, []string{"id"} }},
	{"from exclusive", func(c *sweepCase, r *rand.Rand) { c.o.FilterFromExclusive = []string{"id"} }},
	{"to exclusive", func(c *sweepCase, r *rand.Rand) { c.o.FilterToExclusive = true }},
	{"total number", func(c *sweepCase, r *rand.Rand) { c.o.Total = "number" }},
	{"total absent", func(c *sweepCase, r *rand.Rand) { c.o.Total = "absent" }},
	{"pages of 1-4", func(c *sweepCase, r *rand.Rand) { c.size = 1 + r.IntN(4) }},
}

// newSweepCase draws a case from seed with the behaviours set on it.
func newSweepCase(seed uint64, set ...behaviour) *sweepCase {
	r := rand.New(rand.NewPCG(seed, 0x5eeb))
	c := &sweepCase{o: pbxsim.Options{Seed: int64(seed), Calls: 10 + r.Int64N(150), CacheCalls: true},
		size: 5 + r.IntN(60), conc: 1 + r.IntN(4)}
	var names []string
	for _, b := range set {
		b.set(c, r)
		names = append(names, b.name)
	}
	ignored := c.o.IgnoreSort || len(c.o.IgnoreFilter) > 0 || c.o.MaxCount > 0 && c.o.MaxCount < 3 || c.size < 3
	c.arriving = c.o.LiveInsertEvery > 0 && ignored
	c.name = fmt.Sprintf("%s/seed=%d/calls=%d,page=%d,conc=%d", strings.Join(names, "+"), seed, c.o.Calls, c.size, c.conc)
	return c
}

// tally is what a read handed over: how often each key.
type tally map[int64]int

// wrong names keys handed over twice or never on the PBX, and survivors in
// [lo, hi] not handed over.
func (t tally) wrong(sim *pbxsim.Sim, lo, hi int64) string {
	var twice, missing []int64
	for id, n := range t {
		if n > 1 || id < 1 || id > sim.MaxCallID() {
			twice = append(twice, id)
		}
	}
	for _, id := range sim.CallIDs() {
		if id >= lo && id <= hi && t[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(twice)+len(missing) == 0 {
		return ""
	}
	slices.Sort(twice)
	return fmt.Sprintf("keys twice or never on the PBX %v; missing %v", twice, missing)
}

// count counts rows' keys in t: a read's hand-over.
func (t tally) count(rows []record.Row) error {
	for _, row := range rows {
		t[row.Cursor]++
	}
	return nil
}

// notOnce is how many calls start in [from, to) (wall times as the PBX
// sends them), and those of them t does not hold once.
func (t tally) notOnce(sim *pbxsim.Sim, from, to string) (want int, wrong []int64) {
	for _, id := range sim.CallIDs() {
		if s := callStart(sim, id); s >= from && s < to {
			want++
			if t[id] != 1 {
				wrong = append(wrong, id)
			}
		}
	}
	return want, wrong
}

// spans checks the spans of a read of [lo, …] as they come: contiguous,
// keys ascending within their range; it counts their keys in t.
func (t tally) spans(next *int64) func(Span) error {
	return func(sp Span) error {
		if sp.Lo != *next || sp.Hi < sp.Lo {
			return fmt.Errorf("span [%d, %d] where one from %d was due", sp.Lo, sp.Hi, *next)
		}
		for i, row := range sp.Rows {
			if row.Cursor < sp.Lo || row.Cursor > sp.Hi || i > 0 && row.Cursor <= sp.Rows[i-1].Cursor {
				return fmt.Errorf("key %d at %d in span [%d, %d]", row.Cursor, i, sp.Lo, sp.Hi)
			}
			t[row.Cursor]++
		}
		*next = sp.Hi + 1
		return nil
	}
}

// incremental reads the case as an incremental run does (newest key, the
// key rungs, time windows below them) and returns what is wrong, "" if
// nothing.
func (c *sweepCase) incremental() string {
	ctx := context.Background()
	sim, l := newSim(c.o)
	rd := newReader(l, c.size, c.conc)
	lad := &Ladder{Reader: rd, Last: ByTimeWindows}
	got := tally{}
	next := int64(1)
	upper, found, err := lad.Newest(ctx, 0)
	if err == nil && found {
		_, err = lad.Read(ctx, Range{1, upper}, got.spans(&next))
	}
	var ie *IgnoredError
	switch {
	case errors.As(err, &ie) && rd.Learnt.Strategy() != ByTimeWindows:
		return fmt.Sprintf("fell with %v, but the ladder reads by %v", err, rd.Learnt.Strategy())
	case errors.As(err, &ie):
	case err != nil && !c.arriving:
		return fmt.Sprintf("read failed: %v", err)
	case err != nil:
		return "" // loud, nothing handed over wrong (checked below)
	case !found:
		return "no newest key on a PBX holding calls"
	}
	if bad := got.wrong(sim, 1, next-1); bad != "" {
		return fmt.Sprintf("by %v up to %d: %s", rd.Learnt.Strategy(), next-1, bad)
	}
	if ie == nil {
		return ""
	}
	// Below the key rungs: the rest by time windows, the PBX now quiet.
	sim.Quiet()
	rest := tally{}
	tw := &TimeWindows{Reader: rd}
	err = tw.Read(ctx, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Now().UTC().Add(26*time.Hour), func(rows []record.Row) error {
		for _, row := range rows {
			if row.Cursor >= next {
				rest[row.Cursor]++
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Sprintf("time windows after %v: %v", ie, err)
	}
	if bad := rest.wrong(sim, next, sim.MaxCallID()); bad != "" {
		return fmt.Sprintf("time windows from %d (after %v): %s", next, ie, bad)
	}
	return ""
}

// window reads the calls of one day as a backfill window does (the key
// rungs with the day's time filter, offset below them) and returns what
// is wrong, "" if nothing. A read by offset that the PBX changed is read
// again once it is quiet, as the next backfill does.
func (c *sweepCase) window() string {
	ctx := context.Background()
	sim, l := newSim(c.o)
	rd := newReader(l, c.size, c.conc)
	from, to := "2026-01-01 00:00:00", "2026-01-01 00:40:00"
	rd.Query = url.Values{"filter[start][from]": {from}, "filter[start][to]": {to}}
	lad := &Ladder{Reader: rd, Last: ByOffset}
	got, next := tally{}, int64(1)
	in := func(row record.Row) bool { return row.Wall >= from && row.Wall < to }
	upper, found, err := lad.Newest(ctx, 0)
	if err == nil && found {
		_, err = lad.Read(ctx, Range{1, upper}, func(sp Span) error {
			sp.Rows = slices.DeleteFunc(sp.Rows, func(row record.Row) bool { return !in(row) })
			return got.spans(&next)(sp)
		})
	}
	if err != nil && !errors.As(err, new(*IgnoredError)) {
		return fmt.Sprintf("window by %v: %v", rd.Learnt.Strategy(), err)
	}
	if err == nil {
		return windowWrong(sim, got, from, to, upper)
	}
	if rd.Learnt.Strategy() != ByOffset {
		return fmt.Sprintf("fell with %v, but the ladder reads by %v", err, rd.Learnt.Strategy())
	}
	for attempt := 1; ; attempt++ {
		got = tally{}
		o := &Offset{Reader: rd, PageSize: c.size, Zone: time.UTC}
		o.Query = url.Values{"sort": {"id"}, "dir": {"ASC"}, "filter[start][from]": {from}, "filter[start][to]": {to}}
		_, err := o.Whole(ctx, func(rows []record.Row) error {
			for _, row := range rows {
				if in(row) {
					got[row.Cursor]++
				}
			}
			return nil
		})
		switch {
		case errors.Is(err, ErrChanged) && attempt == 1:
			sim.Quiet()
			continue
		case err != nil:
			return fmt.Sprintf("window by offset (attempt %d): %v", attempt, err)
		}
		return windowWrong(sim, got, from, to, sim.MaxCallID())
	}
}

// windowWrong names what a window read whole got wrong: a call of the
// window up to upper, still on the PBX, not read once.
func windowWrong(sim *pbxsim.Sim, got tally, from, to string, upper int64) string {
	var wrong []int64
	for id, n := range got {
		if n > 1 {
			wrong = append(wrong, id)
		}
	}
	for _, id := range sim.CallIDs() {
		if id > upper {
			continue
		}
		start := callStart(sim, id)
		if start >= from && start < to && got[id] != 1 {
			wrong = append(wrong, id)
		}
	}
	if len(wrong) == 0 {
		return ""
	}
	slices.Sort(wrong)
	return fmt.Sprintf("calls of the window not read once: %v", wrong)
}

// wall is a PBX wall time written as record.WallLayout (zero if it is not).
func wall(s string) time.Time {
	w, _ := time.Parse(record.WallLayout, s)
	return w
}

// callStart is a call's start as the PBX sends it.
func callStart(sim *pbxsim.Sim, id int64) string {
	b := string(sim.CallJSON(id))
	i := strings.Index(b, `"start":"`)
	if i < 0 {
		return ""
	}
	b = b[i+len(`"start":"`):]
	return b[:strings.IndexByte(b, '"')]
}

// TestLadderSweep reads each behaviour alone over -sweep.seeds seeds, then
// as many random combinations of two to four behaviours, as an incremental
// run and as a backfill window. A failure names the behaviours, the seed
// and what was drawn from it.
func TestLadderSweep(t *testing.T) {
	t.Parallel()
	seeds := uint64(*sweepSeeds)
	if raceEnabled {
		seeds = min(seeds, 20) // the race detector makes each read ten times slower
	}
	check := func(t *testing.T, c *sweepCase) {
		if bad := c.incremental(); bad != "" {
			t.Fatalf("%s: incremental: %s", c.name, bad)
		}
		if c.o.LiveInsertEvery > 0 {
			return // a backfill promises the calls there when it starts
		}
		if bad := c.window(); bad != "" {
			t.Fatalf("%s: window: %s", c.name, bad)
		}
	}
	for _, b := range behaviours {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for seed := range seeds {
				check(t, newSweepCase(seed, b))
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
			check(t, newSweepCase(seed, set...))
		}
	})
}

// TestLadderReadsNoKeysOnTheLastRung: an endpoint the ladder has sent to
// its last rung is not read by key again (a caller's mistake, said so).
func TestLadderReadsNoKeysOnTheLastRung(t *testing.T) {
	t.Parallel()
	_, l := newSim(pbxsim.Options{Calls: 10})
	rd := newReader(l, 10, 1)
	rd.Learnt.ReadBy(ByOffset)
	_, err := (&Ladder{Reader: rd, Last: ByOffset}).Read(context.Background(), Range{1, 10}, func(Span) error {
		t.Fatal("a span handed over")
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "read by offset") || rd.Counters.Requests.Load() != 0 {
		t.Fatalf("err = %v after %d requests, want a refusal without a request", err, rd.Counters.Requests.Load())
	}
}
