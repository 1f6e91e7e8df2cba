package sinks

import (
	"context"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
)

// TestCallGroupsExported: the simulator's call groups, whose members come
// as extensions, objects and SIP/ interfaces, land in call_groups with
// members and settings kept as sent.
func TestCallGroupsExported(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	f := simtest.New(t, pbxsim.Options{Calls: 10, CallGap: time.Minute})
	eps, err := record.NewCatalog(record.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	sel, err := eps.Select([]string{"call_groups"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := newExporter(t, f, p).Run(ctx, "r", "once", sel).Err(); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT id, title, members::text, settings->>'strategy' FROM call_groups WHERE deleted_at IS NULL ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got [][4]string
	for rows.Next() {
		var r [4]string
		if err := rows.Scan(&r[0], &r[1], &r[2], &r[3]); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := [][4]string{
		{"1", "Sales", `["201", "202", "203"]`, "ringall"},
		{"2", "Support queue", `[{"name": "member 203", "extension": "203"}, {"name": "member 204", "extension": "204"}, {"name": "member 205", "extension": "205"}, {"name": "member 206", "extension": "206"}]`, "rrmemory"},
		{"3", "Reception", `["SIP/201", "SIP/206"]`, "linear"},
	}
	if len(got) != len(want) {
		t.Fatalf("call_groups: %d rows %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call_groups row %d: got %q, want %q", i, got[i], want[i])
		}
	}
}
