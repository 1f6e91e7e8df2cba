package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestRefusedRecordsQuarantined: rows PostgreSQL refuses (past the
// converter: a lone surrogate in raw, a number jsonb cannot hold in extra,
// a value that cannot be encoded for its column), on the direct path and
// through the merge, are kept in export_quarantine with their key and
// field; every other row of the batch is in its table; the run ledger's
// notes count them. With Strict, the batch fails naming key and field.
func TestRefusedRecordsQuarantined(t *testing.T) {
	t.Parallel()
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			t.Parallel()
			p, pool := newPostgres(t)
			ctx := context.Background()
			ep := record.Builtin()[0] // call_history: incremental rows go straight into the table
			r := &exporter.RunResult{ID: "r1", Mode: "once", PBX: "x", Started: time.Now()}
			if err := p.StartRun(ctx, r); err != nil {
				t.Fatal(err)
			}
			rows := poisonRows(t, &ep)
			b, err := p.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Snapshot: snapshot})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Write(ctx, rows); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(ctx, []byte(`{}`), exporter.Progress{Rows: int64(len(rows))}); err != nil {
				t.Fatalf("commit: %v: one refused row must not fail the batch", err)
			}
			var n int
			pool.QueryRow(ctx, "SELECT count(*) FROM call_history WHERE pbx = 'x'").Scan(&n)
			if n != len(rows)-3 {
				t.Fatalf("%d rows in the table, want %d: every row but the 3 refused", n, len(rows)-3)
			}
			got := map[string]string{}
			qr, err := pool.Query(ctx, "SELECT key, field, error, record, run_id FROM export_quarantine WHERE pbx = 'x' AND endpoint = 'call_history'")
			if err != nil {
				t.Fatal(err)
			}
			for qr.Next() {
				var key, field, msg, record, run string
				if err := qr.Scan(&key, &field, &msg, &record, &run); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(record, `"id":"`+key+`"`) || run != "r1" || msg == "" || strings.Contains(msg, "nine") {
					t.Errorf("key %s: record %q, run %q, error %q", key, record, run, msg)
				}
				got[key] = field
			}
			if want := map[string]string{"5": "raw", "8": "extra", "9": "duration"}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("quarantined %v, want %v", got, want)
			}
			r.Endpoints = []exporter.EndpointResult{{Endpoint: ep.Name, Rows: int64(len(rows))}}
			r.Status = "ok"
			if err := p.FinishRun(ctx, r); err != nil {
				t.Fatal(err)
			}
			var notes []string
			pool.QueryRow(ctx, "SELECT notes FROM export_run_endpoints WHERE run_id = 'r1'").Scan(&notes)
			if len(notes) != 1 || !strings.HasPrefix(notes[0], "3 records PostgreSQL refused") || !strings.Contains(notes[0], "key ") {
				t.Fatalf("ledger notes %q, want the 3 counted with the first named", notes)
			}
		})
	}
}

// poisonRows are ten converted call records, three of them spoilt after
// conversion the ways PostgreSQL refuses.
func poisonRows(t *testing.T, ep *record.Endpoint) []record.Row {
	t.Helper()
	return poisonRowsFrom(t, ep, 0)
}

// poisonRowsFrom is poisonRows with ids from base+1 on.
func poisonRowsFrom(t *testing.T, ep *record.Endpoint, base int) []record.Row {
	t.Helper()
	conv := &record.Converter{Endpoint: ep, Warnings: &record.Warnings{}}
	var rows []record.Row
	for id := base + 1; id <= base+10; id++ {
		r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-10 10:00:00","timezone":"+0100","duration":"5"}`, id)))
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	rows[4].Raw = json.RawMessage(fmt.Sprintf(`{"id":"%d","x":"\udc00"}`, base+5))
	rows[7].Extra = json.RawMessage(`{"n":1e131072}`)
	rows[7].Raw = json.RawMessage(fmt.Sprintf(`{"id":"%d","n":"1e131072"}`, base+8))
	rows[8].Values[ep.Column("duration")] = "nine"
	return rows
}

// TestRefusedRecordFailsWhenStrict: with Strict (EXPORT_STRICT), a row
// PostgreSQL refuses fails the batch, naming the endpoint, key and field,
// and nothing of the batch is kept.
func TestRefusedRecordFailsWhenStrict(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	p.Strict = true
	ctx := context.Background()
	ep := record.Builtin()[0]
	rows := poisonRows(t, &ep)
	b, err := p.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &ep, StateKey: ep.Name})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Write(ctx, rows[:8])
	if err == nil {
		err = b.Commit(ctx, []byte(`{}`), exporter.Progress{Rows: 8})
	} else {
		b.Abort(ctx)
	}
	if err == nil || !strings.Contains(err.Error(), `call_history: key 5, field "raw"`) {
		t.Fatalf("err %v, want the batch failed naming key 5 and field raw", err)
	}
	var n int
	pool.QueryRow(ctx, "SELECT count(*) FROM call_history").Scan(&n)
	if n != 0 {
		t.Fatalf("%d rows kept, want none", n)
	}
}

// TestQuarantinedRecordNotMarkedDeleted: a record of a snapshot that
// PostgreSQL refuses is still on the PBX: its earlier row keeps
// deleted_at NULL (the CSV sink, which takes it, has it too), and only
// the rows the snapshot lacks are marked deleted.
func TestQuarantinedRecordNotMarkedDeleted(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	ctx := context.Background()
	ep := record.Builtin()[0]
	rows := poisonRows(t, &ep)
	clean := poisonRows(t, &ep)
	clean[4], clean[7], clean[8] = cleanRow(t, &ep, 5), cleanRow(t, &ep, 8), cleanRow(t, &ep, 9)
	for i, batch := range [][]record.Row{clean, rows[:9]} {
		b, err := p.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: fmt.Sprint("r", i), Endpoint: &ep, StateKey: ep.Name, Snapshot: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, []byte(`{}`), exporter.Progress{Rows: int64(len(batch))}); err != nil {
			t.Fatal(err)
		}
	}
	var deleted []string
	if err := pool.QueryRow(ctx, "SELECT coalesce(array_agg(id::text ORDER BY id), '{}') FROM call_history WHERE pbx = 'x' AND deleted_at IS NOT NULL").Scan(&deleted); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(deleted) != "[10]" {
		t.Fatalf("rows marked deleted %v, want [10]: the 3 quarantined records are still on the PBX", deleted)
	}
}

func cleanRow(t *testing.T, ep *record.Endpoint, id int) record.Row {
	t.Helper()
	conv := &record.Converter{Endpoint: ep, Warnings: &record.Warnings{}}
	r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-10 10:00:00","timezone":"+0100","duration":"5"}`, id)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestQuarantineMessagesLeaveOutNumberKeys: the run ledger's note of the
// records PostgreSQL refused, the log line and EXPORT_STRICT's error name
// the first by its key only when the key holds no number
// (pseudonym.ShownKey): a key that reads as a phone number (a custom
// endpoint keyed by one; here call ids of 10 digits) was written in clear
// where forget does not reach (attack 4, F4). export_quarantine keeps the
// key, where the record is found.
func TestQuarantineMessagesLeaveOutNumberKeys(t *testing.T) {
	t.Parallel()
	const base = 3471110000
	ep := record.Builtin()[0]
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			t.Parallel()
			p, pool := newPostgres(t)
			var logs strings.Builder
			p.log = slog.New(slog.NewTextHandler(&logs, nil))
			p.Strict = strict
			ctx := context.Background()
			r := &exporter.RunResult{ID: "r1", Mode: "once", PBX: "x", Started: time.Now()}
			if err := p.StartRun(ctx, r); err != nil {
				t.Fatal(err)
			}
			b, err := p.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &ep, StateKey: ep.Name})
			if err != nil {
				t.Fatal(err)
			}
			err = b.Write(ctx, poisonRowsFrom(t, &ep, base))
			if err == nil {
				err = b.Commit(ctx, []byte(`{}`), exporter.Progress{Rows: 10})
			} else {
				b.Abort(ctx)
			}
			var text string
			if strict {
				if err == nil {
					t.Fatal("committed under Strict")
				}
				text = err.Error()
			} else {
				if err != nil {
					t.Fatal(err)
				}
				r.Endpoints = []exporter.EndpointResult{{Endpoint: ep.Name, Rows: 10}}
				r.Status = "ok"
				if err := p.FinishRun(ctx, r); err != nil {
					t.Fatal(err)
				}
				var notes []string
				pool.QueryRow(ctx, "SELECT notes FROM export_run_endpoints WHERE run_id = 'r1'").Scan(&notes)
				text = strings.Join(notes, "\n")
				var n int
				pool.QueryRow(ctx, "SELECT count(*) FROM export_quarantine WHERE key = $1", fmt.Sprint(base+5)).Scan(&n)
				if n != 1 {
					t.Errorf("export_quarantine holds key %d %d times, want once", base+5, n)
				}
			}
			text += "\n" + logs.String()
			if strings.Contains(text, "347111") || !strings.Contains(text, "key "+pseudonym.KeyNotNamed) {
				t.Errorf("want no key named, %q said instead:\n%s", pseudonym.KeyNotNamed, text)
			}
		})
	}
}
