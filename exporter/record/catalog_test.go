package record_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

func TestBuiltinCatalogIsValid(t *testing.T) {
	t.Parallel()
	c, err := record.NewCatalog(record.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.All()); n != len(record.Builtin()) {
		t.Fatalf("%d endpoints, want %d", n, len(record.Builtin()))
	}
}

// TestCatalogDeclarations: the key, cursor, time, sort and Expect fields of
// a custom endpoint must be declared columns of a fitting type, or loading
// the catalog fails (before any request) with an error wrapping ErrConfig
// that names the endpoint and the field.
func TestCatalogDeclarations(t *testing.T) {
	t.Parallel()
	const id = `{"name": "id", "field": "id", "type": "bigint"}`
	for _, tc := range []struct {
		name string
		json string
		err  string // "" when it loads
	}{
		{"incremental with defaults", `{"name": "tickets", "path": "/api/v1/Tickets", "key": ["id"], "mode": "incremental"}`, ""},
		{"snapshot with defaults", `{"name": "rooms", "path": "/api/v1/Rooms", "key": ["id"], "mode": "snapshot"}`, ""},
		{"everything declared", `{"name": "tickets", "path": "/api/v1/Tickets", "key": ["id"], "mode": "incremental", "cursor": "seq", "time_field": "opened",
			"expect": {"closed": "opened+secs"}, "columns": [` + id + `, {"name": "seq", "field": "seq", "type": "integer"},
			{"name": "opened", "field": "opened", "type": "timestamptz"}, {"name": "closed", "field": "closed", "type": "timestamptz"},
			{"name": "secs", "field": "secs", "type": "bigint"}]}`, ""},
		{"cursor not declared", `{"name": "tickets", "path": "/api/v1/Tickets", "key": ["id"], "mode": "incremental", "cursor": "seq", "columns": [` + id + `]}`,
			`endpoint "tickets": cursor field "seq" is not a declared column`},
		{"cursor as text", `{"name": "tickets", "path": "/api/v1/Tickets", "key": ["id"], "mode": "incremental", "columns": [{"name": "id", "field": "id", "type": "text"}]}`,
			`endpoint "tickets": cursor field "id" is declared as text (column "id"); a cursor must be bigint or integer`},
		{"cursor as numeric", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "incremental", "columns": [{"name": "id", "field": "id", "type": "numeric"}]}`,
			`cursor field "id" is declared as numeric`},
		{"time field not declared", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "incremental", "time_field": "created", "columns": [` + id + `]}`,
			`endpoint "t": time field "created" is not a declared column`},
		{"time field as text", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "incremental", "time_field": "created", "columns": [` + id + `, {"name": "created", "field": "created", "type": "text"}]}`,
			`time field "created" is declared as text (column "created"); a time must be timestamptz`},
		{"sort not declared", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "snapshot", "sort": "name", "columns": [` + id + `]}`,
			`endpoint "t": sort field "name" is not a declared column`},
		{"sort on json", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "snapshot", "sort": "v", "columns": [` + id + `, {"name": "v", "field": "v", "type": "jsonb"}]}`,
			`sort field "v" is declared as jsonb`},
		{"personal declared", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "snapshot", "columns": [` + id + `, {"name": "caller", "field": "caller", "type": "text"},
			{"name": "who", "field": "who", "type": "text"}], "personal": {"caller": {"kind": "number"}, "who": {"kind": "name", "of": "caller"}}}`, ""},
		{"personal not a column", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "snapshot", "columns": [` + id + `], "personal": {"caller": {"kind": "number"}}}`,
			`personal column "caller" is not a column`},
		{"personal kind unknown", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "snapshot", "columns": [` + id + `, {"name": "c", "field": "c", "type": "text"}], "personal": {"c": {"kind": "phone"}}}`,
			`personal column "c" has kind "phone"`},
		{"personal key", `{"name": "t", "path": "/api/v1/T", "key": ["c"], "mode": "snapshot", "columns": [{"name": "c", "field": "c", "type": "text"}], "personal": {"c": {"kind": "number"}}}`,
			`personal column "c" is the key`},
		{"personal of a bigint", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "snapshot", "columns": [` + id + `, {"name": "n", "field": "n", "type": "bigint"}], "personal": {"n": {"kind": "number"}}}`,
			`personal column "n" is of type bigint`},
		{"personal name of a name", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "snapshot", "columns": [` + id + `, {"name": "a", "field": "a", "type": "text"}, {"name": "b", "field": "b", "type": "text"}], "personal": {"a": {"kind": "name"}, "b": {"kind": "name", "of": "a"}}}`,
			`personal column "b": of "a"`},
		{"key not declared", `{"name": "t", "path": "/api/v1/T", "key": ["uid"], "mode": "snapshot", "columns": [` + id + `]}`,
			`endpoint "t": key field "uid" is not a declared column`},
		{"key as boolean", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "snapshot", "columns": [{"name": "id", "field": "id", "type": "boolean"}]}`,
			`key field "id" is declared as boolean`},
		{"expect on text", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "incremental", "time_field": "a", "expect": {"b": "a+d"},
			"columns": [` + id + `, {"name": "a", "field": "a", "type": "timestamptz"}, {"name": "b", "field": "b", "type": "text"}, {"name": "d", "field": "d", "type": "bigint"}]}`,
			`expect "b": expected time field "b" is declared as text`},
		{"expect from another time", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "incremental", "time_field": "a", "expect": {"b": "c+d"},
			"columns": [` + id + `, {"name": "a", "field": "a", "type": "timestamptz"}, {"name": "b", "field": "b", "type": "timestamptz"}, {"name": "d", "field": "d", "type": "bigint"}]}`,
			`expect "b": "c+d" must start with the time field "a"`},
		{"expect with text seconds", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "incremental", "time_field": "a", "expect": {"b": "a+d"},
			"columns": [` + id + `, {"name": "a", "field": "a", "type": "timestamptz"}, {"name": "b", "field": "b", "type": "timestamptz"}, {"name": "d", "field": "d", "type": "text"}]}`,
			`expect "b": duration field "d" is declared as text`},
		{"expect seconds not declared", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "incremental", "time_field": "a", "expect": {"b": "a-d"},
			"columns": [` + id + `, {"name": "a", "field": "a", "type": "timestamptz"}, {"name": "b", "field": "b", "type": "timestamptz"}]}`,
			`expect "b": duration field "d" is not a declared column`},
		{"one field, two columns", `{"name": "t", "path": "/api/v1/T", "key": ["id"], "mode": "snapshot", "columns": [` + id + `, {"name": "id2", "field": "id", "type": "text"}]}`,
			`endpoint "t": field "id" is declared by two columns`},
		{"name taken by a built-in", `{"name": "call_history", "path": "/api/v1/T", "key": ["id"], "mode": "snapshot"}`,
			`endpoint "call_history" is declared twice`},
		{"not JSON", `{"name": `, `expected a JSON array of endpoints`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "endpoints.json")
			body := "[" + tc.json + "]"
			if tc.name == "not JSON" {
				body = tc.json
			}
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := record.LoadCatalog(path)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if n := len(c.All()); n != len(record.Builtin())+1 {
					t.Fatalf("%d endpoints, want the built-ins and one", n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.err)
			}
			if !errors.Is(err, record.ErrConfig) || !strings.Contains(err.Error(), "EXPORT_ENDPOINTS_FILE="+path) {
				t.Fatalf("err = %v: want ErrConfig naming EXPORT_ENDPOINTS_FILE", err)
			}
		})
	}
	_, err := record.LoadCatalog(filepath.Join(t.TempDir(), "missing.json"))
	if !errors.Is(err, record.ErrConfig) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want ErrConfig and ErrNotExist", err)
	}
}

// TestDefaultCursorColumn: an incremental endpoint declared without
// columns gets its cursor as a bigint column, so that its cursor is read.
func TestDefaultCursorColumn(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "endpoints.json")
	if err := os.WriteFile(path, []byte(`[{"name": "tickets", "path": "/api/v1/Tickets", "key": ["ticketId"], "mode": "incremental"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := record.LoadCatalog(path)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := c.Select([]string{"tickets"})
	if err != nil {
		t.Fatal(err)
	}
	e := eps[0]
	if e.Cursor != "ticketId" || len(e.Columns) != 1 || e.Columns[0] != (record.Column{Name: "ticket_id", Field: "ticketId", Type: record.BigInt}) {
		t.Fatalf("endpoint %+v", e)
	}
}

// TestRecordingsEndpoint: the built-in recordings endpoint is opt-in (not
// in the default set, so a default run needs no recordings store), asks
// its time range with from/to in the form in use, and reads each of its
// shapes.
func TestRecordingsEndpoint(t *testing.T) {
	t.Parallel()
	c, err := record.NewCatalog(record.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	def, _ := c.Select(nil)
	for _, e := range def {
		if e.Name == "recordings" {
			t.Fatal("recordings is in the default set")
		}
	}
	eps, err := c.Select([]string{"recordings"})
	if err != nil {
		t.Fatal(err)
	}
	ep := &eps[0]
	if ep.Files != "recordings" || !ep.OptIn {
		t.Fatalf("recordings: Files %q, OptIn %v", ep.Files, ep.OptIn)
	}
	for _, tc := range []struct {
		form, from, to string
	}{
		{record.TimeWall, "2026-12-06 10:00:00", "2026-12-06 11:00:00"},
		{record.TimeEpoch, "1796551200", "1796554800"},
	} {
		s := ep.InShape(ep.Shapes[0], tc.form)
		q := s.TimeQuery("2026-12-06 10:00:00", "2026-12-06 11:00:00")
		if q.Get("from") != tc.from || q.Get("to") != tc.to || len(q) != 2 {
			t.Errorf("%s: TimeQuery = %v, want from=%s to=%s", tc.form, q, tc.from, tc.to)
		}
	}
	// Call history still asks by filter[start].
	if q := record.Builtin()[0].TimeQuery("a", "b"); q.Get("filter[start][from]") != "a" || q.Get("filter[start][to]") != "b" {
		t.Errorf("call history TimeQuery = %v", q)
	}
	for _, tc := range []struct {
		fields []string
		shape  string
		err    string
	}{
		{[]string{"id", "fileName", "path", "start", "duration", "size", "extension", "number"}, "camel", ""},
		{[]string{"id", "file_name", "url", "time", "length", "filesize", "src", "dst"}, "snake", ""},
		{[]string{"id", "url", "time", "source", "destination"}, "attachment", ""},
		{[]string{"url", "time", "source", "destination"}, "bare", ""},
		{[]string{"id", "path", "start"}, "camel", ""},
		{[]string{"recordingId", "file", "date"}, "", `holds the fields "date", "file", "recordingId", which fit none of the shapes known: camel (id, start)`},
	} {
		s, err := ep.DetectShape(tc.fields)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: err %v, want %q", tc.fields, err, tc.err)
		case tc.err == "" && (err != nil || s.Name != tc.shape):
			t.Errorf("%v: shape %q (%v), want %s", tc.fields, s.Name, err, tc.shape)
		}
	}
	snake := ep.InShape(ep.Shapes[1], record.TimeEpoch)
	if snake.TimeField != "time" || snake.Key[0] != "id" || snake.Columns[snake.Column("start_time")].Type != record.Text ||
		snake.Columns[snake.Column("path")].Field != "url" || snake.Columns[snake.Column("sha256")].Field == "sha256" {
		t.Errorf("InShape(snake, epoch) = %+v", snake)
	}
}

// TestDevicesMACKeepsItsDigits: a device's MAC address is no one's number
// (declared none). Written without colons ("9C7514123456", Wildix's OUI
// 9C:75:14) it was free text, and Scrub took its 10 digits glued to two
// hex letters for a number: "9Cp:…" (pfold 2).
func TestDevicesMACKeepsItsDigits(t *testing.T) {
	t.Parallel()
	var devices *record.Endpoint
	for _, ep := range record.Builtin() {
		if ep.Name == "devices" {
			devices = &ep
		}
	}
	if devices == nil || devices.Personal["mac"].Kind != record.PersonalNone {
		t.Fatalf("devices.mac is not declared none")
	}
	k, err := pseudonym.New([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	rule, err := pseudonym.ParseRule("all")
	if err != nil {
		t.Fatal(err)
	}
	c := &record.Converter{Endpoint: devices, Zone: time.UTC, Warnings: &record.Warnings{}}
	row, err := c.Convert(0, json.RawMessage(`{"id":"1","mac":"9C7514123456","model":"WP480G","description":"+39 352 8512784","user":"201"}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&privacy.Guard{Rule: rule, Keys: k}).Rows(devices, []record.Row{row}, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := fmt.Sprint(got[0].Values) + string(got[0].Raw) + string(got[0].Extra)
	if strings.Count(all, "9C7514123456") < 2 || strings.Contains(all, "8512784") {
		t.Errorf("want the MAC whole in its column and raw, the description's number replaced:\n%s", all)
	}
}

// TestPersonalFieldsValidated: a personal field no column reads
// (PersonalFields, Asterisk's clid) must be one no column reads, in lower
// case (raw's and extra's members are matched in any case), and of a
// kind that replaces.
func TestPersonalFieldsValidated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		field string
		p     record.Personal
		want  string
	}{
		{"clid", record.Personal{Kind: record.PersonalNumber}, ""},
		{"src", record.Personal{Kind: record.PersonalNumber}, `personal field "src" must be in lower case and read by no column`},
		{"Clid", record.Personal{Kind: record.PersonalNumber}, `personal field "Clid" must be in lower case`},
		{"clid", record.Personal{Kind: record.PersonalNone}, `personal field "clid" has kind "none"`},
		{"clid", record.Personal{Kind: record.PersonalName, Of: "src"}, `personal field "clid" has kind "name"; expected number, name, text or note, of no column`},
	} {
		eps := record.Builtin()
		eps[0].PersonalFields = map[string]record.Personal{tc.field: tc.p}
		_, err := record.NewCatalog(eps)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s %+v: %v, want %q", tc.field, tc.p, err, tc.want)
		}
	}
}
