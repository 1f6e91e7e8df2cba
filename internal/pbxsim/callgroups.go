package pbxsim

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// groupTable serves GET /api/v1/Dialplan/CallGroups: records with id,
// title, settings{…} and members[], whose members come in the shapes seen
// in clients (docs/pbx-api.md, "Call groups"): extensions as strings,
// objects with an extension, and queue interfaces such as "SIP/201".
type groupTable struct {
	recs    sliceTable
	members [][]string // members[pos], already JSON values
}

func (t groupTable) size() int64          { return t.recs.size() }
func (t groupTable) rec(pos int64) record { return t.recs.rec(pos) }
func (t groupTable) appendJSON(b []byte, pos int64, keep map[string]bool) []byte {
	b = t.recs.appendJSON(b, pos, keep)
	if keep != nil && !keep["members"] {
		return b
	}
	b = b[:len(b)-1] // reopen the object to add the array record cannot hold
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, `"members":[`...)
	b = append(b, strings.Join(t.members[pos], ",")...)
	return append(b, "]}"...)
}

// The external member of the call group Support queue
// (Options.ExternalGroupMember): an outside number with a name, which
// pseudonymisation replaces under numbers and names (README, Privacy).
const (
	ExternalMemberNumber = "+393519990003"
	ExternalMemberName   = "Ignatius Fairweather"
)

// externalMemberGroup is the id of the group given the external member.
const externalMemberGroup = "2"

// callGroups is the simulator's call groups (simGroups) over the
// colleagues' extensions 201…(200+colleagues): a ring-all group, a queue
// and a linear group, whose calls the call history plays (groupcalls.go);
// with external, the queue has an external member too
// (Options.ExternalGroupMember).
func callGroups(colleagues int, long, external bool) groupTable {
	ext := func(i int) string { return extension(201+i%max(colleagues, 1), long) }
	shapes := []func(string) string{
		func(e string) string { return strconv.Quote(e) },
		func(e string) string { return `{"extension":` + strconv.Quote(e) + `,"name":"member ` + e + `"}` },
		func(e string) string { return strconv.Quote("SIP/" + e) },
	}
	t := groupTable{}
	for gi, g := range simGroups {
		t.recs = append(t.recs, record{
			{"id", g.id},
			{"title", g.title},
			{"settings", record{{"strategy", g.strategy}, {"timeout", strconv.FormatInt(g.ring, 10)}, {"maxLen", "10"}, {"wrapUpTime", "5"}}},
		})
		var ms []string
		for _, m := range g.members {
			ms = append(ms, shapes[gi%len(shapes)](ext(m)))
		}
		if external && g.id == externalMemberGroup {
			ms = append(ms, `{"extension":`+strconv.Quote(ExternalMemberNumber)+`,"name":`+strconv.Quote(ExternalMemberName)+`}`)
		}
		t.members = append(t.members, ms)
	}
	return t
}

func (s *Sim) listCallGroups(b []byte, v url.Values) (int, []byte, bool) {
	q, bad := parseQuery(v, "id", "ASC", 100)
	if bad != "" {
		return http.StatusBadRequest, appendError(b, http.StatusBadRequest, bad), false
	}
	q = s.honour(q, "id", "ASC")
	t := callGroups(s.opt.Colleagues, s.opt.LongExtensions, s.opt.ExternalGroupMember)
	return http.StatusOK, s.appendPage(b, t, s.selectDir(t.recs, q, nil), q, false), false
}
