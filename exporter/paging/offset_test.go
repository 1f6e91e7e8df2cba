package paging

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestOffsetWhole reads call history by offset (pages of 10, sorted by
// id) while the PBX changes between its first pages, in process, and
// checks what the read proves: whole only when it is; ErrChanged
// otherwise, with nothing handed over to be committed.
func TestOffsetWhole(t *testing.T) {
	t.Parallel()
	// after changes the PBX once, after its at-th answer (the first read
	// asks three pages, its second read starts at the fourth).
	after := func(at int64, change func(sim *pbxsim.Sim)) (func(*http.Request, int, []byte) (int, []byte), **pbxsim.Sim) {
		var sim *pbxsim.Sim
		var n atomic.Int64
		return func(r *http.Request, status int, body []byte) (int, []byte) {
			if n.Add(1) == at {
				change(sim)
			}
			return status, body
		}, &sim
	}
	for _, tc := range []struct {
		name    string
		at      int64
		change  func(sim *pbxsim.Sim)
		total   string
		changed bool // ErrChanged wanted
	}{
		{"quiet", 1, func(*pbxsim.Sim) {}, "", false},
		{"quiet, no total", 1, func(*pbxsim.Sim) {}, "absent", false},
		// A call deleted before the second page shifts it: 11 is never
		// sent; a call arriving keeps the total right.
		{"a deletion and an arrival between pages", 1, func(sim *pbxsim.Sim) { sim.Delete(3); sim.InsertCalls(1) }, "", true},
		{"the same, no total", 1, func(sim *pbxsim.Sim) { sim.Delete(3); sim.InsertCalls(1) }, "absent", true},
		// A deletion alone: fewer records than the total announced.
		{"a deletion between pages", 1, func(sim *pbxsim.Sim) { sim.Delete(3) }, "", true},
		// Calls arriving land after every offset: read whole, whether
		// they arrive during the first read or before the second.
		{"arrivals between pages", 1, func(sim *pbxsim.Sim) { sim.InsertCalls(3) }, "", false},
		{"arrivals between the reads", 3, func(sim *pbxsim.Sim) { sim.InsertCalls(3) }, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rewrite, simp := after(tc.at, tc.change)
			sim, l := newSim(pbxsim.Options{Calls: 25, Total: tc.total, Rewrite: rewrite})
			*simp = sim
			rd := newReader(l, 10, 2)
			rd.Query = url.Values{"sort": {"id"}, "dir": {"ASC"}}
			got := tally{}
			_, err := (&Offset{Reader: rd, PageSize: 10}).Whole(context.Background(), got.count)
			if tc.changed {
				if !errors.Is(err, ErrChanged) {
					t.Fatalf("err = %v, want ErrChanged", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if bad := got.wrong(sim, 1, 25); bad != "" {
				t.Fatal(bad)
			}
		})
	}
}

// TestOffsetTotalChanged: a list without a cursor (colleagues) whose total
// changes between pages, or between its two reads, cannot tell an arrival
// from a shift: ErrChanged.
func TestOffsetTotalChanged(t *testing.T) {
	t.Parallel()
	for _, at := range []int64{2, 4} {
		testOffsetTotalChanged(t, at)
	}
}

func testOffsetTotalChanged(t *testing.T, at int64) {
	var n atomic.Int64
	rewrite := func(_ *http.Request, status int, body []byte) (int, []byte) {
		if n.Add(1) == at {
			return status, []byte(strings.Replace(string(body), `"total":"25"`, `"total":"26"`, 1))
		}
		return status, body
	}
	_, l := newSim(pbxsim.Options{Calls: 1, Rewrite: rewrite})
	ep := record.Builtin()[1]
	if ep.Name != "colleagues" {
		t.Fatalf("second built-in endpoint is %q", ep.Name)
	}
	rd := newReader(l, 10, 1)
	rd.Endpoint, rd.Rows = &ep, (&record.Converter{Endpoint: &ep}).Rows
	rd.Query = url.Values{"sort": {"id"}, "dir": {"ASC"}}
	_, err := (&Offset{Reader: rd, PageSize: 10}).Whole(context.Background(), func([]record.Row) error { return nil })
	if want := 3 * (at / 2); n.Load() != want { // refused after the first read, or after the second
		t.Fatalf("total changed at request %d: %d requests, want %d", at, n.Load(), want)
	}
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("total changed at request %d: err = %v, want ErrChanged", at, err)
	}
}

// TestOffsetOnePageShort: one answer holding fewer records than its total
// counts is not whole.
func TestOffsetOnePageShort(t *testing.T) {
	t.Parallel()
	short := rewriteAnswer(func(_ url.Values, ids []int64, total string) ([]int64, string) { return ids[1:], total })
	_, l := newSim(pbxsim.Options{Calls: 25, Rewrite: short})
	rd := newReader(l, 30, 1)
	rd.Query = url.Values{"sort": {"id"}, "dir": {"ASC"}}
	_, err := (&Offset{Reader: rd, PageSize: 30}).Whole(context.Background(), func([]record.Row) error { return nil })
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("err = %v, want ErrChanged", err)
	}
}
