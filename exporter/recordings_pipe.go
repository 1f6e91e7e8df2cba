package exporter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
)

// recPipe takes the windows of a recordings read in time order and copies
// their files while the window before is finished: a window's Copy
// starts as soon as it is read, then the window before it is finished
// (its Copy waited for, its rows written, the cursor moved over them).
// So no file waits for another window's last files, its store's Sync,
// its call-history read or its rows: the Copier shares its Concurrency
// between the two windows in hand (issue 29's throughput, bench/README).
// A window is still finished only once its own Copy returned nil, and in
// time order: the time cursor never passes a recording whose file is not
// stored.
type recPipe struct {
	e       *endpointRun
	c       *committer
	l       *recList
	rc      *recCursor
	pending *recJob                // the last window started, not finished
	used    map[string]bool        // names this run's windows finished stored or found (erase)
	again   []recordings.Recording // listed again, exported before, not kept (relisted)
	walls   []string               // again's wall times
	tried   map[string]bool        // keys of recordings not kept Erase was asked for this run
	// list reads the recordings list from a wall time to another (the
	// pending entries' listing again: retryPending).
	list    func(ctx context.Context, from, to time.Time, fn func([]record.Row) error) error
	swept   map[string]bool // day folders swept of partial copies this run (sweep)
	cleared map[string]bool // names of recordings not kept swept whatever the age (sweep)
}

// recJob is a window's recordings whose files are being copied and whose
// call-history legs are being matched.
type recJob struct {
	fresh      []record.Row
	infos      []recInfo
	recount    bool
	recs       []recordings.Recording // those whose files are copied
	idx        []int                  // recs[k] is fresh[idx[k]]
	suppressed []bool
	cancel     context.CancelFunc
	copied     chan struct{} // closed when Copy returned: results, cnt, err
	results    []recordings.Result
	cnt        recordings.Counts
	err        error
	matched    chan struct{} // closed when the call-history match ended
	matchErr   error
}

// window takes a window's rows: starts the copy of the recordings not
// exported before, then finishes the window before it. On an error the
// window just started is cancelled and waited for.
func (p *recPipe) window(ctx context.Context, rows []record.Row, recount bool) error {
	fresh, infos := p.rc.fresh(p.l, rows, func(row record.Row, first string) {
		p.e.res.Recordings.clashed(p.l.info(row).rec.ID, fmt.Sprintf("started %s and %s", first, row.Wall), recordings.AltID(p.l.info(row).rec))
	}, func(row record.Row) { p.e.res.Recordings.listedTwice(row.Key) })
	p.relisted(rows, infos)
	if len(fresh) == 0 {
		return nil
	}
	p.rc.claim(fresh, infos)
	prev := p.pending
	p.pending = p.start(ctx, prev, fresh, infos, recount)
	if prev == nil {
		return nil
	}
	if err := p.finish(ctx, prev); err != nil {
		p.abort()
		return err
	}
	return nil
}

// start begins copying the files of fresh's recordings the guard does not
// suppress and, once prev (the window before, nil for none) is matched
// (call history is read in time order), matching them to call history.
func (p *recPipe) start(ctx context.Context, prev *recJob, fresh []record.Row, infos []recInfo, recount bool) *recJob {
	j := &recJob{fresh: fresh, infos: infos, recount: recount, copied: make(chan struct{}), matched: make(chan struct{})}
	j.recs, j.idx, j.suppressed = p.e.unsuppressed(fresh, infos)
	ctx, j.cancel = context.WithCancel(ctx)
	go func() {
		defer close(j.copied)
		j.results, j.cnt, j.err = p.e.x.Recordings.Copy(ctx, j.recs)
	}()
	var before <-chan struct{}
	if prev != nil {
		before = prev.matched
	}
	go func() {
		defer close(j.matched)
		if before != nil {
			<-before
		}
		if p.l.calls != nil {
			j.matchErr = p.l.calls.match(ctx, p.e.ep, fresh)
		}
	}()
	return j
}

// finish waits for j's copy and match, counts its files, and, when every
// file is stored (or vanished, refused, suppressed), removes what earlier
// runs left of the suppressed ones' files (erase), writes its rows and
// moves the cursor over them: what a window's read did before windows
// were copied side by side.
func (p *recPipe) finish(ctx context.Context, j *recJob) error {
	<-j.copied
	<-j.matched
	j.cancel()
	e := p.e
	e.res.Recordings.add(j.recs, j.results, j.cnt)
	if j.err != nil {
		return j.err
	}
	if err := p.erase(ctx, j); err != nil {
		return err
	}
	if j.matchErr != nil {
		e.note(fmt.Sprintf("call_id not derived for some recordings: reading call history failed: %v", j.matchErr))
	}
	if j.recount {
		if err := e.recount(p.l, j.fresh); err != nil {
			return err
		}
	}
	results := make([]recordings.Result, len(j.fresh))
	for k, i := range j.idx {
		results[i] = j.results[k]
	}
	for i := range j.fresh {
		e.recRow(&j.fresh[i], j.infos[i], results[i])
		if j.suppressed[i] {
			e.markErased(&j.fresh[i])
		}
	}
	p.rc.took(j.fresh, j.infos)
	if !p.c.write(j.fresh) {
		return errLoader
	}
	if p.c.pending() >= int64(e.x.BatchSize) && !p.c.commit(p.rc.state(e.runID)) {
		return errLoader
	}
	return nil
}

// abort cancels the window in hand and waits for it: what it copied is
// counted, nothing of it is written (the next run lists it again and
// skips what is stored).
func (p *recPipe) abort() {
	j := p.pending
	if j == nil {
		return
	}
	p.pending = nil
	j.cancel()
	<-j.copied
	<-j.matched
	p.e.res.Recordings.add(j.recs, j.results, j.cnt)
}

// drain finishes the window in hand once the read ended with err: a read
// that failed after it (a later window's list) still lets it be written,
// as it was before windows were copied side by side. Both errors are
// returned when both failed, the read's alone when ctx ended.
func (p *recPipe) drain(ctx context.Context, err error) error {
	j := p.pending
	if j == nil {
		return err
	}
	p.pending = nil
	ferr := p.finish(ctx, j)
	switch {
	case ferr == nil:
		return err
	case err == nil:
		return ferr
	case ctx.Err() != nil:
		return err
	}
	return errors.Join(err, ferr)
}
