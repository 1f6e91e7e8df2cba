package exporter

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
)

// objectNamer is a Sink that tells which recordings' files its rows name
// (sinks.Postgres and sinks.CSV): the rows of any PBX, any status.
type objectNamer interface {
	NamedObjects(ctx context.Context, ep *record.Endpoint, names []string) (map[string]bool, error)
}

// partialSweeper is a recordings store that removes the partial copies
// (folder) or incomplete uploads (S3) of a day's folder begun before a
// time (recstore.Dir and S3).
type partialSweeper interface {
	SweepPartials(ctx context.Context, folder string, before time.Time, inFlight, anyAge map[string]bool) (int, error)
}

// partialMargin is how long before the run's start a partial copy must
// have been last written to be swept: the store's clock (a NAS, the S3
// server) may be behind the exporter's, and a partial copy this run's
// Put is writing must never be taken for a killed run's.
const partialMargin = time.Hour

// keptListed is how many kept files' names the run ledger lists.
const keptListed = 20

// erase removes from the store what earlier runs that committed no row
// left of j's recordings: the files of those the guard suppresses (their
// rows say no file is kept) on proof that they are theirs
// (recordings.Copier.Erase), and the partial copies of killed runs in
// the day folders of j's recordings (sweep). Called by finish before
// j's rows are written, while the window after j is being copied: the
// names it may write, and those this run wrote, are never removed. An
// error (the store failing, ctx's end) fails j: its rows are not written.
func (p *recPipe) erase(ctx context.Context, j *recJob) error {
	e := p.e
	if p.used == nil {
		p.used = map[string]bool{}
	}
	for _, res := range j.results {
		if res.Status == recordings.Copied || res.Status == recordings.Skipped {
			p.used[res.Name] = true
		}
	}
	inUse := p.used
	if next := p.pending; next != nil && next != j {
		inUse = make(map[string]bool, len(p.used))
		for n := range p.used {
			inUse[n] = true
		}
		for _, r := range next.recs {
			for _, n := range e.x.Recordings.Names(r, 0) {
				inUse[n] = true
			}
		}
	}
	serr := p.sweep(ctx, j, inUse)
	var recs []recordings.Recording
	var walls []string
	for i, s := range j.suppressed {
		if s {
			recs, walls = append(recs, j.infos[i].rec), append(walls, j.fresh[i].Wall)
		}
	}
	if serr != nil && len(recs) > 0 {
		// A partial copy of a recording not kept may be there, bytes
		// of its voice; no later run sweeps the folder unless it lists
		// the window again.
		return fmt.Errorf("%w; the window's rows are not written: the next run lists it again and sweeps the folder", serr)
	}
	out, err := e.x.Recordings.Erase(ctx, recs, p.named, inUse)
	e.res.Recordings.erased(out)
	switch {
	case err != nil && errors.Is(err, recordings.ErrDenied):
		// A key without a permission (R32-1): configuration (exit 2),
		// met again by every run until it is given.
		return fmt.Errorf("%w: %w; the window's rows are not written: the next run lists it again and removes them", record.ErrConfig, err)
	case err != nil && ctx.Err() == nil:
		// The store failed (R24-1): the rows would say erased, no file
		// kept, of files still stored, and no later run would list
		// their window again unless the look-back does.
		return fmt.Errorf("%w; the window's rows are not written: the next run lists it again and removes them", err)
	case err == nil:
		// Committed with the window's rows: its files kept pending.
		p.tryAndPend(ctx, recs, walls, out, inUse)
	}
	return err
}

// tryAndPend marks recs (walls their wall times) asked of Erase this
// run, and records what it did in the pending entries (pend): an entry
// they had keeps the files Erase left silently (keepUnproven, R48-1).
func (p *recPipe) tryAndPend(ctx context.Context, recs []recordings.Recording, walls []string, out recordings.Erased, inUse map[string]bool) {
	if p.tried == nil {
		p.tried = map[string]bool{}
	}
	before := map[string]pendingRemoval{}
	for _, r := range recs {
		p.tried[r.Key] = true
		if pr, ok := p.rc.pending[r.Key]; ok {
			before[r.Key] = pr
		}
	}
	p.pend(recs, walls, out)
	for i, r := range recs {
		if pr, ok := before[r.Key]; ok {
			p.keepUnproven(ctx, r.Key, pr, walls[i], inUse)
		}
	}
}

// named is which of names the sink's rows name (recordings.Named).
func (p *recPipe) named(ctx context.Context, names []string) (map[string]bool, error) {
	if n, ok := p.e.x.Sink.(objectNamer); ok {
		named, err := n.NamedObjects(ctx, p.e.ep, names)
		if err != nil {
			return nil, sinkError{err}
		}
		return named, nil
	}
	return nil, recordings.ErrNoNamer
}

// relisted keeps, of a window's rows, those fresh left out (exported
// before: the look-back lists them again) whose files the guard
// suppresses, for eraseAgain; infos are fresh's.
func (p *recPipe) relisted(rows []record.Row, infos []recInfo) {
	g, ok := p.e.x.Guard.(fileSuppressor)
	if !ok {
		return
	}
	taken := make(map[string]bool, len(infos))
	for _, in := range infos {
		taken[in.rec.Path+"\x00"+in.rec.Start.String()] = true
	}
	for _, row := range rows {
		if !g.SuppressesFile(p.e.ep, row) {
			continue
		}
		if info := p.l.info(row); !taken[info.rec.Path+"\x00"+info.rec.Start.String()] {
			p.again, p.walls = append(p.again, info.rec), append(p.walls, row.Wall)
		}
	}
}

// eraseAgain is erase for the recordings the look-back listed again,
// exported before and not kept (relisted), once the read ended well: a
// file an earlier run kept for want of proof (the PBX's file not fetched:
// a 500) is proven or kept again, so that one PBX error does not leave it
// for good, and no later run fails on it; bounded by the look-back, in
// which the PBX lists it. Nothing of the run is at stake: a failure is a
// warning.
func (p *recPipe) eraseAgain(ctx context.Context) {
	if len(p.again) == 0 {
		return
	}
	e := p.e
	out, err := e.x.Recordings.Erase(ctx, p.again, p.named, p.used)
	e.res.Recordings.erased(out)
	var se sinkError
	switch {
	case err == nil:
		p.tryAndPend(ctx, p.again, p.walls, out, p.used)
	case err != nil && errors.As(err, &se):
		e.log.Warn("recordings sink: could not tell whether its rows name files of recordings listed again and not kept; those files not checked, a later run checks them while the look-back lists them again", "err", err)
	case err != nil:
		e.log.Warn("recordings store: files of recordings listed again and not kept not checked; a later run checks them while the look-back lists them again", "err", err)
	}
}

// sinkError is named's error when the sink failed, so that what reports
// it names the sink, not the store (R34-5); its text is the sink's.
type sinkError struct{ err error }

func (e sinkError) Error() string { return e.err.Error() }
func (e sinkError) Unwrap() error { return e.err }

// sweep removes the partial copies killed runs left in the day folders
// of j's recordings (their days and the days either side), each folder
// once a run: begun before the run's start less partialMargin, never
// those of inFlight's names (the names this run wrote, and those the
// window being copied may write: R19-2, a store's clock behind). Those
// of j's recordings not kept go whatever their age (R34-1: no Put of
// this run writes their names; a young copy skipped would stay for good
// under a row committed erased), so a folder already swept is swept
// again for them. It returns the first failure of the store (not a
// folder's own fault: recordings.Planted), and a folder that failed is
// swept again for the next window that has it: erase fails a window
// holding recordings not kept on it, as a partial copy of theirs may be
// there (a store down or a folder not writable, with no file but partial
// copies to remove: their rows would be committed and the copies left
// for good). For any other window it is a warning: what is at stake is a
// kept recording's partial copy, which its next Put removes.
func (p *recPipe) sweep(ctx context.Context, j *recJob, inFlight map[string]bool) error {
	e := p.e
	s, ok := e.x.Recordings.Store.(partialSweeper)
	if !ok || ctx.Err() != nil {
		return nil
	}
	if p.swept == nil {
		p.swept, p.cleared = map[string]bool{}, map[string]bool{}
	}
	before := e.began.Add(-partialMargin)
	anyAge, again := p.notKeptNames(j)
	var first error
	for _, info := range j.infos {
		for _, name := range e.x.Recordings.Names(info.rec, 1) {
			folder := path.Dir(name) // <pbx>/<YYYY>/<MM>/<DD>, as recstore.DayFolder
			if p.swept[folder] && !again[folder] {
				continue
			}
			p.swept[folder], again[folder] = true, false
			n, err := s.SweepPartials(ctx, folder, before, inFlight, anyAge)
			e.res.Recordings.Partials += n
			switch {
			case err == nil:
				p.clear(anyAge, folder)
			case ctx.Err() != nil:
				return fmt.Errorf("sweep the recordings store: %w", context.Cause(ctx))
			case recordings.Planted(err):
				p.clear(anyAge, folder)
				e.log.Warn("recordings store: a day folder not swept of partial copies left by a killed run, for what is there; check it", "folder", folder, "err", err)
			default:
				p.swept[folder] = false
				e.log.Warn("recordings store: partial copies left by a killed run not removed; tried again", "folder", folder, "err", err)
				if first == nil {
					first = fmt.Errorf("sweep recordings: the recordings store %v could not sweep %s of partial copies left by a killed run: %w (check that the store is up and writable)", e.x.Recordings.Store, folder, err)
				}
			}
		}
	}
	return first
}

// notKeptNames are the names of j's recordings not kept (the guard
// suppresses them) not yet swept this run, whose partial copies sweep
// removes whatever their age, and the folders that hold them.
func (p *recPipe) notKeptNames(j *recJob) (names, folders map[string]bool) {
	names, folders = map[string]bool{}, map[string]bool{}
	for i, s := range j.suppressed {
		if !s {
			continue
		}
		for _, n := range p.e.x.Recordings.Names(j.infos[i].rec, 1) {
			if !p.cleared[n] {
				names[n], folders[path.Dir(n)] = true, true
			}
		}
	}
	return names, folders
}

// clear marks the names of anyAge in folder swept.
func (p *recPipe) clear(anyAge map[string]bool, folder string) {
	for n := range anyAge {
		if path.Dir(n) == folder {
			p.cleared[n] = true
		}
	}
}

// erased counts what Erase did: removed, and kept for want of proof (the
// first keptListed names listed).
func (r *RecordingsResult) erased(out recordings.Erased) {
	r.Removed += out.Removed
	for _, k := range out.Kept {
		if r.KeptUnproven++; len(r.KeptFiles) < keptListed {
			r.KeptFiles = append(r.KeptFiles, k.Name)
		}
		if r.keptWhy == "" {
			r.keptWhy = k.Why
		}
	}
}

// noteErased says in the ledger's notes what erase removed and kept.
func (e *endpointRun) noteErased() {
	rr := e.res.Recordings
	if rr.Removed > 0 || rr.Partials > 0 {
		e.note(fmt.Sprintf("recordings store: %d files of recordings not kept (a number of their call erased on request, or older than the retention) removed, each proven theirs by its sha256, and %d partial copies removed, left by earlier runs that failed or were stopped", rr.Removed, rr.Partials))
	}
	if rr.PendingRemoval > 0 {
		e.note(fmt.Sprintf("recordings store: the files of %d recordings not kept are pending removal, for want of proof: the state holds them, every run lists them again and removes them once proven theirs; `check` lists them (README, Erasure)", rr.PendingRemoval))
	}
	if rr.KeptUnproven > 0 {
		e.note(fmt.Sprintf("recordings store: %d files that may be recordings not kept (a number of their call erased on request, or older than the retention) left in the store for want of proof (first: %s, %s): check them and remove them by hand if they are (README, Erasure)", rr.KeptUnproven, rr.KeptFiles[0], rr.keptWhy))
	}
}
