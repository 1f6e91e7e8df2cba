package exporter_test

import (
	"context"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestPrivacyChangeRecordedOnce: the rule and key id go with every run's
// result (the ledger's), a forced change with the first run only, not
// with each later run of the same Exporter (a worker's).
func TestPrivacyChangeRecordedOnce(t *testing.T) {
	t.Parallel()
	sink, _, _ := openSink(t, "csv")
	_, x, _ := newPagingExporter(t, pbxsim.Options{Calls: 50}, sink, 100)
	x.Privacy = exporter.Privacy{Rule: "numbers", KeyID: "k:abcdefgh", Changed: "none"}
	want := []exporter.Privacy{x.Privacy, {Rule: "numbers", KeyID: "k:abcdefgh"}}
	for i, w := range want {
		r := x.Run(context.Background(), exporter.NewRunID(time.Now()), "once", record.Builtin()[:1])
		if r.Err() != nil || r.Privacy != w {
			t.Fatalf("run %d: privacy %+v, %v; want %+v", i+1, r.Privacy, r.Err(), w)
		}
	}
}
