package paging

import (
	"strings"
	"testing"
)

// TestParamNames: what the PBX ignores is named for people by the
// endpoint's key field.
func TestParamNames(t *testing.T) {
	t.Parallel()
	if !strings.Contains(SortParam.What("id"), "sort=id") || FilterParam.What("id") != "filter[id]" {
		t.Fatalf("params named %q and %q", SortParam.What("id"), FilterParam.What("id"))
	}
}

// TestLearntStrategy: the rung the endpoint is read on, with a cap, is
// the ledger's keyset-capped only while it is read by key.
func TestLearntStrategy(t *testing.T) {
	t.Parallel()
	l := NewLearnt(10)
	if l.Strategy() != ByKey || !l.SortHonoured() || !l.FilterHonoured() {
		t.Fatalf("a new Learnt reads by %v (sort %v, filter %v), want by key", l.Strategy(), l.SortHonoured(), l.FilterHonoured())
	}
	if !l.CapAt(4) || l.CapAt(4) || l.CapAt(0) || l.Strategy() != ByKeyCapped {
		t.Fatalf("after a cap at 4: %v, want keyset-capped, the cap news once", l.Strategy())
	}
	l.ReadBy(ByKeyRanges)
	if l.Strategy() != ByKeyRanges || l.SortHonoured() || !l.FilterHonoured() {
		t.Fatalf("read by key ranges: %v (sort %v, filter %v)", l.Strategy(), l.SortHonoured(), l.FilterHonoured())
	}
	l.ReadBy(ByOffset)
	if l.FilterHonoured() || l.Strategy().String() != "offset" {
		t.Fatalf("read by offset: %v, filter honoured %v", l.Strategy(), l.FilterHonoured())
	}
	for _, tc := range []struct {
		total int64
		want  TotalForm
	}{{5, TotalSent}, {-1, TotalAbsent}, {0, TotalSent}} {
		l.saw(1, tc.total)
		if l.Total() != tc.want {
			t.Fatalf("total %d seen as %v, want %v", tc.total, l.Total(), tc.want)
		}
	}
}

// TestBoundText: the from-bound is kept as text as earlier versions kept
// it; a text they did not write is unknown, not an error.
func TestBoundText(t *testing.T) {
	t.Parallel()
	for _, b := range []Bound{BoundUnknown, BoundInclusive, BoundExclusive} {
		text, err := b.MarshalText()
		var back Bound
		if err != nil || back.UnmarshalText(text) != nil || back != b {
			t.Fatalf("%v kept as %q (%v), read back as %v", b, text, err, back)
		}
	}
	b := BoundInclusive
	if err := b.UnmarshalText([]byte("sideways")); err != nil || b != BoundUnknown {
		t.Fatalf("%q read as %v, %v: want unknown, no error", "sideways", b, err)
	}
	if SortParam.String() != "sort" || FilterParam.String() != "filter" {
		t.Fatalf("params %q, %q", SortParam, FilterParam)
	}
}
