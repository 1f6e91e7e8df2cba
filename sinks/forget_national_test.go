package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestForgetNationalPseudonymInRow: in a pseudonymised sink, a row
// holding the number (its international pseudonym) has the pseudonyms of
// its national forms erased too, in a typed column, in raw (PostgreSQL)
// and in extra (both sinks) (attack5 F3: c_from's pseudonym of the
// national form stayed in the rows forget erased). A row holding only a
// national form's pseudonym, which is also another country's number's
// (Luxembourg's +352 8512784), is left as it is, as is a row of another
// number. Row by row on both sinks: after forget no form of the number
// (digits, international or national pseudonym) is in the rows that had
// it, and the others did not change. Fails without eraseRow (the
// national pseudonym kept in rows 1 and 2).
func TestForgetNationalPseudonymInRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const gone, kept = "393528512784", "393471110120"
	forgotten, k := testForgotten(t, "+"+gone)
	ep := record.Builtin()[0]
	national := pseudonym.NationalForms(gone)
	if len(national) == 0 {
		t.Fatal("no national form: the test proves nothing")
	}
	pn, pnat, pkept := k.Number(gone), k.Number(national[0]), k.Number(kept)
	calls := []struct {
		fields string
		erase  bool // the row is the number's
	}{
		{`"from_number":"` + pn + `","src":"` + pn + `","from_name":"` + k.Name("Mario Rossi") + `","c_from":"` + pnat + `","clid":"` + k.Name("Mario Rossi") + ` <` + pnat + `>","to_number":"201","to_name":"Alice Bianchi"`, true},
		{`"from_number":"201","from_name":"Alice Bianchi","to_number":"` + pnat + `","dst":"` + pn + `","c_to":"` + pnat + `"`, true},
		// only the national form's pseudonym: maybe another country's
		{`"from_number":"` + pnat + `","c_from":"` + pnat + `","to_number":"201","to_name":"Alice Bianchi"`, false},
		{`"from_number":"` + pkept + `","c_from":"` + pkept + `","to_number":"201","to_name":"Alice Bianchi"`, false},
	}
	type sink interface {
		exporter.Sink
		ForgetFind(ctx context.Context, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error)
		ForgetErase(ctx context.Context, pbx string, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error)
	}
	for _, tc := range []struct {
		name string
		// open returns a new sink and a reader of its rows: each call's
		// whole row as text, by id.
		open func(t *testing.T) (sink, func() map[string]string)
	}{
		{"postgres", func(t *testing.T) (sink, func() map[string]string) {
			p, pool := newPostgres(t)
			return p, func() map[string]string {
				out := map[string]string{}
				rows := must(pool.Query(ctx, `SELECT id::text, row_to_json(t)::text FROM call_history t`))
				for rows.Next() {
					var id, row string
					if err := rows.Scan(&id, &row); err != nil {
						t.Fatal(err)
					}
					out[id] = row
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				return out
			}
		}},
		{"csv", func(t *testing.T) (sink, func() map[string]string) {
			f := newEditFolder(t)
			s, err := NewCSV(CSVOptions{Dir: f.dir})
			if err != nil {
				t.Fatal(err)
			}
			return s, func() map[string]string {
				out := map[string]string{}
				for _, rows := range f.files("x") {
					for _, r := range rows {
						b, _ := json.Marshal(r)
						out[r["id"]] = string(b)
					}
				}
				return out
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, read := tc.open(t)
			var records []string
			for i, c := range calls {
				records = append(records, fmt.Sprintf(`{"id":"%d","start":"2026-01-10 10:00:00","timezone":"+0100",%s}`, i+1, c.fields))
			}
			writeRecords(t, s, &ep, 9, records)
			before := read()
			if len(before) != len(calls) || !strings.Contains(before["1"], pnat) || !strings.Contains(before["2"], pnat) {
				t.Fatalf("stored %v: the test proves nothing", before)
			}
			found, err := s.ForgetFind(ctx, forgotten, []record.Endpoint{ep})
			if err != nil || found.Rows() != 2 {
				t.Errorf("ForgetFind found %+v (%v), want the 2 calls", found, err)
			}
			if _, err := s.ForgetErase(ctx, "x", forgotten, []record.Endpoint{ep}); err != nil {
				t.Fatal(err)
			}
			after := read()
			for i, c := range calls {
				id := fmt.Sprint(i + 1)
				if !c.erase {
					if after[id] != before[id] {
						t.Errorf("call %s, not the number's, changed:\n%s\nwas\n%s", id, after[id], before[id])
					}
					continue
				}
				for _, form := range []string{pn, pnat, gone, national[0], "Mario Rossi", k.Name("Mario Rossi")} {
					if strings.Contains(after[id], form) {
						t.Errorf("call %s still holds %q after forget:\n%s", id, form, after[id])
					}
				}
				if !strings.Contains(after[id], Erased) {
					t.Errorf("call %s after forget holds no %q:\n%s", id, Erased, after[id])
				}
			}
		})
	}
}
