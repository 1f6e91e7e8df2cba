package privacy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// endpoint returns the built-in endpoint named name.
func endpoint(t *testing.T, name string) *record.Endpoint {
	t.Helper()
	for _, ep := range record.Builtin() {
		if ep.Name == name {
			return &ep
		}
	}
	t.Fatalf("no built-in endpoint %s", name)
	return nil
}

// row is a row of ep with key and its time column at start (nil: NULL).
func row(ep *record.Endpoint, key string, start any) record.Row {
	r := record.Row{Key: key, Values: make([]any, len(ep.Columns))}
	if i := record.RetentionColumn(ep); i >= 0 {
		r.Values[i] = start
	}
	return r
}

func keys(rows []record.Row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Key)
	}
	return out
}

// TestRetention: rows whose time is before now less the retention are left
// out, the one exactly at the cutoff and those without a time kept; an
// endpoint without a time field keeps every row; the rows given are not
// changed.
func TestRetention(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	cutoff := now.Add(-400 * 24 * time.Hour)
	g := &Guard{Retention: 400 * 24 * time.Hour, Now: func() time.Time { return now }}
	calls, contacts := endpoint(t, "call_history"), endpoint(t, "contacts")
	recs := endpoint(t, "recordings")
	for _, tc := range []struct {
		name string
		ep   *record.Endpoint
		rows []record.Row
		want []string
	}{
		{"mixed", calls, []record.Row{
			row(calls, "1", cutoff.Add(-time.Second)), row(calls, "2", cutoff), row(calls, "3", nil),
			row(calls, "4", cutoff.Add(-400*24*time.Hour)), row(calls, "5", now),
		}, []string{"2", "3", "5"}},
		{"first kept", calls, []record.Row{row(calls, "1", now), row(calls, "2", cutoff.Add(-time.Microsecond))}, []string{"1"}},
		{"all old", calls, []record.Row{row(calls, "1", cutoff.Add(-time.Hour)), row(calls, "2", cutoff.Add(-time.Hour))}, nil},
		{"none old", calls, []record.Row{row(calls, "1", now), row(calls, "2", cutoff)}, []string{"1", "2"}},
		{"recordings", recs, []record.Row{row(recs, "a", cutoff.Add(-time.Hour)), row(recs, "b", now)}, []string{"b"}},
		{"snapshot", contacts, []record.Row{row(contacts, "1", nil), row(contacts, "2", nil)}, []string{"1", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := keys(tc.rows)
			got, err := g.Rows(tc.ep, tc.rows, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(keys(got), tc.want) {
				t.Fatalf("kept %v, want %v", keys(got), tc.want)
			}
			if !slices.Equal(keys(tc.rows), before) {
				t.Fatalf("the rows given were changed: %v, were %v", keys(tc.rows), before)
			}
		})
	}
	if !g.SuppressesFile(recs, row(recs, "a", cutoff.Add(-time.Second))) || g.SuppressesFile(recs, row(recs, "b", cutoff)) {
		t.Fatal("a recording older than the retention must not be copied, one at the cutoff must")
	}
	off := &Guard{Now: func() time.Time { return now }}
	rows := []record.Row{row(calls, "1", cutoff.Add(-100*24*time.Hour))}
	if got, err := off.Rows(calls, rows, nil); err != nil || len(got) != 1 {
		t.Fatalf("no retention: kept %v, %v; want every row", keys(got), err)
	}
}

// TestRuleWithoutKey: a rule that replaces something, and no key, is an
// error, never rows written in clear.
func TestRuleWithoutKey(t *testing.T) {
	t.Parallel()
	g := &Guard{Rule: pseudonym.Rule{Numbers: true}}
	calls := endpoint(t, "call_history")
	if got, err := g.Rows(calls, []record.Row{row(calls, "1", time.Now())}, nil); err == nil {
		t.Fatalf("rule without key: %d rows, no error", len(got))
	}
}

// eraseSrc is a suppression list of one number, in call_history's src:
// a stand-in for sinks.Suppressor, whose own rule sinks' tests prove.
type eraseSrc struct {
	col    int
	number string
}

func (e eraseSrc) Apply(_ *record.Endpoint, row *record.Row) int {
	if row.Values[e.col] != e.number {
		return 0
	}
	row.Values[e.col] = erased
	return 1
}

// TestSuppressionApplied: the suppression list erases in copies of the
// rows, after the retention (an old row is not counted), and the notes
// count what it erased; the rows given keep their values.
func TestSuppressionApplied(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	calls := endpoint(t, "call_history")
	src := calls.Column("src")
	g := &Guard{Retention: 24 * time.Hour, Now: func() time.Time { return now }, Suppress: eraseSrc{src, "+390212345678"}}
	rows := []record.Row{row(calls, "1", now), row(calls, "2", now), row(calls, "3", now.Add(-48*time.Hour))}
	rows[0].Values[src], rows[1].Values[src], rows[2].Values[src] = "+390212345678", "+390299999999", "+390212345678"
	var notes record.Warnings
	got, err := g.Rows(calls, rows, &notes)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Values[src] != erased || got[1].Values[src] != "+390299999999" {
		t.Fatalf("got %v, want the first erased, the second as it was, the old one left out", got)
	}
	if rows[0].Values[src] != "+390212345678" {
		t.Fatalf("the row given was changed: %v", rows[0].Values[src])
	}
	if notes.Count(NoteErased) != 1 || notes.Count(NoteRetention) != 1 {
		t.Fatalf("notes %q: want one erased, one batch left out", notes.Notes())
	}
}

// TestErasedNoteLeavesOutNumberKeys: the note counting what the
// suppression list erased names the record by its key, unless the key
// holds a number (a custom endpoint keyed by a phone number): after
// forget, that number would come back in the run ledger with each run
// reading the record again, in clear, or under pseudonymisation as its
// pseudonym, which forget erased everywhere else (attack 4, F4). The
// same for the note of a colleague's long extension.
func TestErasedNoteLeavesOutNumberKeys(t *testing.T) {
	t.Parallel()
	k, err := pseudonym.New([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	calls := endpoint(t, "call_history")
	src := calls.Column("src")
	for _, tc := range []struct {
		key   string
		named bool
	}{
		{"+390212345678", false},
		{"393528512784", false},
		{"0039 02 1234 5678", false},
		{"rec-258-393761714455", false},
		{"p:aaaaaaaaaaaaaaaa", false},
		{"1767225600.123456", true},
		{"42", true},
		{"rec-258-d1548fcd", true},
	} {
		for _, rule := range []pseudonym.Rule{{}, {Numbers: true}} {
			g := &Guard{Rule: rule, Suppress: eraseSrc{src, "+390212345678"}}
			if rule.On() {
				g.Keys = k
			}
			r := row(calls, tc.key, nil)
			r.Values[src] = "+390212345678"
			var notes record.Warnings
			if _, err := g.Rows(calls, []record.Row{r}, &notes); err != nil {
				t.Fatal(err)
			}
			all := strings.Join(notes.Notes(), "\n")
			named := strings.Contains(all, tc.key)
			_, number := pseudonym.Canonical(tc.key)
			if notes.Count(NoteErased) != 1 || named != tc.named || strings.Contains(all, "12345678") || number && strings.Contains(all, k.Number(tc.key)) {
				t.Errorf("rule %s, key %q: notes %q; want one erasure, the key named: %v", rule, tc.key, all, tc.named)
			}
		}
	}
}

// emptyList is a suppression list of no number; applying it is a bug.
type emptyList struct{}

func (emptyList) Apply(*record.Endpoint, *record.Row) int { panic("an empty list applied") }
func (emptyList) Len() int                                { return 0 }

// TestEmptySuppressionCopiesNothing: with privacy otherwise off and an
// empty suppression list, the rows pass as they are, none copied.
func TestEmptySuppressionCopiesNothing(t *testing.T) {
	t.Parallel()
	calls := endpoint(t, "call_history")
	rows := []record.Row{row(calls, "1", time.Now())}
	got, err := (&Guard{Suppress: emptyList{}}).Rows(calls, rows, nil)
	if err != nil || &got[0] != &rows[0] {
		t.Fatalf("got %v, %v: want the rows given", got, err)
	}
}

// TestLongExtensionNoted: under a rule that replaces numbers, a colleague
// whose extension has more than 6 digits, which is then taken for an
// external number, is counted in the notes, named by its key; short
// extensions, and rules that keep numbers, note nothing.
func TestLongExtensionNoted(t *testing.T) {
	t.Parallel()
	colleagues := endpoint(t, "colleagues")
	ext := colleagues.Column("extension")
	rows := make([]record.Row, 4)
	for i, e := range []string{"201", "2012345", "999999", "12345678"} {
		rows[i] = record.Row{Key: fmt.Sprint(100 + i), Values: make([]any, len(colleagues.Columns))}
		rows[i].Values[ext] = e
	}
	for _, tc := range []struct {
		rule string
		want int64
	}{{"numbers", 2}, {"all", 2}, {"numbers,names", 2}, {"names", 0}, {"none", 0}} {
		rule, err := pseudonym.ParseRule(tc.rule)
		if err != nil {
			t.Fatal(err)
		}
		var notes record.Warnings
		if _, err := (&Guard{Rule: rule, Keys: keyed(t)}).Rows(colleagues, rows, &notes); err != nil {
			t.Fatal(err)
		}
		if got := notes.Count(NoteLongExtension); got != tc.want {
			t.Errorf("%s: %d colleagues noted, want %d (notes %q)", tc.rule, got, tc.want, notes.Notes())
		}
		if tc.want > 0 && !strings.Contains(strings.Join(notes.Notes(), "\n"), "(first: the record of key 101)") {
			t.Errorf("%s: notes %q do not name the first colleague by its key", tc.rule, notes.Notes())
		}
	}
}

// longInbound is a call from the 7-digit local number 5550123 (not an
// extension), answered by the colleague of extension 2012345, whose name
// is beside it; the same digits written internationally (+2012345) in
// tags are a number abroad.
const longInbound = `{"id":"8","start":"2026-12-01 10:00:00","answer":"2026-12-01 10:00:05","end":"2026-12-01 10:01:00",
"duration":"60","billsec":"55","disposition":"ANSWERED","type":"call",
"src":"5550123","dst":"2012345","from_number":"555 0123","from_name":"Mario Rossi",
"to_number":"2012345","to_name":"Alice Bianchi","channel":"SIP/trunk/5550123-0000002a","dstchannel":"SIP/2012345-0000002b",
"lastapp":"Dial","lastdata":"SIP/2012345,60,tT","userfield":"","cost":"0","faxdata":"","timezone":"+0000",
"tags":"abroad +2012345","nested":{"who":"555-0123"},"uniqueid":"1764583200.8"}`

// TestLongExtensionKept: with the PBX's own extensions read at the run's
// start (SetExtensions), a colleague's 7-digit extension stays readable
// in its columns, in channel and dial strings (Scrub's keep) and keeps
// its colleague's name under numbers,names; a 7-digit number not in the
// set (a local number) is replaced everywhere, as is the extension's
// digits written internationally. Without the set (nil: the colleagues
// could not be read) the extension is replaced too: the shape rule.
func TestLongExtensionKept(t *testing.T) {
	t.Parallel()
	calls := endpoint(t, "call_history")
	col := func(row record.Row, name string) string { s, _ := row.Values[calls.Column(name)].(string); return s }
	k := keyed(t)
	rule, err := pseudonym.ParseRule("numbers,names")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  map[string]bool
		kept bool
	}{{"read", map[string]bool{"2012345": true, "2099999": true}, true}, {"not read", nil, false}} {
		g := &Guard{Rule: rule, Keys: k}
		g.SetExtensions(tc.set, nil)
		got, err := g.Rows(calls, []record.Row{convert(t, calls, longInbound)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		row, all := got[0], everything(got[0])
		for _, s := range []string{"5550123", "555 0123", "555-0123", "+2012345"} {
			if strings.Contains(all, s) {
				t.Errorf("%s: the local number %q not in the set is still there:\n%s", tc.name, s, all)
			}
		}
		if src := col(row, "src"); src != k.Number("5550123") {
			t.Errorf("%s: src = %q, want the local number's pseudonym", tc.name, src)
		}
		want := map[string]string{"dst": "2012345", "to_number": "2012345", "dstchannel": "SIP/2012345-0000002b",
			"lastdata": "SIP/2012345,60,tT", "to_name": "Alice Bianchi"}
		for c, w := range want {
			if got := col(row, c); (got == w) != tc.kept {
				t.Errorf("%s: %s = %q, kept %v, want kept %v (%q)", tc.name, c, got, got == w, tc.kept, w)
			}
		}
		if tc.kept && !strings.Contains(string(row.Raw), `"dstchannel":"SIP/2012345-0000002b"`) {
			t.Errorf("%s: raw lost the extension in its channel: %s", tc.name, row.Raw)
		}
	}
}

// TestLongExtensionRunNotes: SetExtensions' run notes are added once to
// the notes of each endpoint whose numbers are replaced (the call
// history, not colleagues under numbers), however many batches; a
// colleague whose long extension is in the set is not noted as taken for
// an external number, one added since (not in it) is.
func TestLongExtensionRunNotes(t *testing.T) {
	t.Parallel()
	calls, colleagues := endpoint(t, "call_history"), endpoint(t, "colleagues")
	rule, err := pseudonym.ParseRule("numbers")
	if err != nil {
		t.Fatal(err)
	}
	g := &Guard{Rule: rule, Keys: keyed(t)}
	const kept = "colleagues' extensions of more than 6 digits kept readable"
	g.SetExtensions(map[string]bool{"2012345": true}, []RunNote{{Kind: kept, Example: "the record of key 101", Count: 1}})
	var callNotes, staffNotes record.Warnings
	for range 3 {
		if _, err := g.Rows(calls, []record.Row{convert(t, calls, longInbound)}, &callNotes); err != nil {
			t.Fatal(err)
		}
	}
	ext := colleagues.Column("extension")
	rows := make([]record.Row, 2)
	for i, e := range []string{"2012345", "2012346"} {
		rows[i] = record.Row{Key: fmt.Sprint(101 + i), Values: make([]any, len(colleagues.Columns))}
		rows[i].Values[ext] = e
	}
	if _, err := g.Rows(colleagues, rows, &staffNotes); err != nil {
		t.Fatal(err)
	}
	if n := callNotes.Count(kept); n != 1 {
		t.Errorf("call history: run note counted %d times over 3 batches, want 1 (%q)", n, callNotes.Notes())
	}
	if n := staffNotes.Count(kept); n != 0 {
		t.Errorf("colleagues (numbers not replaced): run note counted %d times, want 0", n)
	}
	if n := staffNotes.Count(NoteLongExtension); n != 1 || !strings.Contains(strings.Join(staffNotes.Notes(), "\n"), "key 102") {
		t.Errorf("colleagues: %d taken for external, want 1, the one added since (key 102): %q", n, staffNotes.Notes())
	}
}

// TestStaffFreeTextNumbers (attack 30 B1): on the staff endpoints
// (colleagues, devices) a rule without all keeps what is the colleague's
// own (name, e-mail, login, their phone numbers, their extension, long
// ones read at the run's start too), but a number in free text (a
// device's description, a colleague's department) is replaced under
// numbers, in its column and in raw, by the number's one pseudonym;
// under names alone nothing changes there.
func TestStaffFreeTextNumbers(t *testing.T) {
	t.Parallel()
	k := keyed(t)
	colleagues, devices := endpoint(t, "colleagues"), endpoint(t, "devices")
	device := `{"id":"1","mac":"9c:75:14:00:00:01","model":"WP480G","description":"Desk of Philippa Underwood, mobile 00393519990005",
"firmware":"1.1.1","user":"2012345","address":"10.0.0.1","state":"on","x_note":"spare +39 351 999 0006"}`
	colleague := `{"id":"2951881","name":"Bruno Müller 3519990007","extension":"2012345","officePhone":"+390351000001","mobilePhone":"+393312345678",
"faxNumber":"","email":"bruno.muller0@example.com","login":"user201","department":"Sales, cover +39 351 999 0008"}`
	clear := []string{"3519990005", "351 999 0006", "3519990007", "351 999 0008"}
	for _, tc := range []struct {
		rule            string
		ep              *record.Endpoint
		raw             string
		columns         map[string]string // column → its value expected
		absent, present []string
	}{
		{"numbers", devices, device,
			map[string]string{"description": "Desk of Philippa Underwood, mobile " + k.Number("+393519990005"), "user_extension": "2012345", "model": "WP480G"},
			clear, []string{"Philippa Underwood", `"user":"2012345"`, k.Number("+393519990006")}},
		{"numbers,names", devices, device,
			map[string]string{"description": "Desk of Philippa Underwood, mobile " + k.Number("+393519990005")},
			clear, []string{"Philippa Underwood"}},
		{"names", devices, device,
			map[string]string{"description": "Desk of Philippa Underwood, mobile 00393519990005"}, nil, []string{"351 999 0006"}},
		{"numbers", colleagues, colleague,
			map[string]string{"name": "Bruno Müller " + k.Number("3519990007"), "extension": "2012345", "office_phone": "+390351000001",
				"mobile_phone": "+393312345678", "email": "bruno.muller0@example.com", "login": "user201",
				"department": "Sales, cover " + k.Number("+393519990008")},
			clear, []string{`"mobilePhone":"+393312345678"`, `"officePhone":"+390351000001"`, `"extension":"2012345"`}},
		{"numbers,names", colleagues, colleague,
			map[string]string{"name": "Bruno Müller " + k.Number("3519990007"), "mobile_phone": "+393312345678"}, clear, nil},
	} {
		t.Run(tc.rule+"/"+tc.ep.Name, func(t *testing.T) {
			t.Parallel()
			rule, err := pseudonym.ParseRule(tc.rule)
			if err != nil {
				t.Fatal(err)
			}
			g := &Guard{Rule: rule, Keys: k}
			g.SetExtensions(map[string]bool{"2012345": true}, nil)
			got, err := g.Rows(tc.ep, []record.Row{convert(t, tc.ep, tc.raw)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for c, want := range tc.columns {
				if v := got[0].Values[tc.ep.Column(c)]; v != want {
					t.Errorf("%s = %q, want %q", c, v, want)
				}
			}
			all := everything(got[0])
			for _, s := range tc.absent {
				if strings.Contains(all, s) {
					t.Errorf("%q is still there:\n%s", s, all)
				}
			}
			for _, s := range tc.present {
				if !strings.Contains(all, s) {
					t.Errorf("%q is not there:\n%s", s, all)
				}
			}
		})
	}
}
