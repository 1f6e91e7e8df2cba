package recordings

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// discarder is a Store that removes what copies of a name that no row
// names left (recstore.Dir and S3 have it): the file when withFile, and
// the partial copies or incomplete uploads of it, leaving its folders.
type discarder interface {
	Discard(ctx context.Context, name string, withFile bool) (int, error)
}

// Erase removes from the store what earlier copies of recs' files left:
// recordings the exporter must not keep (a number of their call was
// forgotten, or they are older than the retention) whose rows no run
// committed, so that neither forget nor retention, which find files
// through rows, can reach them (attack 6, F12). A run that failed, or
// was killed, after storing some of a window's files commits no row for
// them; the next run lists them suppressed and calls Erase before it
// writes their rows.
//
// For each recording, the names Copy would have stored it under (its
// name, and for a recording with an id, the name of its AltID, where a
// clash stores it) are cleared: the file, when it is this recording's
// (the size and sha256 the PBX announced match; with none announced, the
// PBX's file is fetched and hashed, as Copy compares, and one gone from
// the PBX is taken for this recording's, as Copy keeps it), and the
// partial copies of the name. A file of another size or hash is another
// recording's (a clash) and is kept. Nothing stored is not an error:
// erasing twice removes once, so a run killed after Erase and before its
// rows are committed is completed by the next. The first failure stops
// it, naming the recording by the id it is stored under (never the PBX's
// id, which may hold a number) and the store. It returns how many files
// were removed (partial copies and incomplete uploads included).
func (c *Copier) Erase(ctx context.Context, recs []Recording) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	d, ok := c.Store.(discarder)
	if !ok {
		return 0, fmt.Errorf("erase recordings: the recordings store %v cannot remove files", c.Store)
	}
	removed := 0
	for _, r := range recs {
		for _, name := range c.eraseNames(r) {
			mine, err := c.holds(ctx, r, name)
			if err == nil {
				var n int
				n, err = d.Discard(ctx, name, mine)
				removed += n
			}
			if err != nil {
				return removed, fmt.Errorf("erase recording %s (%s) from the recordings store %v: %w", storedKey(r), name, c.Store, err)
			}
		}
	}
	if removed > 0 {
		c.log().Info("recordings store: files of recordings not kept removed", "recordings", len(recs), "files", removed)
	}
	return removed, nil
}

// eraseNames is the names Copy would have stored r under: its name, and
// its AltID's when r has an id and no key of its own yet (Copy's clash);
// none when r has no name (Copy stores nothing for it).
func (c *Copier) eraseNames(r Recording) []string {
	name, err := c.name(r)
	if err != nil {
		return nil
	}
	names := []string{name}
	if r.Key == "" && r.ID != "" {
		if alt, err := recstore.Name(c.PBX, r.Start.UTC(), AltID(r)); err == nil && alt != name {
			names = append(names, alt)
		}
	}
	return names
}

// holds reports whether name holds r's file, as copyOne tells one it
// finds stored: what the PBX announced, or with nothing announced the
// PBX's file itself (hashed, not kept); a file gone from the PBX is
// taken for r's.
func (c *Copier) holds(ctx context.Context, r Recording, name string) (bool, error) {
	want := recstore.Want{Size: max(r.Size, 0), SHA256: strings.ToLower(r.SHA256)}
	if checkWantable(want) != nil {
		return false, nil // Put refuses it: Copy never stored r's file
	}
	o, same, err := c.Store.Stored(ctx, name, want)
	if err != nil || o == (recstore.Object{}) || want != (recstore.Want{}) {
		return same && o != (recstore.Object{}), err
	}
	same, err = c.sameFile(ctx, r, o)
	if errors.Is(err, ErrVanished) {
		return true, nil
	}
	return same, err
}

// checkWantable refuses an announced sha256 that is not 64 hex digits,
// as Put and Stored refuse it.
func checkWantable(w recstore.Want) error {
	if w.SHA256 == "" {
		return nil
	}
	if len(w.SHA256) != 64 || strings.Trim(w.SHA256, "0123456789abcdef") != "" {
		return fmt.Errorf("announced sha256 %q: not 64 hex digits", w.SHA256)
	}
	return nil
}
