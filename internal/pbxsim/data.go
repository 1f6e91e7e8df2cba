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
}

// maxCallDuration bounds a call's length; the query planner relies on it.
const maxCallDuration = 4 * time.Hour

// call generates call id. Ends are strictly increasing with id, as CDR row
// ids are assigned when a call ends; starts are not (long calls).
func (s *Sim) call(id int64) Call {
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
	ext := func(x uint64) string { return strconv.Itoa(201 + int(x%60)) }
	outbound := h4%2 == 0
	if outbound {
		c.Src = ext(h4 >> 4)
		c.Dst = "0039" + strconv.FormatUint(2000000000+(h4>>12)%999999999, 10)
	} else {
		c.Src = "+39" + strconv.FormatUint(3000000000+(h4>>12)%999999999, 10)
		c.Dst = ext(h4 >> 4)
	}
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
	if outbound && c.Billsec > 0 {
		c.Cost = strconv.FormatFloat(float64(c.Billsec)*0.0021, 'f', 4, 64)
	}
	c.Offset = c.Start.In(s.opt.Location).Format("-0700")
	return c
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
	c := s.call(id)
	r := record{
		{"id", strconv.FormatInt(c.ID, 10)},
		{"start", s.wall(c.Start)},
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
		{"channel", "SIP/" + c.Src + "-" + fmt.Sprintf("%08x", c.ID)},
		{"dstchannel", "SIP/trunk-" + fmt.Sprintf("%08x", c.ID+1)},
		{"lastapp", "Dial"},
		{"lastdata", "SIP/" + c.Dst + ",60,tT"},
		{"userfield", ""},
		{"cost", c.Cost},
		{"faxdata", ""},
	}
	if !s.opt.OmitTimezoneField {
		r = append(r, field{"timezone", c.Offset})
	}
	if s.opt.ExtraCallField {
		r = append(r, field{"tags", "vip,callback"})
	}
	return r
}

// callEnd is the end instant of call id, strictly increasing with id.
func (s *Sim) callEnd(id int64) int64 {
	h := splitmix64(uint64(s.opt.Seed)*0x100000001b3 ^ uint64(id))
	gap := int64(s.opt.CallGap / time.Second)
	return s.opt.CallsStart.Unix() + id*gap + int64(h%uint64(gap))
}

func colleagues(n int) []record {
	out := make([]record, 0, n)
	for i := 0; i < n; i++ {
		h := splitmix64(uint64(i) + 7)
		name := personName(h)
		if i%5 == 3 {
			name = awkward[i%len(awkward)] + " " + strconv.Itoa(i)
		}
		id := strconv.Itoa(2951881 + i)
		ext := strconv.Itoa(201 + i)
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

func devices(n int) []record {
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
			{"user", strconv.Itoa(201 + i)},
			{"address", fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)},
			{"state", state},
			{"vendor", record{{"name", "Wildix"}, {"additional", ""}}},
		})
	}
	return out
}
