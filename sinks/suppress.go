package sinks

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
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
// forgotten is kept, by the sink, only as its tag (listTag: a keyed hash,
// in a domain of its own, of the pseudonym the number has under the
// list's key; never that pseudonym, which rows and every earlier extract
// of a pseudonymised sink carry and could be joined on: attack 4, F7),
// and every export applies the list to its rows before writing them
// (Suppressor.Apply), so a record still on the PBX, read again by a
// look-back, a backfill or a new call, is written erased. A list written
// before kept the pseudonyms themselves ("p:…"): each is read as its tag,
// and the next write of the list (TagSuppression, at a run's start; or a
// forget) stores the tags instead, in one atomic write. The key is EXPORT_PSEUDONYM_KEY's when it was set when the
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
	// IDKey, IDKeySealed and IDKeys are the keys of recordings' ids as
	// earlier releases kept them with the list (the schema's one key,
	// in clear or sealed; then one by PBX id): the next start moves them
	// into a record of their own (idkey_record.go) and drops them here.
	IDKey       []byte             `json:"id_key,omitempty"`
	IDKeySealed *SealedKey         `json:"id_key_sealed,omitempty"`
	IDKeys      map[string]*PBXKey `json:"id_keys,omitempty"`
	// IDKeysApart marks a list whose sink keeps the keys of recordings'
	// ids in their own record: that record missing was lost.
	IDKeysApart bool               `json:"id_keys_apart,omitempty"`
	Numbers     []SuppressedNumber `json:"numbers"`
	// More is the list again under each other key a PBX of the sink
	// writes under (attack 9, F4): KeyID, Key and Numbers above are its
	// first section, the one every forget adds its number to since the
	// list began (its numbers are the list's), and each of More holds the
	// same numbers' tags under its own key, from the forget that made it
	// on. A run applies the section of its own key (sectionFor).
	More []KeySection `json:"more_keys,omitempty"`
	// UndoneAccepted is written by hand, never by the program: the
	// operator's acknowledgement that the list lost the numbers of the
	// run ledger's forgets up to this time (a list lost and not restored
	// from a backup), which exports then write again (CheckSuppression;
	// README, Erasure). Forgets after it must all be in the list.
	UndoneAccepted *time.Time `json:"erasures_undone_accepted,omitempty"`
}

// SuppressedNumber is one forgotten number: its tag and when.
type SuppressedNumber struct {
	// Hash is the number's tag (listTag); "p:…", its pseudonym under
	// the list's key, in a list written before tags.
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
		// Numbers as forget counts them: a national form kept beside
		// its number is not another (review 16, R16-3).
		return nil, fmt.Errorf("%w: the suppression list of forgotten numbers (%d) was made with EXPORT_PSEUDONYM_KEY %s, and it is %s: set that key again (a hash cannot be made again without it; README, Erasure)",
			ErrSuppressionKey, l.numbers(), l.KeyID, have)
	}
	return pk, nil
}

// KeySection is the list under one more key (Suppression.More): the
// key's id, the list's own random key for the PBXes writing in clear (nil
// for a pseudonym key, never stored), and the numbers' tags under it.
type KeySection struct {
	KeyID   string             `json:"key_id"`
	Key     []byte             `json:"key,omitempty"`
	Numbers []SuppressedNumber `json:"numbers"`
}

// section is one key's part of the list, its first (the list's own
// fields) or one of More, as pointers into the list.
type section struct {
	keyID   *string
	key     *[]byte
	numbers *[]SuppressedNumber
}

// sections are the list's sections, its first first. Appending to More
// leaves them pointing at the old ones: read them again after.
func (l *Suppression) sections() []section {
	out := []section{{&l.KeyID, &l.Key, &l.Numbers}}
	for i := range l.More {
		m := &l.More[i]
		out = append(out, section{&m.KeyID, &m.Key, &m.Numbers})
	}
	return out
}

// count is the number of numbers sec holds, national forms apart.
func (sec section) count() int {
	n := 0
	for _, x := range *sec.numbers {
		if !x.National {
			n++
		}
	}
	return n
}

// keyOf is the key of sec: its own, or the one of keys with its id; nil
// when none is.
func (sec section) keyOf(keys []*pseudonym.Keyed) *pseudonym.Keyed {
	if *sec.key != nil {
		k, _ := pseudonym.New(*sec.key)
		return k
	}
	for _, k := range keys {
		if k != nil && k.KeyID() == *sec.keyID {
			return k
		}
	}
	return nil
}

// add adds the number with canonical digits to sec under its key k; it
// returns the hash and whether it was new there.
func (sec section) add(k *pseudonym.Keyed, digits string, national bool, now time.Time) (string, bool) {
	h := listTag(k, k.Number(digits))
	if slices.ContainsFunc(*sec.numbers, func(n SuppressedNumber) bool { return n.Hash == h && n.National == national }) {
		return h, false
	}
	*sec.numbers = append(*sec.numbers, SuppressedNumber{Hash: h, Added: now.UTC(), National: national})
	return h, true
}

// KeyIDs are the ids of the pseudonym keys the list's sections are made
// with (its own random keys apart): forget must be given each, to add its
// number under every one (attack 9, F4).
func (l *Suppression) KeyIDs() []string {
	var ids []string
	if l == nil || l.KeyID == "" {
		return nil
	}
	for _, sec := range l.sections() {
		if *sec.key == nil && *sec.keyID != "" {
			ids = append(ids, *sec.keyID)
		}
	}
	return ids
}

// makeSections gives the list a section under each key of want and,
// when clear, one under a random key of its own (for the PBXes writing
// in clear, which have no key), those it lacks: its first one too when it
// has none (want's first key, else a random one).
func (l *Suppression) makeSections(want []*pseudonym.Keyed, clear bool) {
	has := func(id string) bool {
		return slices.ContainsFunc(l.sections(), func(sec section) bool { return *sec.key == nil && *sec.keyID == id })
	}
	random := func() ([]byte, string) {
		b := make([]byte, pseudonym.MinKeyLen)
		rand.Read(b)
		k, _ := pseudonym.New(b)
		return b, k.KeyID()
	}
	if l.KeyID == "" {
		if len(want) > 0 {
			l.KeyID = want[0].KeyID()
		} else {
			l.Key, l.KeyID = random()
		}
	}
	for _, k := range want {
		if !has(k.KeyID()) {
			l.More = append(l.More, KeySection{KeyID: k.KeyID()})
		}
	}
	if clear && !slices.ContainsFunc(l.sections(), func(sec section) bool { return *sec.key != nil }) {
		b, id := random()
		l.More = append(l.More, KeySection{KeyID: id, Key: b})
	}
}

// missingKey is the error of a section of the list whose key forget was
// not given.
func (l *Suppression) missingKey(id string) error {
	return fmt.Errorf("%w: the suppression list keeps its %d forgotten number(s) under EXPORT_PSEUDONYM_KEY %s too (a PBX of the sink writes under it), and forget was not given that key: give it (as EXPORT_PSEUDONYM_KEY, or with --previous-key-file FILE); each number is added under every key of the list, else that PBX's runs would write it again (README, Erasure). Nothing was changed",
		ErrSuppressionKey, l.numbers(), id)
}

// CanAdd reports (an error wrapping ErrSuppressionKey) a section of the
// list whose key is neither pk nor one f was given: forget could not add
// its number there.
func (l *Suppression) CanAdd(f *Forgotten, pk *pseudonym.Keyed) error {
	if l == nil || l.KeyID == "" {
		return nil
	}
	keys := append([]*pseudonym.Keyed{pk}, f.keys...)
	for _, sec := range l.sections() {
		if sec.keyOf(keys) == nil {
			return l.missingKey(*sec.keyID)
		}
	}
	return nil
}

// suppressedDomain is the domain of the list's tags (pseudonym.Tag).
const suppressedDomain = "suppressed number"

// listTag is what the list stores of a number whose pseudonym under the
// list's key k is pseudo: its tag, which no row, extract or other record
// of the sink holds, and which no one without k can make from a number
// or from a pseudonym found in the rows.
func listTag(k *pseudonym.Keyed, pseudo string) string {
	return k.Tag(suppressedDomain, pseudo)
}

// tag is the tag of a stored hash: itself, or the tag of a pseudonym
// kept by a list written before tags.
func tag(k *pseudonym.Keyed, hash string) string {
	if strings.HasPrefix(hash, pseudonym.NumberPrefix) {
		return listTag(k, hash)
	}
	return hash
}

// tagged replaces, in a list written before tags, each pseudonym kept by
// its tag (k the list's key); it reports whether it changed any.
func (l *Suppression) tagged(k *pseudonym.Keyed) bool {
	changed := false
	for i, n := range l.Numbers {
		if t := tag(k, n.Hash); t != n.Hash {
			l.Numbers[i].Hash, changed = t, true
		}
	}
	return changed
}

// added is the number of numbers forgotten (their national forms apart:
// one per forget that added one, whatever its forms) added after the
// list's UndoneAccepted, and that time (zero when unset).
func (l *Suppression) added() (int, time.Time) {
	var after time.Time
	if l.UndoneAccepted != nil {
		after = *l.UndoneAccepted
	}
	n := 0
	for _, x := range l.Numbers {
		if !x.National && x.Added.After(after) {
			n++
		}
	}
	return n, after
}

// numbers is the number of numbers the list holds, their national forms
// apart: it only grows, by one at each forget of a number not listed
// yet (forgetStamp).
func (l *Suppression) numbers() int {
	n := 0
	for _, x := range l.Numbers {
		if !x.National {
			n++
		}
	}
	return n
}

// forgetStampKey is the manifest field each forget writes into the
// manifests of the data files it rewrites (EditRows "forget"): a
// forgetStamp. A list restored with .state from a copy taken before
// that forget lacks numbers it names, and the ledger restored with it
// does not show the forget either (attack 6, F1): the manifests, left as
// they are, tell (suppress_stamp.go).
const forgetStampKey = "forget_list"

// forgetStamp is the list as a forget found it once it had added its
// number: how many numbers it held (numbers), when, and which entries
// (Tags: stampTag of each, national forms too; none in a stamp written
// by the release before them, which tells only how many).
type forgetStamp struct {
	Numbers int       `json:"numbers"`
	At      time.Time `json:"at"`
	Tags    []string  `json:"tags,omitempty"`
}

// addAll adds f's digits and national forms to every section of the
// list, making the sections f's keys want (Forgotten.listKeys: a
// section under each key a PBX of the sink writes under, one under a
// random key when one writes in clear) first; it returns the digits' tag
// in the first section and whether the digits were new there (the
// list's numbers are the first section's). Every section's key must be
// pk or one of f's: a section left without the number would have its
// PBX's runs write it again. National forms added to a number listed
// already (forgotten first without +) add no number: forget's ledger
// note, which CheckSuppression counts against the list's numbers,
// follows this (review6, R6-1).
func (l *Suppression) addAll(f *Forgotten, pk *pseudonym.Keyed, now time.Time) (string, bool, error) {
	want, clear := f.listKeys(pk)
	keys := append([]*pseudonym.Keyed{pk}, f.keys...)
	if err := l.CanAdd(f, pk); err != nil {
		return "", false, err
	}
	l.makeSections(want, clear)
	var first string
	number := false
	for i, sec := range l.sections() {
		k := sec.keyOf(keys)
		if k == nil {
			return "", false, l.missingKey(*sec.keyID)
		}
		if i == 0 {
			l.tagged(k)
		}
		for j, d := range f.forms() {
			h, added := sec.add(k, d, j > 0, now)
			if i == 0 && j == 0 {
				first, number = h, added
			}
		}
	}
	return first, number, nil
}

// addChanged is addAll, also reporting whether it changed the list: a
// number listed already may get national forms it lacked (forgotten
// first as written, then with +), a section it lacked, or the list its
// key or its tags. The list is written then, though no number was added:
// Suppress wrote it only when one was, and those national forms were
// lost, written again by later exports.
func (l *Suppression) addChanged(f *Forgotten, pk *pseudonym.Keyed, now time.Time) (h string, added, changed bool, err error) {
	was, _ := json.Marshal(l)
	h, added, err = l.addAll(f, pk, now)
	is, _ := json.Marshal(l)
	return h, added, added || !bytes.Equal(was, is), err
}

// Suppressor applies a suppression list to rows. Safe for concurrent use.
type Suppressor struct {
	list   *pseudonym.Keyed // the list's key
	rows   *pseudonym.Keyed // the rows' pseudonym key, nil when off
	hashes map[string]bool  // international digits' tags
	local  map[string]bool  // national forms' tags (SuppressedNumber.National)
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
	sec, k, err := l.sectionFor(pk)
	if err != nil {
		return nil, err
	}
	s := &Suppressor{list: k, rows: pk, hashes: map[string]bool{}, local: map[string]bool{}}
	for _, n := range *sec.numbers {
		if n.National {
			s.local[tag(k, n.Hash)] = true
		} else {
			s.hashes[tag(k, n.Hash)] = true
		}
	}
	return s, nil
}

// sectionFor is the section of the list a run pseudonymising with pk
// (nil: in clear, or no key) applies (attack 9, F4: the list was kept
// under one PBX's key only, and every run of the sink's other PBXes was
// refused, with no way out): the section of pk, else the list's own
// random key's (a sink with PBXes in clear; any number's tag can be made
// under it), whichever holds every number of the list. A list with no
// such section is refused (ErrSuppressionKey): applied under no key, or
// with numbers missing, the run would write them again; the error says
// how to add them under this run's key.
func (l *Suppression) sectionFor(pk *pseudonym.Keyed) (section, *pseudonym.Keyed, error) {
	var usable []section
	for _, sec := range l.sections() {
		if pk != nil && *sec.key == nil && *sec.keyID == pk.KeyID() {
			usable = append([]section{sec}, usable...)
		} else if *sec.key != nil {
			usable = append(usable, sec)
		}
	}
	all := l.numbers()
	for _, sec := range usable {
		if sec.count() >= all {
			return sec, sec.keyOf([]*pseudonym.Keyed{pk}), nil
		}
	}
	this, how := "not set (rows in clear)", "with this PBX's configuration (its rule), each key of the list given (EXPORT_PSEUDONYM_KEY, --previous-key-file)"
	if pk != nil {
		this = "key " + pk.KeyID()
		how = "with EXPORT_PSEUDONYM_KEY set to this PBX's key (" + pk.KeyID() + ") and each other key of the list given with --previous-key-file"
	}
	if len(usable) > 0 {
		return section{}, nil, fmt.Errorf("%w: the suppression list of %d forgotten number(s) holds only %d of them under this run's EXPORT_PSEUDONYM_KEY (%s): the others were forgotten before a PBX of this key exported into the sink, and this run would write them again: run `wildix-export forget` again for each of them %s, which adds them under it (README, Erasure)",
			ErrSuppressionKey, all, usable[0].count(), this, how)
	}
	return section{}, nil, fmt.Errorf("%w: the suppression list of forgotten numbers (%d) keeps them under EXPORT_PSEUDONYM_KEY %s, and this run's is %s: if this PBX's rows are written under one of those, set that key again (a hash cannot be made again without it); if this PBX writes under a key of its own, or in clear, beside the sink's other PBXes, run `wildix-export forget` again for each forgotten number %s, which adds them under it; until then its runs are refused, as they would write those numbers again (README, Erasure)",
		ErrSuppressionKey, all, strings.Join(l.KeyIDs(), ", "), this, how)
}

// Serves reports whether a run pseudonymising with pk (nil: in clear, or
// no key) can apply the list (sectionFor): an empty list always can. A
// change of rule or key is refused only when the list cannot follow it
// (review 44, R44-1: the check looked at the list's first key only).
func (l *Suppression) Serves(pk *pseudonym.Keyed) bool {
	if l == nil || len(l.Numbers) == 0 {
		return true
	}
	_, _, err := l.sectionFor(pk)
	return err == nil
}

// match reports whether v, a canonical number or a pseudonym, is
// suppressed. A pseudonym is one only under the list's own key, and
// never by a national form's hash; a number written internationally
// (pseudonym.Replace's "+") only by its international digits' hash. The
// answers for numbers are remembered (a caller's number comes back in
// many rows, and each asks two keyed hashes), up to maxSeen of them, as
// are pseudonyms'.
func (s *Suppressor) match(v string) bool {
	pseudo := strings.HasPrefix(v, pseudonym.NumberPrefix) || strings.HasPrefix(v, pseudonym.NamePrefix)
	if pseudo && (s.rows == nil || s.rows.KeyID() != s.list.KeyID() || !strings.HasPrefix(v, pseudonym.NumberPrefix)) {
		return false
	}
	if hit, ok := s.seen.Load(v); ok {
		return hit.(bool)
	}
	var hit bool
	if pseudo {
		hit = s.hashes[listTag(s.list, v)]
	} else {
		d, intl := strings.CutPrefix(v, "+")
		h := listTag(s.list, s.list.Number(d))
		hit = s.hashes[h] || !intl && s.local[h]
	}
	if s.seenN.Add(1) <= maxSeen {
		s.seen.Store(v, hit)
	}
	return hit
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
// its tag and whether it was new. It checks the list first
// (CheckSuppression): a forget adding its number to a list that lost
// others would make the list restored from the backup lack this one.
func (p *Postgres) Suppress(ctx context.Context, f *Forgotten, pk *pseudonym.Keyed) (h string, added bool, err error) {
	if err := p.CheckSuppression(ctx); err != nil {
		return "", false, err
	}
	// The list written holds its random key and the number's hash: on a
	// connection whose parameters the server does not log (R46-3).
	c, err := p.quietConn(ctx, true)
	if err != nil {
		return "", false, err
	}
	defer c.Release()
	err = p.updateSuppressionOn(ctx, c, "add to the suppression list", func(l *Suppression) (changed bool, err error) {
		h, added, changed, err = l.addChanged(f, pk, time.Now())
		return changed, err
	})
	return h, added, err
}

// updateSuppression changes the schema's list with change, which reports
// whether it changed it, in one transaction holding the list's row; what
// names the change in errors.
func (p *Postgres) updateSuppression(ctx context.Context, what string, change func(*Suppression) (bool, error)) error {
	return p.updateSuppressionOn(ctx, p.pool, what, change)
}

// beginner starts a transaction: the pool, or a connection quietConn gave.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// updateSuppressionOn is updateSuppression in a transaction begun on c;
// the list goes with the extended protocol (forget_serverlog.go).
func (p *Postgres) updateSuppressionOn(ctx context.Context, c beginner, what string, change func(*Suppression) (bool, error)) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, dbError(err))
	}
	defer tx.Rollback(ctx)
	table := p.ident("export_state")
	if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (pbx, key, state) VALUES ($1, $2, '{\"numbers\":[]}') ON CONFLICT DO NOTHING", suppressionPBX, suppressionKey); err != nil {
		return fmt.Errorf("%s: %w", what, dbError(err))
	}
	var b []byte
	if err := tx.QueryRow(ctx, "SELECT state FROM "+table+" WHERE pbx = $1 AND key = $2 FOR UPDATE", suppressionPBX, suppressionKey).Scan(&b); err != nil {
		return fmt.Errorf("%s: %w", what, dbError(err))
	}
	l, err := decodeSuppression(b)
	if err != nil {
		return err
	}
	if changed, err := change(l); err != nil || !changed {
		return err
	}
	b, _ = json.Marshal(l)
	if _, err := tx.Exec(ctx, "UPDATE "+table+" SET state = $3, updated_at = now() WHERE pbx = $1 AND key = $2", extended, suppressionPBX, suppressionKey, b); err != nil {
		return fmt.Errorf("%s: %w", what, dbError(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, dbError(err))
	}
	return nil
}

// suppressionFile is where the CSV sink keeps the list: in the state
// folder, beside the PBXes' folders (whose names never start with a dot).
func (s *CSV) suppressionFile() string {
	return filepath.Join(s.opt.Dir, ".state", ".suppressed.json")
}

// Suppression reads the folder's list; an empty one when there is none.
// The file is read once for as long as it stays the same version
// (cachedState): a run asks for it five times, at its start and under
// the PBX's lock; each caller gets a list of its own.
func (s *CSV) Suppression(context.Context) (*Suppression, error) {
	v, err := s.cachedState(s.suppressionFile(), "", &s.listReads, func(b []byte) (any, error) { return bytes.Clone(b), nil })
	if errors.Is(err, fs.ErrNotExist) {
		return &Suppression{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the suppression list: %w", s.advise(err))
	}
	return decodeSuppression(v.([]byte))
}

// Suppress adds f to the folder's list, under a lock and by an atomic
// replace, and returns its tag and whether it was new. Under the lock it
// checks the list first (checkList; attack 7, F1: a forget into a list
// restored from an older copy made it hold as many numbers as the stamps
// said, and hid the loss), and writes the forget stamp (stampFile) once
// the list is written, whether or not the number was new.
func (s *CSV) Suppress(ctx context.Context, f *Forgotten, pk *pseudonym.Keyed) (h string, added bool, err error) {
	err = s.updateSuppressionThen(ctx, "add to the suppression list", func(l *Suppression) (bool, error) {
		if err := s.checkList(ctx, l, true); err != nil {
			return false, err
		}
		var changed bool
		h, added, changed, err = l.addChanged(f, pk, time.Now())
		return changed, err
	}, func(l *Suppression) error { return s.writeStamp(l, time.Now()) })
	return h, added, err
}

// updateSuppression changes the folder's list with change, which reports
// whether it changed it, under the list's lock and by an atomic replace
// of its file; what names the change in errors.
func (s *CSV) updateSuppression(ctx context.Context, what string, change func(*Suppression) (bool, error)) error {
	return s.updateSuppressionThen(ctx, what, change, nil)
}

// updateSuppressionThen is updateSuppression calling then, when set,
// with the list as it is once written (or as read, when change did not
// change it), still under the lock.
func (s *CSV) updateSuppressionThen(ctx context.Context, what string, change func(*Suppression) (bool, error), then func(*Suppression) error) (err error) {
	defer func() { err = s.advise(err) }()
	dir, err := s.mkdir(".state")
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	lock := safefile.NewLock(filepath.Join(dir, ".suppressed.lock"), fileMode)
	if err := lock.Wait(ctx, 100*time.Millisecond); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer lock.Unlock()
	l, err := s.Suppression(ctx)
	if err != nil {
		return err
	}
	changed, err := change(l)
	if err != nil {
		return err
	}
	if changed {
		b, _ := json.Marshal(l)
		if err := safefile.Write(s.suppressionFile(), b, fileMode); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if then != nil {
		return then(l)
	}
	return nil
}

// TagSuppression stores, in a list written before tags, each number's
// tag instead of its pseudonym (attack 4, F7), in one atomic write (a
// transaction; a replace of the file under the list's lock): killed at
// any point, the list is the old one or the new, and both are read. It
// reports whether it changed the list. A list it cannot read the key of
// (made with a pseudonym key pk is not) is left as it is: the run stops
// on it anyway (Suppressor).
func (p *Postgres) TagSuppression(ctx context.Context, pk *pseudonym.Keyed) (bool, error) {
	return tagSuppression(ctx, p, p.updateSuppression, pk)
}

// TagSuppression is Postgres.TagSuppression for the folder's list.
func (s *CSV) TagSuppression(ctx context.Context, pk *pseudonym.Keyed) (bool, error) {
	return tagSuppression(ctx, s, s.updateSuppression, pk)
}

func tagSuppression(ctx context.Context, r interface {
	Suppression(context.Context) (*Suppression, error)
}, update func(context.Context, string, func(*Suppression) (bool, error)) error, pk *pseudonym.Keyed) (bool, error) {
	l, err := r.Suppression(ctx)
	if err != nil || !slices.ContainsFunc(l.Numbers, func(n SuppressedNumber) bool { return strings.HasPrefix(n.Hash, pseudonym.NumberPrefix) }) {
		return false, err
	}
	var changed bool
	err = update(ctx, "store the suppression list's tags", func(l *Suppression) (bool, error) {
		if k, err := l.keyed(pk); err == nil && k != nil {
			changed = l.tagged(k)
		}
		return changed, nil
	})
	return changed, err
}

// NoteSuppressed is the note of a forget's entry in the run ledger when
// it added its number to the suppression list (CheckSuppression counts
// them).
const NoteSuppressed = "one number added to the suppression list"

// ErrSuppressionLost is a suppression list that lacks numbers the run
// ledger (or, in a CSV folder, the data files) says forget added: an
// export would write them again (attack 4, F4).
var ErrSuppressionLost = errors.New("the suppression list of forgotten numbers is missing numbers")

// lostList is what CheckSuppression found missing, for its message.
type lostList struct {
	list, ledger string // where each is kept
	has, want    int    // numbers the list holds, forgets that added one
	last         time.Time
	evidence     string // without a ledger: a data file erased by forget
	newer        string // a data file a forget rewrote when the list held more
	// fromStampFile: newer is the folder's forget stamp (stampFile),
	// not a data file.
	fromStampFile bool
	stamp         forgetStamp
	lacking       lacking // what the list lacks of stamp
	accept        string  // how to record that the erasures are undone
}

// Unwrap: ErrSuppressionLost, and record.ErrConfig, a state the user
// must resolve (exit 2), for a caller that does not tell it apart
// (forget, refused by Suppress).
func (m lostList) Unwrap() []error { return []error{ErrSuppressionLost, record.ErrConfig} }

func (m lostList) Error() string {
	seen := fmt.Sprintf("the run ledger (%s) records %d forget(s) that added a number to it, the last ended %s", m.ledger, m.want, m.last.UTC().Format(time.RFC3339))
	if m.evidence != "" {
		seen = fmt.Sprintf("the data file %s records rows erased by forget, and the run ledger (%s) records no forget (gone, or restored from a copy older than the forget)", m.evidence, m.ledger)
	}
	switch {
	case m.fromStampFile:
		seen = fmt.Sprintf("the forget stamp %s (kept outside the state folder) says that when a forget at %s had added its number the list held %d number(s), %v: the list and the run ledger (%s) were restored from a copy taken before that forget; restore the state folder's list from a copy taken after it",
			m.newer, m.stamp.At.UTC().Format(time.RFC3339), m.stamp.Numbers, m.lacking, m.ledger)
	case m.newer != "":
		seen = fmt.Sprintf("the data file %s was rewritten by a forget at %s, when the list held %d number(s), %v (its manifest's %q): the list and the run ledger (%s) were restored from a copy taken before that forget; restore the state folder's list from a copy taken after it",
			m.newer, m.stamp.At.UTC().Format(time.RFC3339), m.stamp.Numbers, m.lacking, forgetStampKey, m.ledger)
	}
	return fmt.Sprintf("%v: the list (%s) holds %d number(s), and %s: it was lost or restored from an older copy. "+
		"An export now would write every forgotten number again where the PBX still holds it (in clear, unless pseudonymised) and copy its recordings again. "+
		"Restore the list from the backup taken with the data (README, Erasure), and run again; "+
		"or, only knowing that those erasures are undone (run forget again for each number still known), record that in the list: %s",
		ErrSuppressionLost, m.list, m.has, seen, m.accept)
}

// CheckSuppression checks the schema's list against the run ledger: an
// error wrapping ErrSuppressionLost when it holds fewer numbers than the
// ledger's forgets added (those up to the list's UndoneAccepted apart,
// on both sides: the ledger's forgets started by then, the numbers the
// list holds added by then): state deleted or restored without it would
// silently undo every erasure. The time its message gives to accept is
// the last forget's end, after it added its number.
func (p *Postgres) CheckSuppression(ctx context.Context) error {
	return p.checkSuppression(ctx, p.Suppression)
}

// checkSuppression is CheckSuppression of the list read returns
// (recheckList).
func (p *Postgres) checkSuppression(ctx context.Context, read func(context.Context) (*Suppression, error)) error {
	return recheckList(ctx, read, p.checkList)
}

// CheckSuppressionReadOnly is CheckSuppression: on PostgreSQL the check
// writes nothing (forget --dry-run asks it of both sinks).
func (p *Postgres) CheckSuppressionReadOnly(ctx context.Context) error {
	return p.CheckSuppression(ctx)
}

// ledgerForgets counts the forgets of the run ledger started after after
// that added a number, and returns when the last one ended (nil: none).
func (p *Postgres) ledgerForgets(ctx context.Context, after time.Time) (int, *time.Time, error) {
	var n int
	var last *time.Time
	err := p.pool.QueryRow(ctx, "SELECT count(*), max(COALESCE(r.ended_at, r.started_at)) FROM "+p.ident("export_runs")+" r JOIN "+p.ident("export_run_endpoints")+
		` e USING (run_id) WHERE r.mode = 'forget' AND e.endpoint = 'forget' AND $1 = ANY(e.notes) AND r.started_at > $2`, NoteSuppressed, after).Scan(&n, &last)
	if err != nil {
		return 0, nil, fmt.Errorf("check the suppression list against the run ledger: %w", dbError(err))
	}
	return n, last, nil
}

// UnrecordedAdds is how many more numbers the schema's list holds than
// the run ledger records forgets that added one (0 when not more): a
// forget stopped after adding its number and before recording its
// erasure (attack 9, F1). A forget of a number listed already records
// the addition then (cmd suppressForget), so that the ledger tells a
// list lost later again.
func (p *Postgres) UnrecordedAdds(ctx context.Context) (int, error) {
	l, err := p.Suppression(ctx)
	if err != nil {
		return 0, err
	}
	has, after := l.added()
	n, _, err := p.ledgerForgets(ctx, after)
	return max(0, has-n), err
}

// warnUnrecorded warns, when the list holds has numbers and the run
// ledger records n forgets that added one, n < has, that a forget was
// stopped before it recorded its erasure (attack 9, F1): its number's
// rows may still be in the sink, and nothing else says so.
func warnUnrecorded(log *slog.Logger, has, n int) {
	if n < has {
		log.Warn("the suppression list holds more forgotten numbers than the run ledger records forgets that added one: a forget was stopped after adding its number to the list and before recording its erasure (or ledger entries were removed), and the number's rows may still be in the sink: run forget again with each number forgotten lately; it searches and erases them, and records the erasure (README, Erasure)",
			"list_numbers", has, "ledger_forgets", n)
	}
}

// checkList is CheckSuppression of the list l.
func (p *Postgres) checkList(ctx context.Context, l *Suppression) error {
	has, after := l.added()
	n, last, err := p.ledgerForgets(ctx, after)
	if err != nil {
		return err
	}
	if n <= has {
		warnUnrecorded(p.log, has, n)
		return nil
	}
	table := p.ident("export_state")
	at := acceptAt(*last)
	return lostList{
		list: fmt.Sprintf("%s, row pbx '' key '%s'", table, suppressionKey), ledger: p.ident("export_runs"),
		has: has, want: n, last: *last,
		accept: fmt.Sprintf(`INSERT INTO %s (pbx, key, state) VALUES ('', '%s', '{"numbers":[],"erasures_undone_accepted":"%s"}') ON CONFLICT (pbx, key) DO UPDATE SET state = %s.state || '{"erasures_undone_accepted":"%s"}'`,
			table, suppressionKey, at, table, at),
	}
}

// CheckSuppression is Postgres.CheckSuppression for the folder: its run
// ledgers are .state/<pbx>/runs.jsonl, kept in the state folder with the
// list. With neither (the state folder deleted), a data file's manifest
// that counts rows erased by forget (rows_replaced_forget) says that a
// forget happened, and an empty list is refused too. Both restored from
// a copy of the state folder taken between two forgets agree with each
// other: a forget stamp the later forget wrote (a manifest it rewrote,
// the folder's stampFile) names entries the list lacks (attack 6, F1;
// attack 7, F1), and the list is refused.
func (s *CSV) CheckSuppression(ctx context.Context) error {
	return s.checkSuppression(ctx, s.Suppression, true)
}

// CheckSuppressionReadOnly is CheckSuppression writing nothing: a check
// that passes writes the mark of the manifests it read (saveChecked),
// which forget --dry-run, changing nothing, must not (review 21, R21-2:
// the dry run did not check the list at all, and said nothing of a list
// the forget itself would be refused on). It reads every manifest the
// mark does not name, as the next check does.
func (s *CSV) CheckSuppressionReadOnly(ctx context.Context) error {
	return s.checkSuppression(ctx, s.Suppression, false)
}

// checkSuppression is CheckSuppression of the list read returns
// (recheckList); mark as checkList's.
func (s *CSV) checkSuppression(ctx context.Context, read func(context.Context) (*Suppression, error), mark bool) error {
	return recheckList(ctx, read, func(ctx context.Context, l *Suppression) error { return s.checkList(ctx, l, mark) })
}

// checkList is CheckSuppression of the list l (Suppress's, read under
// the list's lock); mark: a check that passes writes the mark of the
// manifests read (saveChecked), when they changed.
func (s *CSV) checkList(ctx context.Context, l *Suppression, mark bool) error {
	has, after := l.added()
	n, last, err := s.ledgerForgets(after)
	if err != nil {
		return fmt.Errorf("check the suppression list against the run ledger: %w", s.advise(err))
	}
	m := lostList{list: s.suppressionFile(), ledger: filepath.Join(s.opt.Dir, ".state", "<pbx>", "runs.jsonl"), has: has, want: n, last: last}
	v := l.view()
	ev, err := s.forgetEvidence(v, after)
	if err == nil {
		err = s.stampEvidence(&ev, v, after)
	}
	if err != nil {
		return fmt.Errorf("check the suppression list against the data files: %w", s.advise(err))
	}
	switch {
	case n > has:
	case n == 0 && len(l.Numbers) == 0 && l.UndoneAccepted == nil && ev.erased != "":
		m.evidence, last = ev.erased, time.Now()
	case ev.newer != "":
		m.newer, m.fromStampFile, m.stamp, m.lacking, last = ev.newer, ev.fromStampFile, ev.stamp, ev.lacking, ev.stamp.At
		m.has = v.numbers // the stamps name entries made before UndoneAccepted too
	default:
		if mark {
			s.saveChecked(ev)
		}
		warnUnrecorded(s.opt.Log, has, n)
		warnSections(s.opt.Log, ev)
		return nil
	}
	if ev.newer != "" {
		// Accepting the loss accepts the stamp's forget too.
		last = latest(last, ev.stamp.At)
	}
	at := acceptAt(last)
	m.accept = fmt.Sprintf(`add "erasures_undone_accepted":"%s" to the list's JSON object, or, when it is missing, write {"numbers":[],"erasures_undone_accepted":"%s"} to %s`, at, at, s.suppressionFile())
	return m
}

// maxRechecks bounds how many times recheckList reads the list again:
// each time, a forget landed between the list's reading and what it is
// checked against; more in a row than this is no longer a race.
const maxRechecks = 3

// recheckList checks (check) the list read returns; when the check finds
// it lost (ErrSuppressionLost), it reads the list again and, when it
// changed meanwhile, checks it again (review 21, R21-1). A check reads
// the list first, then what it is checked against (the run ledger, the
// forget stamps, the manifests): a forget landing in between adds its
// number to the list before it writes any of those, so they named a
// number the list read before did not hold yet, and a run was refused
// for a list that was whole. A list lost or restored from an older copy
// reads the same again, and stays refused.
func recheckList(ctx context.Context, read func(context.Context) (*Suppression, error), check func(context.Context, *Suppression) error) error {
	l, err := read(ctx)
	if err != nil {
		return err
	}
	err = check(ctx, l)
	for range maxRechecks {
		if !errors.Is(err, ErrSuppressionLost) {
			return err
		}
		again, rerr := read(ctx)
		if rerr != nil {
			return rerr
		}
		if sameList(l, again) {
			return err
		}
		l = again
		err = check(ctx, l)
	}
	return err
}

// sameList reports whether a and b are the same list, entry for entry.
func sameList(a, b *Suppression) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// UnrecordedAdds is Postgres.UnrecordedAdds for the folder (every PBX's
// run ledger).
func (s *CSV) UnrecordedAdds(ctx context.Context) (int, error) {
	l, err := s.Suppression(ctx)
	if err != nil {
		return 0, err
	}
	has, after := l.added()
	n, _, err := s.ledgerForgets(after)
	return max(0, has-n), err
}

// ledgerForgets counts the forgets of the folder's run ledgers (every
// PBX's: the list is the folder's) started after after that added a
// number, and returns when the last one ended: after it added its number
// (CheckSuppression's message gives it as the time to accept). Each
// ledger is read once for as long as it stays the same version
// (cachedState; a run's end appends to it).
func (s *CSV) ledgerForgets(after time.Time) (int, time.Time, error) {
	files, err := filepath.Glob(filepath.Join(s.opt.Dir, ".state", "*", "runs.jsonl"))
	if err != nil {
		return 0, time.Time{}, err
	}
	n, last := 0, time.Time{}
	for _, f := range files {
		v, err := s.cachedState(f, after.UTC().Format(time.RFC3339Nano), &s.ledgerReads, func(b []byte) (any, error) {
			return countForgets(b, after), nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the glob
		}
		if err != nil {
			return 0, time.Time{}, err
		}
		c := v.(ledgerCount)
		n += c.n
		last = latest(last, c.last)
	}
	return n, last, nil
}

// ledgerCount is what countForgets found in a ledger.
type ledgerCount struct {
	n    int
	last time.Time
}

// countForgets counts the forgets of the ledger b started after after
// that added a number, and when the last one ended.
func countForgets(b []byte, after time.Time) ledgerCount {
	var c ledgerCount
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if !bytes.Contains(line, []byte(NoteSuppressed)) {
			continue
		}
		var run struct {
			Mode      string    `json:"mode"`
			Started   time.Time `json:"started"`
			Ended     time.Time `json:"ended"`
			Endpoints []struct {
				Endpoint string   `json:"endpoint"`
				Notes    []string `json:"notes"`
			} `json:"endpoints"`
		}
		if json.Unmarshal(line, &run) != nil || run.Mode != "forget" || !run.Started.After(after) {
			continue
		}
		if slices.ContainsFunc(run.Endpoints, func(e struct {
			Endpoint string   `json:"endpoint"`
			Notes    []string `json:"notes"`
		}) bool {
			return e.Endpoint == "forget" && slices.Contains(e.Notes, NoteSuppressed)
		}) {
			c.n++
			c.last = latest(c.last, run.Started, run.Ended)
		}
	}
	return c
}

// manifestEvidence is what the data files' manifests tell of forgets
// (forgetEvidence).
type manifestEvidence struct {
	erased string // the first data file whose manifest counts rows erased by forget
	newer  string // the data file of the newest stamp naming entries the list lacks
	// fromStampFile: newer is the folder's forget stamp (stampEvidence)
	fromStampFile bool
	stamp         forgetStamp       // that stamp
	lacking       lacking           // what the list lacks of it
	mark          *manifestsChecked // the mark of what was read, when it changed (saveChecked)
	// keyed: entries under the list's other keys a stamp (keyedIn) names
	// and the list lacks, when it lacks no number of that stamp
	// (keyedOnly): warned of, not refused (review 44, R44-3).
	keyed   int
	keyedIn string
}

// forgetEvidence reads what the data files' manifests tell of forgets:
// the first data file (its name under the folder) whose manifest counts
// rows erased by forget, and the one whose forget stamp (forgetStampKey)
// is the newest of those naming entries the list (v) lacks,
// made after accepted (its UndoneAccepted; zero when unset). Every PBX's
// manifests are looked at, those of a PBX whose run ledger is there too:
// a ledger restored from a copy older than the first forget, or one of a
// PBX whose forget was run under another PBX's configuration (its entry
// is in that PBX's ledger), holds no forget although the manifests count
// one (review 9, R9-1: a4b0d6c skipped them and the erasure was undone).
//
// A manifest is read only when it is not in the mark (checkedFile) under
// the identity it has now (fileIdentity: device, inode, size, times):
// the mark names the manifests read before, each as it was then, with
// what it told of forgets, so a folder reads each manifest once, not at
// each of a run's two checks (review 6, R6-8). A mark restored with
// .state from an older copy vouches only for files as they were when it
// was written: a manifest forget rewrote since (a new file, renamed over
// it) or one written since is not in it and is read. The mark is
// rewritten (saveChecked) when what it holds changed and the check
// passes; failing to write it costs only reads.
//
// A manifest gone between the listing and its reading (a prune, a
// forget or a user removed it, with its data file) tells nothing, and is
// passed over (review 16, R16-6: the check failed).
func (s *CSV) forgetEvidence(v listView, accepted time.Time) (manifestEvidence, error) {
	files, err := filepath.Glob(filepath.Join(s.opt.Dir, "*", "*.manifest.json"))
	if err != nil {
		return manifestEvidence{}, err
	}
	return s.manifestsEvidence(files, v, accepted)
}

// manifestsEvidence is forgetEvidence of the manifests files.
func (s *CSV) manifestsEvidence(files []string, v listView, accepted time.Time) (manifestEvidence, error) {
	var ev manifestEvidence
	was := s.readChecked()
	now := manifestsChecked{Files: map[string]string{}, Forgets: map[string]checkedForget{}}
	note := func(rel string, c checkedForget) {
		name := filepath.Join(filepath.Dir(rel), c.File)
		if ev.erased == "" {
			ev.erased = name
		}
		st := c.Stamp
		if st == nil || !st.At.After(accepted) || ev.newer != "" && !st.At.After(ev.stamp.At) {
			return
		}
		m := v.lacks(st)
		if m.lost() {
			ev.newer, ev.stamp, ev.lacking = name, *st, m
		}
		ev.keyedOnly(name, m)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(s.opt.Dir, f)
		if strings.HasPrefix(rel, ".") {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			if id := fileIdentity(fi); id != "" && was.Files[rel] == id {
				now.Files[rel] = id
				continue
			} else if c, ok := was.Forgets[rel]; id != "" && ok && c.ID == id {
				now.Forgets[rel] = c
				note(rel, c)
				continue
			}
		}
		c, err := s.readManifestForget(f)
		if errors.Is(err, fs.ErrNotExist) {
			s.manifestGone(f) // removed since the listing (R16-6)
			continue
		}
		if err != nil {
			return ev, err
		}
		switch {
		case c.File != "":
			note(rel, c)
			if c.ID != "" {
				now.Forgets[rel] = c
			}
		case c.ID != "":
			now.Files[rel] = c.ID
		}
	}
	if !maps.Equal(was.Files, now.Files) || !maps.EqualFunc(was.Forgets, now.Forgets, checkedForget.same) {
		ev.mark = &now
	}
	return ev, nil
}

// manifestGone says, when the data file of the manifest at path, gone
// since the check listed it, is still there, that it was not read: a
// file being rewritten loses its manifest for an instant (docs/sinks.md),
// or a user removed it alone. It is in no mark, so the next check reads
// it. A manifest gone with its data file (a prune, or forget, emptied
// the file; a user removed both) told nothing of a row still there.
func (s *CSV) manifestGone(path string) {
	base := strings.TrimSuffix(path, ".manifest.json")
	for _, data := range []string{base + ".csv", base + ".csv.gz"} {
		if _, err := os.Lstat(data); err == nil {
			rel, _ := filepath.Rel(s.opt.Dir, data)
			s.opt.Log.Warn("a data file's manifest was gone when the check of the suppression list read it (being rewritten, or removed): the next check reads it", "file", rel)
			return
		}
	}
}

// saveChecked writes the mark forgetEvidence made, when it changed. A
// check that refuses writes none: a refused run changes nothing in the
// folder, and reads the manifests it refused on again.
func (s *CSV) saveChecked(ev manifestEvidence) {
	if ev.mark == nil {
		return
	}
	if err := s.writeChecked(*ev.mark); err != nil {
		s.opt.Log.Warn("the mark of the manifests checked for forget's erasures could not be written: the next check reads them all again", "file", s.checkedFile(), "err", s.advise(err))
	}
}

// checkedForget is a manifest counting rows erased by forget, as the
// mark keeps it: the identity of the version read, its data file's name
// (base name), and its forget stamp (nil when it has none: written by a
// release before the stamp).
type checkedForget struct {
	ID    string       `json:"id"`
	File  string       `json:"file"`
	Stamp *forgetStamp `json:"stamp,omitempty"`
	// Tags, in the mark's file, names the stamp's tags in the mark's
	// Stamps (packChecked); "" in memory.
	Tags string `json:"tags,omitempty"`
}

func (c checkedForget) same(d checkedForget) bool {
	return c.ID == d.ID && c.File == d.File && (c.Stamp == nil) == (d.Stamp == nil) &&
		(c.Stamp == nil || c.Stamp.Numbers == d.Stamp.Numbers && c.Stamp.At.Equal(d.Stamp.At) && slices.Equal(c.Stamp.Tags, d.Stamp.Tags))
}

// readManifestForget reads the manifest at path: when it counts rows
// erased by forget, the name of its data file (the manifest's own name
// when it names none) and its forget stamp; File "" else. ID is the
// identity of the file it read (fileIdentity of the open file, so that
// it is the version read).
func (s *CSV) readManifestForget(path string) (c checkedForget, err error) {
	f, err := os.Open(path)
	if err != nil {
		return c, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		c.ID = fileIdentity(fi)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return c, fmt.Errorf("read %s: %w", path, err)
	}
	s.manifestReads.Add(1)
	if !bytes.Contains(b, []byte(`"rows_replaced_forget"`)) && !bytes.Contains(b, []byte(`"rows_removed_forget"`)) {
		return c, nil
	}
	var m struct {
		File     string       `json:"file"`
		Replaced float64      `json:"rows_replaced_forget"`
		Removed  float64      `json:"rows_removed_forget"`
		Stamp    *forgetStamp `json:"forget_list"`
	}
	if json.Unmarshal(b, &m) != nil || m.Replaced+m.Removed <= 0 {
		return c, nil
	}
	c.File, c.Stamp = filepath.Base(path), m.Stamp
	if m.File != "" {
		c.File = filepath.Base(m.File)
	}
	return c, nil
}

// checkedFile is the mark of the manifests the lost-state check read
// (forgetEvidence): each by its name under the folder and its identity
// then, with what it told of forgets. In the state folder, beside the
// list.
func (s *CSV) checkedFile() string {
	return filepath.Join(s.opt.Dir, ".state", ".suppressed.checked.json")
}

// manifestsChecked is the mark's content: the manifests found counting
// no forget (Files), and those counting one (Forgets; a mark written
// before forget stamps has none, and such manifests are read again).
type manifestsChecked struct {
	Files   map[string]string        `json:"files"`
	Forgets map[string]checkedForget `json:"forgets,omitempty"`
	// Stamps holds, in the mark's file, the tags of the Forgets'
	// stamps, each once (packChecked); nil in memory.
	Stamps map[string][]string `json:"stamps,omitempty"`
}

// readChecked reads the mark (once for as long as it stays the same
// version: cachedState); empty when it is missing or damaged (then every
// manifest is read, and the mark written again). The caller must not
// change its maps.
func (s *CSV) readChecked() manifestsChecked {
	v, err := s.cachedState(s.checkedFile(), "", &s.markReads, func(b []byte) (any, error) {
		var m manifestsChecked
		json.Unmarshal(b, &m)
		return unpackChecked(m), nil
	})
	if m, ok := v.(manifestsChecked); err == nil && ok {
		return m
	}
	return manifestsChecked{}
}

// writeChecked replaces the mark by m, atomically.
func (s *CSV) writeChecked(m manifestsChecked) error {
	if _, err := s.mkdir(".state"); err != nil {
		return err
	}
	if m.Files == nil {
		m.Files = map[string]string{}
	}
	b, _ := json.Marshal(packChecked(m))
	return safefile.Write(s.checkedFile(), b, fileMode)
}

// latest is the latest of ts.
func latest(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

// acceptAt is the time to give as UndoneAccepted for the forgets up to
// last: last rounded up to the microsecond (PostgreSQL's precision), in
// a form the redactor of a pseudonymised sink's messages leaves as it is
// (nine digits of a fraction it would take for a number).
func acceptAt(last time.Time) string {
	return last.UTC().Truncate(time.Microsecond).Add(time.Microsecond).Format("2006-01-02T15:04:05.000000Z07:00")
}
