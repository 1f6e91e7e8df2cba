package exporter

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestCallMatcherFind: a recording is matched to the leg answered in its
// start second. One leg there whose parties contradict a party the
// recording sends ("contradicted") leaves call_id NULL (0); before, it
// was filled as "time". The leg is taken ("time") only when the
// recording sends no party, or one that is the leg's.
func TestCallMatcherFind(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	one := map[int64][]leg{at.Unix(): {{id: 5, src: "201", dst: "+390212345678"}}}
	two := map[int64][]leg{at.Unix(): {{id: 5, src: "201", dst: "+390212345678"}, {id: 6, src: "202", dst: "+390212345678"}}}
	for _, tc := range []struct {
		name     string
		legs     map[int64][]leg
		ext, num string
		id       int64
		how      string
	}{
		{"both parties", one, "201", "390212345678", 5, "exact"},
		{"parties contradict", one, "305", "+441234567890", 0, "contradicted"},
		{"number contradicts", one, "201", "+441234567890", 0, "contradicted"},
		{"no party sent", one, "", " ", 5, "time"},
		{"only the extension, the leg's", one, "201", "", 5, "time"},
		{"only the extension, another", one, "305", "", 0, "contradicted"},
		{"two legs, one with both", two, "202", "+390212345678", 6, "exact"},
		{"two legs, neither", two, "305", "+441234567890", 0, "ambiguous"},
		{"no leg", map[int64][]leg{}, "201", "+390212345678", 0, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &callMatcher{legs: tc.legs}
			if id, how := m.find(at, tc.ext, tc.num); id != tc.id || how != tc.how {
				t.Errorf("recording %q ↔ %q: call_id %d, call_match %q; want %d, %q", tc.ext, tc.num, id, how, tc.id, tc.how)
			}
		})
	}
}

// TestSamePhone: a recording's party is its leg's whatever form either
// list writes the number in (attack 4, F3: "0039…" against "+39…" was
// contradicted); other numbers, and empty values, are not. Two forms
// taken as one have one pseudonym, national forms aside.
func TestSamePhone(t *testing.T) {
	keys, err := pseudonym.New([]byte("pseudonym-test-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	forms := []string{"+393471110007", "00393471110007", "393471110007", "+39 347 111 0007", "0039 347 111 0007",
		"+39-347-111-0007", "0039.347.111.0007", " +39 347 1110007 "}
	for _, a := range forms {
		for _, b := range forms {
			if !samePhone(a, b) {
				t.Errorf("%q and %q: not one number", a, b)
			}
			if keys.Number(a) != keys.Number(b) || !samePhone(keys.Number(a), keys.Number(b)) {
				t.Errorf("%q and %q: pseudonyms %s and %s", a, b, keys.Number(a), keys.Number(b))
			}
		}
	}
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"+393471110007", "347 111 0007", true}, // national form of an Italian mobile
		{"0044 20 7946 0958", "020 7946 0958", true},
		{"+442079460958", "2079460958", true},
		{"393471110007", "3471110007", false}, // neither written internationally
		{"+393471110007", "+393471110008", false},
		{"0039 347 111 0007", "0039 347 111 0008", false},
		{"+393471110007", "+443471110007", false},
		{"201", "201", true},
		{"201", "+201", true},
		{"201", "202", false},
		{"", "", false},
		{" ", "+", false},
		{"anonymous", "anonymous", true},
		{"p:abcdefghijklmnop", "p:abcdefghijklmnop", true},
		{"p:abcdefghijklmnop", "p:abcdefghijklmnoq", false},
	} {
		if got := samePhone(tc.a, tc.b); got != tc.same || samePhone(tc.b, tc.a) != tc.same {
			t.Errorf("samePhone(%q, %q) = %v, want %v (both ways)", tc.a, tc.b, got, tc.same)
		}
	}
}

// TestCallMatcherLogsContradicted: a contradicted match is logged, once
// a run however many there are, naming no number.
func TestCallMatcherLogsContradicted(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	var ep record.Endpoint
	for _, e := range record.Builtin() {
		if e.Name == "recordings" {
			ep = e
		}
	}
	var buf bytes.Buffer
	m := &callMatcher{zone: time.UTC, readTo: at.Add(time.Hour), log: slog.New(slog.NewTextHandler(&buf, nil)),
		legs: map[int64][]leg{at.Unix(): {{id: 5, src: "201", dst: "+390212345678"}}}}
	row := func(num string) record.Row {
		r := record.Row{Values: make([]any, len(ep.Columns))}
		r.Values[ep.Column("start_time")], r.Values[ep.Column("extension")], r.Values[ep.Column("number")] = at, "201", num
		return r
	}
	for _, rows := range [][]record.Row{{row("0039 02 1234 5678"), row("+441234567890")}, {row("+441234567891")}} {
		if err := m.match(context.Background(), &ep, rows); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Count(buf.String(), "call_match contradicted"); got != 1 || m.contradicted != 2 || strings.Contains(buf.String(), "4412345") {
		t.Errorf("%d contradicted; logged %d times (want once, no number): %s", m.contradicted, got, buf.String())
	}
}
