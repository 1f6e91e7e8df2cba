package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Type is a column's type, named as in PostgreSQL.
type Type string

// The column types.
const (
	BigInt    Type = "bigint"
	Integer   Type = "integer"
	Numeric   Type = "numeric"
	Timestamp Type = "timestamptz"
	Text      Type = "text"
	Boolean   Type = "boolean"
	JSON      Type = "jsonb"
)

var types = []Type{BigInt, Integer, Numeric, Timestamp, Text, Boolean, JSON}

// Column is one typed column of an endpoint's rows.
type Column struct {
	Name  string `json:"name"`  // snake_case column name
	Field string `json:"field"` // the PBX's field
	Type  Type   `json:"type"`
}

// Mode says how an endpoint is exported.
type Mode string

const (
	// Incremental endpoints grow (call history): each run reads what came
	// since the cursor.
	Incremental Mode = "incremental"
	// Snapshot endpoints are read whole each run (colleagues, phonebooks);
	// a record missing from a complete snapshot is marked deleted.
	Snapshot Mode = "snapshot"
)

// Endpoint declares one PBX list endpoint and its rows. Adding a built-in
// endpoint is adding one of these to Builtin.
type Endpoint struct {
	Name string   `json:"name"` // table and file name
	Path string   `json:"path"` // PBX path, e.g. /api/v1/PBX/CallHistory/
	Key  []string `json:"key"`  // PBX fields forming the natural key
	Mode Mode     `json:"mode"`
	// Sort is the field pages are ordered by (ascending), a stable key.
	Sort string `json:"sort,omitempty"`
	// Cursor is the numeric, ever-growing field an incremental export
	// resumes from. CDR ids are assigned when a call ends, so a long call
	// that started before the previous run is still picked up.
	Cursor string `json:"cursor,omitempty"`
	// TimeField is the PBX-local time field backfill windows filter on.
	TimeField string `json:"time_field,omitempty"`
	// Expect tells which of the two instants of a wall time repeated by a
	// daylight-saving change a time field is: field → "start+duration"
	// (a time field plus or minus whole-second fields); the instant
	// nearest the expected one is taken.
	Expect  map[string]string `json:"expect,omitempty"`
	Columns []Column          `json:"columns"`
	// Index lists columns reporting queries filter on.
	Index []string `json:"index,omitempty"`
	// Personal declares the columns holding personal data, by column
	// name, and of which kind (README, Privacy): what EXPORT_PSEUDONYMIZE
	// replaces (exporter/privacy), in the column and in the same field of
	// raw. A column not named holds none.
	Personal map[string]Personal `json:"personal,omitempty"`
	// PersonalFields declares the PBX's fields holding personal data
	// that no column reads, by field name (matched in any case), and of
	// which kind: kept in extra and raw, they are replaced there
	// (exporter/privacy) and erased (sinks' forget and suppression list)
	// as a column of that kind is. Built-in endpoints only: an endpoints
	// file declares a column instead.
	PersonalFields map[string]Personal `json:"-"`
	// Staff says the records are the company's own people (colleagues):
	// their personal columns are replaced only under EXPORT_PSEUDONYMIZE=all.
	Staff bool `json:"staff,omitempty"`

	// The fields below are the built-in recordings endpoint's (issue 29):
	// an endpoints file cannot set them.

	// Files says the records describe files the exporter copies to a
	// store: "recordings" (EXPORT_RECORDINGS_STORE). Such an endpoint is
	// read by the exporter's recordings policy, which fills the columns
	// no shape reads (Shapes) itself.
	Files string `json:"-"`
	// OptIn leaves the endpoint out of the default set (Select with no
	// names): it needs a setting of its own, so it is exported only when
	// named or added by the caller.
	OptIn bool `json:"-"`
	// TimeParams, when set, are the parameters TimeQuery asks a time
	// range with ([from, to]) instead of filter[<TimeField>][from]/[to].
	TimeParams [2]string `json:"-"`
	// TimeForms are the forms the PBX may take TimeParams in, in the
	// order they are tried: TimeWall or TimeEpoch. TimeForm is the one in
	// use (TimeWall when empty).
	TimeForms []string `json:"-"`
	TimeForm  string   `json:"-"`
	// Shapes, when set, are the forms the records may take when no source
	// documents their fields; the first is the one Columns declare. The
	// export detects which one the PBX sends (DetectShape) and reads it
	// through InShape.
	Shapes []Shape `json:"-"`
}

// PersonalKind is what kind of personal data a column holds.
type PersonalKind string

// The kinds of personal data.
const (
	// PersonalNumber is a party's phone number: replaced whole (its
	// pseudonym), unless it is an extension (at most 6 digits).
	PersonalNumber PersonalKind = "number"
	// PersonalName is a person's name, or another value naming one (an
	// e-mail address, a login): replaced whole.
	PersonalName PersonalKind = "name"
	// PersonalText is free text that may hold phone numbers (a channel,
	// a dial string, a file name): each number of 7 digits or more in it
	// replaced.
	PersonalText PersonalKind = "text"
	// PersonalNote is free text written about a person (a note, an
	// address): replaced whole with names, its numbers replaced with
	// numbers.
	PersonalNote PersonalKind = "note"
	// PersonalNone is a text column that holds no personal data (the
	// exporter's own values, such as a recording's stored name): kept as
	// it is. A text or jsonb column declared of no kind is free text,
	// its numbers replaced like PersonalText's.
	PersonalNone PersonalKind = "none"
)

// Personal is one column's personal data.
type Personal struct {
	Kind PersonalKind `json:"kind"`
	// Of, for a name, is the number column of the same party, or a comma
	// list of them, the first not empty taken (as the views coalesce
	// from_number and src): the name is a colleague's, kept unless
	// EXPORT_PSEUDONYMIZE=all, when that number is an extension.
	Of string `json:"of,omitempty"`
}

// NameField reports whether a field's name (a JSON member's, in raw,
// extra or a JSON column) says that its value is a person's name: "name",
// or a name ending so ("caller_name", "callerName", "display-name"; not
// "filename", "hostname"). Pseudonymisation (exporter/privacy) and forget
// (sinks) read such a field as a name where the catalog declares none
// (README, Privacy).
func NameField(field string) bool {
	m := strings.ToLower(field)
	return m == "name" || strings.HasSuffix(m, "name") && (strings.HasSuffix(field, "Name") || strings.HasSuffix(m, "_name") || strings.HasSuffix(m, "-name"))
}

// OfColumns is Of as a list of column names.
func (p Personal) OfColumns() []string {
	var out []string
	for _, c := range strings.Split(p.Of, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// The forms TimeQuery writes a time range in.
const (
	TimeWall  = "wall"  // PBX-local "YYYY-MM-DD HH:MM:SS", as filter[start]
	TimeEpoch = "epoch" // Unix seconds; the wall times given to TimeQuery are then UTC
)

// Shape is one plausible form of an endpoint's records.
type Shape struct {
	Name string
	// Fields maps a column to the PBX field it is read from in this
	// shape; a column not named is not sent in it (NULL).
	Fields map[string]string
	// Key is the PBX fields that identify a record in this shape; with
	// the time field, they must be in every record.
	Key []string
}

// TimeQuery returns the query parameters that ask for the records whose
// TimeField lies in the PBX-local wall time from to to ("YYYY-MM-DD
// HH:MM:SS" each): filter[<TimeField>][from] and [to], or TimeParams in
// TimeForm (in TimeEpoch, from and to are UTC wall times, sent as Unix
// seconds). Every reader by time (time windows, backfill windows, the
// probe) asks through it.
func (e *Endpoint) TimeQuery(from, to string) url.Values {
	if e.TimeParams[0] == "" {
		return url.Values{"filter[" + e.TimeField + "][from]": {from}, "filter[" + e.TimeField + "][to]": {to}}
	}
	if e.TimeForm == TimeEpoch {
		from, to = epochOf(from), epochOf(to)
	}
	return url.Values{e.TimeParams[0]: {from}, e.TimeParams[1]: {to}}
}

// epochOf is the UTC wall time s in Unix seconds (s itself when it is
// not a wall time).
func epochOf(s string) string {
	t, err := time.Parse(WallLayout, s)
	if err != nil {
		return s
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// InShape returns the endpoint as its records are in shape s, asked in
// time form form, for converting them: each column reads s's field (a
// column s does not send, or the exporter fills, reads none), the key and
// time fields are s's, and the time column is read as text (a wall time
// or Unix seconds, whatever the form asked in: the caller reads it). The
// columns keep their names, order and, but for that one, types: rows
// converted with it, their time filled in, are rows of e.
func (e *Endpoint) InShape(s Shape, form string) Endpoint {
	d := *e
	d.Columns = slices.Clone(e.Columns)
	d.TimeForm, d.Key, d.Cursor, d.Sort, d.Expect = form, s.Key, "", "", nil
	for i, c := range d.Columns {
		f, ok := s.Fields[c.Name]
		if !ok {
			f = "\x00" + c.Name // in no record
		}
		if c.Field == e.TimeField {
			d.TimeField, d.Columns[i].Type = f, Text
		}
		d.Columns[i].Field = f
	}
	return d
}

// DetectShape returns the shape of e that a record holding fields fits
// best: every field of its key and its time present, and the most of its
// other fields. An error, naming the fields seen, when none fits.
func (e *Endpoint) DetectShape(fields []string) (Shape, error) {
	have := map[string]bool{}
	for _, f := range fields {
		have[f] = true
	}
	best, score := -1, -1
	for i, s := range e.Shapes {
		fit := true
		for _, f := range e.Requires(s) {
			fit = fit && have[f]
		}
		n := 0
		for _, f := range s.Fields {
			if have[f] {
				n++
			}
		}
		if fit && n > score {
			best, score = i, n
		}
	}
	if best < 0 {
		var known []string
		for _, s := range e.Shapes {
			known = append(known, s.Name+" ("+strings.Join(e.Requires(s), ", ")+")")
		}
		seen := slices.Sorted(slices.Values(fields))
		return Shape{}, fmt.Errorf("a record of %s holds the fields %s, which fit none of the shapes known: %s; report this PBX's version and answer (docs/pbx-api.md, Recordings)",
			e.Name, quoteList(seen), strings.Join(known, "; "))
	}
	return e.Shapes[best], nil
}

// Requires returns the fields every record of e in shape s must hold: its
// key and its time field.
func (e *Endpoint) Requires(s Shape) []string {
	return append(slices.Clone(s.Key), s.Fields[e.timeColumn()])
}

// timeColumn is the name of the time field's column.
func (e *Endpoint) timeColumn() string {
	for _, c := range e.Columns {
		if c.Field == e.TimeField {
			return c.Name
		}
	}
	return ""
}

// quoteList quotes names for a message, at most 30 of them.
func quoteList(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for i, n := range names {
		if i == 30 {
			fmt.Fprintf(&b, " and %d more", len(names)-30)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if len(n) > 40 {
			n = n[:40] + "…"
		}
		fmt.Fprintf(&b, "%q", n)
	}
	return b.String()
}

// Column returns the index of the column named name, or -1.
func (e *Endpoint) Column(name string) int {
	for i, c := range e.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

func text(names ...string) []Column {
	cols := make([]Column, len(names))
	for i, n := range names {
		field, name, ok := strings.Cut(n, "=")
		if !ok {
			name = field
		}
		cols[i] = Column{Name: name, Field: field, Type: Text}
	}
	return cols
}

func cols(groups ...[]Column) []Column { return slices.Concat(groups...) }

// Builtin is the catalog of endpoints wildix-export knows. The field names
// and formats follow docs/pbx-api.md ("Values and times"). It is one table
// of declarations, longer than a screen on purpose: an endpoint is added
// here as a row, and split up the table would hide which ones exist.
func Builtin() []Endpoint {
	return []Endpoint{
		{
			Name: "call_history", Path: "/api/v1/PBX/CallHistory/", Key: []string{"id"}, Mode: Incremental,
			Sort: "id", Cursor: "id", TimeField: "start",
			Expect: map[string]string{"end": "start+duration", "answer": "start+duration-billsec"},
			Index:  []string{"start_time"}, // src, dst, from_number, to_number: dropped by migration 5
			Columns: cols(
				[]Column{
					{"id", "id", BigInt},
					{"start_time", "start", Timestamp},
					{"answer_time", "answer", Timestamp},
					{"end_time", "end", Timestamp},
					{"duration", "duration", Integer},
					{"billsec", "billsec", Integer},
				},
				text("disposition", "type", "src", "dst", "from_number", "from_name", "to_number", "to_name",
					"channel", "dstchannel", "lastapp", "lastdata", "userfield"),
				[]Column{{"cost", "cost", Numeric}},
				text("faxdata", "timezone=tz_offset"),
			),
			Personal: map[string]Personal{
				"src": {Kind: PersonalNumber}, "dst": {Kind: PersonalNumber},
				"from_number": {Kind: PersonalNumber}, "to_number": {Kind: PersonalNumber},
				"from_name": {Kind: PersonalName, Of: "from_number,src"}, "to_name": {Kind: PersonalName, Of: "to_number,dst"},
				"channel": {Kind: PersonalText}, "dstchannel": {Kind: PersonalText}, "lastdata": {Kind: PersonalText},
				"userfield": {Kind: PersonalText}, "faxdata": {Kind: PersonalText},
			},
			// Caller-id fields of the CDR table no column reads
			// (docs/pbx-api.md): clid, the caller id with the caller's
			// name ("Mario Rossi" <+39…>); c_from and c_to, the caller's
			// and callee's numbers; Asterisk's dnid (the number dialled)
			// and did (the trunk's number called). Numbers, a caller id
			// among them (exporter/privacy callerID).
			//
			// organization, the company of the call's external party as
			// the PBX knows it, is a name: a company's name names a
			// person often enough (a sole trader's "Rossi Mario
			// Impianti", a practice's "Studio Dott. Bianchi") to be
			// replaced under names, as contacts' organization is; forget
			// and the suppression list erase it only in a row where the
			// number is the call's one external party (sinks onlyParty:
			// with two it may be the other's). Its party is not said, so
			// it is replaced on internal calls too, where it would be the
			// company's own.
			PersonalFields: map[string]Personal{
				"clid": {Kind: PersonalNumber}, "c_from": {Kind: PersonalNumber}, "c_to": {Kind: PersonalNumber},
				"dnid": {Kind: PersonalNumber}, "did": {Kind: PersonalNumber},
				"organization": {Kind: PersonalName},
			},
		},
		{
			Name: "colleagues", Path: "/api/v1/PBX/Colleagues", Key: []string{"id"}, Mode: Snapshot, Sort: "id",
			Index: []string{"extension"},
			Columns: cols(
				[]Column{{"id", "id", BigInt}},
				text("dn", "name", "extension", "officePhone=office_phone", "mobilePhone=mobile_phone", "faxNumber=fax_number",
					"email", "pbxDn=pbx_dn", "role", "groupDn=group_dn", "language", "dialplan", "faxDialplan=fax_dialplan",
					"department", "login", "licenseType=license_type"),
			),
			Staff: true,
			Personal: map[string]Personal{
				"name": {Kind: PersonalName}, "email": {Kind: PersonalName}, "login": {Kind: PersonalName},
				"office_phone": {Kind: PersonalNumber}, "mobile_phone": {Kind: PersonalNumber}, "fax_number": {Kind: PersonalNumber},
			},
		},
		{
			Name: "phonebooks", Path: "/api/v1/Phonebooks/", Key: []string{"id"}, Mode: Snapshot, Sort: "id",
			Columns: []Column{
				{"id", "id", BigInt}, {"name", "name", Text}, {"type", "type", Integer}, {"hash", "hash", Text},
				{"owner_id", "owner_id", BigInt}, {"sync_set", "sync_set", Integer}, {"sync_interval", "sync_interval", Integer},
			},
		},
		{
			Name: "contacts", Path: "/api/v1/Contacts/", Key: []string{"id"}, Mode: Snapshot, Sort: "id",
			Columns: cols(
				[]Column{{"id", "id", BigInt}},
				text("name", "email", "phone", "mobile", "office", "home", "fax", "organization", "type"),
				[]Column{{"phonebook_id", "phonebook_id", BigInt}},
				text("note", "address", "city", "country", "postal_code"),
			),
			// Contacts are the company's customers and suppliers: external
			// people, replaced under numbers and names. Their
			// organization is a name too: a company's name may be a
			// person's (a sole trader's), as call_history's
			// organization.
			Personal: map[string]Personal{
				"name": {Kind: PersonalName}, "email": {Kind: PersonalName}, "organization": {Kind: PersonalName},
				"phone": {Kind: PersonalNumber}, "mobile": {Kind: PersonalNumber}, "office": {Kind: PersonalNumber},
				"home": {Kind: PersonalNumber}, "fax": {Kind: PersonalNumber},
				"note": {Kind: PersonalNote}, "address": {Kind: PersonalNote},
			},
		},
		{
			Name: "devices", Path: "/api/v1/Devices/", Key: []string{"id"}, Mode: Snapshot, Sort: "id",
			Columns: cols(
				[]Column{{"id", "id", BigInt}},
				text("mac", "model", "description", "firmware", "user=user_extension", "address", "state"),
				[]Column{{"vendor", "vendor", JSON}},
			),
			// A phone's description may name the colleague who has it.
			Staff:    true,
			Personal: map[string]Personal{"description": {Kind: PersonalName}, "mac": {Kind: PersonalNone}},
		},
		{
			// Ring groups and queues (docs/pbx-api.md, "Call groups"): the
			// id is text, as CDR legs name groups; members and settings are
			// kept as sent, whatever their shape, and read by the reporting
			// views (call_group_members).
			Name: "call_groups", Path: "/api/v1/Dialplan/CallGroups", Key: []string{"id"}, Mode: Snapshot, Sort: "id",
			Columns: cols(text("id", "title", "name"), []Column{{"members", "members", JSON}, {"settings", "settings", JSON}}),
			// A member or a forward may be an external number, with a
			// name ({"extension": "+39…", "name": …}: attack 30 B2), or a
			// colleague's extension with the colleague's name
			// ({"extension": "201", "name": …}). Not Staff (the numbers
			// are replaced under numbers too). Free text: a member named
			// as a name is replaced under names in an object holding an
			// external number (the member is a party), under all in any
			// (exporter/privacy's json); forget erases it with the
			// object's number (sinks' eraseJSONWhole).
			Personal: map[string]Personal{"members": {Kind: PersonalText}, "settings": {Kind: PersonalText}},
		},
		{
			// Call recordings (docs/pbx-api.md, "Recordings"): each file
			// copied to the recordings store, a row per recording. No
			// source shows a record, so the four plausible shapes are
			// declared and the one the PBX sends detected; the columns
			// after number are the exporter's: the stored name's id
			// (the key), what became of the file, where it is stored, and
			// the call-history record it belongs to.
			Name: "recordings", Path: "/api/v1/PBX/recordings", Key: []string{"recording"}, Mode: Incremental,
			TimeField: "start", Files: "recordings", OptIn: true,
			TimeParams: [2]string{"from", "to"}, TimeForms: []string{TimeWall, TimeEpoch},
			Index: []string{"start_time", "call_id"},
			Columns: cols(
				text("recording", "id", "fileName=file_name", "path"),
				[]Column{{"start_time", "start", Timestamp}, {"duration", "duration", Integer}, {"size", "size", BigInt}},
				text("extension", "number", "status", "reason"),
				[]Column{{"hostile", "hostile", Boolean}},
				text("object"),
				[]Column{{"stored_size", "stored_size", BigInt}},
				text("sha256"),
				[]Column{{"call_id", "call_id", BigInt}},
				text("call_match"),
			),
			// The PBX's file name and path carry the other party's number;
			// so may its recording id ("rec-258-393761714455": the key,
			// recording, is then a keyed hash of it, exporter/recordings
			// key.go). extension is src or source, the caller on an
			// inbound call. object is the stored name, which the store is
			// read by.
			Personal: map[string]Personal{
				"id":     {Kind: PersonalText},
				"number": {Kind: PersonalNumber}, "file_name": {Kind: PersonalText}, "path": {Kind: PersonalText},
				"extension": {Kind: PersonalNumber}, "object": {Kind: PersonalNone},
			},
			Shapes: []Shape{
				{Name: "camel", Key: []string{"id"}, Fields: map[string]string{"id": "id", "file_name": "fileName", "path": "path",
					"start_time": "start", "duration": "duration", "size": "size", "extension": "extension", "number": "number"}},
				{Name: "snake", Key: []string{"id"}, Fields: map[string]string{"id": "id", "file_name": "file_name", "path": "url",
					"start_time": "time", "duration": "length", "size": "filesize", "extension": "src", "number": "dst"}},
				{Name: "attachment", Key: []string{"id"}, Fields: map[string]string{"id": "id", "path": "url",
					"start_time": "time", "extension": "source", "number": "destination"}},
				{Name: "bare", Key: []string{"url"}, Fields: map[string]string{"path": "url",
					"start_time": "time", "extension": "source", "number": "destination"}},
			},
		},
	}
}

// Catalog is the set of endpoints a run may export.
type Catalog struct {
	endpoints []Endpoint
}

// NewCatalog checks endpoints and returns them as a catalog. Its errors
// wrap ErrConfig and name the endpoint and the field: the key, cursor,
// time, sort and Expect fields must be declared columns of a fitting type,
// or an export would drop or misread records without a word.
func NewCatalog(endpoints []Endpoint) (*Catalog, error) {
	seen := map[string]bool{}
	for i := range endpoints {
		e := &endpoints[i]
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("%w: endpoint %q: %w", ErrConfig, e.Name, err)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("%w: endpoint %q is declared twice", ErrConfig, e.Name)
		}
		seen[e.Name] = true
	}
	return &Catalog{endpoints: endpoints}, nil
}

// LoadCatalog returns the built-in endpoints plus the custom ones declared
// in the JSON file at path, when path is not empty. Its errors wrap
// ErrConfig: they are found before any request.
func LoadCatalog(path string) (*Catalog, error) {
	eps := Builtin()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: EXPORT_ENDPOINTS_FILE: %w", ErrConfig, err)
		}
		var custom []Endpoint
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&custom); err != nil {
			return nil, fmt.Errorf("%w: EXPORT_ENDPOINTS_FILE=%s: expected a JSON array of endpoints {name, path, key, mode, columns}: %w", ErrConfig, path, err)
		}
		for i := range custom {
			e := &custom[i]
			if e.Sort == "" && len(e.Key) == 1 {
				e.Sort = e.Key[0]
			}
			if e.Mode == Incremental && e.Cursor == "" && len(e.Key) == 1 {
				e.Cursor = e.Key[0]
			}
			if len(e.Columns) == 0 {
				for _, k := range e.Key {
					typ := Text
					if k == e.Cursor {
						typ = BigInt
					}
					e.Columns = append(e.Columns, Column{Name: snake(k), Field: k, Type: typ})
				}
			}
		}
		eps = append(eps, custom...)
		c, err := NewCatalog(eps)
		if err != nil {
			return nil, fmt.Errorf("EXPORT_ENDPOINTS_FILE=%s: %w", path, err)
		}
		return c, nil
	}
	return NewCatalog(eps)
}

// All returns every endpoint, in declaration order.
func (c *Catalog) All() []Endpoint { return c.endpoints }

// Select returns the named endpoints, or, when names is empty, every
// endpoint but the opt-in ones (OptIn).
func (c *Catalog) Select(names []string) ([]Endpoint, error) {
	if len(names) == 0 {
		return slices.DeleteFunc(slices.Clone(c.endpoints), func(e Endpoint) bool { return e.OptIn }), nil
	}
	var out []Endpoint
	for _, n := range names {
		i := slices.IndexFunc(c.endpoints, func(e Endpoint) bool { return e.Name == n })
		if i < 0 {
			known := make([]string, len(c.endpoints))
			for j, e := range c.endpoints {
				known[j] = e.Name
			}
			return nil, fmt.Errorf("unknown endpoint %q: known endpoints are %s (see `wildix-export endpoints`)", n, strings.Join(known, ", "))
		}
		out = append(out, c.endpoints[i])
	}
	return out, nil
}

// validate checks an endpoint's declaration, one part after another
// (what it asks the PBX, its columns and index, personal data, files,
// shapes, fields), and returns the first fault.
func (e *Endpoint) validate() error {
	if err := e.validateRequest(); err != nil {
		return err
	}
	names, err := e.validateColumns()
	if err != nil {
		return err
	}
	for _, ix := range e.Index {
		if !names[ix] {
			return fmt.Errorf("index column %q is not a column", ix)
		}
	}
	if err := e.validatePersonal(); err != nil {
		return err
	}
	if e.Files != "" && e.Files != "recordings" {
		return fmt.Errorf("files %q: the exporter copies recordings only", e.Files)
	}
	if err := e.validateShapes(names); err != nil {
		return err
	}
	return e.validateFields()
}

// validateRequest checks what the endpoint asks the PBX for and how it
// reads it: its name, path, key and mode.
func (e *Endpoint) validateRequest() error {
	if !Identifier(e.Name) {
		return fmt.Errorf("name must be a lower-case SQL name (letters, digits, _)")
	}
	if !strings.HasPrefix(e.Path, "/api/") || strings.ContainsAny(e.Path, "?#") || strings.Contains(e.Path, "..") {
		return fmt.Errorf("path %q must start with /api/ and have no query", e.Path)
	}
	if len(e.Key) == 0 {
		return fmt.Errorf("key must name at least one field")
	}
	switch e.Mode {
	case Snapshot:
	case Incremental:
		if e.Cursor == "" && e.Files == "" {
			return fmt.Errorf("an incremental endpoint needs a cursor field (a number that grows)")
		}
	default:
		return fmt.Errorf("mode %q must be incremental or snapshot", e.Mode)
	}
	return nil
}

// validateColumns checks the columns (names, types, one PBX field each)
// and returns the set of their names.
func (e *Endpoint) validateColumns() (map[string]bool, error) {
	names, fields := map[string]bool{}, map[string]bool{}
	for _, c := range e.Columns {
		if !Identifier(c.Name) || reserved[c.Name] {
			return nil, fmt.Errorf("column %q must be a lower-case SQL name and not one of the program's own columns", c.Name)
		}
		if names[c.Name] {
			return nil, fmt.Errorf("column %q is declared twice", c.Name)
		}
		names[c.Name] = true
		if !slices.Contains(types, c.Type) {
			return nil, fmt.Errorf("column %q has type %q; expected one of %v", c.Name, c.Type, types)
		}
		if c.Field == "" {
			return nil, fmt.Errorf("column %q names no PBX field", c.Name)
		}
		if fields[c.Field] {
			return nil, fmt.Errorf("field %q is declared by two columns; one of them would stay empty", c.Field)
		}
		fields[c.Field] = true
	}
	return names, nil
}

// validateShapes checks each shape reads known columns, with a key and
// the time field's column; names are the endpoint's columns.
func (e *Endpoint) validateShapes(names map[string]bool) error {
	for _, s := range e.Shapes {
		for col := range s.Fields {
			if !names[col] {
				return fmt.Errorf("shape %q reads column %q, which is not a column", s.Name, col)
			}
		}
		if len(s.Key) == 0 || s.Fields[e.timeColumn()] == "" {
			return fmt.Errorf("shape %q needs a key and the time field's column", s.Name)
		}
	}
	return nil
}

// validatePersonal checks the personal declarations: known kinds, of
// text or JSON columns that are not the key, a name's Of a number column.
func (e *Endpoint) validatePersonal() error {
	for col, p := range e.Personal {
		i := e.Column(col)
		if i < 0 {
			return fmt.Errorf("personal column %q is not a column", col)
		}
		switch p.Kind {
		case PersonalNumber, PersonalName, PersonalText, PersonalNote, PersonalNone:
		default:
			return fmt.Errorf("personal column %q has kind %q; expected number, name, text, note or none", col, p.Kind)
		}
		if t := e.Columns[i].Type; t != Text && t != JSON {
			return fmt.Errorf("personal column %q is of type %s; only text and jsonb columns can hold a pseudonym", col, t)
		}
		if slices.Contains(e.Key, e.Columns[i].Field) {
			return fmt.Errorf("personal column %q is the key: a pseudonymised key would not find the PBX's record again", col)
		}
		for _, of := range p.OfColumns() {
			if p.Kind != PersonalName || e.Personal[of].Kind != PersonalNumber {
				return fmt.Errorf("personal column %q: of %q must be said of a name, and name number columns", col, p.Of)
			}
		}
	}
	for field, p := range e.PersonalFields {
		switch {
		case p.Kind != PersonalNumber && p.Kind != PersonalName && p.Kind != PersonalText && p.Kind != PersonalNote, p.Of != "":
			return fmt.Errorf("personal field %q has kind %q; expected number, name, text or note, of no column", field, p.Kind)
		case field != strings.ToLower(field) || slices.ContainsFunc(e.Columns, func(c Column) bool { return strings.EqualFold(c.Field, field) }):
			return fmt.Errorf("personal field %q must be in lower case and read by no column (declare the column's kind instead)", field)
		}
	}
	return nil
}

// Which column types fit each role a field plays.
var (
	keyTypes    = []Type{BigInt, Integer, Numeric, Text}
	cursorTypes = []Type{BigInt, Integer}
	timeTypes   = []Type{Timestamp}
	sortTypes   = []Type{BigInt, Integer, Numeric, Text, Timestamp}
)

// validateFields checks that every field the export relies on is a
// declared column of a type that fits its role: a cursor or time field
// that is not would make every record look out of bounds.
func (e *Endpoint) validateFields() error {
	check := func(role, field string, fit []Type, want string) error {
		i := slices.IndexFunc(e.Columns, func(c Column) bool { return c.Field == field })
		if i < 0 {
			return fmt.Errorf("%s field %q is not a declared column: add a column with \"field\": %q and type %s", role, field, field, want)
		}
		if c := e.Columns[i]; !slices.Contains(fit, c.Type) {
			return fmt.Errorf("%s field %q is declared as %s (column %q); a %s must be %s", role, field, c.Type, c.Name, role, want)
		}
		return nil
	}
	for _, k := range e.Key {
		if err := check("key", k, keyTypes, "bigint, integer, numeric or text"); err != nil {
			return err
		}
	}
	if e.Cursor != "" {
		if err := check("cursor", e.Cursor, cursorTypes, "bigint or integer"); err != nil {
			return err
		}
	}
	if e.TimeField != "" {
		if err := check("time", e.TimeField, timeTypes, "timestamptz"); err != nil {
			return err
		}
	}
	if e.Sort != "" {
		if err := check("sort", e.Sort, sortTypes, "bigint, integer, numeric, text or timestamptz"); err != nil {
			return err
		}
	}
	fields := make([]string, 0, len(e.Expect))
	for f := range e.Expect {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	for _, f := range fields {
		terms, err := parseExpect(e.Expect[f])
		if err != nil {
			return fmt.Errorf("expect %q: %w", f, err)
		}
		if err := check("expected time", f, timeTypes, "timestamptz"); err != nil {
			return fmt.Errorf("expect %q: %w", f, err)
		}
		if e.TimeField == "" || terms[0].field != e.TimeField {
			return fmt.Errorf("expect %q: %q must start with the time field %q", f, e.Expect[f], e.TimeField)
		}
		for _, t := range terms[1:] {
			if err := check("duration", t.field, cursorTypes, "bigint or integer (whole seconds)"); err != nil {
				return fmt.Errorf("expect %q: %w", f, err)
			}
		}
	}
	return nil
}

// reserved are the columns every table gets from the program.
var reserved = map[string]bool{"pbx": true, "raw": true, "extra": true, "run_id": true, "exported_at": true, "deleted_at": true}

// Identifier reports whether s is safe as an SQL name and a file name.
func Identifier(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

type term struct {
	field string
	sign  int64
}

// parseExpect reads "start+duration-billsec": a time field, then signed
// fields holding seconds.
func parseExpect(expr string) ([]term, error) {
	var terms []term
	sign := int64(1)
	cur := ""
	flush := func() error {
		if cur == "" {
			return fmt.Errorf("expected fields joined by + or -, as in start+duration")
		}
		terms = append(terms, term{cur, sign})
		cur = ""
		return nil
	}
	for _, r := range expr {
		switch r {
		case '+', '-':
			if err := flush(); err != nil {
				return nil, err
			}
			sign = 1
			if r == '-' {
				sign = -1
			}
		case ' ':
		default:
			cur += string(r)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if terms[0].sign != 1 {
		return nil, fmt.Errorf("must start with a time field")
	}
	return terms, nil
}

// ErrConfig marks a configuration problem discovered at run time (an
// endpoint named like one of the program's own tables, a time zone that
// is needed): the user must change a setting; the command exits 2.
var ErrConfig = errors.New("bad configuration")
