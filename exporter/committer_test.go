package exporter_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestRetentionFloor: with EXPORT_RETENTION, the rows of calls begun before
// the cutoff never reach a sink, whichever policy reads them (an
// incremental run by key or by time windows, a backfill of the whole
// history), on both sinks: exactly the calls begun at or after it are
// exported, each once, and the run notes how many it left out. It fails
// when the Guard is not applied in the committer.
func TestRetentionFloor(t *testing.T) {
	t.Parallel()
	const retention = 30 * 24 * time.Hour
	for _, tc := range []struct {
		name     string
		o        pbxsim.Options
		backfill bool
	}{
		{"incremental by key", pbxsim.Options{}, false},
		{"incremental by time windows", pbxsim.Options{IgnoreFilter: []string{"id"}}, false},
		{"backfill", pbxsim.Options{}, true},
	} {
		for _, tg := range targets {
			t.Run(tc.name+"/"+tg.name, func(t *testing.T) {
				t.Parallel()
				sink, exported := tg.open(t)
				o := tc.o // each parallel subtest its own copy: the targets share tc
				o.Calls, o.CallGap = 1500, 2*time.Minute
				f, x, _ := newPagingExporter(t, o, sink, 100)
				x.Now = present(f.Sim, &atomic.Int64{})
				cutoff := f.Sim.Call(700).Start
				x.Guard = &privacy.Guard{Retention: retention, Now: func() time.Time { return cutoff.Add(retention) }}
				var res exporter.EndpointResult
				if tc.backfill {
					from := f.Sim.Call(1).Start.Add(-24 * time.Hour).In(x.Zone)
					to := f.Sim.Call(f.Sim.MaxCallID()).End.Add(24 * time.Hour).In(x.Zone)
					res = backfill(t, x, exporter.BackfillOptions{From: wall(from), To: wall(to), Window: 24 * time.Hour})
				} else {
					res = x.Run(context.Background(), exporter.NewRunID(time.Now()), "once", record.Builtin()[:1]).Endpoints[0]
				}
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				wantRange(t, f.Sim, exported(t), callStart(t, f.Sim, 700), "9999", nil)
				if !strings.Contains(strings.Join(res.Notes, "\n"), "older than EXPORT_RETENTION") {
					t.Fatalf("notes %q say nothing of the rows left out", res.Notes)
				}
			})
		}
	}
}

// wall is t's wall clock read as UTC: BackfillOptions' PBX-local times.
func wall(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
}
