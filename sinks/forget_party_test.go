package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter"
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

// TestEraseOrganizationOfOtherParty: the CDR's organization (no column
// reads it, its party not said) is erased with the number only when the
// number is the row's only external party (a call from or to a
// colleague); in a row with two external parties (a transfer, a call
// forwarded to another external number), forgetting one leaves the
// other's number, name and the organization, which may be the other's
// (review1 P1; issue 30: everything else unchanged). In clear and
// pseudonymised, on the row shape forget and the suppression list share
// and on the CSV sink's. Fails without onlyParty (seen: organization
// erased in the rows with two external parties).
func TestEraseOrganizationOfOtherParty(t *testing.T) {
	t.Parallel()
	const gone, kept = "393528510165", "393528510166"
	f, k := testForgotten(t, "+"+gone)
	e := record.Builtin()[0]
	pk := func(d string) string { return k.Number(d) }
	for _, tc := range []struct {
		name              string
		from, to, lastapp string
		c_from, c_to      string
		wantOrg           string
		wantKept          []string // values the erasure must leave
	}{
		{name: "inbound from the number", from: "+" + gone, to: "201", wantOrg: Erased},
		{name: "outbound to the number", from: "201", to: "+" + gone, wantOrg: Erased},
		{name: "caller ids only", c_from: "+" + gone, c_to: "201", wantOrg: Erased},
		{name: "pseudonymised inbound", from: pk(gone), to: "201", wantOrg: Erased},
		{name: "external to external", from: "+" + gone, to: "+" + kept, wantOrg: "Verdi Impianti", wantKept: []string{"+" + kept, "Bruno Verdi"}},
		{name: "transfer to the number", from: "+" + kept, to: "+" + gone, wantOrg: "Verdi Impianti", wantKept: []string{"+" + kept, "Anna Rossi"}},
		{name: "other party in a caller id", from: "+" + gone, to: "201", c_to: "0039 352 8510166", wantOrg: "Verdi Impianti", wantKept: []string{"Bruno Verdi"}},
		{name: "pseudonymised, two external", from: pk(gone), to: pk(kept), wantOrg: "Verdi Impianti", wantKept: []string{pk(kept), "Bruno Verdi"}},
		{name: "number in free text only", from: "201", to: "202", lastapp: "cb +" + gone, wantOrg: "Verdi Impianti", wantKept: []string{"Anna Rossi", "Bruno Verdi"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra, _ := json.Marshal(map[string]string{"organization": "Verdi Impianti", "c_from": tc.c_from, "c_to": tc.c_to})
			raw, _ := json.Marshal(map[string]string{"from_number": tc.from, "from_name": "Anna Rossi", "to_number": tc.to, "to_name": "Bruno Verdi",
				"organization": "Verdi Impianti", "c_from": tc.c_from, "c_to": tc.c_to, "lastapp": tc.lastapp})
			values := map[string]string{"id": "7", "from_number": tc.from, "from_name": "Anna Rossi", "to_number": tc.to, "to_name": "Bruno Verdi",
				"lastapp": tc.lastapp, "extra": string(extra), "raw": string(raw)}
			check := func(where string, get func(string) string) {
				t.Helper()
				for _, c := range []string{"extra", "raw"} {
					if c == "raw" && get(c) == "" {
						continue // the CSV file has no raw
					}
					var m map[string]string
					if err := json.Unmarshal([]byte(get(c)), &m); err != nil {
						t.Fatalf("%s %s: %v", where, c, err)
					}
					if m["organization"] != tc.wantOrg {
						t.Errorf("%s %s: organization = %q, want %q", where, c, m["organization"], tc.wantOrg)
					}
				}
				all := ""
				for _, c := range []string{"from_number", "from_name", "to_number", "to_name", "lastapp", "extra", "raw"} {
					all += get(c) + " "
				}
				if strings.Contains(all, "8510165") || strings.Contains(all, pk(gone)) {
					t.Errorf("%s: the number is still there: %s", where, all)
				}
				for _, v := range tc.wantKept {
					if !strings.Contains(all, v) {
						t.Errorf("%s: %q lost: %s", where, v, all)
					}
				}
			}
			sh := endpointShape(&e, true)
			cells := make([]string, len(sh.names))
			for c, v := range values {
				cells[slices.Index(sh.names, c)] = v
			}
			if sh.erase(cells, f.match) == 0 {
				t.Fatal("nothing erased")
			}
			check("row", func(c string) string { return cells[slices.Index(sh.names, c)] })
			header := []string{"id", "from_number", "from_name", "to_number", "to_name", "lastapp", "extra"}
			row := make([]string, len(header))
			for i, c := range header {
				row[i] = values[c]
			}
			csvShape(&e, header).erase(row, f.match)
			check("CSV", func(c string) string {
				if i := slices.Index(header, c); i >= 0 {
					return row[i]
				}
				return ""
			})
		})
	}
}

// TestForgetCallerIDNameOnly: a caller id holding its party's name and no
// number (Asterisk's "Name" <> when the caller-id number is empty, or a
// bare name) goes with the number when the party's own number field holds
// it (attack3 F1): clid and c_from with from_number, c_to with to_number;
// the other party's caller id, name and number, and the company's dnid,
// stay. On both sinks, in clear and pseudonymised (names rule); forget
// finds every row beforehand, and a later export through the suppression
// list stores what forget left. Fails without eraseCallerIDs (seen:
// "Barnaby Wexford-Smythe" <> kept).
func TestForgetCallerIDNameOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const gone, kept = "393209105689", "393209105600"
	forgotten, k := testForgotten(t, "+"+gone)
	ep := record.Builtin()[0]
	pn, pname := k.Number(gone), k.Name("Barnaby Wexford-Smythe")
	records := []string{
		// the caller's name-only clid and c_from
		`"id":"1","from_number":"+` + gone + `","from_name":"Luca Müller","clid":"\"Barnaby Wexford-Smythe\" <>","c_from":"Barnaby Wexford-Smythe","to_number":"201","to_name":"Alice Bianchi","c_to":"\"Alice Bianchi\" <201>","dnid":"0230300000"`,
		`"id":"2","src":"+` + gone + `","clid":"Xanthippe Goldsworthy","to_number":"201","c_to":"Alice Bianchi"`,
		// pseudonymised (numbers,names)
		`"id":"3","from_number":"` + pn + `","from_name":"` + pname + `","clid":"` + pname + ` <>","to_number":"201","c_to":"Alice Bianchi"`,
		// the callee's: the caller, another external party, keeps hers
		`"id":"4","from_number":"+` + kept + `","from_name":"Kept Otherperson","clid":"\"Kept Otherperson\" <>","to_number":"+` + gone + `","c_to":"\"Gone Callee\" <>"`,
	}
	type sink interface {
		exporter.Sink
		ForgetFind(ctx context.Context, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error)
		ForgetErase(ctx context.Context, pbx string, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error)
		suppressStore
	}
	for _, tc := range []struct {
		name string
		// open returns a new sink and what it stores of the calls (extra,
		// and raw on PostgreSQL), one line a call.
		open func(t *testing.T) (sink, func() string)
	}{
		{"postgres", func(t *testing.T) (sink, func() string) {
			p, pool := newPostgres(t)
			return p, func() string {
				rows, err := pgx.CollectRows(must(pool.Query(ctx, `SELECT id::text || ' ' || coalesce(from_name, '') || ' ' || extra::text || ' ' || raw::text FROM call_history ORDER BY id`)), pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				return strings.Join(rows, "\n")
			}
		}},
		{"csv", func(t *testing.T) (sink, func() string) {
			f := newEditFolder(t)
			s, err := NewCSV(CSVOptions{Dir: f.dir})
			if err != nil {
				t.Fatal(err)
			}
			return s, func() string {
				var out []string
				for _, rows := range f.files("x") {
					for _, r := range rows {
						out = append(out, r["id"]+" "+r["from_number"]+" "+r["from_name"]+" "+r["extra"])
					}
				}
				slices.Sort(out)
				return strings.Join(out, "\n")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			write := func(s exporter.Sink) {
				var recs []string
				for _, f := range records {
					recs = append(recs, `{"start":"2026-01-10 10:00:00","timezone":"+0100",`+f+`}`)
				}
				writeRecords(t, s, &ep, 5, recs)
			}
			s, stored := tc.open(t)
			write(s)
			if got := stored(); !strings.Contains(got, "Barnaby") || !strings.Contains(got, "Gone Callee") {
				t.Fatalf("stored %s: the test proves nothing", got)
			}
			found, err := s.ForgetFind(ctx, forgotten, []record.Endpoint{ep})
			if err != nil || found.Rows() != int64(len(records)) {
				t.Errorf("ForgetFind found %+v (%v), want the %d calls", found, err, len(records))
			}
			if _, err := s.ForgetErase(ctx, "x", forgotten, []record.Endpoint{ep}); err != nil {
				t.Fatal(err)
			}
			erased := stored()
			for _, gone := range []string{"Barnaby", "Xanthippe", "Gone Callee", pname, "9105689", pn, "Luca"} {
				if strings.Contains(erased, gone) {
					t.Errorf("after forget %q is still there:\n%s", gone, erased)
				}
			}
			for _, keep := range []string{`Alice Bianchi\" <201>`, "0230300000", "Kept Otherperson", kept} {
				if !strings.Contains(erased, keep) {
					t.Errorf("after forget %q is lost:\n%s", keep, erased)
				}
			}
			if strings.Count(erased, `"Kept Otherperson\" <>"`) == 0 {
				t.Errorf("the other party's caller id is lost:\n%s", erased)
			}
			// Exported after the number was forgotten: through the list.
			s2, stored2 := tc.open(t)
			if _, _, err := s2.Suppress(ctx, forgotten, k); err != nil {
				t.Fatal(err)
			}
			l, err := s2.Suppression(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sup, err := l.Suppressor(k)
			if err != nil {
				t.Fatal(err)
			}
			write(suppressing{s2, sup})
			if again := stored2(); again != erased {
				t.Errorf("a later export through the suppression list stores\n%s\nforget left\n%s", again, erased)
			}
		})
	}
}

// TestForgetNameByCallerIDOnly: a call whose party's own number fields
// name no one (empty, "anonymous", "unknown") and whose number is in
// that party's caller-id field only (clid or c_from for the caller; c_to,
// or dnid, the number dialled, for the callee) has the party's name
// erased with the number, in the column and in raw (attack4 F5): the
// name beside the number. A party whose own field holds a colleague's
// extension or another number keeps its name, as does the callee of a
// call whose trunk's number (did, the company's) is the number. On both
// sinks, compared row by row, in clear and pseudonymised (numbers,names),
// in a quarantined record; a later export through the suppression list
// stores what forget left. Fails without idOnlyParties (seen: from_name
// "Giuseppe Verdi" kept in rows 1-3, 8, to_name in rows 4-5).
func TestForgetNameByCallerIDOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const gone, kept = "393471110109", "393471110120"
	forgotten, k := testForgotten(t, "+"+gone)
	ep := record.Builtin()[0]
	pn, pname := k.Number(gone), k.Name("Giuseppe Verdi")
	// Each call: the record's fields, and from_name and to_name after
	// forget.
	calls := []struct{ fields, from, to string }{
		{`"from_number":"","src":"","from_name":"Giuseppe Verdi","clid":"\"Giuseppe Verdi\" <+` + gone + `>","to_number":"201","to_name":"Alice Bianchi"`, Erased, "Alice Bianchi"},
		{`"from_number":"unknown","src":"unknown","from_name":"Giuseppe Verdi","c_from":"+` + gone + `","to_number":"201","to_name":"Alice Bianchi"`, Erased, "Alice Bianchi"},
		{`"from_number":"anonymous","from_name":"Giuseppe Verdi","clid":"Giuseppe Verdi <0039 347 111 0109>","c_from":"Giuseppe Verdi","dst":"201","to_name":"Alice Bianchi"`, Erased, "Alice Bianchi"},
		{`"from_number":"201","from_name":"Alice Bianchi","to_number":"","dst":"","to_name":"Giuseppe Verdi","c_to":"+` + gone + `"`, "Alice Bianchi", Erased},
		{`"from_number":"201","from_name":"Alice Bianchi","to_number":"","to_name":"Giuseppe Verdi","dnid":"+` + gone + `"`, "Alice Bianchi", Erased},
		// kept: the caller's own field holds a colleague's extension, or
		// another number; the company's trunk number is not the callee's
		{`"from_number":"202","from_name":"Bruno Colleague","clid":"\"Bruno Colleague\" <+` + gone + `>","to_number":"+` + kept + `","to_name":"Kept Otherperson"`, "Bruno Colleague", "Kept Otherperson"},
		{`"from_number":"+` + kept + `","from_name":"Kept Otherperson","c_from":"+` + gone + `","to_number":"","to_name":"Reception","did":"+` + gone + `"`, "Kept Otherperson", "Reception"},
		// pseudonymised (numbers,names)
		{`"from_number":"","src":"","from_name":"` + pname + `","clid":"` + pname + ` <` + pn + `>","to_number":"201","to_name":"Alice Bianchi"`, Erased, "Alice Bianchi"},
		{`"from_number":"` + k.Number(kept) + `","from_name":"` + k.Name("Kept Otherperson") + `","c_from":"` + pn + `","to_number":"201","to_name":"Alice Bianchi"`, k.Name("Kept Otherperson"), "Alice Bianchi"},
	}
	type sink interface {
		exporter.Sink
		ForgetErase(ctx context.Context, pbx string, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error)
		suppressStore
	}
	// stored is, per call id, each place of its names (the columns, and
	// raw's members on PostgreSQL) and its value.
	type stored map[string]map[string]string
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (sink, func() stored)
	}{
		{"postgres", func(t *testing.T) (sink, func() stored) {
			p, pool := newPostgres(t)
			return p, func() stored {
				out := stored{}
				rows := must(pool.Query(ctx, `SELECT id::text, coalesce(from_name, ''), coalesce(to_name, ''), coalesce(raw->>'from_name', ''), coalesce(raw->>'to_name', '') FROM call_history`))
				for rows.Next() {
					var id, fn, tn, rfn, rtn string
					if err := rows.Scan(&id, &fn, &tn, &rfn, &rtn); err != nil {
						t.Fatal(err)
					}
					out[id] = map[string]string{"from_name": fn, "to_name": tn, "raw from_name": rfn, "raw to_name": rtn}
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				return out
			}
		}},
		{"csv", func(t *testing.T) (sink, func() stored) {
			f := newEditFolder(t)
			s, err := NewCSV(CSVOptions{Dir: f.dir})
			if err != nil {
				t.Fatal(err)
			}
			return s, func() stored {
				out := stored{}
				for _, rows := range f.files("x") {
					for _, r := range rows {
						out[r["id"]] = map[string]string{"from_name": r["from_name"], "to_name": r["to_name"]}
					}
				}
				return out
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			write := func(s exporter.Sink) {
				var recs []string
				for i, c := range calls {
					recs = append(recs, fmt.Sprintf(`{"id":"%d","start":"2026-01-10 10:00:00","timezone":"+0100",%s}`, i+1, c.fields))
				}
				writeRecords(t, s, &ep, 9, recs)
			}
			s, read := tc.open(t)
			write(s)
			before := read()
			if len(before) != len(calls) || before["1"]["from_name"] != "Giuseppe Verdi" {
				t.Fatalf("stored %v: the test proves nothing", before)
			}
			if _, err := s.ForgetErase(ctx, "x", forgotten, []record.Endpoint{ep}); err != nil {
				t.Fatal(err)
			}
			erased := read()
			for i, c := range calls {
				id := strconv.Itoa(i + 1)
				for place, got := range erased[id] {
					want := c.from
					if strings.HasSuffix(place, "to_name") {
						want = c.to
					}
					if got != want {
						t.Errorf("call %s (%s): %s = %q after forget, want %q", id, c.fields, place, got, want)
					}
				}
			}
			// Exported after the number was forgotten: through the list.
			s2, read2 := tc.open(t)
			if _, _, err := s2.Suppress(ctx, forgotten, k); err != nil {
				t.Fatal(err)
			}
			l, err := s2.Suppression(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sup, err := l.Suppressor(k)
			if err != nil {
				t.Fatal(err)
			}
			write(suppressing{s2, sup})
			if again := read2(); !reflect.DeepEqual(again, erased) {
				t.Errorf("a later export through the suppression list stores\n%v\nforget left\n%v", again, erased)
			}
		})
	}
	t.Run("quarantined", func(t *testing.T) {
		sh := quarantinePlace([]record.Endpoint{ep}).shape
		for i, c := range calls {
			rec := `{` + c.fields + `}`
			cells := []string{"", rec, ep.Name}
			sh.erase(cells, forgotten.match)
			var got map[string]any
			if err := json.Unmarshal([]byte(cells[1]), &got); err != nil {
				t.Fatal(err)
			}
			if got["from_name"] != c.from || got["to_name"] != c.to {
				t.Errorf("call %d: quarantined record %s, want from_name %q, to_name %q", i+1, cells[1], c.from, c.to)
			}
		}
	})
}
