package sinks

import (
	"context"
	"testing"
	"time"
)

// TestRetentionLimitStored: on both sinks, no limit before a prune stored
// one; the one stored is read back, per PBX, and replaced by the next.
func TestRetentionLimitStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type store interface {
		RetentionLimit(ctx context.Context, pbx string) (time.Duration, error)
		SetRetentionLimit(ctx context.Context, pbx, run string, limit time.Duration) error
	}
	c, err := NewCSV(CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := newPostgres(t)
	for name, s := range map[string]store{"csv": c, "postgres": p} {
		if d, err := s.RetentionLimit(ctx, "p1"); err != nil || d != 0 {
			t.Fatalf("%s: before any prune: %v %v, want 0", name, d, err)
		}
		for _, want := range []time.Duration{400 * 24 * time.Hour, 40 * 24 * time.Hour} {
			if err := s.SetRetentionLimit(ctx, "p1", "r1", want); err != nil {
				t.Fatal(err)
			}
			if d, err := s.RetentionLimit(ctx, "p1"); err != nil || d != want {
				t.Fatalf("%s: read %v %v, want %v", name, d, err, want)
			}
		}
		if d, err := s.RetentionLimit(ctx, "p2"); err != nil || d != 0 {
			t.Fatalf("%s: another PBX: %v %v, want 0", name, d, err)
		}
	}
}
