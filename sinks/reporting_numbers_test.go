package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestNumberKeyIsCanonical: the views' number_key gives each value the
// form pseudonym.Canonical gives it, a number's pseudonym as it is, and
// NULL for anything else ("erased", "anonymous", a caller id, a name's
// pseudonym: no one's number, migration 17), so that the views group
// numbers in clear as their pseudonyms group, and never group parties
// without a number into one.
func TestNumberKeyIsCanonical(t *testing.T) {
	t.Parallel()
	_, pool := newPostgres(t)
	for _, v := range numberKeyCases {
		var got *string
		if err := pool.QueryRow(context.Background(), "SELECT number_key($1)", v).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := wantNumberKey(v); !sameKey(got, want) {
			t.Errorf("number_key(%q) = %s, want %s", v, showKey(got), showKey(want))
		}
	}
}

// numberKeyCases are values a number column may hold.
var numberKeyCases = []string{
	"+393331234567", "00393331234567", "393331234567", "+39 333 1234567", " 0039 333 123 4567 ", "+39-333-123.4567",
	"+39 (333) 1234567", "+39\u00a0333\u00a01234567", "0221234567", "201", "+0039 333", "00", "+", "anonymous",
	"Mario <+393331234567>", "p:abcdefghijklmnop", "39+333", "", "SIP/201-0000002a", "erased", " erased ", "Erased",
	"n:abcdefghijklmnop", "p:abc", "p:ABCDEFGHIJKLMNOP",
}

// wantNumberKey is what number_key must give v: pseudonym.Canonical's
// form, a number's pseudonym as it is, else NULL (nil).
func wantNumberKey(v string) *string {
	if c, ok := pseudonym.Canonical(v); ok {
		return &c
	}
	if regexp.MustCompile(`^p:[a-z2-7]{16}$`).MatchString(v) {
		return &v
	}
	return nil
}

func sameKey(a, b *string) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func showKey(k *string) string {
	if k == nil {
		return "NULL"
	}
	return strconv.Quote(*k)
}

// TestMissedCallsCallBackInAnyForm: a missed call from "+39 333 1234567"
// called back as "00393331234567" is called back in missed_calls, as it
// is once both are the one pseudonym. Before migration 16 it was not.
func TestMissedCallsCallBackInAnyForm(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	loadInto(t, p, "Europe/Rome", []leg{
		{id: 1, start: "2026-03-10 14:00:00", end: "2026-03-10 14:00:25", duration: 25, disposition: "NO ANSWER",
			from: "+39 333 1234567", fromName: "Customer", to: "201", channel: "SIP/trunk-00000001", dstchannel: "SIP/201-00000002"},
		{id: 2, start: "2026-03-10 14:10:00", answer: "2026-03-10 14:10:10", end: "2026-03-10 14:12:10", duration: 130, billsec: 120, disposition: "ANSWERED",
			from: "201", to: "00393331234567", channel: "SIP/201-00000003", dstchannel: "SIP/trunk-00000004"},
		{id: 3, start: "2026-03-10 15:00:00", end: "2026-03-10 15:00:25", duration: 25, disposition: "NO ANSWER",
			from: "+39 333 7654321", to: "201", channel: "SIP/trunk-00000005", dstchannel: "SIP/201-00000006"},
	})
	rows, err := pool.Query(context.Background(), "SELECT id, coalesce(next_call_id, 0) FROM missed_calls ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id, next int64
		if err := rows.Scan(&id, &next); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d>%d", id, next))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "1>2 3>0" {
		t.Fatalf("missed_calls %v, want 1 called back by 2, 3 not", got)
	}
}

// erasedLegs: missed calls of parties without a number (two forgotten
// numbers, both "erased"; two anonymous callers), each followed by a call
// with another such party, and a number and a pseudonym that are called
// back (so that the test does not pass on no call back at all).
var erasedLegs = []leg{
	{id: 1, start: "2026-03-10 10:00:00", end: "2026-03-10 10:00:25", duration: 25, disposition: "NO ANSWER",
		from: "erased", fromName: "erased", to: "201", channel: "SIP/trunk-00000001", dstchannel: "SIP/201-00000002"},
	{id: 2, start: "2026-03-10 10:10:00", answer: "2026-03-10 10:10:10", end: "2026-03-10 10:12:10", duration: 130, billsec: 120, disposition: "ANSWERED",
		from: "202", to: "erased", toName: "erased", channel: "SIP/202-00000003", dstchannel: "SIP/trunk-00000004"},
	{id: 3, start: "2026-03-10 10:20:00", end: "2026-03-10 10:20:25", duration: 25, disposition: "NO ANSWER",
		from: "anonymous", to: "201", channel: "SIP/trunk-00000005", dstchannel: "SIP/201-00000006"},
	{id: 4, start: "2026-03-10 10:30:00", end: "2026-03-10 10:30:25", duration: 25, disposition: "NO ANSWER",
		from: "anonymous", to: "202", channel: "SIP/trunk-00000007", dstchannel: "SIP/202-00000008"},
	{id: 5, start: "2026-03-10 11:00:00", end: "2026-03-10 11:00:25", duration: 25, disposition: "NO ANSWER",
		from: "+39 333 1234567", to: "201", channel: "SIP/trunk-00000009", dstchannel: "SIP/201-00000010"},
	{id: 6, start: "2026-03-10 11:05:00", answer: "2026-03-10 11:05:10", end: "2026-03-10 11:07:10", duration: 130, billsec: 120, disposition: "ANSWERED",
		from: "201", to: "00393331234567", channel: "SIP/201-00000011", dstchannel: "SIP/trunk-00000012"},
	{id: 7, start: "2026-03-10 11:30:00", end: "2026-03-10 11:30:25", duration: 25, disposition: "NO ANSWER",
		from: "p:abcdefghijklmnop", to: "201", channel: "SIP/trunk-00000013", dstchannel: "SIP/201-00000014"},
	{id: 8, start: "2026-03-10 11:40:00", answer: "2026-03-10 11:40:05", end: "2026-03-10 11:41:05", duration: 65, billsec: 60, disposition: "ANSWERED",
		from: "p:abcdefghijklmnop", to: "202", channel: "SIP/trunk-00000015", dstchannel: "SIP/202-00000016"},
}

// TestMissedCallsErasedPartiesNeverJoin: a missed call of a forgotten
// number ("erased") is not called back by a later call with another
// forgotten number, nor an anonymous caller's by another anonymous call,
// while a number in another form and a pseudonym still are: in
// PostgreSQL's missed_calls, and in docs/reporting.md's DuckDB query over
// the CSV files of the same records, which gives the same rows. Before
// migration 17 missed_calls gave 1>2 and 3>4.
func TestMissedCallsErasedPartiesNeverJoin(t *testing.T) {
	t.Parallel()
	_, pool := loadFixture(t, "Europe/Rome", erasedLegs)
	rows, err := pool.Query(context.Background(), `SELECT id, coalesce(next_call_id, 0), from_number, to_number,
  coalesce(next_call_direction, ''), coalesce(next_call_after_seconds::text, '') FROM missed_calls ORDER BY start_time DESC, id DESC`)
	if err != nil {
		t.Fatal(err)
	}
	var links, pgRows []string
	for rows.Next() {
		var id, next int64
		var from, to, dir, after string
		if err := rows.Scan(&id, &next, &from, &to, &dir, &after); err != nil {
			t.Fatal(err)
		}
		links = append([]string{fmt.Sprintf("%d>%d", id, next)}, links...)
		pgRows = append(pgRows, strings.Join([]string{from, to, dir, after}, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(links, " "), "1>0 3>0 4>0 5>6 7>8"; got != want {
		t.Fatalf("missed_calls %s, want %s: only a number or a pseudonym is called back", got, want)
	}

	t.Run("duckdb", func(t *testing.T) {
		dir := duckdbDir(t)
		rome, err := time.LoadLocation("Europe/Rome")
		if err != nil {
			t.Fatal(err)
		}
		var legs []json.RawMessage
		for _, l := range erasedLegs {
			legs = append(legs, l.json(rome))
		}
		work := t.TempDir()
		csvSink, err := NewCSV(CSVOptions{Dir: filepath.Join(work, "export")})
		if err != nil {
			t.Fatal(err)
		}
		loadRecords(t, csvSink, "call_history", legs, "20261206T010000Z-aaaaaa")
		var setup []string
		missed := ""
		for _, s := range csvReportingScript(t) {
			if strings.Contains(s, "-- Missed calls and the first later call") {
				missed = s
				break
			}
			if strings.HasPrefix(strings.TrimSpace(lastComment(s)), "CREATE") {
				setup = append(setup, s)
			}
		}
		if missed == "" {
			t.Fatal("docs/reporting.md's DuckDB section has no query headed '-- Missed calls and the first later call'")
		}
		got := runDuckDB(t, dir, work, setup, map[string]string{"missed": "SELECT caller_number, callee_number, coalesce(next_call_direction, ''), " +
			"coalesce(CAST(next_call_after_seconds AS VARCHAR), '') FROM (" + missed + ")"})
		var lines []string
		for _, row := range got.Queries["missed"] {
			parts := make([]string, len(row))
			for i, v := range row {
				if v != nil {
					parts[i] = *v
				}
			}
			lines = append(lines, strings.Join(parts, "|"))
		}
		slices.Sort(lines)
		slices.Sort(pgRows)
		sameLines(t, "missed calls (DuckDB over CSV, then PostgreSQL)", lines, pgRows)
	})
}
