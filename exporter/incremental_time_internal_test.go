package exporter

import (
	"cmp"
	"encoding/json"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// timeRows are n rows of a PBX at UTC+1, gap apart from start (UTC),
// keys 1..n in time order, as the time windows hand them over.
func timeRows(n int, start time.Time, gap time.Duration) []record.Row {
	rows := make([]record.Row, n)
	for i := range rows {
		at := start.Add(time.Duration(i) * gap)
		rows[i] = record.Row{Cursor: int64(i + 1), Values: []any{at}, Wall: at.Add(time.Hour).Format(record.WallLayout)}
	}
	return rows
}

// BenchmarkTimeCursorKeep is the time cursor's share of a first run by
// time windows of 200,000 calls 30 s apart (the bench's): windows of
// 1,000 rows, the state committed every 50,000 (EXPORT_BATCH_SIZE's
// default). go test -run '^$' -bench TimeCursorKeep ./exporter/
func BenchmarkTimeCursorKeep(b *testing.B) {
	const n, window, batch = 200_000, 1_000, 50_000
	rows := timeRows(n, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 30*time.Second)
	buf := make([]record.Row, window)
	for b.Loop() {
		tc := &timeCursor{recent: map[int64]string{}, anchor: 0, horizon: "2099-01-01 00:00:00", lookBack: DefaultLookBack}
		for i := 0; i < n; i += window {
			copy(buf, rows[i:i+window])
			if len(tc.keep(nil, buf)) != window {
				b.Fatal("rows left out")
			}
			if (i+window)%batch == 0 {
				tc.state("run")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/row")
}

// TestTimeCursorKeepsWhatEachRowWould: keep and state, which enter in
// recent only the keys a commit keeps and read one offset a window, hand
// over, commit and learn what a map insert and an offset read per row
// did (perRow), on random runs by time windows (seeded, the seed
// printed): stored keys read again in the look-back, keys up to the
// keyset cursor, rows dated after the horizon, rows on the look-back's
// edge, windows newest first, offsets changing (a daylight-saving
// change) or unreadable, commits between any two windows.
func TestTimeCursorKeepsWhatEachRowWould(t *testing.T) {
	t.Parallel()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(uint64(seed), 0))
	e := &endpointRun{ep: &record.Endpoint{TimeField: "start"}, n: &paging.Counters{}, log: slog.New(slog.DiscardHandler)}
	for run := range 300 {
		start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		horizon := start.Add(time.Duration(rnd.IntN(96)) * time.Hour)
		lookBack := time.Duration(1+rnd.IntN(8)) * time.Hour
		// The state an earlier run stored: its newest time, the keys
		// within the look-back before it, and perhaps an offset.
		var stored []record.Row
		newest := ""
		recent := map[int64]string{}
		var offset *int
		key := int64(1000)
		row := func(at time.Time) record.Row {
			key += 1 + int64(rnd.IntN(3))
			off := time.Hour
			if at.After(start.Add(30 * time.Hour)) {
				off = 2 * time.Hour // daylight-saving time began
			}
			r := record.Row{Cursor: key, Wall: at.Add(off).Format(record.WallLayout), Values: []any{at}}
			switch rnd.IntN(8) {
			case 0:
				r.Values = []any{nil} // no time: no offset to read
			case 1:
				r.Values = []any{at.Add(17 * time.Second)} // no zone's offset
			}
			return r
		}
		if rnd.IntN(4) > 0 {
			at := start.Add(-lookBack)
			for range rnd.IntN(20) {
				at = at.Add(time.Duration(rnd.IntN(1800)) * time.Second)
				r := row(at)
				stored = append(stored, r)
				recent[r.Cursor] = r.Wall
				newest = max(newest, r.Wall)
			}
			if rnd.IntN(2) == 0 {
				off := 3600
				offset = &off
			}
		}
		cursor := int64(rnd.IntN(1010))
		// This run's windows: the look-back read again (the stored rows
		// among new ones), then new rows, in time order; a window's rows
		// perhaps newest first.
		var all []record.Row
		for _, r := range stored {
			all = append(all, r)
			if rnd.IntN(3) == 0 {
				all = append(all, row(mustWall(r.Wall).Add(-time.Hour)))
			}
		}
		at := start
		for range rnd.IntN(400) {
			// Whole quarters of an hour, several rows a second at times:
			// rows on the edge of the look-back.
			at = at.Add(time.Duration(rnd.IntN(5)) * 15 * time.Minute)
			all = append(all, row(at))
		}
		got := &timeCursor{cursor: cursor, newest: newest, recent: maps.Clone(recent), offset: offset, anchor: 0,
			horizon: horizon.Format(record.WallLayout), lookBack: lookBack}
		want := &perRow{cursor: cursor, newest: newest, recent: maps.Clone(recent), offset: offset,
			horizon: got.horizon, lookBack: lookBack}
		for len(all) > 0 {
			n := min(len(all), 1+rnd.IntN(30))
			window := slices.Clone(all[:n])
			all = all[n:]
			if rnd.IntN(2) == 0 {
				slices.Reverse(window)
			}
			wantKept := want.keep(slices.Clone(window))
			var gotKept []int64
			for _, r := range got.keep(e, window) {
				gotKept = append(gotKept, r.Cursor)
			}
			if !slices.Equal(gotKept, wantKept) || got.newest != want.newest || !sameOffset(got.offset, want.offset) {
				t.Fatalf("run %d: kept %v, newest %q, offset %v; per row: %v, %q, %v", run, gotKept, got.newest, show(got.offset), wantKept, want.newest, show(want.offset))
			}
			if rnd.IntN(4) == 0 || len(all) == 0 {
				var st cursorState
				if err := json.Unmarshal(got.state("run"), &st); err != nil {
					t.Fatal(err)
				}
				wantRecent, wantTime := want.state()
				if len(got.fresh) != 0 {
					t.Fatalf("run %d: %d keys still fresh after a commit: fresh would grow over the run", run, len(got.fresh))
				}
				if !maps.Equal(st.Recent, wantRecent) || st.Time != wantTime || !sameOffset(st.UTCOffset, want.offset) {
					t.Fatalf("run %d: committed %q, %v, offset %v; per row: %q, %v, %v", run, st.Time, st.Recent, show(st.UTCOffset), wantTime, wantRecent, show(want.offset))
				}
			}
		}
	}
}

// perRow is the time cursor as it was: every row kept entered in recent,
// the offset read from every row that moves the newest time.
type perRow struct {
	cursor   int64
	newest   string
	recent   map[int64]string
	offset   *int
	horizon  string
	lookBack time.Duration
}

func (p *perRow) keep(rows []record.Row) []int64 {
	var kept []int64
	for _, row := range rows {
		if _, ok := p.recent[row.Cursor]; ok || row.Cursor <= p.cursor {
			continue
		}
		p.recent[row.Cursor] = row.Wall
		if row.Wall <= p.horizon && (row.Wall > p.newest || p.offset == nil) {
			p.newest = max(p.newest, row.Wall)
			if off, ok := rowOffset(row, 0); ok {
				p.offset = &off
			}
		}
		kept = append(kept, row.Cursor)
	}
	return kept
}

func (p *perRow) state() (map[int64]string, string) {
	newest := cmp.Or(p.newest, epochWall)
	edge := mustWall(newest).Add(-p.lookBack).Format(record.WallLayout)
	maps.DeleteFunc(p.recent, func(_ int64, w string) bool { return w < edge })
	if len(p.recent) == 0 {
		return nil, newest // as JSON reads an empty map left out
	}
	return maps.Clone(p.recent), newest
}

func sameOffset(a, b *int) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func show(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
