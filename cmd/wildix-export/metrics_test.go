package main

import (
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wildix-export/wildix-export/exporter"
)

// TestMetricsCountFilteredAndVanished: what a run dropped as outside the
// asked bounds, and what vanished while it read, reach /metrics, added up
// over runs.
func TestMetricsCountFilteredAndVanished(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	m.endpoint(exporter.EndpointResult{Endpoint: "call_history", Rows: 5, Filtered: 7, Vanished: 3})
	m.endpoint(exporter.EndpointResult{Endpoint: "call_history", Rows: 1, Filtered: 2})
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	got := parseMetrics(rec.Body.String())
	for name, want := range map[string]float64{
		`wildix_export_filtered_records_total{endpoint="call_history"}`: 9,
		`wildix_export_vanished_records_total{endpoint="call_history"}`: 3,
		`wildix_export_rows_total{endpoint="call_history"}`:             6,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v\n%s", name, got[name], want, rec.Body.String())
		}
	}
}
