package privacy

import (
	"bytes"
	"encoding/json"
	"math/big"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wildix-export/wildix-export/exporter/jsonscan"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// maxExtensionDigits is the most digits an internal number has: an
// extension, a group or a short code stays readable. It is Scrub's limit
// (a number in free text has at least 7 digits) and the reporting views'
// internal_shape (2 to 6 digits), so that a view tells internal from
// external alike on pseudonymised data.
const maxExtensionDigits = 6

// plan is how one endpoint's rows are pseudonymised under a rule: a kind
// per column (none for a column left as it is) and per raw field.
type plan struct {
	names  []string          // by column index
	cols   []record.Personal // by column index; Kind "" for none
	raw    []record.Personal // by column index, for its raw field: a typed column's too
	of     [][]int           // by column index: a name's number columns
	fields map[string]int    // PBX field, in lower case → column index, every shape's too
	// declared are the fields no column reads that the catalog declares
	// personal (record.Endpoint.PersonalFields), in lower case: in raw
	// and extra they are replaced as a column of their kind.
	declared map[string]record.Personal
}

// newPlan reads ep's declarations. A text or jsonb column declared of no
// kind is free text (anyText), in its column and its raw field, so that a
// number in a column no one thought personal (a custom endpoint without a
// "personal" block, contacts' organization, a duration sent as text) is
// replaced all the same; left as they are: the key columns and those
// declared record.PersonalNone. A column of another type (a duration, a
// time) holds no string, but its raw field may ("duration": "+39 352…"):
// a string there is free text too, a JSON number the column's value
// (typedText).
func newPlan(ep *record.Endpoint) *plan {
	n := len(ep.Columns)
	p := &plan{names: make([]string, n), cols: make([]record.Personal, n), raw: make([]record.Personal, n), of: make([][]int, n), fields: map[string]int{},
		declared: ep.PersonalFields}
	keys := map[string]bool{}
	for _, f := range ep.Key {
		keys[f] = true
	}
	for _, s := range ep.Shapes {
		for col, field := range s.Fields {
			if i := ep.Column(col); i >= 0 && slices.Contains(s.Key, field) {
				keys[ep.Columns[i].Field] = true // a shape's key: the PBX's id
			}
		}
	}
	for i, c := range ep.Columns {
		p.names[i] = c.Name
		p.cols[i] = ep.Personal[c.Name]
		switch {
		case p.cols[i].Kind == record.PersonalNone:
			p.cols[i] = record.Personal{}
		case p.cols[i].Kind == "" && !keys[c.Field]:
			p.raw[i] = typedText
			if c.Type == record.Text || c.Type == record.JSON {
				p.cols[i] = anyText
			}
		}
		if p.cols[i].Kind != "" {
			p.raw[i] = p.cols[i]
		}
		for _, o := range p.cols[i].OfColumns() {
			if j := ep.Column(o); j >= 0 {
				p.of[i] = append(p.of[i], j)
			}
		}
		p.fields[strings.ToLower(c.Field)] = i
	}
	for _, s := range ep.Shapes {
		for col, field := range s.Fields {
			if i := ep.Column(col); i >= 0 {
				if _, ok := p.fields[strings.ToLower(field)]; !ok {
					p.fields[strings.ToLower(field)] = i
				}
			}
		}
	}
	return p
}

// replacer pseudonymises one row's values.
type replacer struct {
	g    *Guard
	long map[string]bool // the PBX's own extensions of more than 6 digits (Guard.SetExtensions)
	// clear: every number in clear is internal (Guard.clearInternal); an
	// external one is a number pseudonym (numberPseudonym).
	clear bool
}

// internal reports whether v is an internal number: one of at most
// maxExtensionDigits digits, or one of the PBX's own longer extensions
// (long, canonical digits: Guard.SetExtensions), not written
// internationally either way ("+39 0312" is a short number abroad, not an
// extension; the views' internal_shape does not take it for one either).
// A longer number not in long is external: a local number of 7 digits is
// never told from an extension by its shape.
func internal(v string, long map[string]bool) bool {
	t := strings.TrimSpace(v)
	if strings.HasPrefix(t, "+") || strings.HasPrefix(t, "00") {
		return false
	}
	c, ok := pseudonym.Canonical(v)
	return ok && (len(c) <= maxExtensionDigits || long[c])
}

func (r *replacer) internal(v string) bool {
	if r.clear {
		_, ok := pseudonym.Canonical(v) // a pseudonym is no number
		return ok
	}
	return internal(v, r.long)
}

// scrub returns the free text v with its numbers replaced (Scrub), but
// for the PBX's own long extensions (r.long), unless v writes one of
// them internationally (keepIn).
func (r *replacer) scrub(v string) string {
	if r.clear {
		return v // every number in clear is internal
	}
	return r.g.Keys.Scrub(v, keepIn(v, r.long))
}

// keepIn is Scrub's keep for the free text v: the canonical digits of a
// number in long, when v does not write those digits after a "+" or
// "00" (Scrub's keep sees only the digits; "+2012345" in v is not the
// extension 2012345). In doubt (the digits once written so, anywhere in
// v) it replaces. Nil when long is empty.
func keepIn(v string, long map[string]bool) func(string) bool {
	if len(long) == 0 {
		return nil
	}
	var marked strings.Builder // v's digits and international marks only
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= '0' && c <= '9', c == '+':
			marked.WriteByte(c)
		case c == '%' && i+2 < len(v) && v[i+1] == '2' && (v[i+2] == 'B' || v[i+2] == 'b'):
			marked.WriteByte('+')
			i += 2
		case strings.HasPrefix(v[i:], "\uff0b"), strings.HasPrefix(v[i:], "＋"):
			marked.WriteByte('+')
		}
	}
	m := marked.String()
	return func(c string) bool {
		return long[c] && !strings.Contains(m, "+"+c) && !strings.Contains(m, "00"+c)
	}
}

// on reports whether the rule replaces data of this kind here (a staff
// endpoint's own columns are taken out of its plan: Guard's staffOwn).
func (r *replacer) on(kind record.PersonalKind) bool {
	switch kind {
	case record.PersonalNumber:
		// Under names alone a caller id's name is replaced (callerID).
		return r.g.Rule.Numbers || r.g.Rule.Names
	case record.PersonalText:
		return r.g.Rule.Numbers
	case typedText.Kind:
		return r.g.Rule.Numbers
	case record.PersonalName, record.PersonalNote:
		// Under numbers alone a name is still looked at for numbers: a
		// PBX writes the caller's number as its name when it has none.
		return r.g.Rule.Names || r.g.Rule.Numbers
	}
	return false
}

// text returns the string v of a value of kind p, replaced as the rule
// says; party is the value of a name's number column ("" when none).
func (r *replacer) text(p record.Personal, v, party string) string {
	if v == "" || v == erased || !r.on(p.Kind) {
		return v
	}
	k := r.g.Keys
	switch p.Kind {
	case record.PersonalNumber:
		if r.internal(v) {
			return v
		}
		if _, ok := pseudonym.Canonical(v); ok {
			if !r.g.Rule.Numbers {
				return v
			}
			return k.Number(v)
		}
		// Not a number alone: a caller id ("Mario" <+39…>), "anonymous".
		return r.callerID(v)
	case record.PersonalName:
		if !r.g.Rule.Names {
			return r.numbers(v) // numbers alone: a number written as the name
		}
		if _, ok := pseudonym.Canonical(v); ok && !r.internal(v) {
			// A number written as the name: the number's pseudonym, which
			// forget and the suppression list find, not a name's.
			return k.Number(v)
		}
		if p.Of != "" && party != "" && r.internal(party) && !r.g.Rule.Staff {
			// A colleague's name, beside an extension, stays; a number in
			// it ("Transfer from +39 352…") does not, under numbers.
			if r.g.Rule.Numbers {
				return r.numbers(v)
			}
			return v
		}
		return k.Name(v)
	case record.PersonalNote:
		if r.g.Rule.Names {
			return k.Name(v)
		}
		return r.scrub(v)
	}
	return r.scrub(v)
}

// numbers returns v with its numbers replaced: v's pseudonym when it is
// an external number alone, else each number in it (Scrub).
func (r *replacer) numbers(v string) string {
	if _, ok := pseudonym.Canonical(v); ok {
		if r.internal(v) {
			return v
		}
		return r.g.Keys.Number(v)
	}
	return r.scrub(v)
}

// callerID returns the value v of a number column (or its raw field)
// that is not a number alone: a caller id, in any shape ("Mario Rossi"
// <+39 352…>, Mario Rossi (+39…), +39… (Mario Rossi), <+39…> Mario
// Rossi, Mario <sip:+39…@pbx>;tag=x), or a PBX word ("anonymous"). The
// one rule (README, Privacy): under numbers its numbers are replaced
// (Scrub); under names every part of it that is not a number (after the
// numbers are replaced) and not a PBX word (callerIDWord: anonymous,
// unknown, a sip:/tel: URI, an @host part, ;params) is the name, each run
// of such words replaced by its n: pseudonym in place, the rest of the
// shape kept (n:… <p:…>; quotes around a replaced name dropped), unless
// the number in it is a colleague's extension (no external number in v)
// and the rule is not all.
func (r *replacer) callerID(v string) string {
	s := v
	if r.g.Rule.Numbers {
		s = r.scrub(v)
	}
	if !r.g.Rule.Names || !r.g.Rule.Staff && r.colleague(v) {
		return s
	}
	return callerIDNames(s, r.g.Keys.Name)
}

// colleague reports whether the caller id v holds a number and every
// number in it is internal: Scrub finds no external one to replace.
func (r *replacer) colleague(v string) bool {
	if r.clear {
		return strings.ContainsFunc(v, unicode.IsDigit) && !numberPseudonym(v)
	}
	return strings.ContainsFunc(v, unicode.IsDigit) && r.scrub(v) == v
}

// callerIDNames returns the caller id s with each run of name words
// (callerIDWord) replaced by name(run), every other byte as it was, but
// the quotes around a replaced run.
func callerIDNames(s string, name func(string) string) string {
	parts := callerIDParts(s)
	var b strings.Builder
	for i := 0; i < len(parts); {
		if !parts[i].name {
			b.WriteString(parts[i].text)
			i++
			continue
		}
		j := i + 1 // the run: name words joined by blanks
		for j+1 < len(parts) && parts[j+1].name && strings.TrimSpace(parts[j].text) == "" && parts[j].text != "" && !strings.ContainsAny(parts[j].text, "\"<>()") {
			j += 2
		}
		var run strings.Builder
		for _, p := range parts[i:j] {
			run.WriteString(p.text)
		}
		out := b.String()
		if strings.HasSuffix(out, `"`) && j < len(parts) && strings.HasPrefix(parts[j].text, `"`) {
			b.Reset()
			b.WriteString(out[:len(out)-1])
			parts[j].text = parts[j].text[1:]
		}
		b.WriteString(name(run.String()))
		i = j
	}
	return b.String()
}

// callerIDPart is a word of a caller id, or the separators between two.
type callerIDPart struct {
	text string
	name bool
}

// callerIDParts splits s into words and separators (blanks and the
// brackets and quotes <>()"), a ";" starting a word of parameters that
// runs to the next separator; name marks the words that are a name's.
func callerIDParts(s string) []callerIDPart {
	var parts []callerIDPart
	sep := func(c rune) bool { return unicode.IsSpace(c) || strings.ContainsRune(`<>()"`, c) }
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		j := i + size
		if sep(c) {
			for j < len(s) {
				c, size := utf8.DecodeRuneInString(s[j:])
				if !sep(c) {
					break
				}
				j += size
			}
			parts = append(parts, callerIDPart{text: s[i:j]})
		} else {
			for j < len(s) {
				c, size := utf8.DecodeRuneInString(s[j:])
				if sep(c) {
					break
				}
				j += size
			}
			parts = append(parts, callerIDPart{text: s[i:j], name: callerIDWord(s[i:j])})
		}
		i = j
	}
	return parts
}

// callerIDWord reports whether the word w of a caller id is a name's: it
// has a letter and no digit, and is no pseudonym (p:…, n:…), no PBX word
// (anonymous, unknown, restricted, private, unavailable, erased), no
// URI (sip:, sips:, tel:, a user@host: an @ after the word's start; a
// word starting with @ is a handle, "@reception", a name's) and no
// ;params.
func callerIDWord(w string) bool {
	l := strings.ToLower(w)
	switch {
	case !strings.ContainsFunc(w, unicode.IsLetter), strings.ContainsFunc(w, unicode.IsDigit),
		strings.HasPrefix(l, "p:"), strings.HasPrefix(l, "n:"),
		strings.HasPrefix(l, "sip:"), strings.HasPrefix(l, "sips:"), strings.HasPrefix(l, "tel:"),
		strings.IndexRune(w, '@') > 0, strings.HasPrefix(w, ";"):
		return false
	}
	switch strings.Trim(l, ".,:;!?'") {
	case "anonymous", "unknown", "restricted", "private", "unavailable", "withheld", erased:
		return false
	}
	return true
}

// anyText is free text of no declared kind (a field the catalog does not
// know, a member of extra): its numbers are replaced under numbers.
var anyText = record.Personal{Kind: record.PersonalText}

// typedText is the raw field of a column of another type than text (a
// size, a duration, an epoch time): a string there is free text, its
// numbers replaced ("duration": "+39 352…"), but a JSON number is the
// column's value (a size of 15506208 bytes, a time 1765100000), kept.
var typedText = record.Personal{Kind: "typed"}

// undeclared is the kind of a member of raw or extra the catalog does not
// know: free text, or under all, when its name says it is a name
// ("name", "caller_name", "callerName"), a name.
func (r *replacer) undeclared(member string) record.Personal {
	if r.g.Rule.Staff && record.NameField(member) {
		return record.Personal{Kind: record.PersonalName}
	}
	return anyText
}

// pseudonymise replaces row's personal values in place: its columns, and
// the same fields in raw and every string in extra and in raw's
// undeclared fields. row.Values must be the row's own copy.
func (r *replacer) pseudonymise(p *plan, row *record.Row) {
	party := func(i int) string {
		for _, o := range p.of[i] {
			if s, _ := row.Values[o].(string); strings.TrimSpace(s) != "" {
				return s
			}
		}
		return ""
	}
	// Names first: their party's number is read in clear.
	parties := make([]string, len(p.cols))
	for i := range p.cols {
		parties[i] = party(i)
	}
	var display []byte // members for extra: "<column>_display": "+39 ••• ••• 12"
	for i, c := range p.cols {
		if c.Kind == "" {
			continue
		}
		switch v := row.Values[i].(type) {
		case string:
			row.Values[i] = r.text(c, v, parties[i])
			if r.g.Display && c.Kind == record.PersonalNumber && (row.Values[i] != v || v == erased) {
				// A number the suppression list erased shows erased, as
				// forget makes the display form of a number it erases.
				d := pseudonym.Display(v)
				if v == erased {
					d = erased
				}
				display = append(append(append(display, ','), jsonscan.Quote(p.names[i]+"_display")...), ':')
				display = append(display, jsonscan.Quote(d)...)
			}
		case json.RawMessage:
			row.Values[i] = json.RawMessage(r.json(v, 0, func(string) (record.Personal, string) { return c, parties[i] }))
		}
	}
	if row.Extra != nil {
		row.Extra = r.json(row.Extra, 1, func(member string) (record.Personal, string) { return r.unread(p, member), "" })
	}
	if display != nil {
		row.Extra = withMembers(row.Extra, display[1:])
	}
	if row.Raw != nil {
		row.Raw = r.json(row.Raw, 1, func(member string) (record.Personal, string) {
			i, ok := p.fields[strings.ToLower(member)]
			if !ok {
				return r.unread(p, member), ""
			}
			return p.raw[i], parties[i]
		})
	}
}

// unread is the kind of a member of raw or extra no column reads: its
// declared kind (a caller-id field, record.Endpoint.PersonalFields), else
// undeclared's.
func (r *replacer) unread(p *plan, member string) record.Personal {
	if k, ok := p.declared[strings.ToLower(member)]; ok {
		return k
	}
	return r.undeclared(member)
}

// memberKind is how a caller of json replaces the values under the
// member of the top-level object named member: their kind and party.
type memberKind func(member string) (p record.Personal, party string)

// json returns the JSON text b with each string replaced as kind says for
// the top-level member it is in (for every string when b is not an
// object), or under all as a name in a nested member named as a name
// (undeclared), every other byte as it was; a number literal of a number
// column, or an integer of 7 digits or more in free text, becomes the
// string of its pseudonym. A member's name holding a number
// ("393528512784": …, "x_phone_393528512784") loses it as free text does;
// its kind is still read from the name as sent. A member renamed onto a
// name its object has already (two forms of one number, or a number beside
// its pseudonym) takes "p:…#2", "p:…#3"… (jsonscan.Rewrite): no member is
// lost. Text that is not valid JSON is scrubbed as text.
//
// An object at depth first or deeper (1 for a row's raw and extra, whose
// top-level object is the record, its parties said by the catalog; 0 for
// a column's value) that holds an external number is a party's (a call
// group's external member, {"extension": "+39…", "name": …}): under a
// rule with names, its members named as a name (record.NameField) are names,
// replaced whole (attack 30 B2); in an object holding none (a colleague's
// {"extension": "201", "name": …}) they are names under all only.
//
// The walk is jsonscan.Rewrite's, shared with sinks/forget.go's erasure;
// this is only the policy.
func (r *replacer) json(b []byte, first int, kind memberKind) []byte {
	w := jsonWalk{kind: kind, first: first}
	if r.g.Rule.Names && !r.g.Rule.Staff && bytes.Count(b, []byte("{")) > first {
		w.parties = r.partyObjects(b, first)
	}
	out, err := jsonscan.Rewrite(b, jsonscan.Rewriter{
		Name:  func(_ *jsonscan.Path, name string) string { return r.text(anyText, name, "") },
		Value: func(at *jsonscan.Path, lit []byte) []byte { return r.jsonValue(at, lit, w) },
	})
	if err != nil {
		return []byte(r.scrub(string(b)))
	}
	return out
}

// jsonWalk is what json reads its text's values with: their top-level
// member's kind, the depth from which objects are parties', and those
// holding an external number (partyObjects: nil but under names).
type jsonWalk struct {
	kind    memberKind
	first   int
	parties map[int]bool
}

// partyObjects returns the starts (jsonscan.Path.Start) of the objects of
// the valid JSON text b at depth first or deeper that hold an external
// number in a member's name or value (or in an array there): a string
// with one (a number alone, a caller id), or an integer of 7 digits or
// more (longInteger, longDecimal) that is not one of the PBX's
// extensions. Forget's partyObjects (sinks) marks the objects holding the
// forgotten number alike.
func (r *replacer) partyObjects(b []byte, first int) map[int]bool {
	marks := map[int]bool{}
	mark := func(at *jsonscan.Path, s string) {
		if d := at.InnermostObject(); d >= first && s != "" && !marks[at.Start(d)] && r.external(s) {
			marks[at.Start(d)] = true
		}
	}
	jsonscan.Rewrite(b, jsonscan.Rewriter{
		Name: func(at *jsonscan.Path, name string) string {
			mark(at, name)
			return name
		},
		Value: func(at *jsonscan.Path, lit []byte) []byte {
			var s string
			switch {
			case lit[0] == '"':
				s = jsonscan.Unquote(lit)
			case longInteger(lit):
				s = string(lit)
			default:
				s, _ = longDecimal(lit)
			}
			mark(at, s)
			return nil
		},
	})
	return marks
}

// jsonValue returns what json writes in place of the value literal lit at
// at: the string of its replacement, nil to keep it.
func (r *replacer) jsonValue(at *jsonscan.Path, lit []byte, w jsonWalk) []byte {
	p, party := r.valueKind(at, w)
	if p.Kind == "" {
		return nil
	}
	var s string
	switch c := lit[0]; {
	case c == '"':
		s = jsonscan.Unquote(lit)
	case p.Kind == record.PersonalNumber && c >= '0' && c <= '9':
		s = string(lit)
	case numberAsText(p.Kind) && longInteger(lit):
		// A number under a name or note ("caller_name": 393528512784) is
		// a number in free text: its pseudonym is the number's, which
		// forget finds.
		s, p, party = string(lit), anyText, ""
	default:
		d, ok := longDecimal(lit)
		if !ok || !numberAsText(p.Kind) {
			return nil
		}
		s, p, party = d, anyText, ""
	}
	if t := r.text(p, s, party); t != s {
		return jsonscan.Quote(t)
	}
	return nil
}

// valueKind is the kind and party of a value at at: its top-level
// member's (w.kind), free text when the top is not an object; free text
// under a member named as a name in an object at depth w.first or deeper
// is a name ("x_people": [{"name": …}]) under all, and under names in
// an object holding an external number (w.parties), as at the top.
func (r *replacer) valueKind(at *jsonscan.Path, w jsonWalk) (record.Personal, string) {
	p, party := anyText, ""
	if top, obj := at.Member(0); obj {
		p, party = w.kind(top)
	}
	if p.Kind != record.PersonalText && p.Kind != typedText.Kind {
		return p, party
	}
	if d := at.InnermostObject(); d >= max(w.first, 0) {
		name, _ := at.Member(d)
		if r.undeclared(name).Kind == record.PersonalName || w.parties[at.Start(d)] && record.NameField(name) {
			return record.Personal{Kind: record.PersonalName}, ""
		}
	}
	return p, party
}

// numberAsText reports whether a JSON number of 7 digits or more under a
// member of kind k is replaced as a number in free text: under text, and
// under a name or a note (review 30-last 2), not under a typed column's
// own field nor one declared none.
func numberAsText(k record.PersonalKind) bool {
	return k == record.PersonalText || k == record.PersonalName || k == record.PersonalNote
}

// longInteger reports whether lit, a JSON literal of free text (a member
// of extra, an undeclared field of raw), is an integer of at least 7
// digits (a sign allowed): a PBX may send a phone number as a JSON number,
// which is then replaced as the same digits in a string would be (and
// becomes a string, its pseudonym). A shorter one (an extension, a count)
// and a decimal stay numbers. In doubt it replaces: a Unix time in
// seconds or a large id sent as a number becomes a pseudonym too.
func longInteger(lit []byte) bool {
	digits := bytes.TrimPrefix(lit, []byte("-"))
	if len(digits) < 7 {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// longDecimal returns the integer part ("393528512784", a sign kept) of
// lit, a JSON number in decimal or exponent notation (393528512784.0,
// 3.93528512784e11) whose integer part has 7 to 20 digits: a phone number
// written so (PostgreSQL's jsonb writes 3.93528512784e11 as its digits)
// is replaced as the integer would be (longInteger), its pseudonym that
// of the same digits.
func longDecimal(lit []byte) (string, bool) {
	if !bytes.ContainsAny(lit, ".eE") {
		return "", false
	}
	f, _, err := big.ParseFloat(string(lit), 10, 256, big.ToZero)
	if err != nil || f.IsInf() {
		return "", false
	}
	a := new(big.Float).Abs(f)
	if a.Cmp(big.NewFloat(1e6)) < 0 || a.Cmp(big.NewFloat(1e20)) >= 0 {
		return "", false
	}
	i, _ := f.Int(nil)
	return i.String(), true
}

// withMembers returns the JSON object obj (nil for none) with the members
// (`"a":1,"b":2`) added at its end.
func withMembers(obj, members []byte) json.RawMessage {
	t := bytes.TrimSpace(obj)
	if len(t) < 2 || t[0] != '{' {
		return json.RawMessage(append(append([]byte{'{'}, members...), '}'))
	}
	out := append([]byte(nil), t[:len(t)-1]...)
	if len(bytes.TrimSpace(t[1:len(t)-1])) > 0 {
		out = append(out, ',')
	}
	return json.RawMessage(append(append(out, members...), '}'))
}
