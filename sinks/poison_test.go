package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
)

// poisons are the values PostgreSQL cannot store as sent, each put by
// poisonPBX into one call (ids 11 on) in a declared field (lastdata, or
// cost for numbers) and in an undeclared one (vendor_x); call 17 names src
// twice.
var poisons = []string{`"\udc00"`, `"\ud800\u0041"`, `"a\u0000b"`, `1e131072`, `1e-16384`, "1" + strings.Repeat("0", 131072)}

// poisonPBX rewrites the simulator's answers to carry the poisons.
func poisonPBX(_ *http.Request, status int, body []byte) (int, []byte) {
	for i, v := range poisons {
		field := "lastdata"
		if v[0] != '"' {
			field = "cost"
		}
		body = poisonCall(body, 11+i, field, v)
	}
	return status, bytes.Replace(body, []byte(`{"id":"17",`), []byte(`{"id":"17","src":"first",`), 1)
}

// poisonCall sets field of call id to v and adds vendor_x: v.
func poisonCall(body []byte, id int, field, v string) []byte {
	start := bytes.Index(body, []byte(`{"id":"`+strconv.Itoa(id)+`",`))
	if start < 0 || !bytes.Contains(body[start:], []byte(`"`+field+`":`)) {
		return body
	}
	end := start + bytes.IndexByte(body[start:], '}')
	rec := regexp.MustCompile(`"`+field+`":"[^"]*"`).ReplaceAllLiteral(body[start:end], []byte(`"`+field+`":`+v))
	rec = append(rec, []byte(`,"vendor_x":`+v)...)
	return append(append(append([]byte(nil), body[:start]...), rec...), body[end:]...)
}

// TestPoisonRecordsIntoBothSinks is issue 24's acceptance: a record with
// each value PostgreSQL cannot store, in a declared and an undeclared
// field, exported from the simulator into CSV and into PostgreSQL: the run
// is ok, the warnings count each and name a key and field, every other
// record is in, both sinks hold the same values, and the next run is
// clean.
func TestPoisonRecordsIntoBothSinks(t *testing.T) {
	t.Parallel()
	got := map[string]map[string][3]string{} // sink → id → lastdata, cost, extra
	for _, name := range []string{"csv", "postgres"} {
		t.Run(name, func(t *testing.T) {
			f := simtest.New(t, pbxsim.Options{Calls: 30, Rewrite: poisonPBX})
			var sink exporter.Sink
			var read func() map[string][3]string
			if name == "csv" {
				dir := t.TempDir()
				sink, _ = NewCSV(CSVOptions{Dir: dir})
				read = func() map[string][3]string { return csvValues(t, dir) }
			} else {
				p, pool := newPostgres(t)
				sink = p
				read = func() map[string][3]string { return pgValues(t, pool) }
			}
			x := newExporter(t, f, sink)
			ctx := context.Background()
			r := x.Run(ctx, exporter.NewRunID(time.Now()), "once", record.Builtin()[:1]).Endpoints[0]
			if r.Err != nil || r.Rows != 30 {
				t.Fatalf("rows %d, err %v: want all 30 calls, no error", r.Rows, r.Err)
			}
			notes := strings.Join(r.Notes, "\n")
			for _, want := range []string{"6 text escapes", "6 numbers beyond", "3 values not convertible", "1 members named twice",
				`key 11, field "lastdata"`, `key 14, field "cost"`, `key 17, field "src"`} {
				if !strings.Contains(notes, want) {
					t.Errorf("notes %q: want %q", r.Notes, want)
				}
			}
			got[name] = read()
			if len(got[name]) != 30 {
				t.Fatalf("%d calls stored, want 30", len(got[name]))
			}
			if r := x.Run(ctx, exporter.NewRunID(time.Now()), "once", record.Builtin()[:1]).Endpoints[0]; r.Err != nil || len(r.Notes) != 0 {
				t.Fatalf("the next run: err %v, notes %q: want it clean", r.Err, r.Notes)
			}
		})
	}
	if t.Failed() {
		return
	}
	for id, c := range got["csv"] {
		if p := got["postgres"][id]; p != c {
			t.Errorf("call %s: CSV %.60q, PostgreSQL %.60q", id, c, p)
		}
	}
	if v := got["csv"]["11"]; v[0] != "\uFFFD" || !strings.Contains(v[2], `"vendor_x":"\ufffd"`) && !strings.Contains(v[2], "\"vendor_x\":\"\uFFFD\"") {
		t.Errorf("call 11: %q, want U+FFFD in lastdata and extra", v)
	}
	if v := got["csv"]["14"]; v[1] != "" || !strings.Contains(v[2], `"vendor_x":"1e131072"`) {
		t.Errorf("call 14: %q, want cost empty and the number kept as a string", v)
	}
}

// csvValues reads lastdata, cost and extra (JSON, normalised) by id.
func csvValues(t *testing.T, dir string) map[string][3]string {
	out := map[string][3]string{}
	for _, r := range readCSV(t, dir, "call_history") {
		out[r["id"]] = [3]string{r["lastdata"], r["cost"], normalJSON(t, r["extra"])}
	}
	return out
}

// pgValues reads the same from call_history.
func pgValues(t *testing.T, pool *pgxpool.Pool) map[string][3]string {
	out := map[string][3]string{}
	rows, err := pool.Query(context.Background(), "SELECT id::text, coalesce(lastdata, ''), coalesce(cost::text, ''), coalesce(extra::text, '') FROM call_history")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, lastdata, cost, extra string
		if err := rows.Scan(&id, &lastdata, &cost, &extra); err != nil {
			t.Fatal(err)
		}
		out[id] = [3]string{lastdata, cost, normalJSON(t, extra)}
	}
	return out
}

func normalJSON(t *testing.T, s string) string {
	if s == "" {
		return ""
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("extra %.80q: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
