package exporter_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestRecordingsRetentionNoOrphanFile: with the retention cut just before
// the middle recording (the guard's clock fixed, as each run fixes it to
// its start), the recordings older than the cut are neither copied nor
// written, the others both: every stored file is named by a row (a file
// no row names is never pruned nor found by forget; review
// 30-retention F1). privacy.Guard's SuppressesFile (before the copy) and
// Rows (at the write) decide by the same record.Retention.
func TestRecordingsRetentionNoOrphanFile(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{}, "csv", nil)
	recs := e.sim.Recordings()
	mid := recs[len(recs)/2].Start
	const R = 30 * 24 * time.Hour
	now := mid.Add(R).Add(-time.Second).Truncate(time.Second) // the cut a second before the middle recording
	e.x.Guard = &privacy.Guard{Retention: R, Now: func() time.Time { return now }}
	if res := e.run(t); res.Err != nil {
		t.Fatal(res.Err)
	}
	cut := now.Add(-R)
	named := map[string]bool{}
	rows := e.rows(t)
	for _, r := range rows {
		named[r[1]] = true
	}
	var stored, orphans int
	filepath.WalkDir(e.storeDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			stored++
			rel, _ := filepath.Rel(e.storeDir, p)
			if !named[filepath.ToSlash(rel)] {
				orphans++
				t.Errorf("stored, no row names it: %s", rel)
			}
		}
		return nil
	})
	var want int
	for _, r := range recs {
		if !r.Start.Before(cut) {
			want++
		}
	}
	t.Logf("%d recordings, %d from the cut %v; %d files stored, %d rows", len(recs), want, cut, stored, len(rows))
	if orphans > 0 || stored != want || len(rows) != want || want == 0 || want == len(recs) {
		t.Fatalf("%d files stored (%d named by no row), %d rows: want the %d recordings from the cut, each once", stored, orphans, len(rows), want)
	}
}
