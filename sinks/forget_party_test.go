package sinks

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// TestEraseGroupMemberName: forgetting a call group's external member's
// number erases the name in the member's object with it (attack 30 B2),
// in the members column and in raw, in clear and pseudonymised, on both
// sinks' row shapes and so in the suppression list (rowShape.erase); a
// colleague's member, the group's own name (raw's top-level object, the
// record) and another external member stay. Fails without the party
// objects' names erased (seen: "Ignatius Fairweather" kept).
func TestEraseGroupMemberName(t *testing.T) {
	t.Parallel()
	f, k := testForgotten(t, "+39 351 999 0003")
	var e record.Endpoint
	for _, x := range record.Builtin() {
		if x.Name == "call_groups" {
			e = x
		}
	}
	const other = `{"extension":"+393519990009","name":"Kept Otherperson"}`
	for _, member := range []string{
		`{"extension":"+393519990003","name":"Ignatius Fairweather"}`,
		`{"number":393519990003,"displayName":"Ignatius Fairweather","names":["x"]}`,
		`{"interface":"SIP/trunk/0039 351 999 0003","callerName":["Ignatius Fairweather"]}`,
		`{"393519990003":"mobile","name":"Ignatius Fairweather"}`,
		`{"extension":"` + k.Number("393519990003") + `","name":"` + k.Name("Ignatius Fairweather") + `"}`,
	} {
		members := `[{"extension":"201","name":"Alice Bianchi"},"SIP/202",` + member + `,` + other + `]`
		settings := `{"strategy":"ringall","forward":` + member + `}`
		raw := `{"id":"2","name":"Support queue","members":` + members + `,"settings":` + settings + `}`
		check := func(where, got string) {
			t.Helper()
			if strings.Contains(got, "Ignatius") || strings.Contains(got, k.Name("Ignatius Fairweather")) || strings.Contains(got, "9990003") {
				t.Errorf("%s: the member's name or number is still there: %s", where, got)
			}
			for _, kept := range []string{`"name":"Alice Bianchi"`, other} {
				if where != "settings" && !strings.Contains(got, kept) {
					t.Errorf("%s: %s lost %s", where, got, kept)
				}
			}
			if where == "raw" && !strings.Contains(got, `"name":"Support queue"`) {
				t.Errorf("raw: %s lost the group's own name", got)
			}
		}
		sh := endpointShape(&e, true)
		cells := make([]string, len(sh.names))
		set := func(name, v string) { cells[slices.Index(sh.names, name)] = v }
		get := func(name string) string { return cells[slices.Index(sh.names, name)] }
		set("id", "2")
		set("name", "Support queue")
		set("members", members)
		set("settings", settings)
		set("raw", raw)
		if n := sh.erase(cells, f.match); n == 0 {
			t.Fatalf("%s: nothing erased", member)
		}
		for _, c := range []string{"members", "settings", "raw"} {
			check(c, get(c))
		}
		if get("name") != "Support queue" {
			t.Errorf("name = %q", get("name"))
		}
		csv := csvShape(&e, []string{"id", "title", "name", "members", "settings", "extra"})
		row := []string{"2", "", "Support queue", members, settings, "{}"}
		csv.erase(row, f.match)
		check("CSV members", row[3])
		check("settings", row[4])
	}
}

// TestForgetGroupMemberPostgres: in PostgreSQL, forget erases a call
// group's external member's name with its number, in members and raw
// (attack 30 B2), the colleague's member kept, and finds nothing after.
func TestForgetGroupMemberPostgres(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	ctx := context.Background()
	cat, err := record.NewCatalog(record.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	members := `[{"extension":"201","name":"Alice Bianchi"},{"extension":"+393519990003","name":"Ignatius Fairweather"}]`
	if _, err := pool.Exec(ctx, `INSERT INTO call_groups (pbx, id, title, members, raw, run_id) VALUES ('x', '2', 'Support queue', $1::jsonb, jsonb_build_object('id', '2', 'members', $1::jsonb), 'r1')`, members); err != nil {
		t.Fatal(err)
	}
	forgotten, _ := testForgotten(t, "+393519990003")
	if _, err := p.ForgetErase(ctx, "x", forgotten, cat.All()); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := pool.QueryRow(ctx, `SELECT members::text || ' ' || raw::text FROM call_groups`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "Ignatius") || strings.Contains(got, "9990003") || strings.Count(got, `"name": "Alice Bianchi"`) != 2 {
		t.Errorf("members and raw: %s; want the external member's number and name erased, Alice kept", got)
	}
	found, err := p.ForgetFind(ctx, forgotten, cat.All())
	if err != nil || found.Rows() != 0 {
		t.Errorf("a second search found %+v, %v", found, err)
	}
}
