package sinks

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/internal/safefile"
)

// The suppression list makes an erasure stick (issue 30): each number
// forgotten is kept, by the sink, only as its keyed hash (the pseudonym
// it has under the list's key), and every export applies the list to its
// rows before writing them (Suppressor.Apply), so a record still on the
// PBX, read again by a look-back, a backfill or a new call, is written
// erased. The key is EXPORT_PSEUDONYM_KEY's when it was set when the
// first number was added, never stored; otherwise a random key made then
// and kept with the list (which anyone who can read the list can then use
// to test a number against it: set EXPORT_PSEUDONYM_KEY to avoid that).

// Suppression is a sink's list of forgotten numbers.
type Suppression struct {
	// KeyID names the key the hashes are made with (pseudonym.KeyID).
	KeyID string `json:"key_id,omitempty"`
	// Key is the list's own random key, when no pseudonym key was
	// configured at its first number; nil when it is the pseudonym key.
	Key []byte `json:"key,omitempty"`
	// IDKey is the sink's random key for recordings' ids on a sink in
	// clear (SuppressionKey), made by the first run that needs one when
	// the list had no key yet: kept apart from the list's key, so that
	// it never takes the pseudonym key (which could then never be unset,
	// though nothing was forgotten) nor makes a later forget's hashes
	// with a key anyone who can read the list has.
	IDKey []byte `json:"id_key,omitempty"`
	// IDKeySealed is the key of recordings' ids of a pseudonymised sink,
	// sealed with the pseudonym key (idkey.go): nothing in the sink lets
	// one who reads it without that key test a number against a stored
	// name (attack 1, A1).
	IDKeySealed *SealedKey         `json:"id_key_sealed,omitempty"`
	Numbers     []SuppressedNumber `json:"numbers"`
}

// SuppressedNumber is one forgotten number: its keyed hash and when.
type SuppressedNumber struct {
	Hash  string    `json:"hash"`
	Added time.Time `json:"added"`
	// National marks the hash of a national form of a forgotten number
	// ("352 8512784" for +39 352 8512784): it erases only a number written
	// without "+" or "00", and never a pseudonym, as the same digits
	// written internationally, and their pseudonym, are another country's
	// number (+352 8512784).
	National bool `json:"national,omitempty"`
}

// ErrSuppressionKey is a suppression list that cannot be read with the
// configured key: exports stop rather than bring forgotten numbers back.
var ErrSuppressionKey = errors.New("the suppression list's key is not configured")

// keyed returns the list's key: its own, or pk when the list was made
// with the pseudonym key (an error when pk is not that key).
func (l *Suppression) keyed(pk *pseudonym.Keyed) (*pseudonym.Keyed, error) {
	if l.Key != nil {
		return pseudonym.New(l.Key)
	}
	if l.KeyID == "" {
		return nil, nil
	}
	if pk == nil || pk.KeyID() != l.KeyID {
		have := "not set"
		if pk != nil {
			have = "key " + pk.KeyID()
		}
		return nil, fmt.Errorf("%w: the suppression list of forgotten numbers (%d) was made with EXPORT_PSEUDONYM_KEY %s, and it is %s: set that key again (a hash cannot be made again without it; README, Erasure)",
			ErrSuppressionKey, len(l.Numbers), l.KeyID, have)
	}
	return pk, nil
}

// add adds the number with canonical digits to the list, making its key
// first when it has none; it returns the hash and whether it was new.
func (l *Suppression) add(digits string, national bool, pk *pseudonym.Keyed, now time.Time) (string, bool, error) {
	l.makeKey(pk)
	k, err := l.keyed(pk)
	if err != nil {
		return "", false, err
	}
	h := k.Number(digits)
	if slices.ContainsFunc(l.Numbers, func(n SuppressedNumber) bool { return n.Hash == h && n.National == national }) {
		return h, false, nil
	}
	l.Numbers = append(l.Numbers, SuppressedNumber{Hash: h, Added: now.UTC(), National: national})
	return h, true, nil
}

// makeKey gives the list a key when it has none: pk's when set, else a
// random one kept with the list. It reports whether it made one.
func (l *Suppression) makeKey(pk *pseudonym.Keyed) bool {
	if l.KeyID != "" {
		return false
	}
	if pk == nil {
		l.Key = make([]byte, pseudonym.MinKeyLen)
		rand.Read(l.Key)
	}
	k := pk
	if k == nil {
		k, _ = pseudonym.New(l.Key)
	}
	l.KeyID = k.KeyID()
	return true
}

// addAll adds f's digits and national forms; it returns the digits' hash
// and whether any form was new.
func (l *Suppression) addAll(f *Forgotten, pk *pseudonym.Keyed, now time.Time) (string, bool, error) {
	var first string
	any := false
	for i, d := range f.forms() {
		h, added, err := l.add(d, i > 0, pk, now)
		if err != nil {
			return "", false, err
		}
		if i == 0 {
			first = h
		}
		any = any || added
	}
	return first, any, nil
}

// Suppressor applies a suppression list to rows. Safe for concurrent use.
type Suppressor struct {
	list   *pseudonym.Keyed // the list's key
	rows   *pseudonym.Keyed // the rows' pseudonym key, nil when off
	hashes map[string]bool  // international digits' hashes
	local  map[string]bool  // national forms' hashes (SuppressedNumber.National)
	shapes sync.Map         // endpoint name → *rowShape
	seen   sync.Map         // canonical number → suppressed
	seenN  atomic.Int64
}

// Suppressor returns the list ready to apply, rows pseudonymised with pk
// (nil when pseudonymisation is off); nil for an empty list. An error
// wrapping ErrSuppressionKey when the list's key is pk's and pk is not
// configured.
func (l *Suppression) Suppressor(pk *pseudonym.Keyed) (*Suppressor, error) {
	if l == nil || len(l.Numbers) == 0 {
		return nil, nil
	}
	k, err := l.keyed(pk)
	if err != nil {
		return nil, err
	}
	s := &Suppressor{list: k, rows: pk, hashes: map[string]bool{}, local: map[string]bool{}}
	for _, n := range l.Numbers {
		if n.National {
			s.local[n.Hash] = true
		} else {
			s.hashes[n.Hash] = true
		}
	}
	return s, nil
}

// match reports whether v, a canonical number or a pseudonym, is
// suppressed. A pseudonym is one only under the list's own key, and
// never by a national form's hash; a number written internationally
// (pseudonym.Replace's "+") only by its international digits' hash. The
// answers for numbers are remembered (a caller's number comes back in
// many rows, and each asks a keyed hash), up to maxSeen of them.
func (s *Suppressor) match(v string) bool {
	if !strings.HasPrefix(v, pseudonym.NumberPrefix) && !strings.HasPrefix(v, pseudonym.NamePrefix) {
		if hit, ok := s.seen.Load(v); ok {
			return hit.(bool)
		}
		d, intl := strings.CutPrefix(v, "+")
		h := s.list.Number(d)
		hit := s.hashes[h] || !intl && s.local[h]
		if s.seenN.Add(1) <= maxSeen {
			s.seen.Store(v, hit)
		}
		return hit
	}
	return s.rows != nil && s.rows.KeyID() == s.list.KeyID() && s.hashes[v]
}

// maxSeen bounds the numbers a Suppressor remembers: about 10 MB.
const maxSeen = 100_000

// Len is the number of numbers suppressed (0 for a nil Suppressor).
func (s *Suppressor) Len() int {
	if s == nil {
		return 0
	}
	return len(s.hashes)
}

// Apply erases, in row of endpoint e, each suppressed number and the name
// beside it, as forget erased the rows stored (the key columns and row.Key
// stay); it returns how many it erased. A nil Suppressor does nothing.
func (s *Suppressor) Apply(e *record.Endpoint, row *record.Row) int {
	if s == nil {
		return 0
	}
	v, _ := s.shapes.Load(e.Name)
	sh, _ := v.(*rowShape)
	if sh == nil {
		sh = endpointShape(e, true)
		s.shapes.Store(e.Name, sh)
	}
	cells := make([]string, len(sh.names))
	for i := range e.Columns {
		switch x := row.Values[i].(type) {
		case string:
			cells[i] = x
		case json.RawMessage:
			cells[i] = string(x)
		}
	}
	nc := len(e.Columns)
	cells[nc], cells[nc+1] = string(row.Extra), string(row.Raw)
	orig := slices.Clone(cells)
	n := sh.erase(cells, s.match)
	if n == 0 {
		return 0
	}
	for i := range e.Columns {
		if cells[i] == orig[i] {
			continue
		}
		if _, ok := row.Values[i].(json.RawMessage); ok {
			row.Values[i] = json.RawMessage(cells[i])
		} else {
			row.Values[i] = cells[i]
		}
	}
	if cells[nc] != orig[nc] {
		row.Extra = json.RawMessage(cells[nc])
	}
	if cells[nc+1] != orig[nc+1] {
		row.Raw = json.RawMessage(cells[nc+1])
	}
	return n
}

// suppressionPBX and suppressionKey are where PostgreSQL keeps the list:
// a row of export_state that belongs to no PBX (a PBX's id is never
// empty), shared by every PBX exported into the schema.
const (
	suppressionPBX = ""
	suppressionKey = "suppressed numbers"
)

// Suppression reads the schema's list; an empty one when there is none.
func (p *Postgres) Suppression(ctx context.Context) (*Suppression, error) {
	var b []byte
	err := p.pool.QueryRow(ctx, "SELECT state FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key = $2", suppressionPBX, suppressionKey).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return &Suppression{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the suppression list: %w", dbError(err))
	}
	return decodeSuppression(b)
}

func decodeSuppression(b []byte) (*Suppression, error) {
	var l Suppression
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("the suppression list is damaged (%v): restore it from a backup; without it forgotten numbers come back", err)
	}
	return &l, nil
}

// Suppress adds f to the schema's list in one transaction, and returns
// its hash and whether it was new.
func (p *Postgres) Suppress(ctx context.Context, f *Forgotten, pk *pseudonym.Keyed) (string, bool, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return "", false, fmt.Errorf("add to the suppression list: %w", dbError(err))
	}
	defer tx.Rollback(ctx)
	table := p.ident("export_state")
	if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (pbx, key, state) VALUES ($1, $2, '{\"numbers\":[]}') ON CONFLICT DO NOTHING", suppressionPBX, suppressionKey); err != nil {
		return "", false, fmt.Errorf("add to the suppression list: %w", dbError(err))
	}
	var b []byte
	if err := tx.QueryRow(ctx, "SELECT state FROM "+table+" WHERE pbx = $1 AND key = $2 FOR UPDATE", suppressionPBX, suppressionKey).Scan(&b); err != nil {
		return "", false, fmt.Errorf("add to the suppression list: %w", dbError(err))
	}
	l, err := decodeSuppression(b)
	if err != nil {
		return "", false, err
	}
	h, added, err := l.addAll(f, pk, time.Now())
	if err != nil || !added {
		return h, false, err
	}
	b, _ = json.Marshal(l)
	if _, err := tx.Exec(ctx, "UPDATE "+table+" SET state = $3, updated_at = now() WHERE pbx = $1 AND key = $2", suppressionPBX, suppressionKey, b); err != nil {
		return "", false, fmt.Errorf("add to the suppression list: %w", dbError(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return "", false, fmt.Errorf("add to the suppression list: %w", dbError(err))
	}
	return h, true, nil
}

// suppressionFile is where the CSV sink keeps the list: in the state
// folder, beside the PBXes' folders (whose names never start with a dot).
func (s *CSV) suppressionFile() string {
	return filepath.Join(s.opt.Dir, ".state", ".suppressed.json")
}

// Suppression reads the folder's list; an empty one when there is none.
func (s *CSV) Suppression(context.Context) (*Suppression, error) {
	b, err := os.ReadFile(s.suppressionFile())
	if errors.Is(err, fs.ErrNotExist) {
		return &Suppression{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the suppression list: %w", s.advise(err))
	}
	return decodeSuppression(b)
}

// Suppress adds f to the folder's list, under a lock and by an atomic
// replace, and returns its hash and whether it was new.
func (s *CSV) Suppress(ctx context.Context, f *Forgotten, pk *pseudonym.Keyed) (_ string, _ bool, err error) {
	defer func() { err = s.advise(err) }()
	dir, err := s.mkdir(".state")
	if err != nil {
		return "", false, fmt.Errorf("add to the suppression list: %w", err)
	}
	lock := safefile.NewLock(filepath.Join(dir, ".suppressed.lock"), fileMode)
	if err := lock.Wait(ctx, 100*time.Millisecond); err != nil {
		return "", false, fmt.Errorf("add to the suppression list: %w", err)
	}
	defer lock.Unlock()
	l, err := s.Suppression(ctx)
	if err != nil {
		return "", false, err
	}
	h, added, err := l.addAll(f, pk, time.Now())
	if err != nil || !added {
		return h, false, err
	}
	b, _ := json.Marshal(l)
	if err := safefile.Write(s.suppressionFile(), b, fileMode); err != nil {
		return "", false, fmt.Errorf("add to the suppression list: %w", err)
	}
	return h, true, nil
}
