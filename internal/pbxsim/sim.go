// Package pbxsim is a simulator of a Wildix PBX's REST API and OAuth 2.0
// server, faithful to docs/pbx-api.md: the {"type":"result"}
// envelope, numbers sent as strings, start/count paging with result.total,
// PHP-style filters, PBX-local wall times with a timezone offset field, and
// the token endpoint's refusal of HTTP Basic client authentication.
//
// Its data is a pure function of a seed, so any number of call records can
// be served without holding them in memory, and tests can ask for the ground
// truth. Faults (5xx, HTML 502, 429 with Retry-After, connections cut
// mid-body, slow answers), latency, live inserts, deletions during a run,
// ignored parameters, page-size caps and the shape of total are switches.
//
// A Sim is an http.Handler and is safe for concurrent use. Its list logic
// is also called in process (List), without HTTP: the exporter's paging
// tests use it as the one model of the PBX.
package pbxsim

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client is an OAuth 2.0 application registered on the PBX.
type Client struct {
	ID           string
	Secret       string
	RedirectURIs []string
}

// S2SApp is a server-to-server application registered on the PBX.
type S2SApp struct {
	ID     string
	Name   string
	Secret string
}

// Faults are injected into API requests (not into OAuth or /_sim routes).
// Each rate is a probability from 0 to 1 per request.
type Faults struct {
	ServerError float64       // 500 with a JSON error body
	HTMLGateway float64       // 502 with an HTML body, as a proxy sends
	TooMany     float64       // 429 with Retry-After
	Cut         float64       // 200 whose body is cut mid-way
	Slow        float64       // answered only after SlowDelay
	SlowDelay   time.Duration // default 2s
	RetryAfter  time.Duration // Retry-After of a 429, default 1s
	Latency     time.Duration // added to every API request
}

// Options configure a Sim. The zero value of a field takes its default.
type Options struct {
	Seed       int64
	Calls      int64         // call records at start (default 1000)
	CallsStart time.Time     // around when the first call ends (default 2026-01-01 UTC)
	CallGap    time.Duration // mean time between call ends, whole seconds (default 30s)
	Location   *time.Location

	OmitTimezoneField bool // leave out the per-record timezone offset
	ExtraCallField    bool // add a field the exporter's catalog does not know
	// CallerIDFields adds to each call record the CDR's caller-id fields
	// no column of the exporter reads (docs/pbx-api.md): clid, the caller
	// id with the caller's name ("Mario Rossi" <+39…>, as Asterisk
	// writes it), c_from and c_to, the caller's and callee's numbers,
	// dnid, the number dialled (the external number of an outbound call,
	// the company's CompanyDID on an inbound one), and did, the trunk's
	// number called (CompanyDID, inbound calls only). Off by default: the
	// records, and every export of them, stay as tests pinned them.
	CallerIDFields bool
	// NumberForms writes each external number of a call record in one of
	// the forms a PBX may send it, chosen per record and field: +39…,
	// 0039…, 39…, "+39 333 1234567", "0039 333 1234567" (NumberForm).
	NumberForms bool
	// GroupFields says which group fields (srcgrp/dstgrp, lastapp/lastdata,
	// uniqueid, dcontext) call records carry. Half the blocks of 8 records
	// end with a call to a ring group or queue (GroupCalls is their truth).
	GroupFields GroupFields
	// ExternalGroupMember adds to the call group Support queue an
	// external member, an object with a number and a name
	// (ExternalMemberNumber, ExternalMemberName), as a group may ring an
	// outside number (a colleague's mobile, a service). No call rings
	// it. Off by default: the groups, and every export of them, stay as
	// tests pinned them.
	ExternalGroupMember bool

	Colleagues, Phonebooks, Contacts, Devices int // defaults 25, 5, 120, 30
	// LongExtensions numbers the extensions with 7 digits (2000201…
	// for 201…), as some PBXes do, in every place one is written
	// (colleagues, call history, channels, groups, devices, recordings).
	// Calls also reach extensions that are no colleague's (201…260 of
	// 25 colleagues), 7-digit numbers that are not the PBX's own.
	LongExtensions bool

	Clients                  []Client
	AccessTokenTTL           time.Duration // default 1h
	RotateRefreshTokens      bool          // each refresh token is single use
	RefreshOmitsRefreshToken bool          // refresh answers carry no refresh_token
	ClientAuth               string        // "body" (default: Basic refused, as reported of real PBXes), "both", "basic"
	PKCE                     string        // "optional" (default), "required", "ignore"
	DenyConsent              bool          // the user denies access on the consent page
	ExpiresInString          bool          // send expires_in as a string
	APIKeys                  []string      // static bearer keys (wsk-v1-..., access_...)
	S2SApps                  []S2SApp
	User                     string // extension OAuth tokens act as (default "201", with LongExtensions "2000201")

	FilterToExclusive bool // filter[f][to] excludes its bound (default inclusive)
	// FilterFromExclusive lists fields whose filter[f][from] excludes its
	// bound (default inclusive), e.g. "id" (docs/pbx-api.md: not known
	// of a real PBX, detected and survived for the key).
	FilterFromExclusive []string
	// IgnoreFilter and IgnoreSort play PBXes that do not honour a
	// parameter: filtering on id is unverified (docs/pbx-api.md).
	IgnoreFilter []string // fields whose filter[...] is ignored
	IgnoreSort   bool     // answer in the default order whatever sort and dir say
	MaxCount     int      // answer at most this many records a page (0: no cap)
	// Total is how list answers carry result.total: "string" (default:
	// as the PBX sends it, a number only for Phonebooks), "number" (every
	// endpoint) or "absent" (no total at all).
	Total string

	// DeleteAfter, when positive, deletes call records right after the
	// DeleteAfter-th call-history request (1-based) is answered: first the
	// DeleteOldest oldest calls (a retention purge), then DeleteRandom
	// others picked by a random source seeded from Seed.
	DeleteAfter  int
	DeleteOldest int64
	DeleteRandom int

	// Rewrite, when set, may replace each API answer (status and body):
	// how tests play a PBX that sends malformed or surprising data.
	Rewrite func(r *http.Request, status int, body []byte) (int, []byte)

	Faults          Faults
	LiveInsertEvery int   // insert LiveInsertBatch calls after every this many call-history requests
	LiveInsertBatch int   // default 3
	LiveInsertMax   int64 // live inserts stop after this many calls in all (0: never)

	// CacheCallJSON builds each call record's JSON once (about 1 KB a
	// call, those of Calls at start), so that serving a page costs little
	// CPU: benchmarks use it, where the simulator shares the machine with
	// the exporter, as a real PBX would not.
	CacheCallJSON bool
	// CacheCalls keeps each call record once built (a few hundred bytes
	// a call): for small simulations asked many times in process, where
	// filtering and sorting would otherwise build every record again for
	// each request (the exporter's sweep).
	CacheCalls bool

	Recordings RecordingOptions // recordings.go

	Log *slog.Logger
}

// Stats counts what the simulator has seen.
type Stats struct {
	APIRequests, CallRequests atomic.Int64
	CodeExchanges, Refreshes  atomic.Int64
	Faults                    atomic.Int64
	LiveInserted              atomic.Int64
	Deleted                   atomic.Int64
	Unauthorized              atomic.Int64
	Recordings                RecordingStats
}

// Sim is the simulated PBX.
type Sim struct {
	opt   Options
	calls atomic.Int64 // the highest call id assigned; ids are never reused
	Stats Stats

	mu        sync.Mutex
	rng       *rand.Rand
	dirs      map[string]*directory
	codes     map[string]*authCode
	access    map[string]accessToken
	refresh   map[string]refreshToken
	cache     map[string][]int64
	cacheKeys []string
	// deleted holds the deleted call ids, sorted. It is replaced, never
	// changed in place, so a request may keep reading the one it took.
	deleted []int64
	delGen  int         // bumped with each change of deleted
	quiet   atomic.Bool // live inserts stopped (Quiet)

	recMu sync.RWMutex
	recs  []record // by id, with CacheCalls

	startIdx startIndex // index.go

	jsonMu   sync.RWMutex
	callJSON [][]byte // by id, with CacheCallJSON

	lastPlan atomic.Pointer[lastPlan] // the group call of the last block asked (groupcalls.go)
	recSums  recordingSums            // recordings.go
}

type directory struct {
	records      []record
	numericTotal bool
}

// New returns a Sim with o's defaults filled in.
func New(o Options) *Sim {
	o.defaults()
	s := &Sim{
		opt:     o,
		rng:     rand.New(rand.NewPCG(uint64(o.Seed), 0x5eed)),
		codes:   map[string]*authCode{},
		access:  map[string]accessToken{},
		refresh: map[string]refreshToken{},
		cache:   map[string][]int64{},
	}
	s.calls.Store(o.Calls)
	s.dirs = map[string]*directory{
		"colleagues": {records: colleagues(o.Colleagues, o.LongExtensions)},
		"phonebooks": {records: phonebooks(o.Phonebooks), numericTotal: true},
		"contacts":   {records: contacts(o.Contacts, o.Phonebooks)},
		"devices":    {records: devices(o.Devices, o.LongExtensions)},
	}
	if o.CacheCallJSON {
		s.callJSON = make([][]byte, o.Calls+1)
		for id := int64(1); id <= o.Calls; id++ {
			r := s.callRecord(id)
			s.callJSON[id] = r.appendJSON(nil, nil)
			// The record is at hand: its start indexed now costs nothing,
			// where building the index later costs the first query on
			// start a pass over every call.
			s.startIdx.add(id, r.str("start"))
		}
	}
	return s
}

// defaults fills in the options left zero, and panics on a value no
// option takes (a test's mistake). It is a list, one option after
// another, longer than a screen because the options are many.
func (o *Options) defaults() {
	if o.Calls == 0 {
		o.Calls = 1000
	}
	if o.Calls < 0 {
		o.Calls = 0
	}
	if o.CallsStart.IsZero() {
		o.CallsStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.CallGap < time.Second {
		o.CallGap = 30 * time.Second
	}
	o.CallGap = o.CallGap.Truncate(time.Second)
	if o.Location == nil {
		loc, err := time.LoadLocation("Europe/Rome")
		if err != nil {
			loc = time.UTC
		}
		o.Location = loc
	}
	setDefault := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	setDefault(&o.Colleagues, 25)
	setDefault(&o.Phonebooks, 5)
	setDefault(&o.Contacts, 120)
	setDefault(&o.Devices, 30)
	setDefault(&o.LiveInsertBatch, 3)
	if o.AccessTokenTTL == 0 {
		o.AccessTokenTTL = time.Hour
	}
	if o.ClientAuth == "" {
		o.ClientAuth = "body"
	}
	if o.PKCE == "" {
		o.PKCE = "optional"
	}
	if o.User == "" {
		o.User = extension(201, o.LongExtensions)
	}
	if o.Faults.SlowDelay == 0 {
		o.Faults.SlowDelay = 2 * time.Second
	}
	if o.Faults.RetryAfter == 0 {
		o.Faults.RetryAfter = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	switch o.GroupFields.App {
	case "":
		o.GroupFields.App = "queue"
	case "queue", "dial", "none":
	default:
		panic(fmt.Sprintf("pbxsim: Options.GroupFields.App %q must be queue, dial or none", o.GroupFields.App))
	}
	switch o.Total {
	case "":
		o.Total = "string"
	case "string", "number", "absent":
	default:
		panic(fmt.Sprintf("pbxsim: Options.Total %q must be string, number or absent", o.Total))
	}
	o.Recordings.defaults()
}

// Options returns the options in force, defaults filled in.
func (s *Sim) Options() Options { return s.opt }

// CallCount is the number of call records now on the PBX: those inserted
// minus those deleted.
func (s *Sim) CallCount() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls.Load() - int64(len(s.deleted))
}

// MaxCallID is the highest call id assigned so far, deleted or not.
func (s *Sim) MaxCallID() int64 { return s.calls.Load() }

// CallIDs returns the ids of the calls now on the PBX, ascending: the
// ground truth an export is compared with.
func (s *Sim) CallIDs() []int64 {
	n := s.calls.Load()
	del := s.deletedIDs()
	ids := make([]int64, 0, n-int64(len(del)))
	for id := int64(1); id <= n; id++ {
		if len(del) > 0 && del[0] == id {
			del = del[1:]
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

// Calls returns the ground truth of the calls now on the PBX, by id.
func (s *Sim) Calls() []Call {
	ids := s.CallIDs()
	out := make([]Call, len(ids))
	for i, id := range ids {
		out[i] = s.call(id)
	}
	return out
}

// Exists reports whether call id is on the PBX (assigned and not deleted).
func (s *Sim) Exists(id int64) bool {
	if id < 1 || id > s.calls.Load() {
		return false
	}
	_, found := slices.BinarySearch(s.deletedIDs(), id)
	return !found
}

// Call returns the ground truth of call id (1 to MaxCallID), deleted or not.
func (s *Sim) Call(id int64) Call { return s.call(id) }

// CallJSON returns call id exactly as the PBX sends it.
func (s *Sim) CallJSON(id int64) []byte { return s.callRecord(id).appendJSON(nil, nil) }

// Quiet stops the live inserts of Options.LiveInsertEvery: the PBX takes
// no more calls, so that a test can check that the next export catches up
// exactly.
func (s *Sim) Quiet() { s.quiet.Store(true) }

// InsertCalls adds n new call records, as a PBX taking calls does.
func (s *Sim) InsertCalls(n int64) {
	s.calls.Add(n)
	s.Stats.LiveInserted.Add(n)
}

// Delete deletes call records, as DELETE /api/v1/CallHistory/{id} does,
// and returns how many were on the PBX. Deleted ids are never reused.
func (s *Sim) Delete(ids ...int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleteLocked(ids)
}

func (s *Sim) deleteLocked(ids []int64) int {
	n := s.calls.Load()
	del := slices.Clone(s.deleted)
	added := 0
	for _, id := range ids {
		if id < 1 || id > n {
			continue
		}
		i, found := slices.BinarySearch(del, id)
		if found {
			continue
		}
		del = slices.Insert(del, i, id)
		added++
	}
	if added > 0 {
		s.deleted = del
		s.delGen++
		s.Stats.Deleted.Add(int64(added))
		s.clearCacheLocked()
	}
	return added
}

// purge plays Options.DeleteOldest and DeleteRandom.
func (s *Sim) purge() {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.calls.Load()
	del := s.deleted
	var ids []int64
	for id := int64(1); id <= n && int64(len(ids)) < s.opt.DeleteOldest; id++ {
		if _, found := slices.BinarySearch(del, id); !found {
			ids = append(ids, id)
		}
	}
	s.deleteLocked(ids)
	// A source of its own, so that which calls go depends only on the
	// seed and the calls on the PBX, not on how many faults were drawn.
	rng := rand.New(rand.NewPCG(uint64(s.opt.Seed), 0xde1e7e))
	left := n - int64(len(s.deleted))
	var picked []int64
	for k := min(int64(s.opt.DeleteRandom), left); int64(len(picked)) < k; {
		id := rng.Int64N(n) + 1
		if _, found := slices.BinarySearch(s.deleted, id); found || slices.Contains(picked, id) {
			continue
		}
		picked = append(picked, id)
	}
	s.deleteLocked(picked)
}

// deletedIDs returns the sorted deleted call ids; the caller must not
// change the slice.
func (s *Sim) deletedIDs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted
}

// Records returns the current records of a directory endpoint (colleagues,
// phonebooks, contacts, devices) as the PBX sends them.
func (s *Sim) Records(endpoint string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dirs[endpoint]
	if d == nil {
		return nil
	}
	out := make([][]byte, len(d.records))
	for i, r := range d.records {
		out[i] = r.appendJSON(nil, nil)
	}
	return out
}

// RemoveRecord deletes the record with the given id from a directory
// endpoint, as when a colleague is removed in WMS. It reports whether one was.
func (s *Sim) RemoveRecord(endpoint, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dirs[endpoint]
	if d == nil {
		return false
	}
	for i, r := range d.records {
		if r.str("id") == id {
			d.records = append(d.records[:i:i], d.records[i+1:]...)
			s.clearCacheLocked()
			return true
		}
	}
	return false
}

// AddRecord adds a record with the given fields (sorted by name) to a
// directory endpoint, as when a colleague is created in WMS.
func (s *Sim) AddRecord(endpoint string, fields map[string]string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dirs[endpoint]
	if d == nil {
		return false
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var r record
	for _, k := range keys {
		r = append(r, field{k, fields[k]})
	}
	d.records = append(d.records, r)
	s.clearCacheLocked()
	return true
}

// RenameRecord changes the name field of a directory record.
func (s *Sim) RenameRecord(endpoint, id, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dirs[endpoint]
	if d == nil {
		return false
	}
	for i, r := range d.records {
		if r.str("id") == id {
			nr := append(record(nil), r...)
			for j := range nr {
				if nr[j].k == "name" {
					nr[j].v = name
				}
			}
			d.records[i] = nr
			s.clearCacheLocked()
			return true
		}
	}
	return false
}

func (s *Sim) clearCacheLocked() {
	s.cache = map[string][]int64{}
	s.cacheKeys = nil
}

// ServeHTTP routes a request. Paths are case-insensitive and a trailing
// slash is optional, as on real PBXes.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimRight(strings.ToLower(r.URL.Path), "/")
	switch {
	case path == "/authorization/oauth2":
		s.authorize(w, r)
	case path == "/authorization/oauth2token":
		s.token(w, r)
	case strings.HasPrefix(path, "/_sim/"):
		s.control(w, r, strings.TrimPrefix(path, "/_sim/"))
	case strings.HasPrefix(path, "/api/"):
		s.api(w, r, path)
	case strings.HasPrefix(path, "/spoolview/"):
		s.spoolview(w, r)
	default:
		http.NotFound(w, r)
	}
}
