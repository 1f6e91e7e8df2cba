package sinks

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/wildix-export/wildix-export/exporter/jsonscan"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"golang.org/x/text/unicode/norm"
)

// Erasure on request (issue 30, README "Erasure"): a phone number a person
// asked to be forgotten is replaced, wherever a sink holds it, by the fixed
// marker Erased; the rows stay, so every count of calls stays right. The
// same rule runs in two places: `forget` rewrites what is stored
// (forget_postgres.go, forget_csv.go), and the suppression list applies it
// to every row an export writes afterwards (suppress.go), so a record still
// on the PBX comes back already erased, equal to the row forget left.

// Erased is what a forgotten number, and the name of the party that had
// it, become.
const Erased = "erased"

// ForgetFound is what forget found, or erased, in a sink: per table or
// file, the rows mentioning the number; and the recordings stored for
// calls with it (their names in the recordings store, for removal).
type ForgetFound struct {
	Places     []ForgetPlace
	Recordings []string
	// Numeric names the columns ("table.column") of a numeric type
	// holding the number, which cannot hold Erased: the erasure leaves
	// the number there and fails (numericThere), which a dry run says
	// ahead (DryRunError).
	Numeric []string
	// numericHow is how to set such a value to NULL, in the sink's terms.
	numericHow string
}

// ForgetPlace is one table or data file.
type ForgetPlace struct {
	Name string // a table, or a data file's path under EXPORT_CSV_DIR
	Rows int64
}

// Rows is the rows of every place.
func (f *ForgetFound) Rows() int64 {
	var n int64
	for _, p := range f.Places {
		n += p.Rows
	}
	return n
}

func (f *ForgetFound) add(name string, rows int64) {
	if rows > 0 {
		f.Places = append(f.Places, ForgetPlace{Name: name, Rows: rows})
	}
}

// rowsIn is the rows found in the place named name.
func (f *ForgetFound) rowsIn(name string) int64 {
	for _, p := range f.Places {
		if p.Name == name {
			return p.Rows
		}
	}
	return 0
}

// stillThere is the error of an erasure whose last search, f, still found
// the number: nil when it found none. why says where such rows come from
// and what to do, which differs by sink.
func (f *ForgetFound) stillThere(why string) error {
	if len(f.Places) == 0 {
		return nil
	}
	where := make([]string, 0, len(f.Places))
	for _, pl := range f.Places {
		where = append(where, fmt.Sprintf("%s (%d rows)", pl.Name, pl.Rows))
	}
	return fmt.Errorf("the number is still in %s after erasure: %s", strings.Join(where, ", "), why)
}

// numericThere is the error of an erasure whose last search, f, still
// found the number, in the numeric columns numeric ("table.column") among
// others: they cannot hold Erased, so the user sets the value to NULL, as
// how says for the sink. The words are the same on both sinks.
func (f *ForgetFound) numericThere(numeric []string, how string) error {
	return f.stillThere(numericWhy(numeric, how))
}

// numericWhy says that the numeric columns numeric cannot hold Erased,
// and what to do (how: in the sink's terms).
func numericWhy(numeric []string, how string) string {
	return fmt.Sprintf("column %s is numeric and cannot hold %q: set the value to NULL there yourself (%s), then run forget again to check",
		strings.Join(numeric, ", "), Erased, how)
}

// DryRunError is, for what a search found (f), the failure the erasure
// would end in, said ahead by forget --dry-run: a numeric column holding
// the number, named in the words the erasure uses (numericThere); nil
// when the erasure would leave the number nowhere forget knows of.
func (f *ForgetFound) DryRunError() error {
	if len(f.Numeric) == 0 {
		return nil
	}
	return fmt.Errorf("the erasure would fail, leaving the number in a numeric column: %s", numericWhy(f.Numeric, f.numericHow))
}

// MinForgetDigits is the fewest digits of a number forget takes: fewer
// are an extension or a short code, which are not found inside free text
// (pseudonym.Replace) and would be no one's in particular.
const MinForgetDigits = 7

// MaxForgetDigits is the most digits of a number forget takes: E.164's
// 15, country code included (after "+" or "00").
const MaxForgetDigits = 15

// Forgotten is one number to find: its canonical digits, and its
// pseudonym under each key the sink's rows may be pseudonymised with.
type Forgotten struct {
	digits string
	// intl: given with + or 00, its country code read (the national
	// forms follow); without, the digits are taken as the rows write
	// them, found only written without + or 00 (forget --as-written).
	intl       bool
	national   []string // pseudonym.NationalForms, when given internationally
	pseudonyms []string
	// inRow are the pseudonyms of the national forms under the keys,
	// erased only in a row found holding the number (eraseRow).
	inRow []string
	keys  []*pseudonym.Keyed // the keys given (As)
	// recKeys are the PBXes' keys of recordings' ids (KeyRecordingsWith).
	recKeys map[string]*pseudonym.Keyed
	// under is where the suppression list keeps the number (ListUnder);
	// nil: under the pseudonym key Suppress is given, else its own.
	under *listUnder
}

// listUnder is ListUnder's: the ids of the keys the sink's PBXes write
// under, and whether one writes in clear.
type listUnder struct {
	ids   []string
	clear bool
}

// ListUnder says under which keys the suppression list keeps the number
// (Suppress; attack 9, F4): under each of f's keys whose id is in ids
// (the keys the sink's PBXes write under), and under the list's own
// random key when clear (a PBX of the sink writes in clear), so that
// each PBX's run finds it under the key it writes with.
func (f *Forgotten) ListUnder(ids []string, clear bool) {
	f.under = &listUnder{ids: slices.Clone(ids), clear: clear}
}

// listKeys are the keys, pk first, the list keeps f's number under, and
// whether under its own random key too (ListUnder; without it, pk, or
// the random key when pk is nil).
func (f *Forgotten) listKeys(pk *pseudonym.Keyed) ([]*pseudonym.Keyed, bool) {
	if f.under == nil {
		if pk == nil {
			return nil, true
		}
		return []*pseudonym.Keyed{pk}, false
	}
	var out []*pseudonym.Keyed
	for _, k := range append([]*pseudonym.Keyed{pk}, f.keys...) {
		if k == nil || !slices.Contains(f.under.ids, k.KeyID()) || slices.ContainsFunc(out, func(o *pseudonym.Keyed) bool { return o.KeyID() == k.KeyID() }) {
			continue
		}
		out = append(out, k)
	}
	return out, f.under.clear
}

// NewForgotten checks number (any form: +39…, 0039…, spaces) and returns
// it with its pseudonyms under keys (nil ones skipped). The error says
// what the value should be, without repeating it.
func NewForgotten(number string, keys ...*pseudonym.Keyed) (*Forgotten, error) {
	// The messages give no example number: with pseudonymisation on, the
	// redactor would replace it by a pseudonym.
	if len(number) > 4*MaxForgetDigits {
		return nil, fmt.Errorf("%d characters: a phone number has at most %d digits (E.164), with a few spaces: give the number in international form, a + and the country code, then the number", len(number), MaxForgetDigits)
	}
	number = numberInput(number)
	d, ok := pseudonym.Canonical(number)
	if !ok {
		return nil, fmt.Errorf("not a phone number: expected a + or 00 and the country code (in brackets or not), then the number's digits, grouped by spaces, dashes, dots, slashes or brackets, a (0) after the country code allowed; no letter or other sign")
	}
	switch {
	case len(d) < MinForgetDigits:
		return nil, fmt.Errorf("%d digits: forget takes an external number of at least %d digits, in international form (a + and the country code, then the number); an extension is a colleague's, changed on the PBX", len(d), MinForgetDigits)
	case len(d) > MaxForgetDigits:
		return nil, fmt.Errorf("%d digits: a phone number has at most %d (E.164), country code included", len(d), MaxForgetDigits)
	case strings.Trim(d, "0") == "":
		return nil, fmt.Errorf("only zeros: not a phone number")
	}
	f := &Forgotten{digits: d}
	if t := strings.TrimSpace(number); strings.HasPrefix(t, "+") || strings.HasPrefix(t, "00") {
		f.intl = true
		f.national = pseudonym.NationalForms(d)
	}
	for _, k := range keys {
		if k != nil {
			f.keys = append(f.keys, k)
			f.pseudonyms = append(f.pseudonyms, k.Number(d))
			for _, v := range f.national {
				f.inRow = append(f.inRow, k.Number(v))
			}
		}
	}
	return f, nil
}

// numberInput is the number given to forget (--number) in the form
// pseudonym.Canonical reads, so that every way of writing it that forget
// finds in text is taken (attack4 F9): Unicode compatibility forms
// (fullwidth digits and plus) folded, every space (no-break, narrow) a
// space, every Unicode dash a "-", and a bracket opening the number
// dropped ("(+39) 352…", "(0039) 352…": Canonical ignores the closing
// one, and the country code is then seen as such).
func numberInput(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.Is(unicode.Pd, r):
			return '-'
		case unicode.IsSpace(r):
			return ' '
		}
		return r
	}, norm.NFKC.String(s))
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "("); ok {
		s = strings.TrimSpace(rest)
	}
	return s
}

// AddNationalPseudonyms makes f match the pseudonyms of its national
// forms under keys too (forget --national-forms). Off by default: the
// pseudonym of a national form is also the pseudonym of another
// country's international number with the same digits (Italy's 352
// 8512784 and Luxembourg's +352 8512784), which would be erased with it.
// It returns how many it added.
func (f *Forgotten) AddNationalPseudonyms(keys ...*pseudonym.Keyed) int {
	n := 0
	for _, k := range keys {
		if k != nil {
			for _, v := range f.national {
				f.pseudonyms = append(f.pseudonyms, k.Number(v))
				n++
			}
		}
	}
	return n
}

// As returns f searched as the journal's words search say
// (ForgetBegun.Search, of a search f's covers: searchCovers): the same
// number, the pseudonyms only under the keys search names, those of the
// national forms only when it names --national-forms. Forget counts with
// it what an interrupted narrower search left of its rows (review 10,
// R10-3). f's recordings' keys are not carried: As finds, never erases.
func (f *Forgotten) As(search string) *Forgotten {
	_, national, ids := readSearch(search)
	g := &Forgotten{digits: f.digits, intl: f.intl, national: f.national}
	for _, k := range f.keys {
		if !slices.Contains(ids, k.KeyID()) {
			continue
		}
		g.keys = append(g.keys, k)
		g.pseudonyms = append(g.pseudonyms, k.Number(f.digits))
		for _, v := range f.national {
			g.inRow = append(g.inRow, k.Number(v))
		}
	}
	if national {
		g.AddNationalPseudonyms(g.keys...)
	}
	return g
}

// forms are the number's digits and its national forms.
func (f *Forgotten) forms() []string { return append([]string{f.digits}, f.national...) }

// National reports whether the number was given with its country code
// (+ or 00), and so is also looked for in its national forms; false for
// a number given as the rows write it (forget --as-written).
func (f *Forgotten) National() bool { return f.intl }

// match reports whether v, a canonical number or a pseudonym, is it. A
// number written internationally (pseudonym.Replace's "+") is it only
// with its international digits: a national form is matched only in a
// number written without "+" or "00", else it is another country's. A
// number given without + or 00 (as written: no country code read into
// it) is never one written internationally: +3528512784 is Luxembourg's
// number, not the digits 3528512784 a row wrote (review 10, R10-5). A
// pseudonym keeps no "+": that of digits given as written is also that
// of the same digits written internationally (forget says so).
func (f *Forgotten) match(v string) bool {
	if d, ok := strings.CutPrefix(v, "+"); ok {
		return f.intl && d == f.digits
	}
	if v == f.digits || slices.Contains(f.national, v) {
		return true
	}
	for _, p := range f.pseudonyms {
		if v == p {
			return true
		}
	}
	return false
}

// matchInRow is match, and the pseudonyms of the number's national forms
// (inRow): for a row match found the number in (eraseRow).
func (f *Forgotten) matchInRow(v string) bool {
	return f.match(v) || slices.Contains(f.inRow, v)
}

// eraseRow erases f in cells (one row, in place) as sh says, and returns
// how many occurrences it replaced (0: the row is not f's, left as it
// is). A row is f's when match finds the number in it (international
// digits, a national form in clear, a pseudonym of those); in such a row
// the pseudonyms of the number's national forms go too (attack5 F3: a
// caller id the PBX wrote nationally, c_from's pseudonym of 3528512784
// beside from_number's of 393528512784, stayed in the rows forget erased,
// and no search named it). Alone in a row, such a pseudonym is not
// searched without --national-forms: it is also that of another
// country's number with the same digits (Luxembourg's +352 8512784). In
// a row that is the number's, it is taken as the number's, the other
// country's number beside it being far less likely than the PBX's
// national caller id.
func (f *Forgotten) eraseRow(sh *rowShape, cells []string) int {
	if len(f.inRow) == 0 {
		return sh.erase(cells, f.match)
	}
	if sh.erase(slices.Clone(cells), f.match) == 0 {
		return 0
	}
	return sh.erase(cells, f.matchInRow)
}

// eraseLine is eraseRow for a line of a state file or run ledger (JSON,
// or text): a line holding the number has its national forms'
// pseudonyms erased too.
func (f *Forgotten) eraseLine(l []byte) ([]byte, int) {
	out, c := eraseJSON(l, f.match)
	if c == 0 || len(f.inRow) == 0 {
		return out, c
	}
	return eraseJSON(l, f.matchInRow)
}

// pattern is a PostgreSQL regular expression every text holding the number
// matches (pseudonym.Pattern: the digits in any script, anything Replace
// lets between them, URL-encoded separators and JSON escapes included) or
// a pseudonym of it: a cheap filter for the rows worth reading; the rule
// decides. It is Replace's own, so that forget finds what the
// suppression list erases.
func (f *Forgotten) pattern() string {
	var alts []string
	for _, d := range f.forms() {
		alts = append(alts, pseudonym.Pattern(d))
	}
	for _, p := range f.pseudonyms {
		alts = append(alts, regexp.QuoteMeta(p))
	}
	return strings.Join(alts, "|")
}

// matcher says whether a canonical number or a pseudonym is forgotten.
type matcher func(v string) bool

// eraseText returns s with each occurrence replaced by Erased.
func eraseText(s string, m matcher) (string, int) {
	return pseudonym.Replace(s, m, Erased)
}

// namePairs are the columns (and raw fields) naming the party whose number
// is in another: erasing the number erases the name beside it. As the
// catalog and the views pair them, a name's party is the first of its
// number columns not empty: src names from_name's party only when
// from_number is empty (partyFirst), dst to_name's when to_number is.
var namePairs = map[string]string{"from_number": "from_name", "to_number": "to_name", "src": "from_name", "dst": "to_name"}

// partyFirst is, for a number column of namePairs, the column that names
// the party instead when it is not empty.
var partyFirst = map[string]string{"src": "from_number", "dst": "to_number"}

// cellKind is how a cell is searched.
type cellKind int

const (
	cellSkip cellKind = iota // not searched: a key, a time
	cellText
	cellJSON
	// cellNumeric is a numeric column's cell (CSV: the column's type in
	// the catalog): searched (numericMentions), never rewritten, as it
	// cannot hold Erased (PostgreSQL's column is searched as the row's
	// text, the same).
	cellNumeric
)

// rowShape is how one table's or file's rows are erased: a kind per
// cell, and for a number cell the index of its name cell (or -1).
//
// A number column's value (and its field in raw) that mentions the number
// is erased whole (whole, wholeRaw): it is a number alone, or a caller id
// whose every other part is the caller's name ("Mario Rossi <+39…>",
// "n:… <p:…>"), the rule of exporter/privacy's callerID (README,
// Privacy). Forget and the suppression list (Suppressor.Apply) share
// this, so that a re-export writes what forget left.
type rowShape struct {
	names    []string
	kinds    []cellKind
	pair     []int
	first    []int           // for a number cell of pair, partyFirst's cell (or -1)
	whole    []bool          // a number column's cell: erased whole
	wholeRaw map[string]bool // raw's fields (lower case) of number columns, and wholeExtra's
	// wholeExtra are the number fields no column reads (lower case:
	// record.Endpoint.PersonalFields, Asterisk's clid), in extra and raw.
	wholeExtra map[string]bool
	// wholeRecord is, for a cell named record holding a record as the PBX
	// sent it (export_quarantine.record), its endpoint's wholeRaw, by the
	// endpoint named in the cell at endpointCell: a quarantined record is
	// erased as its row's raw would be (forget and the suppression list
	// alike). An endpoint not given has none: its numbers alone go.
	wholeRecord  map[string]map[string]bool
	endpointCell int
	// partyNames are the name fields no column reads (lower case:
	// PersonalFields of kind name, the CDR's organization), in extra and
	// raw: a row whose only external party has the number (onlyParty)
	// has them erased, as the name beside a number column is;
	// recordNames is the same for a cell named record, by endpoint.
	partyNames  map[string]bool
	recordNames map[string]map[string]bool
}

// numberColumns returns the names of e's number columns (declared of
// kind number) and their fields in raw, in lower case, every shape's too,
// and the fields of kind number no column reads (PersonalFields), which
// are in extra and raw.
func numberColumns(e *record.Endpoint) (cols, fields, unread map[string]bool) {
	cols, fields, unread = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for f, p := range e.PersonalFields {
		if p.Kind == record.PersonalNumber {
			fields[strings.ToLower(f)] = true
			unread[strings.ToLower(f)] = true
		}
	}
	for _, c := range e.Columns {
		if e.Personal[c.Name].Kind == record.PersonalNumber {
			cols[c.Name] = true
			fields[strings.ToLower(c.Field)] = true
		}
	}
	for _, sh := range e.Shapes {
		for col, field := range sh.Fields {
			if cols[col] {
				fields[strings.ToLower(field)] = true
			}
		}
	}
	return cols, fields, unread
}

// endpointShape is the shape of e's rows as stored: its columns, then
// extra and, when withRaw, raw. Key columns are never rewritten: a row's
// key is how the PBX's record finds it again.
func endpointShape(e *record.Endpoint, withRaw bool) *rowShape {
	sh := &rowShape{}
	key := map[string]bool{}
	for _, k := range e.Key {
		key[k] = true
	}
	for _, c := range e.Columns {
		k := cellSkip
		switch {
		case key[c.Field]:
		case c.Type == record.Text:
			k = cellText
		case c.Type == record.JSON:
			k = cellJSON
		}
		sh.add(c.Name, k)
	}
	sh.add("extra", cellJSON)
	if withRaw {
		sh.add("raw", cellJSON)
	}
	sh.pairUp()
	sh.wholeNumbers(e)
	return sh
}

func (sh *rowShape) add(name string, k cellKind) {
	sh.names = append(sh.names, name)
	sh.kinds = append(sh.kinds, k)
}

// unreadNames are e's name fields no column reads (PersonalFields of
// kind name), in lower case.
func unreadNames(e *record.Endpoint) map[string]bool {
	out := map[string]bool{}
	for f, p := range e.PersonalFields {
		if p.Kind == record.PersonalName {
			out[strings.ToLower(f)] = true
		}
	}
	return out
}

// wholeNumbers marks the cells of e's number columns, and their fields in
// a cell named raw, and e's number fields no column reads in the cells
// named extra and raw, as erased whole; and e's name fields no column
// reads as erased in a row holding the number.
func (sh *rowShape) wholeNumbers(e *record.Endpoint) {
	cols, fields, unread := numberColumns(e)
	sh.wholeRaw, sh.wholeExtra, sh.partyNames = fields, unread, unreadNames(e)
	sh.whole = make([]bool, len(sh.names))
	for i, n := range sh.names {
		sh.whole[i] = cols[n]
	}
}

func (sh *rowShape) pairUp() {
	sh.pair = make([]int, len(sh.names))
	sh.first = make([]int, len(sh.names))
	for i, n := range sh.names {
		sh.pair[i], sh.first[i] = -1, -1
		if to, ok := namePairs[n]; ok {
			sh.pair[i] = slices.Index(sh.names, to)
		}
		if f, ok := partyFirst[n]; ok {
			sh.first[i] = slices.Index(sh.names, f)
		}
	}
}

// erase rewrites cells (one row, "" for NULL) in place and returns how
// many occurrences it replaced, the names beside erased numbers counted.
func (sh *rowShape) erase(cells []string, m matcher) int {
	n := 0
	var displays []string // extra's display forms of the number cells erased
	var stored []string   // the row as stored, for onlyParty and idOnlyParties
	if len(sh.partyNames) > 0 || len(sh.recordNames) > 0 || len(sh.wholeExtra) > 0 || len(sh.wholeRecord) > 0 {
		stored = slices.Clone(cells)
	}
	sides := sh.partySides(cells, m)
	named := func(i int) bool { return sh.first[i] < 0 || cells[sh.first[i]] == "" }
	before := make([]bool, len(cells)) // whether cell i's party is named by it, as stored
	for i := range cells {
		before[i] = sh.pair[i] >= 0 && named(i)
	}
	for i, k := range sh.kinds {
		var c int
		switch k {
		case cellText:
			cells[i], c = eraseText(cells[i], m)
			if c > 0 && sh.whole != nil && sh.whole[i] {
				cells[i] = Erased // the name beside goes with it
			}
		case cellJSON:
			var whole map[string]bool
			first := 0 // a column's value: its objects are parties'
			switch sh.names[i] {
			case "raw":
				whole, first = sh.wholeRaw, 1
			case "extra":
				whole, first = sh.wholeExtra, 1
			case "record":
				first = 1
				if sh.wholeRecord != nil {
					whole = sh.wholeRecord[cells[sh.endpointCell]]
				}
			}
			var b []byte
			b, c = eraseJSONWhole([]byte(cells[i]), m, whole, first)
			cells[i] = string(b)
		}
		n += c
		if c > 0 && before[i] {
			n += eraseName(&cells[sh.pair[i]])
		}
		if c > 0 && k == cellText {
			displays = append(displays, sh.names[i]+"_display")
		}
	}
	if x := slices.Index(sh.names, "extra"); x >= 0 && len(displays) > 0 {
		cells[x] = string(eraseDisplays([]byte(cells[x]), displays))
	}
	return n + sh.eraseOfParties(cells, stored, sides, m, n > 0)
}

// eraseOfParties is erase's last step, on a row (cells, stored: as
// stored) where the number was erased (hit): the names of its parties
// that erase's columns do not pair, when the number is a party's. The
// organization when the number is the only external party (onlyParty);
// a party's name when only its caller id had the number
// (idOnlyParties); the caller ids of the parties whose number was
// forgotten (sides, partySides). It returns how many it changed.
func (sh *rowShape) eraseOfParties(cells, stored []string, sides map[string]bool, m matcher, hit bool) int {
	n := 0
	if !hit || stored == nil {
		if len(sides) > 0 {
			n += sh.eraseCallerIDs(cells, sides)
		}
		return n
	}
	if sh.onlyParty(stored, m) {
		n += sh.eraseParty(cells)
	}
	unnamed := sh.idOnlyParties(stored, m)
	if len(unnamed) > 0 {
		n += sh.eraseIDOnlyNames(cells, unnamed)
		if sides == nil {
			sides = map[string]bool{}
		}
		for _, s := range unnamed {
			for _, f := range callerIDSides[s].ids {
				sides[f] = true
			}
		}
	}
	if len(sides) > 0 {
		n += sh.eraseCallerIDs(cells, sides)
	}
	return n
}

// callerIDSides are, for each party of a call, its own number fields
// (lower case: a column, or a top-level member of raw, extra or a
// quarantined record), its caller-id fields (clid and c_from are the
// caller's, c_to the callee's), and its name field. dialled are fields
// saying the party's number only when its own number fields are empty:
// dnid, the number dialled, is the callee's on an outbound call (on an
// inbound one the company's, whose callee, a colleague, has its own
// number field). did, the trunk's number called, is the company's: it
// goes only when it mentions the number.
var callerIDSides = []partySide{
	{[]string{"from_number", "src"}, []string{"clid", "c_from"}, nil, "from_name"},
	{[]string{"to_number", "dst"}, []string{"c_to"}, []string{"dnid"}, "to_name"},
}

type partySide struct {
	numbers, ids, dialled []string
	name                  string
}

// idOnlyParties returns the parties (indexes of callerIDSides) of cells
// (one row, as stored) whose number is said only by a caller-id field
// (or a dialled one) holding the number: their own number fields name no
// one (empty, "anonymous", "unknown": no digit, no pseudonym). Such a
// party's name is the forgotten person's, as it would be beside the
// number in its own field (attack4 F5). A party whose own field holds a
// colleague's extension or another number keeps its name: the caller id
// then says another's number (a call presented under another number).
// The caller-id fields count where the shape declares them (wholeExtra,
// wholeRecord), as eraseCallerIDs.
func (sh *rowShape) idOnlyParties(cells []string, m matcher) []int {
	if len(sh.wholeExtra) == 0 && len(sh.wholeRecord) == 0 {
		return nil // no caller-id field in this shape
	}
	var said, someone [2]bool
	// look notes the field name (lower case) of a party holding v, of
	// which c occurrences are the number; declared: whether a caller-id
	// field is declared there.
	look := func(name, v string, c int, declared bool) {
		for s, side := range callerIDSides {
			switch {
			case slices.Contains(side.numbers, name):
				someone[s] = someone[s] || namesSomeone(v)
			case declared && (slices.Contains(side.ids, name) || slices.Contains(side.dialled, name)):
				said[s] = said[s] || c > 0
			}
		}
	}
	for i, name := range sh.names {
		var declared map[string]bool
		switch name {
		case "raw", "extra":
			declared = sh.wholeExtra
		case "record":
			declared = sh.wholeRecord[cells[sh.endpointCell]]
		}
		switch k := sh.kinds[i]; {
		case k == cellText:
			_, c := eraseText(cells[i], m)
			look(name, cells[i], c, false)
		case k == cellJSON && declared != nil && cells[i] != "":
			jsonscan.Rewrite([]byte(cells[i]), jsonscan.Rewriter{Value: func(at *jsonscan.Path, lit []byte) []byte {
				if member, top := at.Top(); top {
					f := strings.ToLower(member)
					_, c := eraseLiteral(lit, m)
					v := string(lit)
					if lit[0] == '"' {
						v = jsonscan.Unquote(lit)
					}
					look(f, v, c, declared[f])
				}
				return nil
			}})
		}
	}
	var out []int
	for s := range callerIDSides {
		if said[s] && !someone[s] {
			out = append(out, s)
		}
	}
	return out
}

// namesSomeone reports whether v, a party's own number field, names a
// party: it holds a digit (a number, an extension) or a pseudonym. Empty,
// "anonymous", "unknown", "restricted" name no one.
func namesSomeone(v string) bool {
	if strings.IndexFunc(v, unicode.IsDigit) >= 0 {
		return true
	}
	found := false
	pseudonym.Replace(v, func(string) bool { found = true; return false }, "")
	return found
}

// eraseIDOnlyNames makes Erased the name fields of the parties (indexes
// of callerIDSides, idOnlyParties) whose number only a caller-id field
// said: a text cell named so, and the top-level member named so of raw,
// extra and a quarantined record. It returns how many it changed.
func (sh *rowShape) eraseIDOnlyNames(cells []string, parties []int) int {
	names := map[string]bool{}
	for _, s := range parties {
		names[callerIDSides[s].name] = true
	}
	n := 0
	for i, name := range sh.names {
		switch k := sh.kinds[i]; {
		case k == cellText && names[name]:
			n += eraseName(&cells[i])
		case k == cellJSON && (name == "raw" || name == "extra" || name == "record") && cells[i] != "":
			cells[i] = string(eraseNamesFold([]byte(cells[i]), names, &n))
		}
	}
	return n
}

// partySides returns the caller-id fields (lower case) of the parties
// whose own number field holds the number in cells (one row, as stored).
func (sh *rowShape) partySides(cells []string, m matcher) map[string]bool {
	if len(sh.wholeExtra) == 0 && len(sh.wholeRecord) == 0 {
		return nil // no caller-id field in this shape
	}
	var out map[string]bool
	hit := func(side int) {
		if out == nil {
			out = map[string]bool{}
		}
		for _, f := range callerIDSides[side].ids {
			out[f] = true
		}
	}
	sideOf := func(name string) int {
		for s, side := range callerIDSides {
			if slices.Contains(side.numbers, name) {
				return s
			}
		}
		return -1
	}
	for i, name := range sh.names {
		switch k := sh.kinds[i]; {
		case k == cellText:
			if s := sideOf(name); s >= 0 {
				if _, c := eraseText(cells[i], m); c > 0 {
					hit(s)
				}
			}
		case k == cellJSON && (name == "raw" || name == "extra" || name == "record") && cells[i] != "":
			jsonscan.Rewrite([]byte(cells[i]), jsonscan.Rewriter{Value: func(at *jsonscan.Path, lit []byte) []byte {
				if member, top := at.Top(); top {
					if s := sideOf(strings.ToLower(member)); s >= 0 {
						if _, c := eraseLiteral(lit, m); c > 0 {
							hit(s)
						}
					}
				}
				return nil
			}})
		}
	}
	return out
}

// eraseCallerIDs makes Erased, in the JSON cells raw, extra and record,
// the caller-id fields (ids, lower case) of the parties whose number was
// forgotten (partySides), when the shape declares them number fields
// (wholeExtra, wholeRecord): a caller id with the party's name and no
// number ("Mario Rossi" <>, written when the caller-id number is empty)
// goes with the number, as from_name does (attack3 F1). One holding
// another number (or its pseudonym) is kept: it may be another party's.
// It returns how many it changed.
func (sh *rowShape) eraseCallerIDs(cells []string, ids map[string]bool) int {
	n := 0
	for i, k := range sh.kinds {
		if k != cellJSON || cells[i] == "" {
			continue
		}
		var declared map[string]bool
		switch sh.names[i] {
		case "raw", "extra":
			declared = sh.wholeExtra
		case "record":
			declared = sh.wholeRecord[cells[sh.endpointCell]]
		}
		if len(declared) == 0 {
			continue
		}
		out, err := jsonscan.Rewrite([]byte(cells[i]), jsonscan.Rewriter{Value: func(at *jsonscan.Path, lit []byte) []byte {
			member, top := at.Top()
			if f := strings.ToLower(member); !top || !ids[f] || !declared[f] || lit[0] != '"' {
				return nil
			}
			s := jsonscan.Unquote(lit)
			if otherNumber(s) || eraseName(&s) == 0 {
				return nil
			}
			n++
			return jsonscan.Quote(Erased)
		}})
		if err == nil {
			cells[i] = string(out)
		}
	}
	return n
}

// otherNumber reports whether s holds a number (pseudonym.Replace's, of
// 7 digits or more) or a number's pseudonym, a name's pseudonym aside.
func otherNumber(s string) bool {
	other := false
	pseudonym.Replace(s, func(v string) bool {
		if !strings.HasPrefix(v, pseudonym.NamePrefix) {
			other = true
		}
		return false
	}, "")
	return other
}

// partyFields are the number fields (lower case: a column, or a top-level
// member of raw, extra or a quarantined record) of a call's two parties:
// from_number, src, the caller ids clid and c_from for the caller;
// to_number, dst, c_to for the callee. dnid and did are no party's own:
// on an inbound call they are the company's number.
var partyFields = map[string]bool{
	"from_number": true, "src": true, "c_from": true, "clid": true,
	"to_number": true, "dst": true, "c_to": true,
}

// onlyParty reports whether the number is the only external party of the
// row cells (as stored): a party's number field (partyFields) holds it,
// and none holds another number (pseudonym.Replace's, of 7 digits or more:
// another external party's, or a colleague's long extension) or another
// number's pseudonym. The name fields no column reads (partyNames: the
// CDR's organization) do not say whose they are: they are the forgotten
// party's only then, and kept otherwise (a transfer, an external call
// forwarded to another external number, the number in free text alone),
// as they may be the other party's (issue 30: everything else unchanged).
func (sh *rowShape) onlyParty(cells []string, m matcher) bool {
	has, other := false, false
	look := func(erased string, c int) {
		has = has || c > 0
		pseudonym.Replace(erased, func(v string) bool {
			if !strings.HasPrefix(v, pseudonym.NamePrefix) {
				other = true
			}
			return false
		}, "")
	}
	for i, name := range sh.names {
		switch k := sh.kinds[i]; {
		case k == cellText && partyFields[name]:
			look(eraseText(cells[i], m))
		case k == cellJSON && (name == "raw" || name == "extra" || name == "record") && cells[i] != "":
			jsonscan.Rewrite([]byte(cells[i]), jsonscan.Rewriter{Value: func(at *jsonscan.Path, lit []byte) []byte {
				if member, top := at.Top(); top && partyFields[strings.ToLower(member)] {
					look(eraseLiteral(lit, m))
				}
				return nil
			}})
		}
	}
	return has && !other
}

// eraseParty makes the party's name fields no column reads (partyNames,
// recordNames) Erased in the JSON cells of a row whose only external
// party has the number (onlyParty), and returns how many it changed.
func (sh *rowShape) eraseParty(cells []string) int {
	n := 0
	for i, k := range sh.kinds {
		if k != cellJSON {
			continue
		}
		var names map[string]bool
		switch sh.names[i] {
		case "raw", "extra":
			names = sh.partyNames
		case "record":
			names = sh.recordNames[cells[sh.endpointCell]]
		}
		if len(names) > 0 && cells[i] != "" {
			cells[i] = string(eraseNamesFold([]byte(cells[i]), names, &n))
		}
	}
	return n
}

// numericMentions returns the indexes of the numeric cells (cellNumeric)
// of cells (one row) holding the number.
func (sh *rowShape) numericMentions(cells []string, m matcher) []int {
	var out []int
	for i, k := range sh.kinds {
		if k == cellNumeric {
			if _, c := eraseText(cells[i], m); c > 0 {
				out = append(out, i)
			}
		}
	}
	return out
}

// eraseDisplays makes the members of extra named in displays Erased: the
// display form (EXPORT_PSEUDONYM_DISPLAY, "+39 ••• ••• 84") of a number
// column erased, which keeps the country code and last two digits. They
// are not counted (the number was); the guard writes a display form of
// Erased for a number the suppression list erased, so that both give the
// same row.
func eraseDisplays(extra []byte, displays []string) []byte {
	out, err := jsonscan.Rewrite(extra, jsonscan.Rewriter{Value: func(at *jsonscan.Path, lit []byte) []byte {
		member, top := at.Top()
		if !top || !slices.Contains(displays, member) || lit[0] != '"' || jsonscan.Unquote(lit) == Erased {
			return nil
		}
		return jsonscan.Quote(Erased)
	}})
	if err != nil {
		return extra
	}
	return out
}

// eraseName makes a non-empty name Erased, counting 1 when it changed.
func eraseName(s *string) int {
	if *s == "" || *s == Erased {
		return 0
	}
	*s = Erased
	return 1
}

// eraseJSON returns the JSON text raw with each string (and integer) and
// each member's name holding the number rewritten, every other byte kept:
// member order and spacing stay as the PBX sent them, so that the same
// record erased by forget and by the suppression list gives the same
// bytes. A member renamed onto the name of another member of its object
// ({"393528512784": 1, "erased": 2}) takes erased#2, or the first free
// #N (jsonscan.Rewrite): no member is lost. A member of the top-level
// object in namePairs whose value changed has its paired member's string
// erased too. Text that is not JSON is erased as text.
//
// The walk is jsonscan.Rewrite's, shared with exporter/privacy's
// pseudonymisation; this is only forget's policy.
func eraseJSON(raw []byte, m matcher) ([]byte, int) {
	return eraseJSONWhole(raw, m, nil, -1)
}

// eraseJSONWhole is eraseJSON, with the string of a top-level member
// named in whole (lower case: a number column's field) made Erased whole
// when it mentions the number; and, unless first is -1, in an object at
// depth first or deeper (1 for a row's raw, extra or quarantined record,
// whose top-level object is the record; 0 for a column's value) that
// holds the number (partyObjects: a party's, a call group's external
// member {"extension": "+39…", "name": …}), the strings of its members
// named as a name (record.NameField) made Erased too, the party's name
// going with its number: pseudonymisation takes them for the party's
// names (exporter/privacy's json, attack 30 B2).
func eraseJSONWhole(raw []byte, m matcher, whole map[string]bool, first int) ([]byte, int) {
	if len(raw) == 0 {
		return raw, 0
	}
	out, n, err := eraseJSONPass(raw, m, whole, nil)
	if err == nil && n > 0 && first >= 0 && bytes.Count(raw, []byte("{")) > first {
		if parties := partyObjects(raw, m, first); len(parties) > 0 {
			out, n, err = eraseJSONPass(raw, m, whole, parties)
		}
	}
	if err != nil {
		s, n := eraseText(string(raw), m)
		return []byte(s), n
	}
	if n == 0 {
		return raw, 0
	}
	return out, n
}

// partyObjects returns the starts (jsonscan.Path.Start) of the objects of
// the valid JSON text raw at depth first or deeper holding the number in
// a member's name or value (or in an array there).
func partyObjects(raw []byte, m matcher, first int) map[int]bool {
	marks := map[int]bool{}
	mark := func(at *jsonscan.Path, c int) {
		if d := at.InnermostObject(); c > 0 && d >= first {
			marks[at.Start(d)] = true
		}
	}
	jsonscan.Rewrite(raw, jsonscan.Rewriter{
		Name: func(at *jsonscan.Path, name string) string {
			_, c := eraseText(name, m)
			mark(at, c)
			return name
		},
		Value: func(at *jsonscan.Path, lit []byte) []byte {
			_, c := eraseLiteral(lit, m)
			mark(at, c)
			return nil
		},
	})
	return marks
}

// eraseJSONPass is one pass of eraseJSONWhole over raw, the names of the
// objects starting at parties erased; it returns the text, how many it
// erased, and an error when raw is not JSON.
func eraseJSONPass(raw []byte, m matcher, whole map[string]bool, parties map[int]bool) ([]byte, int, error) {
	n := 0
	changed := map[string]bool{}
	stored := map[string]string{} // top-level strings, as stored
	out, err := jsonscan.Rewrite(raw, jsonscan.Rewriter{
		Name: func(_ *jsonscan.Path, name string) string {
			t, c := eraseText(name, m)
			n += c
			return t
		},
		Value: func(at *jsonscan.Path, lit []byte) []byte {
			member, top := at.Top()
			t, c := eraseLiteral(lit, m)
			if top && lit[0] == '"' {
				stored[member] = jsonscan.Unquote(lit)
			}
			if c == 0 && lit[0] == '"' && len(parties) > 0 {
				if d := at.InnermostObject(); d >= 0 && parties[at.Start(d)] {
					if name, _ := at.Member(d); record.NameField(name) {
						if s := jsonscan.Unquote(lit); eraseName(&s) > 0 {
							n++
							return jsonscan.Quote(Erased)
						}
					}
				}
			}
			if c == 0 {
				return nil
			}
			n += c
			if top {
				changed[member] = true
				if lit[0] == '"' && whole[strings.ToLower(member)] {
					t = Erased
				}
			}
			return jsonscan.Quote(t)
		},
	})
	if err != nil || n == 0 {
		return out, n, err
	}
	names := map[string]bool{}
	for k := range changed {
		if to, ok := namePairs[k]; ok && (partyFirst[k] == "" || stored[partyFirst[k]] == "") {
			names[to] = true
		}
	}
	if len(names) == 0 {
		return out, n, nil
	}
	return eraseNames(out, names, &n), n, nil
}

// eraseLiteral returns the text of the JSON literal lit (a string's, or
// an integer's: no other holds a phone number) with each occurrence
// erased, and how many it erased.
func eraseLiteral(lit []byte, m matcher) (string, int) {
	s := string(lit)
	if lit[0] == '"' {
		s = jsonscan.Unquote(lit)
	} else if strings.ContainsAny(s, ".eE-") || lit[0] > '9' {
		return "", 0
	}
	return eraseText(s, m)
}

// eraseNames returns the valid JSON text b with the strings of its
// top-level members named in names made Erased, adding to *n each it
// changed.
func eraseNames(b []byte, names map[string]bool, n *int) []byte {
	return eraseMembers(b, func(member string) bool { return names[member] }, n)
}

// eraseNamesFold is eraseNames with the members' names matched in any
// case (names in lower case); b that is not JSON is returned as it is.
func eraseNamesFold(b []byte, names map[string]bool, n *int) []byte {
	return eraseMembers(b, func(member string) bool { return names[strings.ToLower(member)] }, n)
}

func eraseMembers(b []byte, named func(member string) bool, n *int) []byte {
	out, err := jsonscan.Rewrite(b, jsonscan.Rewriter{Value: func(at *jsonscan.Path, lit []byte) []byte {
		member, top := at.Top()
		if !top || !named(member) || lit[0] != '"' {
			return nil
		}
		if s := jsonscan.Unquote(lit); eraseName(&s) == 0 {
			return nil
		}
		*n++
		return jsonscan.Quote(Erased)
	}})
	if err != nil {
		return b
	}
	return out
}

// ForgetBegun is a forget that is changing the sink and has not completed
// its erasure yet: an entry of the sink's forget journal (BeginForget),
// written before its first change and dropped by the ledger entry of the
// forget that completes it (RecordForget). A forget killed midway leaves
// it; one that fails (a numeric column, a table forget does not know, a
// lock refused) leaves it too, its counts in a failed ledger entry and
// the entry renewed for what is left (RecordForget's next). The forget
// that completes the same erasure (SameErasure) records, under its id,
// the rows it found that the completing run's last search proves erased
// (attack4 F8: the ledger said 279 of 2330); one of another number warns
// that that number's erasure is unfinished. It holds no number: Tag names
// the number without telling it.
type ForgetBegun struct {
	ID      string    `json:"id"`  // the run id its ledger entry takes
	PBX     string    `json:"pbx"` // the PBX whose ledger that entry is in
	Started time.Time `json:"started"`
	Tag     string    `json:"tag"`
	// Search says how the number was searched (its forms, the pseudonym
	// keys, --national-forms), in words: an erasure searched otherwise
	// finds other rows, so it does not complete this one ("" in an entry
	// of an earlier version: any search of the number does).
	Search string `json:"search,omitempty"`
	// Rows are the rows it found; Recordings the recording files of calls
	// with the number it found stored.
	Rows       int64 `json:"rows"`
	Recordings int   `json:"recordings"`
	// Added says that it added the number to the suppression list.
	Added bool `json:"added,omitempty"`
	// Store is the identity of the recordings store it removed files
	// from (as a pending prune's record keeps it: the folder's absolute
	// path; the S3 server's host, bucket and prefix), and Removed the
	// tags (ForgetFileTag) of those files, each written just before its
	// removal (ForgetRemoving). A forget of the same erasure against the
	// same store takes such a file missing from the store as removed by
	// it; any other missing file, or another store, is refused (attack5
	// F1 and review 10, R10-1: tags of every file found, written before
	// any removal, made a re-run pointed at another store take them all
	// as removed). Names, which may hold the number, are not kept.
	Store   string   `json:"store,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Counted are the tags of Removed whose removal a failed forget's
	// ledger entry counted already (RecordForget's next): the forget that
	// completes the erasure takes them as removed, and does not count them
	// again (review 13, R13-1: counted twice).
	Counted []string `json:"counted,omitempty"`
	// Continues, in the entry a failed forget leaves for what it left
	// (RecordForget's next), is the run id of that forget's ledger entry,
	// which counts Counted. The CSV sink writes it after this entry
	// (RecordForget is three writes there), so ForgetJournal judges it by
	// the ledger: without that entry (killed between the two), Counted is
	// left out, and the forget completing the erasure counts those files
	// (review 18, R18-1: taken as counted, they were in no entry); with
	// it recorded ok (the erasure completed under that id by a forget that
	// took the killed one's first entry, itself killed before dropping
	// this one), the entry is done, and left out (counted twice else). ""
	// in an entry of an earlier version: taken as it is.
	Continues string `json:"continues,omitempty"`
}

// same reports whether j and o are the same entry, field by field.
func (j ForgetBegun) same(o ForgetBegun) bool {
	return slices.Equal(j.Removed, o.Removed) && slices.Equal(j.Counted, o.Counted) && j.ID == o.ID && j.PBX == o.PBX && j.Started.Equal(o.Started) && j.Tag == o.Tag &&
		j.Search == o.Search && j.Rows == o.Rows && j.Recordings == o.Recordings && j.Added == o.Added && j.Store == o.Store && j.Continues == o.Continues
}

// ForgetFileTag is the forget journal's name of the recording file name
// in the store whose identity is store, removed by the erasure whose tag
// is tag (ForgetTag): keyed by tag, so that it tells nothing of the name,
// which may hold the number, without the suppression list's key; and of
// the store too, so that a file of another store never matches. Letters
// only, as ForgetTag.
func ForgetFileTag(tag, store, name string) string {
	sum := sha256.Sum256([]byte("wildix-export forget journal file\x00" + tag + "\x00" + store + "\x00" + name))
	b := make([]byte, 0, 32)
	for _, c := range sum[:16] {
		b = append(b, 'a'+c>>4, 'a'+c&15)
	}
	return string(b)
}

// ForgetTagOf is the forget journal's tag of f's number, as ForgetTag of
// the hash Suppress gives it (under the list's first section's key, pk or
// one of f's), read without changing the list: "" when the list has no
// key yet, so that no forget of any number began.
func (l *Suppression) ForgetTagOf(f *Forgotten, pk *pseudonym.Keyed) (string, error) {
	if l == nil || l.KeyID == "" && l.Key == nil {
		return "", nil
	}
	k := l.sections()[0].keyOf(append([]*pseudonym.Keyed{pk}, f.keys...))
	if k == nil {
		return "", l.missingKey(l.KeyID)
	}
	return ForgetTag(listTag(k, k.Number(f.digits))), nil
}

// markRemoving adds file (ForgetFileTag) to the removed files of the
// entry id of journal, in place, its store set to store; false when
// journal has no entry id.
func markRemoving(journal []ForgetBegun, id, store, file string) bool {
	for i := range journal {
		if journal[i].ID == id {
			journal[i].Store = store
			if !slices.Contains(journal[i].Removed, file) {
				journal[i].Removed = append(journal[i].Removed, file)
			}
			return true
		}
	}
	return false
}

// SameErasure reports whether the forget b completes the erasure j: the
// same number (Tag) searched as j was or more widely (Search, searchCovers).
// Which PBX's configuration runs it does not matter: forget erases every
// PBX's rows of the sink, on both sinks, so a forget of the number run
// for another PBX erases what j's would have (review 6, R6-3: matched by
// the number alone, a forget searching other forms or keys completed j,
// counting rows it had not searched as erased).
func (j ForgetBegun) SameErasure(b ForgetBegun) bool {
	return j.Tag == b.Tag && (j.Search == "" || searchCovers(b.Search, j.Search))
}

// searchCovers reports whether a forget searching as b says finds all a
// forget searching as j says found (ForgetBegun.Search, in the words
// forget writes: the --number form, then "--national-forms" when given,
// then "pseudonym key(s)" and the key ids, or "no pseudonym key"): the
// same --number form, --national-forms when j had it, every key of j's.
// So after a key change (j under K1, every later forget needing K1 and
// K2) a forget can still complete j (review 8, R8-2: compared as exact
// strings, j could never be completed).
func searchCovers(b, j string) bool {
	if b == j {
		return true
	}
	bForm, bNational, bKeys := readSearch(b)
	jForm, jNational, jKeys := readSearch(j)
	if bForm != jForm || jNational && !bNational {
		return false
	}
	for _, k := range jKeys {
		if !slices.Contains(bKeys, k) {
			return false
		}
	}
	return true
}

// readSearch reads a search's words (ForgetBegun.Search): the --number
// form, whether --national-forms, the key ids.
func readSearch(s string) (form string, national bool, keys []string) {
	parts := strings.Split(s, ", ")
	form = parts[0]
	for _, p := range parts[1:] {
		switch {
		case p == "--national-forms":
			national = true
		case strings.HasPrefix(p, "pseudonym key(s) "):
			keys = strings.Fields(strings.TrimPrefix(p, "pseudonym key(s) "))
		}
	}
	return form, national, keys
}

// ForgetTag is the forget journal's name of the number whose suppression
// list hash is h (Suppress): keyed as h is, so that it tells nothing
// without the list's key, and not h itself, the number's pseudonym in a
// pseudonymised sink, which forget's search would find in the journal.
// Letters only (a nibble each): no digit of it can read as a number.
func ForgetTag(h string) string {
	sum := sha256.Sum256([]byte("wildix-export forget journal\x00" + h))
	b := make([]byte, 0, 32)
	for _, c := range sum[:16] {
		b = append(b, 'a'+c>>4, 'a'+c&15)
	}
	return string(b)
}

// beginForget returns journal with b added, unless it holds an entry b
// completes already: the earliest attempt found the most, and is kept.
// An entry of b's id is replaced by b: the earliest attempt's, widened
// to the search a wider forget runs (review 10, R10-3: kept as it was,
// what the wider search found was journalled nowhere).
func beginForget(journal []ForgetBegun, b ForgetBegun) []ForgetBegun {
	if i := slices.IndexFunc(journal, func(j ForgetBegun) bool { return j.ID == b.ID }); i >= 0 {
		out := slices.Clone(journal)
		out[i] = b
		return out
	}
	if slices.ContainsFunc(journal, func(j ForgetBegun) bool { return j.SameErasure(b) }) {
		return journal
	}
	return append(journal, b)
}

// endForget returns journal without the entries the forget b completes
// (SameErasure), and with next, when not nil, at its end: the entry of
// what a failed forget left to erase.
func endForget(journal []ForgetBegun, b ForgetBegun, next *ForgetBegun) []ForgetBegun {
	out := slices.DeleteFunc(slices.Clone(journal), func(j ForgetBegun) bool { return j.SameErasure(b) })
	if next != nil {
		out = append(out, *next)
	}
	return out
}
