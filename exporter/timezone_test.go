package exporter_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
)

// TestTimesAcrossDaylightSaving reads calls around Rome's two changes of
// 2026 from the simulator over HTTP and checks every instant against the
// ground truth. With WILDIX_TIMEZONE set and no timezone field, a call is
// exact whenever its own times tell which occurrence of a repeated wall
// time is meant; the calls that lie wholly inside one pass of the repeated
// hour cannot tell, and are counted, read as the earlier pass.
func TestTimesAcrossDaylightSaving(t *testing.T) {
	t.Parallel()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	spring := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)          // 02:00 → 03:00 at 01:00Z
	autumn := time.Date(2026, 10, 24, 23, 30, 0, 0, time.UTC)       // 03:00 → 02:00 at 01:00Z
	fold1 := time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC)          // first pass of 02:00-03:00
	fold2, fold2End := fold1.Add(time.Hour), fold1.Add(2*time.Hour) // second pass
	for _, tc := range []struct {
		name   string
		start  time.Time
		omitTZ bool
	}{
		{"spring, no timezone field", spring, true},
		{"autumn, no timezone field", autumn, true},
		{"autumn, timezone field", autumn, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := simtest.New(t, pbxsim.Options{Calls: 300, CallGap: time.Minute, CallsStart: tc.start, Location: rome,
				OmitTimezoneField: tc.omitTZ, APIKeys: []string{"wsk-v1-tz"}})
			c := f.Client(&http.Client{Transport: &auth.Transport{Source: auth.Static("wsk-v1-tz")}})
			page, err := c.List(context.Background(), "/api/v1/PBX/CallHistory/", url.Values{"sort": {"id"}, "dir": {"ASC"}, "count": {"1000"}}, &pbx.Counts{})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Records) != 300 {
				t.Fatalf("%d records, want 300", len(page.Records))
			}
			ep := record.Builtin()[0]
			w := &record.Warnings{}
			rows, err := (&record.Converter{Endpoint: &ep, Zone: rome, Warnings: w}).Rows(page.Records)
			if err != nil {
				t.Fatal(err)
			}
			at := func(row record.Row, col string) time.Time {
				v, _ := row.Values[ep.Column(col)].(time.Time)
				return v
			}
			var undecidable, crossing int64
			for _, row := range rows {
				truth := f.Sim.Call(row.Cursor)
				times := []time.Time{truth.Start, truth.End}
				if !truth.Answer.IsZero() {
					times = append(times, truth.Answer)
				}
				in := func(from, to time.Time) bool {
					for _, x := range times {
						if x.Before(from) || !x.Before(to) {
							return false
						}
					}
					return true
				}
				shift := time.Duration(0)
				switch {
				case !tc.omitTZ:
				case in(fold1, fold2):
					undecidable++
				case in(fold2, fold2End):
					undecidable++
					shift = -time.Hour // read as the earlier pass
				case !truth.Start.Before(fold1) && truth.Start.Before(fold2End):
					crossing++ // starts in the repeated hour, told apart by its end
				}
				for col, want := range map[string]time.Time{"start_time": truth.Start, "end_time": truth.End, "answer_time": truth.Answer} {
					if !want.IsZero() {
						want = want.Add(shift)
					}
					if got := at(row, col); !got.Equal(want) {
						t.Errorf("call %d %s = %v, want %v (truth %s %s → %s)", row.Cursor, col, got, want, truth.Start, truth.Answer, truth.End)
					}
				}
			}
			if got := w.Count(record.WarnAmbiguous); got != undecidable || w.Total() != undecidable {
				t.Fatalf("warnings %v, want %d undecidable calls counted", w.Notes(), undecidable)
			}
			if tc.start == autumn && tc.omitTZ && (undecidable == 0 || crossing == 0) {
				t.Fatalf("%d undecidable and %d decided calls in the repeated hour: the data misses a case", undecidable, crossing)
			}
			if tc.start == spring {
				spans := 0
				for id := int64(1); id <= 300; id++ {
					if c := f.Sim.Call(id); c.Start.Before(spring.Add(time.Hour)) && c.End.After(spring.Add(time.Hour)) {
						spans++
					}
				}
				if spans == 0 {
					t.Fatal("no call spans the spring change")
				}
			}
		})
	}
}

// TestDaylightSavingEndToEnd: calls without a timezone field around both
// of Rome's changes, WILDIX_TIMEZONE set, exported into each sink in pages
// of 100, 4 at a time, with calls arriving during the first run; then a
// second run on the quiet PBX. Paged by key, and by PBX-local time windows
// (a PBX ignoring filter[id]). Every instant each sink holds is the
// simulator's, but for the calls wholly inside the second pass of the
// repeated autumn hour: nothing tells a call wholly inside one pass from
// the same call in the other, so they are read as the earlier pass, and
// every call wholly inside either pass is counted in the run's notes.
func TestDaylightSavingEndToEnd(t *testing.T) {
	t.Parallel()
	spring := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)    // 02:00 → 03:00 at 01:00Z
	autumn := time.Date(2026, 10, 24, 23, 30, 0, 0, time.UTC) // 03:00 → 02:00 at 01:00Z
	fold2 := time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC)    // second pass of 02:00-03:00
	for _, season := range []struct {
		name  string
		start time.Time
	}{{"spring", spring}, {"autumn", autumn}} {
		for _, tc := range []struct{ kind, paging string }{{"csv", "keyset"}, {"postgres", "keyset"}, {"csv", "time-windows"}, {"postgres", "time-windows"}} {
			name := season.name + "/" + tc.kind
			if tc.paging != "keyset" {
				name += "/" + tc.paging
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				sink, times := timedSink(t, tc.kind)
				rome, err := time.LoadLocation("Europe/Rome")
				if err != nil {
					t.Fatal(err)
				}
				o := pbxsim.Options{Calls: 600, CallGap: time.Minute, CallsStart: season.start, Location: rome, OmitTimezoneField: true}
				if tc.paging == "time-windows" {
					// Read by PBX-local filter[start] windows, which
					// name the repeated autumn hour once for both passes.
					o.IgnoreFilter = []string{"id"}
				}
				f, x, l := newPagingExporter(t, o, sink, 100)
				l.on.Store(true)
				r1 := runCalls(t, x)
				l.on.Store(false)
				r2 := runCalls(t, x)
				if r1.Err != nil || r2.Err != nil {
					t.Fatalf("runs: %v, %v", r1.Err, r2.Err)
				}
				if r1.Paging != tc.paging {
					t.Fatalf("paged %q, want %q (notes %q)", r1.Paging, tc.paging, r1.Notes)
				}
				if f.Sim.Stats.LiveInserted.Load() == 0 {
					t.Fatal("no call arrived during the first run")
				}
				got := times(t)
				var undecidable int64
				for _, id := range f.Sim.CallIDs() {
					truth := f.Sim.Call(id)
					shift := time.Duration(0)
					within := func(from time.Time) bool { // wholly inside one pass of the hour
						return !truth.Start.Before(from) && truth.End.Before(from.Add(time.Hour)) &&
							(truth.Answer.IsZero() || truth.Answer.Before(from.Add(time.Hour)))
					}
					switch {
					case within(fold2.Add(-time.Hour)):
						undecidable++ // read as the earlier pass: right
					case within(fold2):
						undecidable++
						shift = -time.Hour
					}
					g, ok := got[id]
					if !ok {
						t.Fatalf("call %d not exported", id)
					}
					if !g[0].Equal(truth.Start.Add(shift)) || !g[1].Equal(truth.End.Add(shift)) {
						t.Fatalf("call %d: %s → %s, want %s → %s (shift %s)", id, g[0], g[1], truth.Start.Add(shift), truth.End.Add(shift), shift)
					}
				}
				if len(got) != len(f.Sim.CallIDs()) {
					t.Fatalf("%d calls exported, %d on the PBX", len(got), len(f.Sim.CallIDs()))
				}
				notes := strings.Join(append(r1.Notes, r2.Notes...), "\n")
				switch {
				case season.start == autumn && undecidable == 0:
					t.Fatal("no call wholly inside the repeated hour's second pass: the data misses the case")
				case undecidable > 0 && !strings.Contains(notes, fmt.Sprintf("%d %s", undecidable, record.WarnAmbiguous)):
					t.Fatalf("notes %q: want the %d undecidable calls counted", notes, undecidable)
				case undecidable == 0 && strings.Contains(notes, record.WarnAmbiguous):
					t.Fatalf("notes %q: no call was undecidable", notes)
				}
			})
		}
	}
}

// timedSink opens a sink of kind and a way to read back each exported
// call's start and end instants, as a report would.
func timedSink(t *testing.T, kind string) (exporter.Sink, func(t *testing.T) map[int64][2]time.Time) {
	t.Helper()
	sink, dir, pool := openSink(t, kind)
	return sink, func(t *testing.T) map[int64][2]time.Time {
		t.Helper()
		out := map[int64][2]time.Time{}
		add := func(id int64, start, end time.Time) {
			if _, dup := out[id]; dup {
				t.Fatalf("call %d exported twice", id)
			}
			out[id] = [2]time.Time{start, end}
		}
		if pool != nil {
			rows, err := pool.Query(context.Background(), "SELECT id, start_time, end_time FROM call_history WHERE pbx = 'pbx'")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var id int64
				var start, end time.Time
				if err := rows.Scan(&id, &start, &end); err != nil {
					t.Fatal(err)
				}
				add(id, start, end)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return out
		}
		files, err := filepath.Glob(filepath.Join(dir, "call_history", "*.csv"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no CSV files: %v", err)
		}
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			col := func(n string) int {
				i := slices.Index(recs[0], n)
				if i < 0 {
					t.Fatalf("%s: no column %s", name, n)
				}
				return i
			}
			ci, cs, ce := col("id"), col("start_time"), col("end_time")
			for _, r := range recs[1:] {
				id, err1 := strconv.ParseInt(r[ci], 10, 64)
				start, err2 := time.Parse(time.RFC3339, r[cs])
				end, err3 := time.Parse(time.RFC3339, r[ce])
				if err := errors.Join(err1, err2, err3); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				add(id, start, end)
			}
		}
		return out
	}
}
