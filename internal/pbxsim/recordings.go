package pbxsim

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RecordingOptions configure the call recordings: GET
// /api/v1/PBX/recordings and the WAV files under /spoolview/recordings/.
// What is known of them, and what is not, is in docs/pbx-api.md
// (Recordings); every unknown is a switch here.
type RecordingOptions struct {
	// Every: one answered call in Every has a recording (those whose id
	// is a multiple of Every); 0 means no recordings.
	Every int
	// Fields is the shape of a list record (no source shows one):
	// "camel" (default: id, fileName, path, start, duration, size,
	// extension, number), "snake" (id, file_name, url, time, length,
	// filesize, src, dst), "attachment" (id, url, time, source,
	// destination: the shape of a call record's attachments.recordings in
	// one mock with an id added; no size) or "bare" (url, time, source,
	// destination: that mock's object as it is, no id either, so that a
	// recording is known by its file's address only).
	Fields string
	// Times is how from/to and the record's time are written: "wall"
	// (default: PBX-local "YYYY-MM-DD HH:MM:SS", as call history) or
	// "epoch" (Unix seconds). A from/to in the other form is a 400.
	Times string
	// BytesPerSecond is the size of a second of recording (default
	// 16000: 8 kHz 16-bit mono PCM, as a PBX records); lower it for
	// small tests.
	BytesPerSecond int64
	// BigSize, when positive, is the size in bytes of the first
	// recording (the lowest id): a file of several hundred MB, generated
	// while it is sent.
	BigSize int64
	// Vanished are recording ids that are listed but whose file answers
	// 404: deleted on the PBX between the list and the download.
	Vanished []int64
	// CloudURL, when set, makes /spoolview/ answer 302 to this origin
	// (a second server running CloudHandler), as a PBX whose recording
	// has moved to cloud storage does: a signed address that needs no
	// credential.
	CloudURL string
	// OAuthFiles lets an OAuth access token fetch files too. Unknown of a
	// real PBX: by default only a Simple Token (an access_... API key)
	// does; a wsk-v1 company key never does.
	OAuthFiles bool
	// Cut is the rate (0 to 1) of file answers cut mid-body: the
	// Content-Length of the whole file, a part of it sent (drawn from the
	// seeded source), then the connection dropped.
	Cut float64
	// Broken are recording ids whose file answers 500 every time: a file
	// that fails after every retry.
	Broken []int64
	// HostileNames gives every 10th recording a file name no one should
	// use as a path: "../../etc/x", an absolute path, a NUL byte, 4 KB.
	HostileNames bool
}

func (o *RecordingOptions) defaults() {
	switch o.Fields {
	case "":
		o.Fields = "camel"
	case "camel", "snake", "attachment", "bare":
	default:
		panic(fmt.Sprintf("pbxsim: Options.Recordings.Fields %q must be camel, snake, attachment or bare", o.Fields))
	}
	switch o.Times {
	case "":
		o.Times = "wall"
	case "wall", "epoch":
	default:
		panic(fmt.Sprintf("pbxsim: Options.Recordings.Times %q must be wall or epoch", o.Times))
	}
	if o.BytesPerSecond <= 0 {
		o.BytesPerSecond = 16000
	}
	if o.Every < 0 {
		o.Every = 0
	}
	if !(o.Cut >= 0 && o.Cut <= 1) {
		panic(fmt.Sprintf("pbxsim: Options.Recordings.Cut %v must be from 0 to 1", o.Cut))
	}
	// Sorted copies: the caller's slices stay as they were.
	o.Vanished = slices.Sorted(slices.Values(o.Vanished))
	o.Broken = slices.Sorted(slices.Values(o.Broken))
}

// Recording is the ground truth of one recording.
type Recording struct {
	ID       int64     `json:"id"`
	CallID   int64     `json:"call_id"` // the call-history record (leg) it belongs to
	Start    time.Time `json:"start"`   // the call's answer
	Duration int64     `json:"duration"`
	// Extension is the PBX's party, Number the other (an extension too
	// for an internal call).
	Extension string `json:"extension"`
	Number    string `json:"number"`
	FileName  string `json:"file_name"` // as the PBX names it (maybe hostile)
	Path      string `json:"path"`      // URL path of the file, escaped
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256,omitempty"` // in the truth route only
	Vanished  bool   `json:"vanished"`
}

// RecordingStats count the requests for recording files.
type RecordingStats struct {
	FileRequests     atomic.Int64 // to /spoolview/recordings/
	CloudRequests    atomic.Int64 // to CloudHandler, without a credential
	CloudCredentials atomic.Int64 // to CloudHandler with a credential: refused
	Faults           atomic.Int64 // answers cut (Cut) or failed (Broken)
}

// recordingSums remembers the sha256 of recordings once computed.
type recordingSums struct {
	mu sync.Mutex
	m  map[int64]string
}

const wavHeaderSize = 44

// recIDOf and callOfRec map call ids to recording ids and back: a
// recording's id is not its call's, as nothing says it would be.
func recIDOf(callID int64) int64 { return 3*callID + 1 }
func callOfRec(id int64) (int64, bool) {
	if id < 4 || (id-1)%3 != 0 {
		return 0, false
	}
	return (id - 1) / 3, true
}

// recording returns the recording of call id, if it has one.
func (s *Sim) recording(callID int64) (Recording, bool) {
	o := s.opt.Recordings
	if o.Every == 0 || callID < 1 || callID > s.calls.Load() || callID%int64(o.Every) != 0 {
		return Recording{}, false
	}
	c := s.call(callID)
	if c.Billsec <= 0 || c.Type != "call" {
		return Recording{}, false
	}
	r := Recording{ID: recIDOf(callID), CallID: callID, Start: c.Answer, Duration: c.Billsec, Extension: c.Src, Number: c.Dst}
	if external(c.Src) {
		r.Extension, r.Number = c.Dst, c.Src
	}
	r.Size = wavHeaderSize + r.Duration*o.BytesPerSecond
	if o.BigSize > 0 && callID == s.firstRecordedCall() {
		r.Size = max(o.BigSize, wavHeaderSize)
	}
	local := r.Start.In(s.opt.Location)
	h := splitmix64(uint64(s.opt.Seed) ^ uint64(r.ID)*0x9e3779b97f4a7c15)
	r.FileName = fmt.Sprintf("%s-%s-%s-%08x-%d.wav", local.Format("2006.01.02-15.04.05"), r.Extension, strings.TrimPrefix(r.Number, "+"), uint32(h), 1+h%2)
	r.Path = "/spoolview/recordings/" + local.Format("2006/01/02") + "/" + url.PathEscape(r.FileName)
	if slot := callID / int64(o.Every); o.HostileNames && slot%10 == 0 {
		// In a folder of its own: hostile names repeat, paths do not.
		r.FileName = hostileNames[(slot/10)%int64(len(hostileNames))]
		r.Path = "/spoolview/recordings/" + local.Format("2006/01/02") + "/" + strconv.FormatInt(r.ID, 10) + "/" + url.PathEscape(r.FileName)
	}
	_, r.Vanished = slices.BinarySearch(o.Vanished, r.ID)
	return r, true
}

var hostileNames = []string{
	"../../etc/x",
	"/etc/passwd",
	"a\x00b.wav",
	"line\nbreak\x1b[31m.wav",
	strings.Repeat("x", 4096) + ".wav",
}

// firstRecordedCall is the lowest call id with a recording (0: none).
func (s *Sim) firstRecordedCall() int64 {
	every := int64(s.opt.Recordings.Every)
	for id := every; id <= s.calls.Load(); id += every {
		c := s.call(id)
		if c.Billsec > 0 && c.Type == "call" {
			return id
		}
	}
	return 0
}

// Recordings returns the ground truth of every recording, by start then
// id (without SHA256: RecordingSHA256 computes it).
func (s *Sim) Recordings() []Recording {
	return s.selectRecordings(time.Time{}, time.Time{})
}

// selectRecordings returns the recordings starting from from to to (zero:
// unbounded; to is inclusive unless Options.FilterToExclusive), by start
// then id.
func (s *Sim) selectRecordings(from, to time.Time) []Recording {
	ids := s.selectRecordingCalls(from, to)
	out := make([]Recording, len(ids))
	for i, id := range ids {
		out[i], _ = s.recording(id)
	}
	return out
}

// selectRecordingCalls is selectRecordings as the ids of the recorded
// calls, kept (as call-history selections are) so that paging through a
// long list builds only each page's calls. Starts lie within
// maxCallDuration before their call's end, which grows with the call id:
// the candidates are a range of ids.
func (s *Sim) selectRecordingCalls(from, to time.Time) []int64 {
	every := int64(s.opt.Recordings.Every)
	if every == 0 {
		return nil
	}
	n := s.calls.Load()
	// Nanoseconds: the spool's day ends at its last nanosecond, in the
	// same second as a list's 23:59:59.
	key := fmt.Sprintf("recordings|%d|%d.%09d|%d.%09d", n, from.Unix(), from.Nanosecond(), to.Unix(), to.Nanosecond())
	if ids, ok := s.cached(key); ok {
		return ids
	}
	lo, hi := int64(1), n
	if !from.IsZero() {
		bound := from.Unix()
		lo = int64(sort.Search(int(n), func(i int) bool { return s.callEnd(int64(i)+1) >= bound })) + 1
	}
	if !to.IsZero() {
		bound := to.Add(maxCallDuration).Unix()
		hi = int64(sort.Search(int(n), func(i int) bool { return s.callEnd(int64(i)+1) > bound }))
	}
	var recs []Recording
	for id := (lo + every - 1) / every * every; id <= hi; id += every {
		r, ok := s.recording(id)
		if !ok || !from.IsZero() && r.Start.Before(from) {
			continue
		}
		if !to.IsZero() && (r.Start.After(to) || s.opt.FilterToExclusive && r.Start.Equal(to)) {
			continue
		}
		recs = append(recs, r)
	}
	slices.SortStableFunc(recs, func(a, b Recording) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	ids := make([]int64, len(recs))
	for i, r := range recs {
		ids[i] = r.CallID
	}
	s.store(key, ids)
	return ids
}

// listRecordings answers GET /api/v1/PBX/recordings: from/to on the
// recording's start, start/count paging, the result.records envelope.
func (s *Sim) listRecordings(b []byte, v url.Values) (int, []byte, bool) {
	o := s.opt.Recordings
	var bounds [2]time.Time
	for i, k := range []string{"from", "to"} {
		x := v.Get(k)
		if x == "" {
			continue
		}
		var ok bool
		if o.Times == "epoch" {
			var sec int64
			sec, err := strconv.ParseInt(x, 10, 64)
			ok = err == nil && sec >= 0
			bounds[i] = time.Unix(sec, 0).UTC()
		} else {
			bounds[i], ok = parseWall(x, s.opt.Location)
			if ok && i == 1 && len(x) == len("2006-01-02") {
				bounds[i] = bounds[i].AddDate(0, 0, 1).Add(-time.Second)
			}
		}
		if !ok {
			return http.StatusBadRequest, appendError(b, http.StatusBadRequest, "Invalid value of parameter '"+k+"'"), false
		}
	}
	q, bad := parseQuery(url.Values{"start": v["start"], "count": v["count"]}, "start", "ASC", 100)
	if bad != "" {
		return http.StatusBadRequest, appendError(b, http.StatusBadRequest, bad), false
	}
	ids := s.selectRecordingCalls(bounds[0], bounds[1])
	return http.StatusOK, s.appendResult(b, int64(len(ids)), q, false, func(b []byte, i int64) []byte {
		rec, _ := s.recording(ids[i])
		return s.recordingRecord(rec).appendJSON(b, nil)
	}), false
}

// recordingRecord is a recording as the list sends it, in the shape of
// RecordingOptions.Fields.
func (s *Sim) recordingRecord(r Recording) record {
	o := s.opt.Recordings
	at := s.wall(r.Start)
	if o.Times == "epoch" {
		at = strconv.FormatInt(r.Start.Unix(), 10)
	}
	id, dur, size := strconv.FormatInt(r.ID, 10), strconv.FormatInt(r.Duration, 10), strconv.FormatInt(r.Size, 10)
	switch o.Fields {
	case "snake":
		return record{{"id", id}, {"file_name", r.FileName}, {"url", r.Path}, {"time", at}, {"length", dur}, {"filesize", size}, {"src", r.Extension}, {"dst", r.Number}}
	case "attachment":
		return record{{"id", id}, {"url", r.Path}, {"time", at}, {"source", r.Extension}, {"destination", r.Number}}
	case "bare":
		return record{{"url", r.Path}, {"time", at}, {"source", r.Extension}, {"destination", r.Number}}
	}
	return record{{"id", id}, {"fileName", r.FileName}, {"path", r.Path}, {"start", at}, {"duration", dur}, {"size", size}, {"extension", r.Extension}, {"number", r.Number}}
}

// recordingAt finds the recording whose file is at the escaped URL path.
func (s *Sim) recordingAt(escaped string) (Recording, bool) {
	rest, ok := strings.CutPrefix(escaped, "/spoolview/recordings/")
	if !ok {
		return Recording{}, false
	}
	parts := strings.SplitN(rest, "/", 4)
	if len(parts) != 4 {
		return Recording{}, false
	}
	day, err := time.ParseInLocation("2006/01/02", strings.Join(parts[:3], "/"), s.opt.Location)
	if err != nil {
		return Recording{}, false
	}
	for _, r := range s.selectRecordings(day, day.AddDate(0, 0, 1).Add(-time.Nanosecond)) {
		if r.Path == escaped {
			return r, true
		}
	}
	return Recording{}, false
}

// spoolview serves a recording's file: a Simple Token needed, 404 for a
// vanished one, and a 302 to cloud storage with RecordingOptions.CloudURL.
func (s *Sim) spoolview(w http.ResponseWriter, r *http.Request) {
	s.Stats.Recordings.FileRequests.Add(1)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
		return
	}
	if !s.simpleToken(r) {
		s.Stats.Unauthorized.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="spoolview"`)
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	rec, ok := s.recordingAt(r.URL.EscapedPath())
	if !ok || rec.Vanished {
		http.NotFound(w, r)
		return
	}
	if base := s.opt.Recordings.CloudURL; base != "" {
		exp := time.Now().Add(15 * time.Minute).Unix()
		loc := fmt.Sprintf("%s/cloud/%d.wav?expires=%d&sig=%s", strings.TrimRight(base, "/"), rec.ID, exp, s.cloudSig(rec.ID, exp))
		http.Redirect(w, r, loc, http.StatusFound)
		return
	}
	s.serveWAV(w, r, rec)
}

// simpleToken reports whether r carries a bearer Simple Token (an API key
// starting access_), or an OAuth access token with OAuthFiles.
func (s *Sim) simpleToken(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return false
	}
	for _, k := range s.opt.APIKeys {
		if strings.HasPrefix(k, "access_") && subtle.ConstantTimeCompare([]byte(k), []byte(tok)) == 1 {
			return true
		}
	}
	if !s.opt.Recordings.OAuthFiles {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.access[tok]
	return ok && time.Now().Before(t.expires)
}

func (s *Sim) cloudKey() []byte {
	var k [16]byte
	binary.LittleEndian.PutUint64(k[:], splitmix64(uint64(s.opt.Seed)^0xc10d))
	return k[:]
}

func (s *Sim) cloudSig(id, exp int64) string {
	m := hmac.New(sha256.New, s.cloudKey())
	fmt.Fprintf(m, "%d|%d", id, exp)
	return hex.EncodeToString(m.Sum(nil))
}

// CloudHandler is the second origin standing in for cloud storage, where
// /spoolview/ redirects with RecordingOptions.CloudURL: it serves a file
// at a signed address, and refuses (400, counted in
// Stats.Recordings.CloudCredentials) any request that carries an Authorization
// header, a cookie or a token parameter: credentials never leave the PBX.
func (s *Sim) CloudHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" || q.Has("token") || q.Has("access_token") {
			s.Stats.Recordings.CloudCredentials.Add(1)
			http.Error(w, "a credential was sent to cloud storage", http.StatusBadRequest)
			return
		}
		s.Stats.Recordings.CloudRequests.Add(1)
		idText, ok := strings.CutPrefix(r.URL.Path, "/cloud/")
		idText, ok2 := strings.CutSuffix(idText, ".wav")
		id, err := strconv.ParseInt(idText, 10, 64)
		exp, err2 := strconv.ParseInt(q.Get("expires"), 10, 64)
		if !ok || !ok2 || err != nil || err2 != nil || !hmac.Equal([]byte(q.Get("sig")), []byte(s.cloudSig(id, exp))) || time.Now().Unix() > exp {
			http.Error(w, "AccessDenied: bad or expired signature", http.StatusForbidden)
			return
		}
		callID, ok := callOfRec(id)
		rec, ok2 := s.recording(callID)
		if !ok || !ok2 || rec.Vanished {
			http.NotFound(w, r)
			return
		}
		s.serveWAV(w, r, rec)
	})
}

// serveWAV sends the recording's bytes, generated while they are sent,
// or plays RecordingOptions.Broken and Cut.
func (s *Sim) serveWAV(w http.ResponseWriter, r *http.Request, rec Recording) {
	if _, broken := slices.BinarySearch(s.opt.Recordings.Broken, rec.ID); broken {
		s.Stats.Recordings.Faults.Add(1)
		writeError(w, http.StatusInternalServerError, "Internal error")
		return
	}
	size := rec.Size
	if c := s.opt.Recordings.Cut; c > 0 && r.Method == http.MethodGet {
		s.mu.Lock()
		if s.rng.Float64() < c {
			size = s.rng.Int64N(rec.Size)
		}
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", "audio/wav")
	w.Header().Set("Content-Length", strconv.FormatInt(rec.Size, 10))
	if r.Method == http.MethodHead {
		return
	}
	buf := make([]byte, 64<<10)
	io.CopyBuffer(w, io.LimitReader(s.wavReader(rec), size), buf)
	if size < rec.Size {
		s.Stats.Recordings.Faults.Add(1)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection dropped mid-file
	}
}

// wavReader is the recording's content: a WAV header (8 kHz 16-bit mono
// PCM) and bytes drawn from a source seeded by the seed and its id.
func (s *Sim) wavReader(rec Recording) io.Reader {
	data := rec.Size - wavHeaderSize
	h := make([]byte, 0, wavHeaderSize)
	h = append(h, "RIFF"...)
	h = binary.LittleEndian.AppendUint32(h, uint32(36+data))
	h = append(h, "WAVEfmt "...)
	h = binary.LittleEndian.AppendUint32(h, 16)
	h = binary.LittleEndian.AppendUint16(h, 1) // PCM
	h = binary.LittleEndian.AppendUint16(h, 1) // mono
	h = binary.LittleEndian.AppendUint32(h, 8000)
	h = binary.LittleEndian.AppendUint32(h, 16000)
	h = binary.LittleEndian.AppendUint16(h, 2)
	h = binary.LittleEndian.AppendUint16(h, 16)
	h = append(h, "data"...)
	h = binary.LittleEndian.AppendUint32(h, uint32(data))
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], uint64(s.opt.Seed))
	binary.LittleEndian.PutUint64(key[8:], uint64(rec.ID))
	copy(key[16:], "pbxsim recording")
	return io.MultiReader(bytes.NewReader(h), io.LimitReader(rand.NewChaCha8(key), data))
}

// RecordingSHA256 is the sha256 of a recording's file, computed by
// generating it (about a second per 300 MB); remembered once computed.
func (s *Sim) RecordingSHA256(rec Recording) string {
	s.recSums.mu.Lock()
	sum, ok := s.recSums.m[rec.ID]
	s.recSums.mu.Unlock()
	if ok {
		return sum
	}
	h := sha256.New()
	io.CopyBuffer(h, s.wavReader(rec), make([]byte, 64<<10))
	sum = hex.EncodeToString(h.Sum(nil))
	s.recSums.mu.Lock()
	if s.recSums.m == nil {
		s.recSums.m = map[int64]string{}
	}
	s.recSums.m[rec.ID] = sum
	s.recSums.mu.Unlock()
	return sum
}

// recordingsTruth serves /_sim/truth/recordings: one JSON line per
// recording, with its sha256.
func (s *Sim) recordingsTruth(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, r := range s.Recordings() {
		r.SHA256 = s.RecordingSHA256(r)
		enc.Encode(r)
	}
}
