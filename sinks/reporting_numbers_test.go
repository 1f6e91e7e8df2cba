package sinks

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestNumberKeyIsCanonical: the views' number_key gives each value the
// form pseudonym.Canonical gives it (the value itself when Canonical
// takes it for no number), so that the views group numbers in clear as
// their pseudonyms group.
func TestNumberKeyIsCanonical(t *testing.T) {
	t.Parallel()
	_, pool := newPostgres(t)
	for _, v := range []string{
		"+393331234567", "00393331234567", "393331234567", "+39 333 1234567", " 0039 333 123 4567 ", "+39-333-123.4567",
		"+39 (333) 1234567", "+39\u00a0333\u00a01234567", "0221234567", "201", "+0039 333", "00", "+", "anonymous",
		"Mario <+393331234567>", "p:abcdefghijklmnop", "39+333", "", "SIP/201-0000002a",
	} {
		var got string
		if err := pool.QueryRow(context.Background(), "SELECT number_key($1)", v).Scan(&got); err != nil {
			t.Fatal(err)
		}
		want, ok := pseudonym.Canonical(v)
		if !ok {
			want = v
		}
		if got != want {
			t.Errorf("number_key(%q) = %q, want %q as pseudonym.Canonical", v, got, want)
		}
	}
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
