package paging

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestNewest finds the newest key on simulated PBXes, in process, and
// what the answers showed about filter[key][from].
func TestNewest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		o       pbxsim.Options
		after   int64
		want    int64 // 0: none found
		from    Bound
		ignored Param
		note    string
	}{
		{name: "honours all", o: pbxsim.Options{Calls: 40}, want: 40, from: BoundUnknown},
		// Asked from the cursor itself, the bound's kind unknown: the cursor
		// comes back, and nothing above it.
		{name: "nothing above the cursor", o: pbxsim.Options{Calls: 40}, after: 40, want: 40},
		{name: "exclusive from", o: pbxsim.Options{Calls: 40, FilterFromExclusive: []string{"id"}}, want: 40, from: BoundExclusive,
			note: "the bound is taken as exclusive"},
		{name: "pages of one", o: pbxsim.Options{Calls: 40, MaxCount: 1}, want: 40, from: BoundInclusive},
		{name: "sort ignored", o: pbxsim.Options{Calls: 40, IgnoreSort: true}, want: 40},
		{name: "id filter ignored", o: pbxsim.Options{Calls: 40, IgnoreFilter: []string{"id"}}, after: 20, ignored: FilterParam},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, l := newSim(tc.o)
			rd := newReader(l, 10, 1)
			var notes []string
			rd.Note = func(s string) { notes = append(notes, s) }
			got, found, err := rd.Newest(context.Background(), tc.after)
			var ie *IgnoredError
			switch {
			case tc.ignored != 0:
				if !errors.As(err, &ie) || ie.Param != tc.ignored || !strings.Contains(ie.Error(), "ignores the filter") {
					t.Fatalf("err = %v, want the %v found ignored", err, tc.ignored)
				}
				return
			case err != nil:
				t.Fatal(err)
			case found != (tc.want > 0) || got != tc.want:
				t.Fatalf("newest %d (found %v), want %d", got, found, tc.want)
			case tc.from != BoundUnknown && rd.Learnt.From() != tc.from:
				t.Fatalf("from-bound %v, want %v", rd.Learnt.From(), tc.from)
			case tc.note != "" && !strings.Contains(strings.Join(notes, "\n"), tc.note):
				t.Fatalf("notes %q, want one saying %q", notes, tc.note)
			}
		})
	}
}

// TestNewestUnsettled: keys arriving faster than the newest is confirmed
// leave it unsettled: from a PBX answering in order the run reads up to
// the newest seen (noted); from one whose answers are not in order it
// stops.
func TestNewestUnsettled(t *testing.T) {
	t.Parallel()
	for _, sortIgnored := range []bool{false, true} {
		var sim *pbxsim.Sim
		arrive := func(_ *http.Request, status int, body []byte) (int, []byte) {
			sim.InsertCalls(3)
			return status, body
		}
		sim, l := newSim(pbxsim.Options{Calls: 40, IgnoreSort: sortIgnored, Rewrite: arrive})
		rd := newReader(l, 10, 1)
		var notes []string
		rd.Note = func(s string) { notes = append(notes, s) }
		got, found, err := rd.Newest(context.Background(), 0)
		if sortIgnored {
			if err == nil || !strings.Contains(err.Error(), "not settled") {
				t.Fatalf("sort ignored: newest %d, %v: want it unsettled, stopped", got, err)
			}
			continue
		}
		if err != nil || !found || got < 40 || !strings.Contains(strings.Join(notes, "\n"), "records kept arriving") {
			t.Fatalf("newest %d, %v, notes %q: want a bound of 40 or more, noted", got, err, notes)
		}
	}
}

// TestBelowOne: a first run names a record whose key is below 1, which
// incremental export can never read; none when all are 1 or more.
func TestBelowOne(t *testing.T) {
	t.Parallel()
	_, l := newSim(pbxsim.Options{Calls: 40})
	if re, err := newReader(l, 10, 1).BelowOne(context.Background()); re != nil || err != nil {
		t.Fatalf("record %v, err %v: want none below 1", re, err)
	}
	below := func(_ *http.Request, status int, body []byte) (int, []byte) {
		return status, []byte(strings.Replace(string(body), `"id":"1"`, `"id":"-4"`, 1))
	}
	_, l = newSim(pbxsim.Options{Calls: 40, Rewrite: below})
	re, err := newReader(l, 10, 1).BelowOne(context.Background())
	if err != nil || re == nil || re.Key != "-4" {
		t.Fatalf("record %v, err %v: want the key -4 named", re, err)
	}
}

// TestKeysNotWholeNumbers: a key that is not a whole number in a
// keys-only answer stops the read, naming it.
func TestKeysNotWholeNumbers(t *testing.T) {
	t.Parallel()
	for _, key := range []string{`"A-17"`, `{"x":1}`} {
		bad := func(_ *http.Request, status int, body []byte) (int, []byte) {
			return status, []byte(strings.Replace(string(body), `"id":"40"`, `"id":`+key, 1))
		}
		_, l := newSim(pbxsim.Options{Calls: 40, Rewrite: bad})
		if _, _, err := newReader(l, 10, 1).Newest(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "not a whole number") {
			t.Fatalf("key %s: err = %v, want it named", key, err)
		}
	}
	if _, err := Keys(&pbx.ListPage{Records: []json.RawMessage{json.RawMessage(`[1]`)}}, "id"); err == nil {
		t.Fatal("a record that is no object read")
	}
}
