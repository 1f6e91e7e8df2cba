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
