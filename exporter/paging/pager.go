package paging

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"

	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// pager reads every page of one query with start/count paging: the way
// snapshots are read (small lists without a growing key), and backfill
// windows of a PBX that ignores the key filter. What proves such a read
// whole is offset.go's.
//
// It stops on start ≥ total, on an empty page, and on MaxPages (an error,
// never an endless loop). A PBX that answers fewer records than asked while
// its total says more remain is taken to cap its page size, and paging
// continues at that size. Once the total is known, up to Concurrency pages
// are fetched at once and handed over in order; at most 2×Concurrency pages
// are held in memory.
//
// Offset paging is stable only if earlier records do not move while it
// reads, so callers sort ascending on a key that new records extend (call
// ids) and bound the query above, fixing the set when the run starts.
type pager struct {
	Lister      Lister
	Path        string
	Query       url.Values // filters and sort; start and count are set by the pager
	PageSize    int
	Concurrency int
	MaxPages    int
	Counters    *Counters
	Log         *slog.Logger
	// Rows, when set, converts a page's records; it runs in the fetching
	// goroutines, so pages are converted in parallel, and must be safe
	// for concurrent use.
	Rows func(recs []json.RawMessage) ([]record.Row, error)
}

// offsetPage is a page handed to the pager's callback.
type offsetPage struct {
	Number  int   // 0-based
	Start   int64 // the start parameter it was read with
	Records []json.RawMessage
	Rows    []record.Row // the records converted, when pager.Rows is set
}

// pagerResult says how paging ended.
type pagerResult struct {
	Pages   int
	Records int64
	Total   int64 // the total the PBX reported on the first page, -1 if none
	// Complete is true when every record the total announced was handed
	// over (or, without a total, paging ended on an empty page: that
	// proves nothing about a record skipped because a deletion shifted the
	// offsets, so offset.go reads such a query twice and compares).
	Complete bool
	// Changed is true when a later page announced another total: records
	// were added or removed while paging, and offsets shifted.
	Changed bool
}

type fetched struct {
	page *pbx.ListPage
	rows []record.Row
	err  error
}

func (p *pager) convert(pg *pbx.ListPage) ([]record.Row, error) {
	if p.Rows == nil {
		return nil, nil
	}
	return p.Rows(pg.Records)
}

// Run pages through the query, calling fn for each page in order. fn's
// error stops paging and is returned.
func (p *pager) Run(ctx context.Context, fn func(offsetPage) error) (pagerResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	size := int64(p.PageSize)
	res := pagerResult{Total: -1}
	first, err := p.fetch(ctx, 0, size)
	if err != nil {
		return res, fmt.Errorf("page 0 (start=0): %w", err)
	}
	res.Total = first.Total
	if int64(len(first.Records)) > size {
		return res, fmt.Errorf("page 0 (start=0): the PBX sent %d records for count=%d; paging on it would skip or repeat records", len(first.Records), size)
	}
	rows, err := p.convert(first)
	if err != nil {
		return res, fmt.Errorf("page 0 (start=0): %w", err)
	}
	if err := p.deliver(fn, &res, offsetPage{Number: 0, Start: 0, Records: first.Records, Rows: rows}); err != nil {
		return res, err
	}
	n := int64(len(first.Records))
	if n == 0 {
		res.Complete = res.Total <= 0
		if res.Total > 0 {
			return res, fmt.Errorf("page 0 (start=0): no records, but total says %d", res.Total)
		}
		return res, nil
	}
	if n < size && (res.Total < 0 || res.Total > n) {
		p.log().Info("the PBX answers fewer records than asked; paging at its size", "count", size, "got", n)
		size = n
	}
	r := &pagerRun{pager: p, fn: fn, res: res, size: size, prevFirst: first.Records[0]}
	if res.Total < 0 {
		return r.sequential(ctx, n)
	}
	return r.concurrent(ctx, cancel)
}

func (p *pager) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (p *pager) fetch(ctx context.Context, start, count int64) (*pbx.ListPage, error) {
	q := url.Values{}
	for k, v := range p.Query {
		q[k] = v
	}
	q.Set("start", strconv.FormatInt(start, 10))
	q.Set("count", strconv.FormatInt(count, 10))
	pg, err := p.Lister.List(ctx, p.Path, q, &p.Counters.Counts)
	if err == nil {
		p.Counters.Pages.Add(1)
		p.log().Debug("page", "start", start, "records", len(pg.Records), "total", pg.Total)
	}
	return pg, err
}

func (p *pager) deliver(fn func(offsetPage) error, res *pagerResult, pg offsetPage) error {
	res.Pages++
	if res.Pages > p.MaxPages {
		return fmt.Errorf("more than EXPORT_MAX_PAGES=%d pages: stopped; raise it if this PBX really holds that much", p.MaxPages)
	}
	res.Records += int64(len(pg.Records))
	if err := fn(pg); err != nil {
		return fmt.Errorf("page %d (start=%d): %w", pg.Number, pg.Start, err)
	}
	return nil
}

// pagerRun is one run of a pager: what its pages share.
type pagerRun struct {
	*pager
	fn        func(offsetPage) error
	res       pagerResult
	size      int64
	prevFirst json.RawMessage // the first record of the page before
}

// sequential pages without a total, until an empty page.
func (r *pagerRun) sequential(ctx context.Context, start int64) (pagerResult, error) {
	for number := 1; ; number++ {
		pg, err := r.fetch(ctx, start, r.size)
		if err != nil {
			return r.res, fmt.Errorf("page %d (start=%d): %w", number, start, err)
		}
		if pg.Total >= 0 && r.res.Total >= 0 && pg.Total != r.res.Total {
			r.res.Changed = true
		}
		if len(pg.Records) == 0 {
			r.res.Complete = true
			return r.res, nil
		}
		if bytes.Equal(pg.Records[0], r.prevFirst) {
			return r.res, fmt.Errorf("page %d (start=%d): the PBX sent the same page again; it may ignore the start parameter", number, start)
		}
		r.prevFirst = pg.Records[0]
		rows, err := r.convert(pg)
		if err != nil {
			return r.res, fmt.Errorf("page %d (start=%d): %w", number, start, err)
		}
		if err := r.deliver(r.fn, &r.res, offsetPage{Number: number, Start: start, Records: pg.Records, Rows: rows}); err != nil {
			return r.res, err
		}
		start += int64(len(pg.Records))
	}
}

// concurrent fetches the pages the total announces, a window of
// 2×Concurrency pages ahead of the one being handed over.
func (r *pagerRun) concurrent(ctx context.Context, cancel context.CancelFunc) (pagerResult, error) {
	total, size := r.res.Total, r.size
	// Divided first: a total near the largest int64 cannot overflow.
	npages := total / size
	if total%size != 0 {
		npages++
	}
	if npages > int64(r.MaxPages)+1 {
		return r.res, fmt.Errorf("total %d at %d a page is %d pages, more than EXPORT_MAX_PAGES=%d; raise it if this PBX really holds that much", total, size, npages, r.MaxPages)
	}
	pages := int(npages)
	ahead := &prefetch{r: r, slots: make([]chan fetched, pages), launched: 1, conc: max(1, r.Concurrency)}
	ahead.sem = make(chan struct{}, ahead.conc)
	defer ahead.stop(cancel)
	for i := 1; i < pages; i++ {
		ahead.launch(ctx)
		f := <-ahead.slots[i]
		ahead.slots[i] = nil
		start := int64(i) * size
		if f.err != nil {
			return r.res, fmt.Errorf("page %d (start=%d): %w", i, start, f.err)
		}
		recs := f.page.Records
		if f.page.Total >= 0 && f.page.Total != total {
			r.res.Changed = true
		}
		switch {
		case int64(len(recs)) > size:
			return r.res, fmt.Errorf("page %d (start=%d): the PBX sent %d records for count=%d", i, start, len(recs), size)
		case len(recs) > 0 && bytes.Equal(recs[0], r.prevFirst):
			return r.res, fmt.Errorf("page %d (start=%d): the PBX sent the same page again; it may ignore the start parameter", i, start)
		}
		if len(recs) > 0 {
			r.prevFirst = recs[0]
		}
		if err := r.deliver(r.fn, &r.res, offsetPage{Number: i, Start: start, Records: recs, Rows: f.rows}); err != nil {
			return r.res, err
		}
		if int64(len(recs)) < size && i < pages-1 {
			// Records vanished while paging: what follows has shifted.
			r.log().Warn("page shorter than the total announced; records were removed while paging", "page", i, "records", len(recs))
			return r.res, nil
		}
	}
	r.res.Complete = r.res.Records >= total
	return r.res, nil
}

// prefetch fetches pages ahead of the one being handed over: at most conc
// requests at once, and up to 2×conc pages ahead, so the requests stay
// busy while a slow page or a slow sink holds up delivery, and memory
// stays bounded.
type prefetch struct {
	r        *pagerRun
	slots    []chan fetched // page i's answer, nil once handed over or not launched
	launched int
	conc     int
	sem      chan struct{}
}

func (a *prefetch) launch(ctx context.Context) {
	for a.launched < len(a.slots) && a.launched < a.r.res.Pages+2*a.conc {
		i := a.launched
		ch := make(chan fetched, 1)
		a.slots[i] = ch
		go func() {
			select {
			case a.sem <- struct{}{}:
			case <-ctx.Done():
				ch <- fetched{err: ctx.Err()}
				return
			}
			pg, err := a.r.fetch(ctx, int64(i)*a.r.size, a.r.size)
			<-a.sem
			var rows []record.Row
			if err == nil && int64(len(pg.Records)) <= a.r.size {
				rows, err = a.r.convert(pg)
			}
			ch <- fetched{pg, rows, err}
		}()
		a.launched++
	}
}

// stop cancels the fetches and waits for those still running, so none
// outlives Run.
func (a *prefetch) stop(cancel context.CancelFunc) {
	cancel()
	for i := a.r.res.Pages; i < a.launched; i++ {
		if a.slots[i] != nil {
			<-a.slots[i]
		}
	}
}
