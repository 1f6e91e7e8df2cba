package paging

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestKeyRangesProof reads [1, 10] whole on a PBX ignoring the sort, in
// process, through each refusal of an answer's proof: an answer shorter
// than asked is whole only when not below its total, and, without a total,
// only from a PBX seen to fill a page (else a cap may have cut it). Each
// case fails when its check is turned into an accept.
func TestKeyRangesProof(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		o          pbxsim.Options
		delivered  int64
		ignoresErr bool // the sort found ignored: no answer proves key 5
	}{
		// The PBX counts 5 but never sends it: no range holding 5 is
		// whole, down to [5, 5].
		{"a key counted, never sent", pbxsim.Options{Calls: 10, IgnoreSort: true}, 10, true},
		// No total, a cap of 5 under pages of 10, never seen to fill one:
		// halved until each half is whole.
		{"a cap, no total", pbxsim.Options{Calls: 10, IgnoreSort: true, Total: "absent", MaxCount: 5}, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.o
			if tc.ignoresErr {
				o.Rewrite = rewriteAnswer(func(_ url.Values, ids []int64, total string) ([]int64, string) {
					return slices.DeleteFunc(ids, func(id int64) bool { return id == 5 }), total
				})
			}
			sim, l := newSim(o)
			rd := newReader(l, 10, 1)
			rd.Learnt.saw(tc.delivered, 0)
			sp := newKeyRanges(&keyPages{Reader: rd}).whole(context.Background(), Range{1, 10})
			var ie *IgnoredError
			if tc.ignoresErr {
				if !errors.As(sp.err, &ie) || ie.Param != SortParam {
					t.Fatalf("err = %v, rows %d: want the sort found ignored", sp.err, len(sp.Rows))
				}
				return
			}
			if sp.err != nil {
				t.Fatal(sp.err)
			}
			var got []int64
			for _, row := range sp.Rows {
				got = append(got, row.Cursor)
			}
			if !slices.Equal(got, sim.CallIDs()) {
				t.Fatalf("read %v, want %v", got, sim.CallIDs())
			}
		})
	}
}
