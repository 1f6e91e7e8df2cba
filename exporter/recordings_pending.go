package exporter

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
)

// Files pending removal.
//
// A file of a recording not kept (a number of its call forgotten, or
// older than the retention) that Erase kept for want of proof (the PBX
// answering 500 for the recording's file, or 404, or the sink or store
// unable to tell) was reported once, tried again only while the
// look-back listed the recording again, then left for good. Now each
// such recording is an entry of the recordings endpoint's state
// (recState.Pending: its key, its wall time, the names kept, why),
// committed with the window whose rows say erased (the same transaction,
// or the same atomic state write): every later run lists it again by its
// key (a window of a minute about its time) and asks Erase again, which
// removes a file on the same proof as the first time (the PBX's file's
// size and sha256, no row naming it). The entry goes once none of its
// names holds a file (removed, or gone); it stays, its reason updated,
// while a file is kept. `check` lists the entries. Keys, names and
// reasons hold no number and no PBX path (a key is keyed: recordings.StoredID).

// pendingRemoval is a recording whose files are pending removal.
type pendingRemoval struct {
	Wall  string   `json:"wall"`            // its start, a wall time in Zone
	Zone  string   `json:"zone,omitempty"`  // the zone Wall is in (the state's then)
	Names []string `json:"names,omitempty"` // the files kept, in the store
	// Legacy counts the files kept under a name of before ids were keyed
	// (recordings.LegacyID: a PBX id as it was, or an unkeyed hash),
	// which may tell a number: never written here.
	Legacy int    `json:"legacy,omitempty"`
	Why    string `json:"why"`             // why they were kept last (a class of error)
	Since  string `json:"since,omitempty"` // the run that first kept them
	Tried  string `json:"tried,omitempty"` // the run that tried them last
}

// relistWindow is how far about an entry's wall time it is listed again.
const relistWindow = time.Minute

// maxRelisted is how many entries a run lists again, those tried least
// lately first (a request or more each): the others wait for the next.
const maxRelisted = 200

// pend records out, what Erase did with recs (rows' keys → their walls
// in walls), in the cursor's pending entries: a recording with a file
// kept is pending (its names, why), one with none is not.
func (p *recPipe) pend(recs []recordings.Recording, walls []string, out recordings.Erased) {
	kept := map[string]string{}
	for _, k := range out.Kept {
		kept[k.Name] = k.Why
	}
	for i, r := range recs {
		pr := pendingRemoval{Wall: walls[i], Zone: p.rc.zone, Since: p.e.runID, Tried: p.e.runID}
		keyed := keyedNames(r)
		var legacy []string
		for _, n := range p.e.x.Recordings.Names(r, 1) {
			w, ok := kept[n]
			switch {
			case !ok || slices.Contains(pr.Names, n) || slices.Contains(legacy, n):
				continue
			case keyed[path.Base(n)]:
				pr.Names = append(pr.Names, n)
			default:
				pr.Legacy++
				legacy = append(legacy, n)
			}
			pr.Why = w
		}
		for _, n := range legacy {
			// A store's error may quote the name.
			pr.Why = strings.ReplaceAll(pr.Why, strings.TrimSuffix(path.Base(n), ".wav"), "(a name of before ids were keyed)")
		}
		if len(pr.Names) == 0 && pr.Legacy == 0 {
			delete(p.rc.pending, r.Key)
			continue
		}
		if old, ok := p.rc.pending[r.Key]; ok && old.Since != "" {
			pr.Since = old.Since
		}
		p.rc.pending[r.Key] = pr
	}
}

// keyedNames are the base names of r's files that hold no number: its
// key's, StoredID's and AltID's (never a number, nor an unkeyed hash).
func keyedNames(r recordings.Recording) map[string]bool {
	out := map[string]bool{}
	for _, id := range []string{r.Key, recordings.StoredID(r)} {
		out[id+".wav"] = id != ""
	}
	if r.ID != "" {
		out[recordings.AltID(r)+".wav"] = true
	}
	return out
}

// retryPending asks Erase again for the pending entries this run did not
// list (a window, or the look-back, listing one has Erase asked for it
// already): each listed again by its key, a minute about its wall time
// (a day's worth of zones about it when the state's zone was another).
// An entry the PBX no longer lists keeps its files, unless none is in
// the store any more (removed by hand: the entry goes). Nothing of the
// run is at stake: a failure is a warning, the entry kept. Each entry's
// file is asked of the PBX once a run (Copier.Once: no retry chain).
func (p *recPipe) retryPending(ctx context.Context, done map[string]bool) {
	e := p.e
	var keys []string
	for key := range p.rc.pending {
		if !done[key] {
			keys = append(keys, key)
		}
	}
	once := e.x.Recordings.Once() // one request per entry's file (attack11 F3)
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(p.rc.pending[a].Tried, p.rc.pending[b].Tried), cmp.Compare(a, b))
	})
	for i, key := range keys {
		if i == maxRelisted {
			e.note(fmt.Sprintf("recordings store: %d recordings whose files are pending removal not listed again this run (at most %d a run): the next runs do", len(keys)-i, maxRelisted))
			break
		}
		if ctx.Err() != nil {
			return
		}
		pr := p.rc.pending[key]
		pr.Tried = e.runID
		p.rc.pending[key] = pr
		rec, wall, ok, err := p.relist(ctx, key, pr)
		if err != nil {
			e.log.Warn("recordings: a recording whose files are pending removal could not be listed again; the next run tries again", "key", key, "err", err)
			continue
		}
		if !ok {
			p.unlisted(ctx, key, pr)
			continue
		}
		out, err := once.Erase(ctx, []recordings.Recording{rec}, p.named, p.used)
		e.res.Recordings.erased(out)
		if err != nil {
			e.log.Warn("recordings store: files pending removal not checked; the next run tries again", "key", key, "err", err)
			continue
		}
		p.pend([]recordings.Recording{rec}, []string{wall}, out)
		p.keepUnproven(ctx, key, pr, wall, p.used)
	}
}

// whyUnproven is why a retry keeps a file Erase neither removed nor
// reported (R48-1).
const whyUnproven = "the PBX lists the recording again, but nothing proved the file is its (the PBX now sends a path the exporter refuses, or the recording's date or key moved); remove it by hand if it is (README, Erasure)"

// keepUnproven keeps in key's entry, after a retry's pend (retryPending,
// or a window or the look-back listing the recording again), those of
// the names it had before (pr's) that the store still holds, no row
// naming them nor inUse (the names this run wrote or is writing): Erase leaves such a file silently when
// the PBX now sends a path the exporter refuses, or lists the recording
// under another date or key, and pend, seeing nothing kept, had dropped
// the entry with its file left (R48-1). An entry goes only once none of
// its files is in the store any more (or a row names it: the recording is
// kept now). A store or sink failure keeps the entry as it was: the next
// run tries again.
func (p *recPipe) keepUnproven(ctx context.Context, key string, pr pendingRemoval, wall string, inUse map[string]bool) {
	now, ok := p.rc.pending[key]
	if !ok {
		now = pendingRemoval{Wall: wall, Zone: p.rc.zone, Since: pr.Since, Tried: p.e.runID}
	}
	// A file under a name of before ids were keyed is counted, never
	// named (it may tell a number): it cannot be looked at here, so its
	// count is carried over and the entry stays for it, as unlisted keeps
	// it (review 50, R50-1: dropped, the file stayed unreported; README,
	// Erasure, gives the way out).
	if pr.Legacy > now.Legacy {
		now.Legacy = pr.Legacy
		if now.Why == "" {
			now.Why = whyUnproven
		}
	}
	var held []string
	for _, n := range pr.Names {
		if slices.Contains(now.Names, n) || inUse[n] {
			continue
		}
		ok, err := p.e.x.Recordings.Holds(ctx, n)
		if err != nil {
			p.e.log.Warn("recordings store: a file pending removal could not be looked at; the next run tries again", "name", n, "err", err)
			p.rc.pending[key] = pr
			return
		}
		if ok {
			held = append(held, n)
		}
	}
	if len(held) == 0 {
		if now.Legacy > 0 {
			p.rc.pending[key] = now
		}
		return
	}
	named, err := p.named(ctx, held)
	if err != nil && !errors.Is(err, recordings.ErrNoNamer) {
		p.e.log.Warn("recordings sink: could not tell whether a row names a file pending removal; the next run tries again", "err", err)
		p.rc.pending[key] = pr
		return
	}
	for _, n := range held {
		if !named[n] {
			now.Names, now.Why = append(now.Names, n), whyUnproven
			p.e.res.Recordings.erased(recordings.Erased{Kept: []recordings.KeptFile{{Name: n, Why: whyUnproven}}})
		}
	}
	if len(now.Names) > 0 || now.Legacy > 0 {
		p.rc.pending[key] = now
	}
}

// relist lists the recording of key (pr's) again about its wall time,
// a day's worth of zones about it when it was read in another zone: the
// recording (stored under key: its id's, or a clash's AltID), its wall
// time now, and whether the PBX listed it.
func (p *recPipe) relist(ctx context.Context, key string, pr pendingRemoval) (recordings.Recording, string, bool, error) {
	at, err := time.Parse(record.WallLayout, pr.Wall)
	if err != nil {
		return recordings.Recording{}, "", false, err
	}
	span := relistWindow
	if pr.Zone != p.rc.zone {
		span += maxZoneAhead + maxZoneBehind
	}
	var found *recordings.Recording
	wall := ""
	err = p.list(ctx, at.Add(-span), at.Add(span), func(rows []record.Row) error {
		for _, row := range rows {
			info := p.l.info(row)
			if row.Key == key || info.rec.ID != "" && recordings.AltID(info.rec) == key {
				info.rec.Key = key
				found, wall = &info.rec, row.Wall
			}
		}
		return nil
	})
	if err != nil || found == nil {
		return recordings.Recording{}, "", false, err
	}
	return *found, wall, true, nil
}

// unlisted settles an entry the PBX no longer lists: gone once none of
// its names holds a file (removed by hand), else kept, its reason said.
func (p *recPipe) unlisted(ctx context.Context, key string, pr pendingRemoval) {
	left := make([]string, 0, len(pr.Names))
	for _, n := range pr.Names {
		ok, err := p.e.x.Recordings.Holds(ctx, n)
		if err != nil {
			p.e.log.Warn("recordings store: a file pending removal could not be looked at; the next run tries again", "name", n, "err", err)
			return
		}
		if ok {
			left = append(left, n)
		}
	}
	if len(left) == 0 && pr.Legacy == 0 {
		// A file under a name of before ids were keyed is not known
		// here: the entry stays for it.
		delete(p.rc.pending, key)
		return
	}
	pr.Names, pr.Tried, pr.Why = left, p.e.runID, "the PBX no longer lists the recording: nothing to prove the file is its; remove it by hand if it is (README, Erasure)"
	p.rc.pending[key] = pr
	for _, n := range left {
		p.e.res.Recordings.erased(recordings.Erased{Kept: []recordings.KeptFile{{Name: n, Why: pr.Why}}})
	}
}

// PendingFile is a file pending removal, as `check` lists it.
type PendingFile struct {
	Name string // in the store; "" for one under a name of before ids were keyed, not written
	Why  string // why it was kept last
}

// PendingRemovals reads state, the recordings endpoint's committed
// state: the files pending removal, sorted by name (those not named
// last); none when state is nil. For `check`.
func PendingRemovals(state []byte) ([]PendingFile, error) {
	if state == nil {
		return nil, nil
	}
	var st recState
	if err := json.Unmarshal(state, &st); err != nil {
		return nil, fmt.Errorf("the recordings state is damaged: %w", err)
	}
	var out []PendingFile
	for _, pr := range st.Pending {
		for _, n := range pr.Names {
			out = append(out, PendingFile{Name: n, Why: pr.Why})
		}
		for range pr.Legacy {
			out = append(out, PendingFile{Why: pr.Why})
		}
	}
	slices.SortFunc(out, func(a, b PendingFile) int {
		if (a.Name == "") != (b.Name == "") {
			return cmp.Compare(b.Name, a.Name)
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out, nil
}
