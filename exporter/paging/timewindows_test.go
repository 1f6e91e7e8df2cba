package paging

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestTimeWindows reads an hour of call history by time windows, in
// process: whole and once on a PBX honouring the time filter, whatever it
// does with the key filter and the sort, at pages too small for most
// windows; a PBX ignoring the time filter as well stops the read.
func TestTimeWindows(t *testing.T) {
	t.Parallel()
	startRe := regexp.MustCompile(`"start":"[^"]*"`)
	ignoresTime := func(_ *http.Request, status int, body []byte) (int, []byte) {
		return status, startRe.ReplaceAll(body, []byte(`"start":"1999-01-01 00:00:00"`))
	}
	longer := rewriteAnswer(func(_ url.Values, ids []int64, total string) ([]int64, string) {
		if len(ids) > 0 {
			ids = append(ids, ids[0])
		}
		return ids, "" // no total, which would be below the records sent
	})
	var answers atomic.Int64
	capLate := rewriteAnswer(func(_ url.Values, ids []int64, total string) ([]int64, string) {
		if answers.Add(1) > 2 && len(ids) > 5 {
			ids = ids[:5] // a cap appearing after pages were seen full
		}
		return ids, total
	})
	for _, tc := range []struct {
		name     string
		o        pbxsim.Options
		size     int
		err      string
		maxPages int
	}{
		{"pages of 10", pbxsim.Options{Calls: 150}, 10, "", 0},
		{"pages of 3, sort and id filter ignored", pbxsim.Options{Calls: 150, IgnoreSort: true, IgnoreFilter: []string{"id"}}, 3, "", 0},
		{"a busy second, pages of 2", pbxsim.Options{Calls: 60, CallGap: time.Second}, 2, "", 0},
		{"the time filter ignored", pbxsim.Options{Calls: 150, Rewrite: ignoresTime}, 10, "it ignores filter[start] as well", 0},
		{"more records than asked", pbxsim.Options{Calls: 150, Rewrite: longer}, 10, "records for count=10", 0},
		{"a cap appearing late", pbxsim.Options{Calls: 150, Rewrite: capLate}, 10, "", 0},
		{"more pages than allowed", pbxsim.Options{Calls: 150}, 10, "EXPORT_MAX_PAGES=2", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, l := newSim(tc.o)
			rd := newReader(l, tc.size, 1)
			if tc.maxPages > 0 {
				rd.MaxPages = tc.maxPages
			}
			from, to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)
			got := tally{}
			err := (&TimeWindows{Reader: rd}).Read(context.Background(), from, to, func(rows []record.Row) error {
				for _, row := range rows {
					got[row.Cursor]++
				}
				return nil
			})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want, wrong []int64
			for _, id := range sim.CallIDs() {
				if s := callStart(sim, id); s >= "2026-01-01 00:00:00" && s < "2026-01-01 01:00:00" {
					want = append(want, id)
					if got[id] != 1 {
						wrong = append(wrong, id)
					}
				}
			}
			if len(want) == 0 || len(got) != len(want) || len(wrong) > 0 {
				t.Fatalf("%d calls read, %d in the hour; read other than once: %v", len(got), len(want), wrong)
			}
		})
	}
}
