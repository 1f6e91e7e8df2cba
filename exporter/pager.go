package exporter

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

// Pager reads every page of one query with start/count paging: the way
// snapshots are read (small lists without a growing key), and backfill
// windows of a PBX that ignores the key filter or sort. Incremental
// endpoints are read by key (keyReader).
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
type Pager struct {
	Client      Lister
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

// Page is a page handed to the pager's callback.
type Page struct {
	Number  int   // 0-based
	Start   int64 // the start parameter it was read with
	Records []json.RawMessage
	Rows    []record.Row // the records converted, when Pager.Rows is set
}

// Result says how paging ended.
type Result struct {
	Pages   int
	Records int64
	Total   int64 // the total the PBX reported on the first page, -1 if none
	// Complete is true when every record the total announced was handed
	// over (or, without a total, paging ended on an empty page: that
	// proves nothing about a record skipped because a deletion shifted the
	// offsets, so wholeBatch reads such a query twice and compares).
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

func (p *Pager) convert(pg *pbx.ListPage) ([]record.Row, error) {
	if p.Rows == nil {
		return nil, nil
	}
	return p.Rows(pg.Records)
}

// Run pages through the query, calling fn for each page in order. fn's
// error stops paging and is returned.
func (p *Pager) Run(ctx context.Context, fn func(Page) error) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	size := int64(p.PageSize)
	res := Result{Total: -1}
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
	if err := p.deliver(fn, &res, Page{Number: 0, Start: 0, Records: first.Records, Rows: rows}); err != nil {
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
	if res.Total < 0 {
		return p.sequential(ctx, fn, &res, n, size, first.Records[0])
	}
	return p.concurrent(ctx, cancel, fn, &res, size, first.Records[0])
}

func (p *Pager) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (p *Pager) fetch(ctx context.Context, start, count int64) (*pbx.ListPage, error) {
	q := url.Values{}
	for k, v := range p.Query {
		q[k] = v
	}
	q.Set("start", strconv.FormatInt(start, 10))
	q.Set("count", strconv.FormatInt(count, 10))
	pg, err := p.Client.List(ctx, p.Path, q, &p.Counters.Counts)
	if err == nil {
		p.Counters.Pages.Add(1)
		p.log().Debug("page", "start", start, "records", len(pg.Records), "total", pg.Total)
	}
	return pg, err
}

func (p *Pager) deliver(fn func(Page) error, res *Result, pg Page) error {
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

// sequential pages without a total, until an empty page.
func (p *Pager) sequential(ctx context.Context, fn func(Page) error, res *Result, start, size int64, prevFirst json.RawMessage) (Result, error) {
	for number := 1; ; number++ {
		pg, err := p.fetch(ctx, start, size)
		if err != nil {
			return *res, fmt.Errorf("page %d (start=%d): %w", number, start, err)
		}
		if pg.Total >= 0 && res.Total >= 0 && pg.Total != res.Total {
			res.Changed = true
		}
		if len(pg.Records) == 0 {
			res.Complete = true
			return *res, nil
		}
		if bytes.Equal(pg.Records[0], prevFirst) {
			return *res, fmt.Errorf("page %d (start=%d): the PBX sent the same page again; it may ignore the start parameter", number, start)
		}
		prevFirst = pg.Records[0]
		rows, err := p.convert(pg)
		if err != nil {
			return *res, fmt.Errorf("page %d (start=%d): %w", number, start, err)
		}
		if err := p.deliver(fn, res, Page{Number: number, Start: start, Records: pg.Records, Rows: rows}); err != nil {
			return *res, err
		}
		start += int64(len(pg.Records))
	}
}

// concurrent fetches the pages the total announces, a window of
// 2×Concurrency pages ahead of the one being handed over.
func (p *Pager) concurrent(ctx context.Context, cancel context.CancelFunc, fn func(Page) error, res *Result, size int64, prevFirst json.RawMessage) (Result, error) {
	total := res.Total
	// Divided first: a total near the largest int64 cannot overflow.
	npages := total / size
	if total%size != 0 {
		npages++
	}
	if npages > int64(p.MaxPages)+1 {
		return *res, fmt.Errorf("total %d at %d a page is %d pages, more than EXPORT_MAX_PAGES=%d; raise it if this PBX really holds that much", total, size, npages, p.MaxPages)
	}
	pages := int(npages)
	// At most conc requests at once, and up to 2×conc pages fetched ahead
	// of the one being handed over, so the requests stay busy while a
	// slow page or a slow sink holds up delivery, and memory stays bounded.
	conc := max(1, p.Concurrency)
	sem := make(chan struct{}, conc)
	slots := make([]chan fetched, pages)
	launched := 1
	launch := func() {
		for launched < pages && launched < res.Pages+2*conc {
			i := launched
			ch := make(chan fetched, 1)
			slots[i] = ch
			go func() {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					ch <- fetched{err: ctx.Err()}
					return
				}
				pg, err := p.fetch(ctx, int64(i)*size, size)
				<-sem
				var rows []record.Row
				if err == nil && int64(len(pg.Records)) <= size {
					rows, err = p.convert(pg)
				}
				ch <- fetched{pg, rows, err}
			}()
			launched++
		}
	}
	defer func() {
		// Stop and wait for the workers still running, so none outlives Run.
		cancel()
		for i := res.Pages; i < launched; i++ {
			if slots[i] != nil {
				<-slots[i]
			}
		}
	}()
	for i := 1; i < pages; i++ {
		launch()
		f := <-slots[i]
		slots[i] = nil
		start := int64(i) * size
		if f.err != nil {
			return *res, fmt.Errorf("page %d (start=%d): %w", i, start, f.err)
		}
		recs := f.page.Records
		if f.page.Total >= 0 && f.page.Total != total {
			res.Changed = true
		}
		switch {
		case int64(len(recs)) > size:
			return *res, fmt.Errorf("page %d (start=%d): the PBX sent %d records for count=%d", i, start, len(recs), size)
		case len(recs) > 0 && bytes.Equal(recs[0], prevFirst):
			return *res, fmt.Errorf("page %d (start=%d): the PBX sent the same page again; it may ignore the start parameter", i, start)
		}
		if len(recs) > 0 {
			prevFirst = recs[0]
		}
		if err := p.deliver(fn, res, Page{Number: i, Start: start, Records: recs, Rows: f.rows}); err != nil {
			return *res, err
		}
		if int64(len(recs)) < size && i < pages-1 {
			// Records vanished while paging: what follows has shifted.
			p.log().Warn("page shorter than the total announced; records were removed while paging", "page", i, "records", len(recs))
			return *res, nil
		}
	}
	res.Complete = res.Records >= total
	return *res, nil
}
