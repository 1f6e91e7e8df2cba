package paging

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestPagerHugeTotal: a total of the largest int64 is refused with a
// message naming it, not a panic or an overflowed page count.
func TestPagerHugeTotal(t *testing.T) {
	t.Parallel()
	huge := func(_ *http.Request, status int, body []byte) (int, []byte) {
		return status, []byte(strings.Replace(string(body), `"total":"25"`, `"total":9223372036854775807`, 1))
	}
	_, c := newSim(pbxsim.Options{Calls: 1, Rewrite: huge})
	ep := record.Builtin()[1] // colleagues: 25 of them
	p := &pager{Lister: c, Path: ep.Path, PageSize: 10, Concurrency: 2, MaxPages: 1000, Counters: &Counters{}}
	_, err := p.Run(context.Background(), func(offsetPage) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "9223372036854775807") {
		t.Fatalf("err = %v, want the total refused", err)
	}
}
