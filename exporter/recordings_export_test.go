package exporter_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// recordingsEndpoint is the catalog's recordings endpoint.
func recordingsEndpoint(t *testing.T) record.Endpoint {
	t.Helper()
	c, err := record.NewCatalog(record.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	eps, err := c.Select([]string{"recordings"})
	if err != nil {
		t.Fatal(err)
	}
	return eps[0]
}

// TestRecordingsWithoutStore: without a recordings store, exporting the
// recordings endpoint fails it with a configuration error naming
// EXPORT_RECORDINGS_STORE; the other endpoints of the run are exported.
func TestRecordingsWithoutStore(t *testing.T) {
	t.Parallel()
	_, x, _, _ := setup(t, pbxsim.Options{Calls: 50, Seed: 3, Recordings: pbxsim.RecordingOptions{Every: 2}})
	eps := []record.Endpoint{recordingsEndpoint(t), record.Builtin()[1]}
	r := x.Run(context.Background(), exporter.NewRunID(time.Now()), "once", eps)
	rec, col := r.Endpoints[0], r.Endpoints[1]
	if rec.Err == nil || !errors.Is(rec.Err, record.ErrConfig) || !strings.Contains(rec.Err.Error(), "EXPORT_RECORDINGS_STORE") {
		t.Fatalf("recordings: err %v, want a configuration error naming EXPORT_RECORDINGS_STORE", rec.Err)
	}
	if rec.Recordings == nil || rec.Rows != 0 {
		t.Fatalf("recordings: %+v", rec)
	}
	if col.Err != nil || col.Rows == 0 {
		t.Fatalf("colleagues: rows %d, err %v", col.Rows, col.Err)
	}
}
