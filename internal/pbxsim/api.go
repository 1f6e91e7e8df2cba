package pbxsim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// table is a list endpoint's data: positions 0..size-1.
type table interface {
	size() int64
	rec(pos int64) record
	// appendJSON appends the record at pos, only fields in keep if not nil.
	appendJSON(b []byte, pos int64, keep map[string]bool) []byte
}

type callTable struct{ s *Sim }

func (t callTable) size() int64          { return t.s.calls.Load() }
func (t callTable) rec(pos int64) record { return t.s.callRecord(pos + 1) }
func (t callTable) appendJSON(b []byte, pos int64, keep map[string]bool) []byte {
	if keep != nil || !t.s.opt.CacheCallJSON {
		return t.rec(pos).appendJSON(b, keep)
	}
	return append(b, t.s.cachedCallJSON(pos+1)...)
}

type sliceTable []record

func (t sliceTable) size() int64          { return int64(len(t)) }
func (t sliceTable) rec(pos int64) record { return t[pos] }
func (t sliceTable) appendJSON(b []byte, pos int64, keep map[string]bool) []byte {
	return t[pos].appendJSON(b, keep)
}

// cachedCallJSON is call id's JSON, built once (Options.CacheCallJSON):
// a record is a pure function of its id and the options.
func (s *Sim) cachedCallJSON(id int64) []byte {
	s.jsonMu.RLock()
	if id < int64(len(s.callJSON)) && s.callJSON[id] != nil {
		b := s.callJSON[id]
		s.jsonMu.RUnlock()
		return b
	}
	s.jsonMu.RUnlock()
	b := s.callRecord(id).appendJSON(nil, nil)
	s.jsonMu.Lock()
	if id >= int64(len(s.callJSON)) {
		s.callJSON = append(s.callJSON, make([][]byte, id+1-int64(len(s.callJSON)))...)
	}
	s.callJSON[id] = b
	s.jsonMu.Unlock()
	return b
}

type filter struct {
	field string
	op    string // "eq", "from", "to"
	value string
}

type query struct {
	start, count int64
	sort, dir    string
	fields       map[string]bool
	filters      []filter
}

var filterKey = regexp.MustCompile(`^filter\[([^\]]+)\](?:\[(from|to)\])?$`)

var timeFields = map[string]bool{"start": true, "answer": true, "end": true}

// honour drops what the simulated PBX ignores (Options.IgnoreFilter,
// IgnoreSort).
func (s *Sim) honour(q query, defSort, defDir string) query {
	if s.opt.IgnoreSort {
		q.sort, q.dir = defSort, defDir
	}
	if len(s.opt.IgnoreFilter) > 0 {
		kept := q.filters[:0:0]
		for _, f := range q.filters {
			if !slices.Contains(s.opt.IgnoreFilter, f.field) {
				kept = append(kept, f)
			}
		}
		q.filters = kept
	}
	return q
}

func parseQuery(v url.Values, defSort, defDir string, defCount int64) (query, string) {
	q := query{count: defCount, sort: defSort, dir: defDir}
	if s := v.Get("start"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return q, "Invalid value of parameter 'start'"
		}
		q.start = n
	}
	if s := v.Get("count"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return q, "Invalid value of parameter 'count'"
		}
		q.count = n
	}
	if s := v.Get("sort"); s != "" {
		q.sort = s
	}
	if s := v.Get("dir"); s != "" {
		q.dir = strings.ToUpper(s)
		if q.dir != "ASC" && q.dir != "DESC" {
			return q, "Invalid value of parameter 'dir'"
		}
	}
	if s := v.Get("fields"); s != "" {
		q.fields = map[string]bool{}
		for _, f := range strings.Split(s, ",") {
			q.fields[strings.TrimSpace(f)] = true
		}
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m := filterKey.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		f := filter{field: m[1], op: "eq", value: v.Get(k)}
		if m[2] != "" {
			f.op = m[2]
		}
		if timeFields[f.field] && f.op != "eq" {
			if _, ok := parseWall(f.value, time.UTC); !ok {
				return q, fmt.Sprintf("Invalid date in %s: expected YYYY-MM-DD HH:MM:SS", k)
			}
		}
		q.filters = append(q.filters, f)
	}
	return q, ""
}

func parseWall(s string, loc *time.Location) (time.Time, bool) {
	for _, layout := range []string{wallLayout, "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// compareValues orders two field values as a database would: numerically
// when both are numbers, else as strings.
func compareValues(a, b string) int {
	if x, err := strconv.ParseInt(a, 10, 64); err == nil {
		if y, err := strconv.ParseInt(b, 10, 64); err == nil {
			return cmp.Compare(x, y)
		}
	}
	return strings.Compare(a, b)
}

func (s *Sim) matches(r record, fs []filter, extra func(record) bool) bool {
	for _, f := range fs {
		v, ok := r.get(f.field)
		if !ok {
			return false
		}
		if v == nil || !s.matchValue(f, r.str(f.field)) {
			return false
		}
	}
	return extra == nil || extra(r)
}

// matchValue reports whether a field's value sv (as sent, not null)
// passes filter f: the one comparison of a filter, whether the record is
// built (matches) or its start read from the index (startIndex).
func (s *Sim) matchValue(f filter, sv string) bool {
	if timeFields[f.field] && sv == "" {
		return false
	}
	return s.passes(f, compareValues(sv, f.value))
}

// passes says whether a value that compares c with f's passes f.
func (s *Sim) passes(f filter, c int) bool {
	switch f.op {
	case "eq":
		return c == 0
	case "from":
		return c > 0 || c == 0 && !slices.Contains(s.opt.FilterFromExclusive, f.field)
	case "to":
		return c < 0 || c == 0 && !s.opt.FilterToExclusive
	}
	return true
}

// selection is the ordered result of a query: either a contiguous range of
// positions less the deleted ones (the fast path for calls by id) or a
// materialised list.
type selection struct {
	lo, n  int64   // range form: positions lo..lo+n-1
	del    []int64 // range form: deleted positions, sorted
	desc   bool
	list   []int64
	isList bool
}

// deletedIn counts the deleted positions from a to b.
func (sel selection) deletedIn(a, b int64) int64 {
	i, _ := slices.BinarySearch(sel.del, a)
	j, _ := slices.BinarySearch(sel.del, b+1)
	return int64(j - i)
}

func (sel selection) total() int64 {
	if sel.isList {
		return int64(len(sel.list))
	}
	return sel.n - sel.deletedIn(sel.lo, sel.lo+sel.n-1)
}

// at returns the position of the i-th record of the selection.
func (sel selection) at(i int64) int64 {
	if sel.isList {
		return sel.list[i]
	}
	hi := sel.lo + sel.n - 1
	if len(sel.del) == 0 {
		if sel.desc {
			return hi - i
		}
		return sel.lo + i
	}
	// The first position p with i+1 live positions from the start to p.
	k := int64(sort.Search(int(sel.n), func(j int) bool {
		if sel.desc {
			p := hi - int64(j)
			return int64(j)+1-sel.deletedIn(p, hi) >= i+1
		}
		p := sel.lo + int64(j)
		return int64(j)+1-sel.deletedIn(sel.lo, p) >= i+1
	}))
	if sel.desc {
		return hi - k
	}
	return sel.lo + k
}

// selectCalls answers a call-history query. Sorting by id with filters on
// id and start needs no materialisation of the whole table: ends grow with
// id and a call lasts at most maxCallDuration, so a start range maps to a
// bounded range of ids.
func (s *Sim) selectCalls(q query, extra func(record) bool, scope string) selection {
	s.mu.Lock()
	n, del, gen := s.calls.Load(), s.deleted, s.delGen
	s.mu.Unlock()
	lo, hi, exact := s.callBounds(q, n)
	if hi < lo {
		return selection{}
	}
	if exact && extra == nil && q.sort == "id" {
		pos := make([]int64, len(del))
		for i, id := range del {
			pos[i] = id - 1
		}
		return selection{lo: lo - 1, n: hi - lo + 1, del: pos, desc: q.dir == "DESC"}
	}
	key := fmt.Sprintf("calls|%d|%d|%s|%d-%d|%v|%s|%s", n, gen, scope, lo, hi, q.filters, q.sort, q.dir)
	if list, ok := s.cached(key); ok {
		return selection{list: list, isList: true}
	}
	if extra == nil {
		if list, ok := s.indexed(q, lo, hi, del); ok {
			s.store(key, list)
			return selection{list: list, isList: true}
		}
	}
	var list []int64
	for id := lo; id <= hi; id++ {
		if _, gone := slices.BinarySearch(del, id); gone {
			continue
		}
		if s.matches(s.callRecord(id), q.filters, extra) {
			list = append(list, id-1)
		}
	}
	s.sortList(callTable{s}, list, q)
	s.store(key, list)
	return selection{list: list, isList: true}
}

// callBounds narrows the ids [1, n] to those q's filters can match:
// exactly when exact (filters on id alone), else a range the records in
// it are matched against. hi < lo when none can.
func (s *Sim) callBounds(q query, n int64) (lo, hi int64, exact bool) {
	lo, hi, exact = 1, n, true
	for _, f := range q.filters {
		switch {
		case f.field == "id" && f.op != "eq":
			v, err := strconv.ParseInt(f.value, 10, 64)
			if err != nil {
				exact = false
				continue
			}
			switch {
			case f.op == "from" && slices.Contains(s.opt.FilterFromExclusive, "id"):
				if v == math.MaxInt64 {
					return 1, 0, exact
				}
				lo = max(lo, v+1)
			case f.op == "from":
				lo = max(lo, v)
			case s.opt.FilterToExclusive:
				hi = min(hi, v-1)
			default:
				hi = min(hi, v)
			}
		case f.field == "id":
			if v, err := strconv.ParseInt(f.value, 10, 64); err == nil {
				lo, hi = max(lo, v), min(hi, v)
			} else {
				lo, hi = 1, 0
			}
		case f.field == "start" && f.op != "eq":
			exact = false
			t, _ := parseWall(f.value, s.opt.Location)
			if f.op == "from" {
				bound := t.Add(-3 * time.Hour).Unix()
				lo = max(lo, int64(sort.Search(int(n), func(i int) bool { return s.callEnd(int64(i)+1) >= bound }))+1)
			} else {
				bound := t.Add(maxCallDuration + 3*time.Hour).Unix()
				hi = min(hi, int64(sort.Search(int(n), func(i int) bool { return s.callEnd(int64(i)+1) > bound })))
			}
		default:
			exact = false
		}
	}
	return lo, hi, exact
}

func (s *Sim) selectDir(t sliceTable, q query, extra func(record) bool) selection {
	var list []int64
	for i := range t {
		if s.matches(t[i], q.filters, extra) {
			list = append(list, int64(i))
		}
	}
	s.sortList(t, list, q)
	return selection{list: list, isList: true}
}

func (s *Sim) sortList(t table, list []int64, q query) {
	if q.sort == "id" && q.dir == "ASC" {
		if _, isCalls := t.(callTable); isCalls {
			return // already in id order
		}
	}
	// Keys in a slice beside the list: numbers (and wall times, read as
	// the number YYYYMMDDHHMMSS) as integers, so that sorting millions of
	// calls costs 16 bytes a record, not a string each.
	type keyed struct {
		pos int64
		num int64
		str string
	}
	ks := make([]keyed, len(list))
	numeric := true
	for i, p := range list {
		v := t.rec(p).str(q.sort)
		ks[i].pos = p
		if n, ok := sortNumber(v, timeFields[q.sort]); ok {
			ks[i].num = n
		} else {
			numeric = false
			ks[i].str = v
		}
	}
	if !numeric {
		for i := range ks {
			if ks[i].str == "" {
				ks[i].str = t.rec(ks[i].pos).str(q.sort)
			}
		}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		var c int
		if numeric {
			c = cmp.Compare(a.num, b.num)
		} else {
			c = strings.Compare(a.str, b.str)
		}
		if q.dir == "DESC" {
			c = -c
		}
		if c == 0 {
			c = cmp.Compare(a.pos, b.pos)
		}
		return c
	})
	for i := range ks {
		list[i] = ks[i].pos
	}
}

// sortNumber reads a sort key as an integer: a number, or a wall time
// "YYYY-MM-DD HH:MM:SS" (which sorts like its digits). Empty times sort
// first, as NULL does in ascending order.
func sortNumber(v string, isTime bool) (int64, bool) {
	if isTime {
		if v == "" {
			return -1, true
		}
		var n int64
		for i := 0; i < len(v); i++ {
			switch c := v[i]; {
			case c >= '0' && c <= '9':
				n = n*10 + int64(c-'0')
			case c == '-' || c == ' ' || c == ':':
			default:
				return 0, false
			}
		}
		return n, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

func (s *Sim) cached(key string) ([]int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.cache[key]
	return l, ok
}

func (s *Sim) store(key string, list []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cacheKeys) >= 8 {
		delete(s.cache, s.cacheKeys[0])
		s.cacheKeys = s.cacheKeys[1:]
	}
	s.cache[key] = list
	s.cacheKeys = append(s.cacheKeys, key)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func writeError(w http.ResponseWriter, status int, reason string) {
	writeJSON(w, status, appendError(nil, status, reason))
}

func appendError(b []byte, status int, reason string) []byte {
	b = append(b, `{"type":"error","reason":`...)
	b = appendString(b, reason)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	return append(b, '}')
}

// recorder holds an answer for Options.Rewrite.
type recorder struct {
	h      http.Header
	status int
	body   []byte
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) WriteHeader(status int)      { r.status = status }
func (r *recorder) Write(b []byte) (int, error) { r.body = append(r.body, b...); return len(b), nil }

func (s *Sim) api(w http.ResponseWriter, r *http.Request, path string) {
	if s.opt.Rewrite != nil {
		rec := &recorder{h: http.Header{}, status: http.StatusOK}
		s.serveAPI(rec, r, path)
		status, body := s.opt.Rewrite(r, rec.status, rec.body)
		for k, v := range rec.h {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		w.Write(body)
		return
	}
	s.serveAPI(w, r, path)
}

func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request, path string) {
	s.Stats.APIRequests.Add(1)
	if s.opt.Faults.Latency > 0 {
		if !sleep(r, s.opt.Faults.Latency) {
			return
		}
	}
	if s.fault(w, r) {
		return
	}
	user, ok := s.authenticate(r)
	if !ok {
		s.Stats.Unauthorized.Add(1)
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	parts := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")
	if r.Method == http.MethodDelete {
		switch {
		case len(parts) == 2 && parts[0] == "callhistory":
			s.deleteCall(w, parts[1])
		case len(parts) == 3 && parts[0] == "pbx" && parts[1] == "callhistory":
			s.deleteCall(w, parts[2])
		default:
			writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
		}
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
		return
	}
	if path == "/api/v1/personal/info" {
		s.personalInfo(w, user)
		return
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	status, body, purge := s.list((*bp)[:0], path, r.URL.Query(), user)
	*bp = body
	writeJSON(w, status, body)
	// Right after the answer is written and before the handler returns,
	// so a client that has the answer knows the deletions are done.
	if purge {
		s.purge()
	}
}

// List answers a list request (GET path?q) in process, as the API does
// over HTTP for an API key of the PBX's user (Options.User): the same
// routes, selection, switches (ignored parameters, exclusive bounds, a
// cap, the form of total), live inserts and deletions, and the same body.
// It plays neither faults, latency, authentication nor Options.Rewrite:
// those belong to the HTTP exchange. The body is the caller's.
func (s *Sim) List(path string, q url.Values) (status int, body []byte) {
	s.Stats.APIRequests.Add(1)
	path = strings.TrimRight(strings.ToLower(path), "/")
	status, body, purge := s.list(nil, path, q, s.opt.User)
	if purge {
		s.purge()
	}
	return status, body
}

// list appends the answer to a list request to b. path is lowercased,
// without a trailing slash. purge says that the deletions of
// Options.DeleteAfter are due once the answer is delivered.
func (s *Sim) list(b []byte, path string, v url.Values, user string) (status int, body []byte, purge bool) {
	parts := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")
	switch {
	case path == "/api/v1/pbx/callhistory":
		return s.listCalls(b, v, nil, "all")
	case path == "/api/v1/callhistory":
		return s.listCalls(b, v, involves(user), "user:"+user)
	case len(parts) == 3 && parts[0] == "user" && parts[2] == "callhistory":
		return s.listCalls(b, v, involves(parts[1]), "user:"+parts[1])
	case path == "/api/v1/pbx/colleagues" || path == "/api/v1/colleagues":
		return s.listDir(b, v, "colleagues", "dn", "DESC", 1500)
	case path == "/api/v1/phonebooks":
		return s.listDir(b, v, "phonebooks", "name", "ASC", 100)
	case path == "/api/v1/contacts":
		return s.listDir(b, v, "contacts", "id", "ASC", 100)
	case path == "/api/v1/devices":
		return s.listDir(b, v, "devices", "id", "ASC", 100)
	case path == "/api/v1/dialplan/callgroups":
		return s.listCallGroups(b, v)
	case path == "/api/v1/pbx/recordings":
		return s.listRecordings(b, v)
	}
	return http.StatusNotFound, appendError(b, http.StatusNotFound, "404 Not Found"), false
}

func involves(ext string) func(record) bool {
	return func(r record) bool { return r.str("src") == ext || r.str("dst") == ext }
}

func (s *Sim) listCalls(b []byte, v url.Values, extra func(record) bool, scope string) (int, []byte, bool) {
	n := s.Stats.CallRequests.Add(1)
	if s.opt.LiveInsertEvery > 0 && n%int64(s.opt.LiveInsertEvery) == 0 && !s.quiet.Load() {
		k := int64(s.opt.LiveInsertBatch)
		if m := s.opt.LiveInsertMax; m > 0 {
			k = min(k, m-s.Stats.LiveInserted.Load())
		}
		if k > 0 {
			s.InsertCalls(k)
		}
	}
	purge := s.opt.DeleteAfter > 0 && n == int64(s.opt.DeleteAfter)
	q, bad := parseQuery(v, "start", "DESC", 100)
	if bad != "" {
		return http.StatusBadRequest, appendError(b, http.StatusBadRequest, bad), purge
	}
	q = s.honour(q, "start", "DESC")
	sel := s.selectCalls(q, extra, scope)
	return http.StatusOK, s.appendPage(b, callTable{s}, sel, q, false), purge
}

// deleteCall serves DELETE /api/v1/CallHistory/{id}.
func (s *Sim) deleteCall(w http.ResponseWriter, idText string) {
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || s.Delete(id) == 0 {
		writeError(w, http.StatusNotFound, "Call not found")
		return
	}
	writeJSON(w, http.StatusOK, []byte(`{"type":"result","result":"Success"}`))
}

func (s *Sim) listDir(b []byte, v url.Values, name, defSort, defDir string, defCount int64) (int, []byte, bool) {
	q, bad := parseQuery(v, defSort, defDir, defCount)
	if bad != "" {
		return http.StatusBadRequest, appendError(b, http.StatusBadRequest, bad), false
	}
	q = s.honour(q, defSort, defDir)
	s.mu.Lock()
	d := s.dirs[name]
	t := sliceTable(slices.Clone(d.records))
	numeric := d.numericTotal
	s.mu.Unlock()
	sel := s.selectDir(t, q, nil)
	return http.StatusOK, s.appendPage(b, t, sel, q, numeric), false
}

func (s *Sim) appendPage(b []byte, t table, sel selection, q query, numericTotal bool) []byte {
	return s.appendResult(b, sel.total(), q, numericTotal, func(b []byte, i int64) []byte {
		return t.appendJSON(b, sel.at(i), q.fields)
	})
}

// appendResult appends a list's answer: the total of total records in
// the form Options.Total says (a number when numericTotal), then the
// page q asks for (cut to Options.MaxCount), each record i appended by
// appendRecord.
func (s *Sim) appendResult(b []byte, total int64, q query, numericTotal bool, appendRecord func(b []byte, i int64) []byte) []byte {
	b = append(b, `{"type":"result","result":{`...)
	switch {
	case s.opt.Total == "absent":
	case numericTotal || s.opt.Total == "number":
		b = append(b, `"total":`...)
		b = strconv.AppendInt(b, total, 10)
		b = append(b, ',')
	default:
		b = append(b, `"total":"`...)
		b = strconv.AppendInt(b, total, 10)
		b = append(b, `",`...)
	}
	b = append(b, `"records":[`...)
	count := q.count
	if s.opt.MaxCount > 0 && count > int64(s.opt.MaxCount) {
		count = int64(s.opt.MaxCount)
	}
	for i := q.start; i < total && i < q.start+count; i++ {
		if i > q.start {
			b = append(b, ',')
		}
		b = appendRecord(b, i)
	}
	return append(b, "]}}"...)
}

func (s *Sim) personalInfo(w http.ResponseWriter, user string) {
	s.mu.Lock()
	var me record
	for _, r := range s.dirs["colleagues"].records {
		if r.str("extension") == user {
			me = r
		}
	}
	s.mu.Unlock()
	if me == nil {
		me = record{{"id", "0"}, {"extension", user}, {"name", "API user " + user}}
	}
	b := append([]byte(`{"type":"result","result":`), me.appendJSON(nil, nil)...)
	writeJSON(w, http.StatusOK, append(b, '}'))
}

// control serves the simulator's own routes: the ground truth and switches
// for tests that drive a pbxsim process from outside.
func (s *Sim) control(w http.ResponseWriter, r *http.Request, path string) {
	switch {
	case strings.HasPrefix(path, "truth/"):
		name := strings.TrimPrefix(path, "truth/")
		w.Header().Set("Content-Type", "application/x-ndjson")
		if name == "call_history" {
			for _, id := range s.CallIDs() {
				w.Write(append(s.CallJSON(id), '\n'))
			}
			return
		}
		if name == "recordings" {
			s.recordingsTruth(w)
			return
		}
		if name == "group_calls" {
			enc := json.NewEncoder(w)
			for _, gc := range s.GroupCalls() {
				enc.Encode(gc)
			}
			return
		}
		recs := s.Records(name)
		if recs == nil {
			http.NotFound(w, r)
			return
		}
		for _, rec := range recs {
			w.Write(append(rec, '\n'))
		}
	case path == "insert" && r.Method == http.MethodPost:
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		s.InsertCalls(max(n, 1))
		fmt.Fprintf(w, "%d\n", s.CallCount())
	case path == "delete" && r.Method == http.MethodPost:
		var ids []int64
		for _, v := range strings.Split(r.URL.Query().Get("ids"), ",") {
			if id, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				ids = append(ids, id)
			}
		}
		fmt.Fprintf(w, "%d\n", s.Delete(ids...))
	case path == "revoke" && r.Method == http.MethodPost:
		s.RevokeRefreshTokens()
		w.WriteHeader(http.StatusNoContent)
	case path == "stats":
		fmt.Fprintf(w, "calls %d\napi_requests %d\ncode_exchanges %d\nrefreshes %d\nfaults %d\nlive_inserted %d\ndeleted %d\n",
			s.CallCount(), s.Stats.APIRequests.Load(), s.Stats.CodeExchanges.Load(), s.Stats.Refreshes.Load(),
			s.Stats.Faults.Load(), s.Stats.LiveInserted.Load(), s.Stats.Deleted.Load())
	default:
		http.NotFound(w, r)
	}
}

// sleep waits d or until the client goes away, reporting whether it waited.
func sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}
