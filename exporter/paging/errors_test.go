package paging

import (
	"context"
	"errors"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// failingLister fails its n-th request and every later one.
type failingLister struct {
	Lister
	n, seen atomic.Int64
}

var errPBXDown = errors.New("the PBX is down")

func (l *failingLister) List(ctx context.Context, path string, q url.Values, n *pbx.Counts) (*pbx.ListPage, error) {
	if l.seen.Add(1) >= l.n.Load() {
		return nil, errPBXDown
	}
	return l.Lister.List(ctx, path, q, n)
}

// TestReadersReportAFailedRequest: whichever request of a read fails,
// each way of reading stops with an error that wraps the request's, never
// a proof or a finding (a read that needed fewer requests ends well).
func TestReadersReportAFailedRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reads := []struct {
		name string
		o    pbxsim.Options
		read func(rd *Reader) error
	}{
		{"newest", pbxsim.Options{Calls: 40, IgnoreSort: true}, func(rd *Reader) error { _, _, err := rd.Newest(ctx, 0); return err }},
		{"below one", pbxsim.Options{Calls: 40}, func(rd *Reader) error { _, err := rd.BelowOne(ctx); return err }},
		{"by key", pbxsim.Options{Calls: 40, MaxCount: 1}, func(rd *Reader) error {
			_, err := (&Ladder{Reader: rd, Last: ByTimeWindows}).Read(ctx, Range{1, 40}, func(Span) error { return nil })
			return err
		}},
		{"by key, pages of one, no total", pbxsim.Options{Calls: 40, MaxCount: 1, Total: "absent"}, func(rd *Reader) error {
			_, err := (&Ladder{Reader: rd, Last: ByTimeWindows}).Read(ctx, Range{1, 40}, func(Span) error { return nil })
			return err
		}},
		{"by key, four at a time", pbxsim.Options{Calls: 40}, func(rd *Reader) error {
			rd.Concurrency = 4
			_, err := (&Ladder{Reader: rd, Last: ByTimeWindows}).Read(ctx, Range{1, 40}, func(Span) error { return nil })
			return err
		}},
		{"by key ranges", pbxsim.Options{Calls: 40, IgnoreSort: true, Total: "absent"}, func(rd *Reader) error {
			_, err := (&Ladder{Reader: rd, Last: ByTimeWindows}).Read(ctx, Range{1, 40}, func(Span) error { return nil })
			return err
		}},
		{"time windows", pbxsim.Options{Calls: 40}, func(rd *Reader) error {
			rd.Learnt = NewLearnt(10)
			return (&TimeWindows{Reader: rd}).Read(ctx, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC),
				func([]record.Row) error { return nil })
		}},
		{"offset", pbxsim.Options{Calls: 40}, func(rd *Reader) error {
			_, err := (&Offset{Reader: rd, PageSize: 7}).Whole(ctx, func([]record.Row) error { return nil })
			return err
		}},
		{"offset, no total", pbxsim.Options{Calls: 40, Total: "absent"}, func(rd *Reader) error {
			_, err := (&Offset{Reader: rd, PageSize: 7}).Whole(ctx, func([]record.Row) error { return nil })
			return err
		}},
		{"probe", pbxsim.Options{Calls: 40, IgnoreSort: true}, func(rd *Reader) error {
			_, err := (&Ladder{Reader: rd}).Probe(ctx, 100)
			return err
		}},
		{"probe, a cap", pbxsim.Options{Calls: 40, MaxCount: 25, Total: "absent"}, func(rd *Reader) error {
			_, err := (&Ladder{Reader: rd}).Probe(ctx, 100)
			return err
		}},
	}
	for _, tc := range reads {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for n := int64(1); ; n++ {
				_, sim := newSim(tc.o)
				l := &failingLister{Lister: sim}
				l.n.Store(n)
				rd := newReader(l, 3, 1)
				err := tc.read(rd)
				if err == nil {
					if n == 1 {
						t.Fatal("no error when the first request fails")
					}
					return // the read needed fewer than n requests
				}
				if !errors.Is(err, errPBXDown) {
					t.Fatalf("request %d failed: err = %v, want it wrapping the request's error", n, err)
				}
				if n > 500 {
					t.Fatal("more than 500 requests")
				}
			}
		})
	}
}
