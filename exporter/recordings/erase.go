package recordings

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"

	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// discarder is a Store that removes one file it holds (recstore.Dir and
// S3 have it), leaving its folders and everything beside it.
type discarder interface {
	Discard(ctx context.Context, name string) (bool, error)
}

// Named reports which of names a saved row names (of any PBX in the
// sink, of any status): such a file is never removed by Erase.
type Named func(ctx context.Context, names []string) (map[string]bool, error)

// ErrNoNamer is named's error when the sink cannot tell, ever, which
// files its rows name: Erase keeps every file it finds, reported. Any
// other error of named is the sink failing: Erase's error.
var ErrNoNamer = errors.New("this sink cannot tell which files its rows name")

// ErrDenied is recstore.ErrDenied: the store refusing for want of a
// permission (an S3 key without s3:DeleteObject), which Erase's error
// then matches. Configuration: every run meets it until it is given.
var ErrDenied = recstore.ErrDenied

// Erased is what Erase did.
type Erased struct {
	// Removed counts the files removed: each proven the recording's own
	// (the same size and sha256 as the PBX's file of it).
	Removed int
	// Kept names the files found under a name the recording may have
	// been stored under that nothing proves to be another recording's
	// nor its own: its file gone from the PBX, or not fetched (Why).
	// Left in the store, for the operator (the log and the run ledger).
	Kept []KeptFile
}

// KeptFile is a file Erase left for want of proof.
type KeptFile struct {
	Name string // its name in the store
	Why  string // a class of error: never the PBX's host, the recording's PBX id, path or number
}

// Erase removes from the store the files of recs, recordings the exporter
// must not keep (a number of their call was forgotten, or they are older
// than the retention) whose rows no run committed while they were kept:
// a run that failed, or was killed, after storing some of a window's
// files commits no row for them, so that neither forget nor retention,
// which find files through rows, reach them (attack 6, F12). The caller
// writes their rows without a file once Erase returned.
//
// A file is removed only on proof that it is the recording's: it is
// stored under a name Copy may have given the recording (Names, on its
// day and the days either side: a change of WILDIX_TIMEZONE moves a
// recording's date), no saved row names it (named; nor inUse, the names
// the caller's own run wrote or is writing), and its size and sha256 are
// those of the PBX's file of the recording, fetched now and hashed on
// the way (streamed, never kept; what the PBX announces is not taken for
// proof: it may announce another size for the same recording). Another
// file under a name another recording of the same id may hold (its id's
// when r is a clash, its id's of before ids were keyed) is that one's
// and stays, silently; one under a name of its own (ownNames: its id's,
// its clash name, those made of its path) with other bytes stays,
// reported as below (the PBX may have changed its file since, or, under
// its id's, it is another recording's of that id: no proof either way). A
// file whose recording the PBX no longer serves (404/410), or whose
// file could not be fetched (an error after the Spool's retries), stays
// too, and is reported in Erased.Kept and a Warn naming the file (never
// the recording's PBX id), not failing the run: a PBX answering 500 for one
// recording must not stop every later run. A sink that cannot tell at
// all (named's ErrNoNamer) keeps every file of the batch the same way;
// named failing otherwise is an error, as the store's below.
//
// A store that cannot remove a file (no Discard) keeps it, reported, as
// well, and so does a name the store refuses for what is under it (a
// symbolic link or a folder planted there: planted), which every later
// run would meet again. Any other store error (the server down or
// unreachable, a folder not writable, a listing failing) is returned:
// the store's failure, not the file's, and it may pass. So is ctx's end.
// The caller then writes nothing of the batch (its rows would say
// erased, no file kept, of a file still stored), and the next run does
// it again, as for a store failing a Copy (removing twice removes once):
// a store down during a window of recordings not kept must not leave
// their files for good (R24-1), reported kept at best, tried again only
// by a look-back that may never list them.
func (c *Copier) Erase(ctx context.Context, recs []Recording, named Named, inUse map[string]bool) (Erased, error) {
	var out Erased
	if len(recs) == 0 {
		return out, nil
	}
	d, canRemove := c.Store.(discarder)
	found, err := c.found(ctx, recs)
	if err != nil {
		return out, err
	}
	var all []string
	for _, names := range found {
		all = append(all, names...)
	}
	if len(all) == 0 {
		return out, nil
	}
	saved, nerr := named(ctx, all)
	switch {
	case nerr != nil && ctx.Err() != nil:
		return out, fmt.Errorf("erase recordings: %w", context.Cause(ctx))
	case nerr != nil && !errors.Is(nerr, ErrNoNamer):
		// The sink failing, as the store may (R24-1): no row may say
		// erased of a file left for it.
		return out, fmt.Errorf("erase recordings: the sink could not tell whether a row names %d files in the recordings store, of recordings not kept (a number of their call erased on request, or older than the retention): %w", len(all), nerr)
	}
	for i, r := range recs {
		var left []string
		for _, name := range found[i] {
			if !inUse[name] && (nerr != nil || !saved[name]) {
				left = append(left, name)
			}
		}
		if len(left) == 0 {
			continue
		}
		if nerr != nil {
			out.keep(c, left, fmt.Sprintf("the sink could not tell whether a row names it: %v", nerr))
			continue
		}
		if !canRemove {
			out.keep(c, left, "this recordings store cannot remove a file")
			continue
		}
		if err := c.eraseOne(ctx, d, r, left, &out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// eraseOne removes those of names (files no row names) that hold r's
// file, proven by the PBX's file's size and sha256, counting them in
// out; with no proof to be had (the PBX's file gone or not fetched) it
// keeps them, reported.
func (c *Copier) eraseOne(ctx context.Context, d discarder, r Recording, names []string, out *Erased) error {
	if _, err := spoolURL(c.Spool.Origin, r.Path); err != nil {
		// Refused: Copy never fetched, so never stored, its file;
		// what is there is another recording's. (The error holds
		// the path, the caller's number with it: never said.)
		return nil
	}
	size, sum, err := c.pbxSum(ctx, r)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("erase recordings: %w", context.Cause(ctx))
	case errors.Is(err, ErrVanished):
		out.keep(c, names, "the recording's file is gone from the PBX: nothing to prove the file is its")
		return nil
	case err != nil:
		out.keep(c, names, "the recording's file could not be fetched from the PBX to compare: "+c.fetchClass(err))
		return nil
	}
	own := c.ownNames(r)
	for _, name := range names {
		o, _, err := c.Store.Stored(ctx, name, recstore.Want{})
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("erase recordings: %w", context.Cause(ctx))
		case err != nil && Planted(err):
			out.keep(c, []string{name}, fmt.Sprintf("the recordings store %v could not read it (%v)", c.Store, err))
			continue
		case err != nil:
			return c.storeFailed("read", name, err)
		}
		if o.Size != size || o.SHA256 != sum {
			if own[name] {
				// Under its own name, yet not the PBX's bytes now: the
				// PBX may have changed its file (attack 7 F5), or it
				// is another recording's of the same id. No proof
				// either way, never silent (R19-3).
				out.keep(c, []string{name}, "under the recording's own name, but not the bytes of the PBX's file of it now (the PBX may have changed it): nothing to prove the file is its")
			}
			continue // another recording's file
		}
		gone, err := d.Discard(ctx, name)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("erase recordings: %w", context.Cause(ctx))
		case err != nil && Planted(err):
			out.keep(c, []string{name}, fmt.Sprintf("the recordings store %v could not remove it (%v)", c.Store, err))
			continue
		case err != nil:
			// Removed or not, not durably: the next run tries again.
			return c.storeFailed("remove", name, err)
		}
		if gone {
			out.Removed++
			c.log().Info("recordings store: the file of a recording not kept removed (proven by its sha256), left by an earlier run that failed or was stopped", "name", name)
		}
	}
	return nil
}

// ownNames is the names r may have been stored under that no other
// recording's file can hold, on its day and the days either side: those
// of the ids made of its path (AltID and LegacyAltID, or for a recording
// without an id StoredID and LegacyID), and its own id's (StoredID)
// unless r is stored under another (Key: a clash, its own id's name
// holding another recording's file). A file there with other bytes than
// the PBX's now is reported kept, never left silently: before, with Key
// set, none was (a clash's file changed since on the PBX stayed for
// good, uncounted).
func (c *Copier) ownNames(r Recording) map[string]bool {
	var ids []string
	switch {
	case r.ID == "":
		ids = []string{StoredID(r), LegacyID(r)}
	case r.Key == "":
		ids = []string{StoredID(r), AltID(r), LegacyAltID(r)}
	default:
		ids = []string{r.Key, AltID(r), LegacyAltID(r)}
	}
	own := map[string]bool{}
	for d := -1; d <= 1; d++ {
		for _, id := range ids {
			if name, err := recstore.Name(c.PBX, r.Start.UTC().AddDate(0, 0, d), id); id != "" && err == nil {
				own[name] = true
			}
		}
	}
	return own
}

// fetchClass says what kind of failure err, a Fetch's, is: the status
// and who answered, never the error's text, which names the PBX's host
// and the folders of the recording's path (R19-7).
func (c *Copier) fetchClass(err error) string {
	var se *StatusError
	var re *RedirectError
	switch {
	case errors.As(err, &se) && c.Spool.Origin != nil && se.Host == c.Spool.Origin.Host:
		return fmt.Sprintf("the PBX answered %d %s", se.Status, http.StatusText(se.Status))
	case errors.As(err, &se):
		return fmt.Sprintf("the cloud storage the PBX redirected to answered %d %s", se.Status, http.StatusText(se.Status))
	case errors.As(err, &re):
		return "the PBX's redirect was refused"
	}
	return "network error, no answer, or an answer that is not a recording"
}

// Planted reports whether err, a store's error for one name (or a day
// folder's), is that name's alone, met again by every later run: what is
// under it is not a file the store wrote, or a folder of its path leads
// outside the store (recstore.Planted, matching error values). Any other
// error is the store's (down, unreachable, not writable), which may pass.
func Planted(err error) bool { return recstore.Planted(err) }

// storeFailed is Erase's error for the store failing to do what on name:
// naming the store, what to do, never a recording's PBX id or path. A
// store refusing for want of a permission (recstore.ErrDenied: an S3 key
// without s3:DeleteObject) is up and is not to be waited for: its error
// names the permission to give, not "up and writable" (R32-1).
func (c *Copier) storeFailed(what, name string, err error) error {
	advice := "check that the store is up and writable"
	if errors.Is(err, recstore.ErrDenied) {
		advice = "the store refuses it: every run fails here until the key is given the permission named"
	}
	return fmt.Errorf("erase recordings: the recordings store %v could not %s %s, of a recording not kept (a number of its call erased on request, or older than the retention): %w (%s)", c.Store, what, name, err, advice)
}

// keep records names as kept, each with why, and warns.
func (e *Erased) keep(c *Copier, names []string, why string) {
	for _, name := range names {
		e.Kept = append(e.Kept, KeptFile{Name: name, Why: why})
		c.log().Warn("recordings store: a file that may be a recording's not kept (a number of its call forgotten, or older than the retention) is left in the store: "+why+"; see README, Erasure", "name", name)
	}
}

// found is, for each of recs, the names of Names that hold a file: one
// listing of their folders when the store can (presence), else a Stored
// a name.
func (c *Copier) found(ctx context.Context, recs []Recording) ([][]string, error) {
	names := make([][]string, len(recs))
	var flat []string
	for i, r := range recs {
		names[i] = c.Names(r, 1)
		flat = append(flat, names[i]...)
	}
	var present map[string]bool
	if p, ok := c.Store.(presence); ok && len(flat) > 0 {
		var err error
		switch present, err = p.Present(ctx, flat); {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("erase recordings: %w", context.Cause(ctx))
		case err != nil && !Planted(err):
			// The store down, or its folder gone (a volume not
			// mounted: asked a name alone, it would say absent).
			return nil, c.storeFailed("list the folders of", fmt.Sprintf("%d names", len(flat)), err)
		case err != nil:
			c.log().Debug("recordings store listing failed: each file's name asked alone", "err", err)
			present = nil
		}
	}
	out := make([][]string, len(recs))
	for i, in := range names {
		for _, name := range in {
			has, known := present[name]
			if !known {
				o, _, err := c.Store.Stored(ctx, name, recstore.Want{})
				switch {
				case ctx.Err() != nil:
					return nil, fmt.Errorf("erase recordings: %w", context.Cause(ctx))
				case err != nil && !errors.Is(err, fs.ErrNotExist) && !Planted(err):
					return nil, c.storeFailed("read", name, err)
				}
				// Not read (a symbolic link or a folder under the name):
				// taken as there, for eraseOne to report it kept.
				has = o != (recstore.Object{}) || err != nil && !errors.Is(err, fs.ErrNotExist)
			}
			if has {
				out[i] = append(out[i], name)
			}
		}
	}
	return out, nil
}

// Names is every name Copy may have stored r under, or may store it
// under: its id's (r.Key or StoredID), its AltID's when it has an id (a
// clash), and those of before ids were keyed (LegacyID, LegacyAltID;
// Copy finds a file there stored and takes it), on its start's UTC date
// and, with days > 0, the days either side (a run of another
// WILDIX_TIMEZONE read the same call's start hours apart). No name for
// an id Name refuses.
func (c *Copier) Names(r Recording, days int) []string {
	ids := []string{storedKey(r)}
	if r.ID != "" {
		ids = append(ids, AltID(r))
	}
	ids = append(ids, LegacyID(r))
	if r.ID != "" {
		ids = append(ids, LegacyAltID(r))
	}
	var out []string
	seen := map[string]bool{}
	for d := -days; d <= days; d++ {
		day := r.Start.UTC().AddDate(0, 0, d)
		for _, id := range ids {
			if id == "" {
				continue
			}
			name, err := recstore.Name(c.PBX, day, id)
			if err == nil && !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return out
}

// pbxSum fetches r's file from the PBX and returns its size and sha256,
// streamed through the hash.
func (c *Copier) pbxSum(ctx context.Context, r Recording) (int64, string, error) {
	var n int64
	h := sha256.New()
	_, err := c.Spool.Fetch(ctx, r.Path, func(body io.Reader, _ int64) error {
		h.Reset()
		var err error
		n, err = io.Copy(h, body)
		return err
	})
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// Once is c asking the PBX for each file once, without the Spool's
// retries and backoff (MaxAttempts 1): for the retry of files pending
// removal, tried again by every run, whose file the PBX kept answering
// 5xx for (attack11 F3: the whole retry chain, about 60 s, per entry per
// run). A file not fetched is kept, as by Erase; the next run asks again.
func (c *Copier) Once() *Copier {
	sp := *c.Spool
	sp.MaxAttempts = 1
	return &Copier{Spool: &sp, Store: c.Store, PBX: c.PBX, Concurrency: c.Concurrency, Log: c.Log}
}

// Holds reports whether the store holds a file under name, whatever it
// is (the exporter's files pending removal: one gone is settled).
func (c *Copier) Holds(ctx context.Context, name string) (bool, error) {
	_, ok, err := c.Store.Stored(ctx, name, recstore.Want{})
	return ok, err
}
