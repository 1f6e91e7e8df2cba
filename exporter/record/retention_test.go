package record

import (
	"testing"
	"time"
)

// TestRetentionColumnOfEveryEndpoint: each built-in incremental endpoint
// with a time field has its column, so that none escapes the retention
// unseen; no snapshot has one.
func TestRetentionColumnOfEveryEndpoint(t *testing.T) {
	t.Parallel()
	for _, ep := range Builtin() {
		col := RetentionColumn(&ep)
		switch {
		case ep.Mode == Incremental && ep.TimeField != "" && col < 0:
			t.Errorf("%s: time field %q has no timestamptz column", ep.Name, ep.TimeField)
		case ep.Mode != Incremental && col >= 0:
			t.Errorf("%s: a %s endpoint under retention", ep.Name, ep.Mode)
		}
	}
}

// TestRetentionSnapshotWithTimeField: a custom snapshot declaring a
// time_field is never touched by retention (README, Retention), whatever
// its rows' times.
func TestRetentionSnapshotWithTimeField(t *testing.T) {
	t.Parallel()
	ep := Endpoint{Name: "shifts", Mode: Snapshot, TimeField: "start",
		Columns: []Column{{Name: "id", Field: "id", Type: Text}, {Name: "start_time", Field: "start", Type: Timestamp}}}
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := Retention{Cut: cut}
	if c := RetentionColumn(&ep); c >= 0 {
		t.Fatalf("snapshot's retention column %d, want none", c)
	}
	if r.Drops(&ep, Row{Values: []any{"1", cut.AddDate(-5, 0, 0)}}) {
		t.Fatal("a snapshot's old row dropped")
	}
	ep.Mode = Incremental
	if !r.Drops(&ep, Row{Values: []any{"1", cut.AddDate(-5, 0, 0)}}) {
		t.Fatal("an incremental endpoint's old row kept")
	}
}

// TestRetentionExpired: strictly before the cut; the call at the cut and
// the one of unknown time kept; no cut keeps all.
func TestRetentionExpired(t *testing.T) {
	t.Parallel()
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := Retention{Cut: cut}
	for _, tc := range []struct {
		name  string
		r     Retention
		t     time.Time
		known bool
		want  bool
	}{
		{"before", r, cut.Add(-time.Nanosecond), true, true},
		{"at the cut", r, cut, true, false},
		{"after", r, cut.Add(time.Second), true, false},
		{"unknown", r, time.Time{}, false, false},
		{"no cut", Retention{}, cut.AddDate(-10, 0, 0), true, false},
	} {
		if got := tc.r.Expired(tc.t, tc.known); got != tc.want {
			t.Errorf("%s: Expired %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := RetentionAt(time.Date(2026, 12, 7, 3, 0, 0, 999, time.FixedZone("x", 3600)), 24*time.Hour).Cut; !got.Equal(time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)) || got.Location() != time.UTC {
		t.Errorf("RetentionAt %v", got)
	}
	if !RetentionAt(time.Now(), 0).Cut.IsZero() {
		t.Error("RetentionAt without a limit has a cut")
	}
}
