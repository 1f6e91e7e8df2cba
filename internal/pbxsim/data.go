package pbxsim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// field is one key and value of a record, kept in order so that the JSON the
// simulator sends is stable. A value is a string (as the PBX sends almost
// everything), an int64 (Phonebooks), or nil.
type field struct {
	k string
	v any
}

type record []field

func (r record) get(k string) (any, bool) {
	for _, f := range r {
		if f.k == k {
			return f.v, true
		}
	}
	return nil, false
}

func (r record) str(k string) string {
	v, _ := r.get(k)
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}

// appendJSON appends r as a JSON object, keeping only fields in keep when
// keep is not nil.
func (r record) appendJSON(b []byte, keep map[string]bool) []byte {
	b = append(b, '{')
	first := true
	for _, f := range r {
		if keep != nil && !keep[f.k] {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, f.k)
		b = append(b, ':')
		switch v := f.v.(type) {
		case string:
			b = appendString(b, v)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case nil:
			b = append(b, "null"...)
		case record:
			b = v.appendJSON(b, nil)
		default:
			panic(fmt.Sprintf("pbxsim: unsupported value %T", v))
		}
	}
	return append(b, '}')
}

// appendString appends s as a JSON string, as encoding/json would (invalid
// UTF-8 becomes U+FFFD), but without its per-call allocations.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// splitmix64 is the mixing function that makes every record a pure function
// of (seed, id).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// awkward are values that break naive code: delimiters, quotes, line
// breaks, emoji, accents, spreadsheet formula starters, empty and long text.
var awkward = []string{
	"Rossi, Mario",
	`Anna "Nina" Bianchi`,
	"Line one\nLine two",
	"Zoë Ångström-Łukasz",
	"😀 Support Team 📞",
	"=HYPERLINK(\"http://x\")",
	"+39 02 1234 5678",
	"-5 discount",
	"@reception",
	"",
	"Crème brûlée café",
	"tab\there",
	strings.Repeat("long text ", 120),
	"François O'Neil",
	"東京オフィス",
}

var firstNames = []string{"Alice", "Bruno", "Chiara", "Dario", "Elena", "Fabio", "Giulia", "Hugo", "Irene", "Jonas", "Karin", "Luca"}
var lastNames = []string{"Rossi", "Müller", "Dubois", "García", "Smith", "Nowak", "Costa", "Jensen"}

// Call is the ground truth of one call record, with its times as instants.
type Call struct {
	ID          int64
	Start       time.Time
	Answer      time.Time // zero when the call was not answered
	End         time.Time
	Duration    int64 // seconds, start to end
	Billsec     int64 // seconds, answer to end (talk time)
	Disposition string
	Type        string
	Src, Dst    string
	FromName    string
	ToName      string
	Cost        string
	Offset      string // the timezone field, the offset at Start, e.g. "+0100"
	Channel     string // the caller's channel; every leg of a call has the same
	DstChannel  string // the channel rung by this leg
	// CallID is the id of the call's first leg: a call that rang a group or
	// was transferred has several records (legs), all with its CallID.
	CallID int64
	// Group is the id of the call group whose leg this is ("" for none).
	Group string
	// LastApp and LastData are the last application the leg ran and its
	// arguments (sent as GroupFields.App says).
	LastApp, LastData string
	UniqueID          string // the call's, shared by its legs (sent with GroupFields.UniqueID)
	DContext          string // sent with GroupFields.DContext
	// Malformed names the field the record sends spoilt
	// (GroupFields.Malformed): "start" or "answer" (empty), "end" (MySQL's
	// zero date), "lastdata" (without the Queue timeout); the fields above
	// keep the true values.
	Malformed string
}

// maxCallDuration bounds a call's length; the query planner relies on it.
const maxCallDuration = 4 * time.Hour

// call generates call record (leg) id. Ends are strictly increasing with
// id, as CDR row ids are assigned when a call ends; starts are not (long
// calls, and the legs of one call share its start).
func (s *Sim) call(id int64) Call {
	c := s.single(id)
	s.legs(&c)
	c.Offset = c.Start.In(s.opt.Location).Format("-0700")
	if c.LastApp == "" {
		c.LastApp, c.LastData = "Dial", "SIP/"+c.Dst+",60,tT"
	}
	if c.UniqueID == "" {
		c.UniqueID = fmt.Sprintf("%d.%d", c.Start.Unix(), c.CallID)
	}
	c.DContext = "users"
	if external(c.Src) {
		c.DContext = "inbound"
	}
	return c
}

// single generates record id as a call of one leg. It is one function
// (72 lines) on purpose: each draw's hash seeds the next (h to h5), and
// read in one place the order of the draws, which every seeded test's
// data depends on, is plain.
func (s *Sim) single(id int64) Call {
	h := splitmix64(uint64(s.opt.Seed)*0x100000001b3 ^ uint64(id))
	gap := int64(s.opt.CallGap / time.Second)
	end := s.opt.CallsStart.Unix() + id*gap + int64(h%uint64(gap))
	h2 := splitmix64(h)
	var dur int64
	switch p := h2 % 100; {
	case p < 70:
		dur = int64(h2>>8) % 300
	case p < 95:
		dur = 300 + int64(h2>>8)%1500
	default:
		dur = 1800 + int64(h2>>8)%int64(maxCallDuration/time.Second-1800)
	}
	h3 := splitmix64(h2)
	c := Call{ID: id, Duration: dur, Type: "call"}
	switch p := h3 % 100; {
	case p < 70:
		c.Disposition = "ANSWERED"
	case p < 88:
		c.Disposition = "NO ANSWER"
	case p < 96:
		c.Disposition = "BUSY"
	default:
		c.Disposition = "FAILED"
	}
	if (h3>>8)%100 < 3 {
		c.Type = "fax"
	}
	c.End = time.Unix(end, 0).UTC()
	c.Start = c.End.Add(-time.Duration(dur) * time.Second)
	if c.Disposition == "ANSWERED" {
		ring := int64(h3>>16) % 30
		if ring > dur {
			ring = dur
		}
		c.Billsec = dur - ring
		c.Answer = c.End.Add(-time.Duration(c.Billsec) * time.Second)
	}
	h4 := splitmix64(h3)
	ext := func(x uint64) string { return extension(201+int(x%60), s.opt.LongExtensions) }
	outbound := h4%2 == 0
	internal := outbound && (h4>>48)%5 == 0
	switch {
	case internal:
		c.Src = ext(h4 >> 4)
		c.Dst = ext(h4>>4 + 1 + (h4>>52)%59)
	case outbound:
		c.Src = ext(h4 >> 4)
		c.Dst = "0039" + strconv.FormatUint(2000000000+(h4>>12)%999999999, 10)
	default:
		c.Src = "+39" + strconv.FormatUint(3000000000+(h4>>12)%999999999, 10)
		c.Dst = ext(h4 >> 4)
	}
	c.CallID = id
	c.Channel = channel(c.Src, id)
	c.DstChannel = channel(c.Dst, id+1)
	h5 := splitmix64(h4)
	c.FromName = personName(h5)
	if h5%7 == 0 {
		c.FromName = awkward[(h5>>8)%uint64(len(awkward))]
	}
	c.ToName = personName(h5 >> 20)
	if (h5>>40)%9 == 0 {
		c.ToName = awkward[(h5>>44)%uint64(len(awkward))]
	}
	c.Cost = "0"
	if outbound && !internal && c.Billsec > 0 {
		c.Cost = strconv.FormatFloat(float64(c.Billsec)*0.0021, 'f', 4, 64)
	}
	return c
}

// channel names the channel of a number as Asterisk does: an extension's
// own (SIP/201-0000002a), an external number's the trunk's.
func channel(number string, n int64) string {
	peer := number
	if external(number) {
		peer = "trunk"
	}
	return fmt.Sprintf("SIP/%s-%08x", peer, n)
}

// legsBlock is how record ids are grouped for calls of several legs: in
// some blocks the last records are the legs of one call (docs/pbx-api.md,
// "Calls and their legs"); the first record of a block is always a call of
// its own.
const legsBlock = 8

// blockHash is the hash of the block whose first record is first.
func (s *Sim) blockHash(first int64) uint64 {
	return splitmix64(uint64(s.opt.Seed)*0x9e3779b97f4a7c15 ^ uint64(first)*0x2545f4914f6cdd1d)
}

// multiLeg reports whether calls of several legs can be placed: their legs
// end near their ids' ends, which the query planner relies on.
func (s *Sim) multiLeg() bool { return 2*legsBlock*s.opt.CallGap <= 3*time.Hour }

// blockPlan is the group call ending the block whose first record is
// first, or nil: half the blocks end with one (groupcalls.go).
func (s *Sim) blockPlan(first int64) *plan {
	h := s.blockHash(first)
	if !s.multiLeg() || h%10 >= 5 {
		return nil
	}
	return s.planOf(first, h)
}

// legs turns record c into a leg of a call of several legs when its block
// ends with one: a call to a ring group or queue (groupPlan), or a missed
// call called back by the extension it rang. Each record keeps its id; a
// call's end (its last leg's) grows with ids, as a PBX writes a call's
// rows when it ends, but a leg that stopped early may end before records
// with lower ids.
func (s *Sim) legs(c *Call) {
	if !s.multiLeg() {
		return
	}
	pos := (c.ID - 1) % legsBlock
	first := c.ID - pos
	h := s.blockHash(first)
	switch kind := h % 10; {
	case kind < 5:
		p := s.planOf(first, h)
		if pos < p.p0 {
			return
		}
		p.fill(c, first)
	case kind == 5 && pos >= 6: // a missed call, called back by the extension it rang
		end := func(p int64) time.Time { return time.Unix(s.callEnd(first+p), 0).UTC() }
		n := uint64(max(s.opt.Colleagues, 3))
		member := extension(201+int((h>>20)%n), s.opt.LongExtensions)
		caller := "+39" + strconv.FormatUint(3000000000+(h>>12)%999999999, 10)
		set := func(start, answer time.Time, disp string) {
			c.Start, c.Answer, c.Disposition, c.Type = start, answer, disp, "call"
			c.Duration = int64(c.End.Sub(start) / time.Second)
			c.Billsec = 0
			if !answer.IsZero() {
				c.Billsec = int64(c.End.Sub(answer) / time.Second)
			}
			c.Cost = "0"
		}
		if pos == 6 {
			ring := 10 + int64(h>>44)%30
			c.CallID, c.Src, c.FromName, c.Dst = first+6, caller, personName(h>>8), member
			c.Channel, c.DstChannel = channel(caller, first+6), channel(member, c.ID)
			set(end(6).Add(-time.Duration(ring)*time.Second), time.Time{}, "NO ANSWER")
		} else {
			start := end(6).Add((c.End.Sub(end(6)) / 3).Truncate(time.Second) + time.Second)
			if !start.Before(c.End) {
				start = end(6).Add(time.Second / 2).Truncate(time.Second)
			}
			c.CallID, c.Src, c.Dst, c.ToName = first+7, member, caller, personName(h>>8)
			c.Channel, c.DstChannel = channel(member, c.ID), channel(caller, c.ID+1)
			set(start, start.Add(min(5*time.Second, c.End.Sub(start)/2).Truncate(time.Second)), "ANSWERED")
			c.Cost = strconv.FormatFloat(float64(c.Billsec)*0.0021, 'f', 4, 64)
		}
	}
}

func personName(h uint64) string {
	return firstNames[h%uint64(len(firstNames))] + " " + lastNames[(h>>8)%uint64(len(lastNames))]
}

const wallLayout = "2006-01-02 15:04:05"

func (s *Sim) wall(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(s.opt.Location).Format(wallLayout)
}

// callRecord is the call as the PBX sends it: every value a string, times in
// PBX-local wall time, and the offset in the timezone field.
func (s *Sim) callRecord(id int64) record {
	if !s.opt.CacheCalls {
		return s.buildCallRecord(id)
	}
	s.recMu.RLock()
	if id < int64(len(s.recs)) && s.recs[id] != nil {
		r := s.recs[id]
		s.recMu.RUnlock()
		return r
	}
	s.recMu.RUnlock()
	r := s.buildCallRecord(id)
	s.recMu.Lock()
	if id >= int64(len(s.recs)) {
		s.recs = append(s.recs, make([]record, id+1-int64(len(s.recs)))...)
	}
	s.recs[id] = r
	s.recMu.Unlock()
	return r
}

// buildCallRecord is call record id as the PBX sends it.
func (s *Sim) buildCallRecord(id int64) record {
	c := s.call(id)
	r := record{
		{"id", strconv.FormatInt(c.ID, 10)},
		{"start", s.startWall(c)},
		{"answer", s.wall(c.Answer)},
		{"end", s.wall(c.End)},
		{"duration", strconv.FormatInt(c.Duration, 10)},
		{"billsec", strconv.FormatInt(c.Billsec, 10)},
		{"disposition", c.Disposition},
		{"type", c.Type},
		{"src", c.Src},
		{"dst", c.Dst},
		{"from_number", c.Src},
		{"from_name", c.FromName},
		{"to_number", c.Dst},
		{"to_name", c.ToName},
		{"channel", c.Channel},
		{"dstchannel", c.DstChannel},
		{"lastapp", c.LastApp},
		{"lastdata", c.LastData},
		{"userfield", ""},
		{"cost", c.Cost},
		{"faxdata", ""},
	}
	return s.callRecordOptions(r, id, c)
}

// callRecordOptions is record r of call id, c, as Options shape it: numbers
// in other forms, fields spoilt, the group fields and the optional ones.
func (s *Sim) callRecordOptions(r record, id int64, c Call) record {
	if s.opt.NumberForms {
		for _, i := range []int{8, 9, 10, 12} { // src, dst, from_number, to_number
			r[i].v = NumberForm(r[i].v.(string), splitmix64(uint64(id)*8+uint64(i)))
		}
	}
	gf := s.opt.GroupFields
	switch c.Malformed {
	case "answer":
		r[2].v = ""
	case "end":
		r[3].v = "0000-00-00 00:00:00"
	case "lastdata":
		if gf.App == "queue" {
			r[17].v = c.LastData[:strings.Index(c.LastData, ",t,")+2]
		}
	}
	switch gf.App {
	case "dial":
		r[16].v, r[17].v = "Dial", "SIP/"+c.Dst+",60,tT"
	case "none":
		r = append(r[:16], r[18:]...)
	}
	if gf.GroupIDs {
		dstgrp := c.Group
		if dstgrp == "" {
			dstgrp = "0"
			if gf.Malformed {
				dstgrp = []string{"0", "-1", ""}[c.ID%3]
			}
		}
		r = append(r, field{"srcgrp", "0"}, field{"dstgrp", dstgrp})
	}
	if gf.DContext {
		r = append(r, field{"dcontext", c.DContext})
	}
	if gf.UniqueID {
		r = append(r, field{"uniqueid", c.UniqueID})
	}
	if !s.opt.OmitTimezoneField {
		r = append(r, field{"timezone", c.Offset})
	}
	if s.opt.ExtraCallField {
		r = append(r, field{"tags", "vip,callback"})
	}
	if s.opt.CallerIDFields {
		r = append(r, callerIDFields(r[8].v.(string), r[9].v.(string), r[11].v.(string), external(c.Src))...)
	}
	return r
}

// CompanyDID is the simulated company's own number, which external
// callers dial (Options.CallerIDFields: dnid and did of inbound calls).
const CompanyDID = "+390355550100"

// callerIDFields are the CDR's caller-id fields (Options.CallerIDFields)
// of a call from src to dst (inbound: from an external number), the
// caller named fromName, each number as the record's src and dst write
// it (Options.NumberForms): clid as Asterisk writes it, the name quoted,
// its quotes and backslashes escaped ("Anna \"Nina\" Bianchi" <+39…>),
// only the number in angle brackets when there is no name.
func callerIDFields(src, dst, fromName string, inbound bool) []field {
	clid := "<" + src + ">"
	if fromName != "" {
		clid = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(fromName) + `" ` + clid
	}
	dnid, did := dst, ""
	if inbound {
		dnid, did = CompanyDID, CompanyDID
	}
	return []field{{"clid", clid}, {"c_from", src}, {"c_to", dst}, {"dnid", dnid}, {"did", did}}
}

// startWall is call c's start as sent: PBX-local wall time, empty where
// the record spoils it (Malformed).
func (s *Sim) startWall(c Call) string {
	if c.Malformed == "start" {
		return ""
	}
	return s.wall(c.Start)
}

// CallFields returns the fields of a call record, in the order sent.
func (s *Sim) CallFields() []string {
	var out []string
	for _, f := range s.callRecord(1) {
		out = append(out, f.k)
	}
	return out
}

// callEnd is the end instant of call id, strictly increasing with id.
func (s *Sim) callEnd(id int64) int64 {
	h := splitmix64(uint64(s.opt.Seed)*0x100000001b3 ^ uint64(id))
	gap := int64(s.opt.CallGap / time.Second)
	return s.opt.CallsStart.Unix() + id*gap + int64(h%uint64(gap))
}

func colleagues(n int, long bool) []record {
	out := make([]record, 0, n)
	for i := 0; i < n; i++ {
		h := splitmix64(uint64(i) + 7)
		name := personName(h)
		if i%5 == 3 {
			name = awkward[i%len(awkward)] + " " + strconv.Itoa(i)
		}
		id := strconv.Itoa(2951881 + i)
		ext := extension(201+i, long)
		role := "user"
		if i == 0 {
			role = "admin"
		}
		out = append(out, record{
			{"dn", "uid=" + id + ",o=com0,dc=wildix"},
			{"id", id},
			{"name", name},
			{"extension", ext},
			{"officePhone", ""},
			{"mobilePhone", "+3933" + fmt.Sprintf("%08d", h%100000000)},
			{"faxNumber", ""},
			{"email", strings.ToLower(strings.ReplaceAll(personName(h), " ", ".")) + strconv.Itoa(i) + "@example.com"},
			{"pbxDn", "pbxid=000c29044037,dc=wildix"},
			{"role", role},
			{"groupDn", "gid=" + strconv.Itoa(i%4) + ",o=com0,dc=wildix"},
			{"language", []string{"en", "it", "de", "fr"}[i%4]},
			{"dialplan", "users"},
			{"faxDialplan", "users"},
			{"department", []string{"Sales", "Support", "R&D, Labs", ""}[i%4]},
			{"login", "user" + ext},
			{"licenseType", []string{"basic", "essential", "business", "premium"}[i%4]},
		})
	}
	return out
}

func phonebooks(n int) []record {
	out := make([]record, 0, n)
	for i := 0; i < n; i++ {
		name := []string{"default", "Customers, EU", "Suppliers", "Blacklist", "Ünïcode 📒"}[i%5]
		if i >= 5 {
			name += " " + strconv.Itoa(i)
		}
		out = append(out, record{
			{"id", int64(i + 1)},
			{"name", name},
			{"type", int64(2)},
			{"hash", ""},
			{"owner_id", int64(0)},
			{"sync_set", int64(0)},
			{"sync_interval", int64(0)},
		})
	}
	return out
}

func contacts(n, books int) []record {
	out := make([]record, 0, n)
	for i := 0; i < n; i++ {
		h := splitmix64(uint64(i) + 99)
		name := personName(h)
		note := ""
		if i%3 == 0 {
			note = awkward[i%len(awkward)]
		}
		out = append(out, record{
			{"id", strconv.Itoa(100 + i)},
			{"name", name},
			{"email", strings.ToLower(strings.ReplaceAll(name, " ", "_")) + "@customer.example"},
			{"phone", "+4930" + fmt.Sprintf("%07d", h%10000000)},
			{"mobile", ""},
			{"organization", []string{"ACME, Inc.", "Globex", "Initech", ""}[i%4]},
			{"type", []string{"contact", "contact", "blacklist"}[i%3]},
			{"phonebook_id", strconv.Itoa(1 + i%books)},
			{"note", note},
			{"city", []string{"Milano", "München", "Zürich", "Kraków"}[i%4]},
		})
	}
	return out
}

func devices(n int, long bool) []record {
	out := make([]record, 0, n)
	for i := 0; i < n; i++ {
		h := splitmix64(uint64(i) + 555)
		state := "on"
		if h%5 == 0 {
			state = "off"
		}
		out = append(out, record{
			{"id", strconv.Itoa(1 + i)},
			{"mac", fmt.Sprintf("9c:75:14:%02x:%02x:%02x", byte(h), byte(h>>8), byte(h>>16))},
			{"model", []string{"WP480G", "WP490GR", "Vision", "SuperVision", "W-AIR Basic"}[i%5]},
			{"description", "Desk " + strconv.Itoa(i)},
			{"firmware", "1.1." + strconv.Itoa(int(h%20))},
			{"user", extension(201+i, long)},
			{"address", fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)},
			{"state", state},
			{"vendor", record{{"name", "Wildix"}, {"additional", ""}}},
		})
	}
	return out
}

// NumberForm writes the external number n (+39…, 0039…) in form h%5 of
// those a PBX may send: +39…, 0039…, 39…, "+39 333 1234567" or
// "0039 333 1234567". An extension (not written with + or 00) stays.
func NumberForm(n string, h uint64) string {
	if !external(n) {
		return n
	}
	d := strings.TrimPrefix(strings.TrimPrefix(n, "+"), "00")
	switch h % 5 {
	case 0:
		return "+" + d
	case 1:
		return "00" + d
	case 2:
		return d
	case 3:
		return "+" + d[:2] + " " + d[2:5] + " " + d[5:]
	}
	return "00" + d[:2] + " " + d[2:5] + " " + d[5:]
}

// extension is the simulator's extension numbered n (201, 202…): n
// itself, or with long (Options.LongExtensions) 7 digits, 2000000+n
// (2000201), as a PBX numbering its extensions so does.
func extension(n int, long bool) string {
	if long {
		return strconv.Itoa(2000000 + n)
	}
	return strconv.Itoa(n)
}

// external reports whether the simulator's number n is an external one:
// it writes them all with + or 00, its extensions never.
func external(n string) bool {
	return strings.HasPrefix(n, "+") || strings.HasPrefix(n, "00")
}
