// Package recordings copies call recordings from the PBX to a recordings
// store (sinks/recstore's Dir or S3): Spool fetches one file with the
// Simple Token, following a redirect to cloud storage without any
// credential; Copier copies a batch of recordings, each exactly once,
// streamed and verified.
//
// The contract with the exporter, which lists recordings by time window
// and writes their rows: it gives Copy every recording of a window, and
// commits its time cursor past the window only when Copy returned a nil
// error, which means every file of the window is durably stored (Copied
// or Skipped: already there with the same size and hash), gone from the
// PBX (Vanished, counted) or refused (Refused: a path that must not be
// fetched, reported with its reason; fetching it again would be refused
// again). On an error nothing is committed: the next run lists the window
// again and Copy skips what is already stored. A cancelled or killed copy
// leaves no partial file under a final name (recstore's guarantee); the
// next copy completes it.
//
// Like every package in this module, it is not a supported Go API.
package recordings

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// Store is what the copier needs of a recordings store; recstore.Dir and
// recstore.S3 have it. Put must leave nothing under name when it fails;
// Sync makes durable the names put or found stored (a folder store syncs
// their folders once a batch, not once a file).
type Store interface {
	Put(ctx context.Context, name string, r io.Reader, want recstore.Want) (recstore.Object, error)
	Stored(ctx context.Context, name string, want recstore.Want) (recstore.Object, bool, error)
	Sync(ctx context.Context, names []string) error
}

// presence is a Store that tells at once which of a batch's names hold a
// file (recstore.S3 and Dir: a listing of their folders, where Stored is
// a request a name, or a lookup of its five folders in turn). A name it reports absent is put without asking
// Stored; one it does not report is asked.
type presence interface {
	Present(ctx context.Context, names []string) (map[string]bool, error)
}

// Recording is one recording as the list gives it, in the exporter's
// words.
type Recording struct {
	// ID is the PBX's recording id. Used in the stored name when it is 1
	// to 64 letters, digits, '-' or '_' holding no phone number (not
	// starting with "k-" or "h-"), otherwise hashed with IDKey; "" takes
	// a keyed hash of Path (StoredID, key.go).
	ID string
	// Path is the file's address as the list gives it: a path under
	// /spoolview/recordings/ (escaped as on the wire) or a URL on the
	// PBX's origin. Checked before it is fetched (see RefusedError).
	Path string
	// Start is the call's start; the file is stored under its UTC date.
	Start time.Time
	// Size and SHA256 are what the PBX announced (0 and "": unknown);
	// the copy is checked against them. SHA256 in hex, either case.
	Size   int64
	SHA256 string
	// Key, when set, is the id it is stored under in place of
	// StoredID(r): AltID(r) for a recording whose id another recording
	// already holds (the exporter finds those in the list).
	Key string
	// IDKey is the key StoredID and AltID hash an id or path with
	// (key.go): needed by every recording whose id is not used as it is.
	IDKey *pseudonym.Keyed `json:"-"`
}

// Status is what became of one recording.
type Status int

const (
	Pending  Status = iota // not done: the batch failed or was cancelled first
	Copied                 // fetched and stored
	Skipped                // already stored with the same size and hash
	Vanished               // 404/410: deleted on the PBX before it was copied
	Refused                // its path must not be fetched (Result.Reason)
	Failed                 // failed after retries, or not synced: the batch's error
)

func (s Status) String() string {
	switch s {
	case Copied:
		return "copied"
	case Skipped:
		return "skipped"
	case Vanished:
		return "vanished"
	case Refused:
		return "refused"
	case Failed:
		return "failed"
	}
	return "pending"
}

// Result is one recording's outcome, for its row.
type Result struct {
	Status Status
	// Name is where the file is (Copied, Skipped) or would be stored:
	// recstore.Name(Copier.PBX, Start, id).
	Name string
	// Size and SHA256 of the stored file (Copied, Skipped).
	Size   int64
	SHA256 string
	// Redirected: the file came from cloud storage (Copied).
	Redirected bool
	Attempts   int
	// Reason is why it was Refused or Failed.
	Reason string
	// ID is the id it is stored under: r.Key or StoredID(r), or AltID(r)
	// when another file was stored under that id's name (Clash).
	ID    string
	Clash string
}

// Counts sum a batch's results.
type Counts struct {
	Copied, Skipped, Vanished, Refused, Failed int
	Bytes                                      int64 // copied, not skipped
}

// Copier copies batches of recordings from Spool to Store. Its fields are
// read-only once in use; Copy is safe for concurrent use on batches that
// do not share a recording, and the batches copied at once share its
// Concurrency: the exporter starts a window's batch while the one before
// finishes, so that no copy waits for another batch's last file, its
// Sync or its rows.
type Copier struct {
	Spool *Spool
	Store Store
	// PBX is the PBX's id in configuration, the first part of every
	// stored name.
	PBX string
	// Concurrency is how many files are copied at once (default 4), in
	// all the batches being copied.
	Concurrency int
	Log         *slog.Logger

	slotsOnce sync.Once
	slots     chan struct{} // one per file being copied, of every batch
}

// slot takes one of the Concurrency places of a file being copied, in
// whichever batch: false when ctx ended first. release gives it back.
func (c *Copier) slot(ctx context.Context) bool {
	c.slotsOnce.Do(func() { c.slots = make(chan struct{}, c.concurrency()) })
	select {
	case c.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *Copier) release() { <-c.slots }

func (c *Copier) concurrency() int {
	if c.Concurrency <= 0 {
		return 4
	}
	return c.Concurrency
}

// Copy copies recs, at most Concurrency at once, and returns their results
// in recs' order with their counts. Two records with the same stored name
// (a look-back listing a recording twice) are copied once and share the
// result.
//
// The error is nil only when every recording is Copied, Skipped, Vanished
// or Refused, and the Store synced every file Copied or Skipped (durable:
// the caller may commit past them). The first recording failing after the
// Spool's retries (or a store error) stops the batch: copies in flight are
// cancelled, leaving nothing partial, and the error names the recording
// (id and stored name; never the token, the path's caller number or a
// signed address). A cancelled ctx returns its error the same way. A
// Sync failing returns its error with every file Copied or Skipped marked
// Failed: not durable, so not stored for the caller's counts.
//
// It stays one function (about 95 lines, with the names of before keyed
// ids asked in the same listing): the de-duplication, the worker
// pool, the feeding loop that stops at the first failure, the final tally
// and the Sync share one cancel and one results slice, and reading them
// together is the proof that a failed batch cancels every copy in flight
// before it returns. Moving the worker body into its own method is the first cut
// when it grows again.
func (c *Copier) Copy(ctx context.Context, recs []Recording) ([]Result, Counts, error) {
	results := make([]Result, len(recs))
	first := map[string]int{} // stored name → index of its first record
	var work []int
	for i, r := range recs {
		name, err := c.name(r)
		if err != nil {
			results[i] = Result{Status: Failed, Reason: err.Error()}
			return results, Counts{Failed: 1}, fmt.Errorf("copy recording %s: %w", quoteShort(r.ID), err)
		}
		results[i].Name = name
		if _, ok := first[name]; !ok {
			first[name] = i
			work = append(work, i)
		}
	}
	largestFirst(recs, work)
	absent := c.absent(ctx, recs, results, work)
	caller := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var failure error
	for range min(c.concurrency(), max(len(work), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if !c.slot(ctx) {
					continue // cancelled: Pending, the batch's error says why
				}
				res, err := c.copyOne(ctx, recs[i], results[i].Name, absent)
				c.release()
				if err != nil && caller.Err() != nil {
					// The caller cancelled the batch (the run ends, or the
					// window before this one failed): not this file's
					// failure. Pending, as a file never started.
					results[i] = Result{Name: results[i].Name, Status: Pending}
					continue
				}
				results[i] = res
				if err != nil {
					once.Do(func() {
						failure = fmt.Errorf("copy recording %s (%s): %w", quoteShort(recs[i].ID), res.Name, err)
						cancel(failure)
					})
				}
			}
		}()
	}
feed:
	for _, i := range work {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	for i, r := range results {
		if r.Status == Pending && i != first[r.Name] {
			results[i] = results[first[r.Name]]
		}
	}
	// Duplicates share a result, counted once.
	var cnt Counts
	for _, i := range work {
		cnt.add(results[i])
	}
	if failure != nil {
		return results, cnt, failure
	}
	if err := context.Cause(ctx); err != nil {
		return results, cnt, fmt.Errorf("copy recordings: %w", err)
	}
	// Durable before the caller commits past them: the files copied, and
	// those found stored, which a run killed before its Sync left behind.
	var names []string
	for _, i := range work {
		if st := results[i].Status; st == Copied || st == Skipped {
			names = append(names, results[i].Name)
		}
	}
	if err := c.Store.Sync(ctx, names); err != nil {
		if caller.Err() != nil {
			// Cancelled by the caller while syncing: not durable, and no
			// file failed. Pending, so neither copied nor failed is counted.
			return c.unsynced(results, work, err, Pending)
		}
		return c.unsynced(results, work, err, Failed)
	}
	c.log().Info("recordings copied", "copied", cnt.Copied, "skipped", cnt.Skipped, "vanished", cnt.Vanished, "refused", cnt.Refused, "bytes", cnt.Bytes)
	return results, cnt, nil
}

// largestFirst orders work (indexes in recs) by the sizes the PBX
// announced, largest first, the unknown (0) last, each size in list
// order: the batch's last copies are then its small files side by side,
// not one or two large files while the other slots wait. (Issue 29's
// bench, 29 files of 0.1-33 MB, 4 at once: in list order the last fifth
// of a run copied only a 16 and a 33 MB file; by size, with a copy's time
// taken as its size, the batch ends a fifth sooner.) The order copied in
// is no part of the contract: a batch is durable only as a whole.
func largestFirst(recs []Recording, work []int) {
	slices.SortStableFunc(work, func(a, b int) int { return cmp.Compare(recs[b].Size, recs[a].Size) })
}

// absent is the names of the batch the store reports holding nothing,
// when it can tell at once (presence): each recording's name and the name
// it had before ids were keyed (legacyName); nil when it cannot, or its
// listing failed (each name is then asked alone, as Stored fails or not).
func (c *Copier) absent(ctx context.Context, recs []Recording, results []Result, work []int) map[string]bool {
	p, ok := c.Store.(presence)
	if !ok || len(work) == 0 {
		return nil
	}
	names := make([]string, 0, len(work))
	for _, i := range work {
		names = append(names, results[i].Name)
		if old, _ := c.legacyName(recs[i]); old != "" && old != results[i].Name {
			names = append(names, old)
		}
	}
	present, err := p.Present(ctx, names)
	if err != nil {
		c.log().Debug("recordings store listing failed: each file's name asked alone", "err", err)
		return nil
	}
	absent := map[string]bool{}
	for name, ok := range present {
		if !ok {
			absent[name] = true
		}
	}
	return absent
}

// unsynced marks every result Copied or Skipped as st (Failed, or Pending
// when the caller cancelled the batch), with err as its reason, once the
// store could not sync them: they are not durable, the caller commits
// nothing past them, and they must count as not stored (the oldest
// pending recording, the run's failed count), not as copied.
func (c *Copier) unsynced(results []Result, work []int, err error, st Status) ([]Result, Counts, error) {
	err = fmt.Errorf("copy recordings: %w", err)
	for i, r := range results {
		if r.Status == Copied || r.Status == Skipped {
			results[i].Status, results[i].Reason = st, err.Error()
		}
	}
	var cnt Counts
	for _, i := range work {
		cnt.add(results[i])
	}
	return results, cnt, err
}

// copyOne copies one recording to name, or finds it already stored
// (not asked when absent: the store's listing of the batch found nothing
// under name).
//
// A file of another size or sha256 already under name is another
// recording that the PBX sent under the same id (docs/pbx-api.md does
// not know ids to be unique): it is never replaced; this one is stored
// under AltID(r), and Result.ID and Clash say so. When the PBX announced
// neither size nor sha256, a file under name is compared with the PBX's
// by fetching it (only a recording whose row was not written yet gets
// here: a run killed after the copy, or such a clash).
//
// It stays one function (about 75 lines): refused, already stored (same,
// compared, vanished since, clash) and fetched-and-put are the one
// decision for a name, in the order that keeps a stored file from ever
// being replaced. The first cut when it grows: the already-stored branch
// into its own method.
func (c *Copier) copyOne(ctx context.Context, r Recording, name string, absent map[string]bool) (Result, error) {
	res := Result{Name: name, ID: storedKey(r)}
	want := recstore.Want{Size: r.Size, SHA256: strings.ToLower(r.SHA256)}
	if r.Size < 0 {
		want.Size = 0
	}
	if _, err := spoolURL(c.Spool.Origin, r.Path); err != nil {
		res.Status, res.Reason = Refused, err.Error()
		// The reason only: the path holds the file name, which holds the
		// caller's number (the row keeps it, where it can be erased).
		reason := "refused"
		if re := (*RefusedError)(nil); errors.As(err, &re) {
			reason = re.Reason
		}
		c.log().Warn("recording path refused, not fetched", "recording", quoteShort(r.ID), "name", name, "reason", reason)
		return res, nil
	}
	if absent[name] {
		// Nothing stored under name: fetched and put below.
	} else if o, ok, err := c.Store.Stored(ctx, name, want); err != nil {
		if ctx.Err() != nil {
			return Result{Name: name}, context.Cause(ctx)
		}
		res.Status, res.Reason = Failed, err.Error()
		return res, err
	} else if o != (recstore.Object{}) {
		same := ok
		if ok && want == (recstore.Want{}) {
			if same, err = c.sameFile(ctx, r, o); errors.Is(err, ErrVanished) {
				// Stored, and gone from the PBX since: nothing to
				// compare it with, and nothing else to keep.
				c.log().Warn("recording gone from the PBX: its stored file kept as it is", "recording", quoteShort(r.ID), "name", name)
				res.Status, res.Size, res.SHA256 = Skipped, o.Size, o.SHA256
				return res, nil
			} else if err != nil {
				if ctx.Err() != nil {
					return Result{Name: name}, context.Cause(ctx)
				}
				res.Status, res.Reason = Failed, err.Error()
				return res, err
			}
		}
		if same {
			res.Status, res.Size, res.SHA256 = Skipped, o.Size, o.SHA256
			return res, nil
		}
		return c.clash(ctx, r, res, o)
	}
	if old, ok, err := c.storedBefore(ctx, r, name, want, absent); ok || err != nil {
		return old, err
	}
	var obj recstore.Object
	f, err := c.Spool.Fetch(ctx, r.Path, func(body io.Reader, size int64) error {
		w := want
		if w.Size == 0 && size > 0 {
			w.Size = size // the server's Content-Length: a body cut cleanly is caught too
		}
		var err error
		obj, err = c.Store.Put(ctx, name, body, w)
		return err
	})
	res.Attempts, res.Redirected = f.Attempts, f.Redirected
	switch {
	case err == nil:
		res.Status, res.Size, res.SHA256 = Copied, obj.Size, obj.SHA256
		c.log().Debug("recording copied", "recording", quoteShort(r.ID), "name", name, "bytes", obj.Size, "attempts", f.Attempts, "redirected", f.Redirected)
		return res, nil
	case errors.Is(err, ErrVanished):
		res.Status, res.Reason = Vanished, err.Error()
		c.log().Warn("recording vanished before it was copied", "recording", quoteShort(r.ID), "name", name)
		return res, nil
	case ctx.Err() != nil:
		return Result{Name: name}, context.Cause(ctx)
	}
	res.Status, res.Reason = Failed, err.Error()
	return res, err
}

// clash stores r under AltID(r): res.Name holds o, another file.
func (c *Copier) clash(ctx context.Context, r Recording, res Result, o recstore.Object) (Result, error) {
	alt := AltID(r)
	if alt == res.ID {
		err := fmt.Errorf("%s holds another file (%d bytes, sha256 %s) than the one the PBX sends for it, and so did the name of recording id %s: report this PBX's version (docs/pbx-api.md, Recordings)", res.Name, o.Size, o.SHA256, quoteShort(r.ID))
		res.Status, res.Reason = Failed, err.Error()
		return res, err
	}
	name, err := recstore.Name(c.PBX, r.Start.UTC(), alt)
	if err != nil {
		res.Status, res.Reason = Failed, err.Error()
		return res, err
	}
	c.log().Warn("recording id already stored for another file: stored under a name of its own", "recording", quoteShort(r.ID), "name", res.Name, "stored_as", name)
	r.Key = alt
	out, err := c.copyOne(ctx, r, name, nil)
	out.Clash = res.Name
	return out, err
}

// legacyName is the name r had before ids were keyed (LegacyID; its
// LegacyAltID when stored under AltID) and that id; "" when it had the
// same, or no usable one.
func (c *Copier) legacyName(r Recording) (name, id string) {
	switch r.Key {
	case "", StoredID(r):
		id = LegacyID(r)
	case AltID(r):
		id = LegacyAltID(r)
	default:
		return "", ""
	}
	if id == storedKey(r) {
		return "", ""
	}
	name, err := recstore.Name(c.PBX, r.Start.UTC(), id)
	if err != nil {
		return "", ""
	}
	return name, id
}

// storedBefore finds r stored under the name it had before ids were
// keyed (legacyName), when nothing is under name: a store written before
// the change whose state was lost since (review1, R2). Stored there with
// the same file (compared as copyOne compares one under name), r is
// Skipped under that name and id, so that its row, keyed by it, is the
// one written then, not a second; another file there is another
// recording's, and r is copied under name. ok reports whether it was
// found (or err failed the look).
func (c *Copier) storedBefore(ctx context.Context, r Recording, name string, want recstore.Want, absent map[string]bool) (_ Result, ok bool, _ error) {
	old, id := c.legacyName(r)
	if old == "" || old == name || absent[old] {
		return Result{}, false, nil
	}
	fail := func(err error) (Result, bool, error) {
		if ctx.Err() != nil {
			return Result{Name: name}, true, context.Cause(ctx)
		}
		return Result{Name: name, ID: storedKey(r), Status: Failed, Reason: err.Error()}, true, err
	}
	o, same, err := c.Store.Stored(ctx, old, want)
	if err != nil {
		return fail(err)
	}
	if o == (recstore.Object{}) {
		return Result{}, false, nil
	}
	if same && want == (recstore.Want{}) {
		if same, err = c.sameFile(ctx, r, o); errors.Is(err, ErrVanished) {
			same = true // stored, and gone from the PBX since: kept as it is
		} else if err != nil {
			return fail(err)
		}
	}
	if !same {
		return Result{}, false, nil
	}
	c.log().Info("recording found stored under its name of before ids were keyed", "recording", quoteShort(r.ID), "name", old)
	return Result{Status: Skipped, Name: old, ID: id, Size: o.Size, SHA256: o.SHA256}, true, nil
}

// sameFile reports whether the PBX's file of r is o, streaming it
// through sha256.
func (c *Copier) sameFile(ctx context.Context, r Recording, o recstore.Object) (bool, error) {
	var n int64
	h := sha256.New()
	_, err := c.Spool.Fetch(ctx, r.Path, func(body io.Reader, _ int64) error {
		h.Reset()
		var err error
		n, err = io.Copy(h, body)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("compare with %s: %w", o.Name, err)
	}
	return n == o.Size && hex.EncodeToString(h.Sum(nil)) == o.SHA256, nil
}

// name is r's stored name: recstore.Name(c.PBX, r.Start in UTC,
// r.Key or StoredID(r)).
func (c *Copier) name(r Recording) (string, error) {
	return recstore.Name(c.PBX, r.Start.UTC(), storedKey(r))
}

// storedKey is r.Key, or StoredID(r).
func storedKey(r Recording) string {
	if r.Key != "" {
		return r.Key
	}
	return StoredID(r)
}

func (c *Counts) add(r Result) {
	switch r.Status {
	case Copied:
		c.Copied++
		c.Bytes += r.Size
	case Skipped:
		c.Skipped++
	case Vanished:
		c.Vanished++
	case Refused:
		c.Refused++
	case Failed:
		c.Failed++
	}
}

func (c *Copier) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}
