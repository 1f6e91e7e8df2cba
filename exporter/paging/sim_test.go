package paging

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// simLister is the simulator's own list logic (pbxsim.Sim.List) as a
// Lister, in process: no HTTP, no socket; the wire's envelope parser reads
// the answer. Options.Rewrite, which the simulator plays only over HTTP,
// is played here on a request carrying the path and query.
type simLister struct {
	sim     *pbxsim.Sim
	rewrite func(*http.Request, int, []byte) (int, []byte)
}

func (l simLister) List(ctx context.Context, path string, q url.Values, n *pbx.Counts) (*pbx.ListPage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.Requests.Add(1)
	status, body := l.sim.List(path, q)
	if l.rewrite != nil {
		r := (&http.Request{Method: http.MethodGet, URL: &url.URL{Path: path, RawQuery: q.Encode()}}).WithContext(ctx)
		status, body = l.rewrite(r, status, body)
	}
	if status != http.StatusOK {
		return nil, &pbx.APIError{Status: status, Reason: pbx.Reason(body)}
	}
	return pbx.ParseList(body)
}

// newSim starts a simulator with o and returns it with a Lister of it.
func newSim(o pbxsim.Options) (*pbxsim.Sim, simLister) {
	rewrite := o.Rewrite
	o.Rewrite = nil
	sim := pbxsim.New(o)
	return sim, simLister{sim: sim, rewrite: rewrite}
}

// calls is the call-history endpoint.
func calls() *record.Endpoint {
	ep := record.Builtin()[0]
	if ep.Name != "call_history" {
		panic("the first built-in endpoint is " + ep.Name + ", not call_history")
	}
	return &ep
}

// newReader reads call history from l with pages of size, conc requests
// at once.
func newReader(l Lister, size, conc int) *Reader {
	ep := calls()
	n := &Counters{}
	return &Reader{Lister: l, Endpoint: ep, Concurrency: conc, MaxPages: 100000, Counters: n,
		Rows: (&record.Converter{Endpoint: ep, Zone: time.UTC, Warnings: &n.Warnings}).Rows, Learnt: NewLearnt(size)}
}
