package pbxsim

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const simpleToken = "access_simple-token-of-admin"

// recSetup is a simulator with recordings (one answered call in 5, 100
// bytes a second) serving over real HTTP, its Simple Token accepted.
func recSetup(t *testing.T, o Options) (*Sim, *httptest.Server) {
	t.Helper()
	if o.Recordings.Every == 0 {
		o.Recordings.Every = 5
	}
	if o.Recordings.BytesPerSecond == 0 {
		o.Recordings.BytesPerSecond = 100
	}
	if o.Calls == 0 {
		o.Calls = 600
	}
	o.APIKeys = append(o.APIKeys, simpleToken)
	return setup(t, o)
}

// getJSON GETs path with the simple token and decodes the list envelope.
func listRecordings(t *testing.T, srv *httptest.Server, q url.Values) (total any, recs []map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/PBX/recordings?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+simpleToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list %s: %s %s", q.Encode(), resp.Status, body)
	}
	var env struct {
		Type   string
		Result struct {
			Total   any
			Records []map[string]string
		}
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Type != "result" {
		t.Fatalf("list: %v, type %q: %s", err, env.Type, body)
	}
	return env.Result.Total, env.Result.Records
}

// fetch GETs a recording's file with the given Authorization header value
// ("" for none), not following redirects.
func fetch(t *testing.T, srv *httptest.Server, path, auth string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestRecordingsListShapes: every shape of record and of from/to lists
// the truth's recordings of a window, in order, paged by start/count,
// with total in each form.
func TestRecordingsListShapes(t *testing.T) {
	t.Parallel()
	fieldsOf := map[string][]string{
		"camel":      {"id", "fileName", "path", "start", "duration", "size", "extension", "number"},
		"snake":      {"id", "file_name", "url", "time", "length", "filesize", "src", "dst"},
		"attachment": {"id", "url", "time", "source", "destination"},
		"bare":       {"url", "time", "source", "destination"},
	}
	for _, fields := range []string{"camel", "snake", "attachment", "bare"} {
		for _, times := range []string{"wall", "epoch"} {
			for _, total := range []string{"string", "number", "absent"} {
				t.Run(fields+"/"+times+"/"+total, func(t *testing.T) {
					t.Parallel()
					sim, srv := recSetup(t, Options{Seed: 3, Total: total, Recordings: RecordingOptions{Fields: fields, Times: times}})
					all := sim.Recordings()
					if len(all) < 50 {
						t.Fatalf("%d recordings of 600 calls; want about 80", len(all))
					}
					// A window inside the data, bounds on recordings' starts.
					from, to := all[10].Start, all[len(all)-10].Start
					var want []Recording
					for _, r := range all {
						if !r.Start.Before(from) && !r.Start.After(to) {
							want = append(want, r)
						}
					}
					q := url.Values{"count": {"7"}}
					if times == "epoch" {
						q.Set("from", strconv.FormatInt(from.Unix(), 10))
						q.Set("to", strconv.FormatInt(to.Unix(), 10))
					} else {
						q.Set("from", sim.wall(from))
						q.Set("to", sim.wall(to))
					}
					var got []map[string]string
					for start := 0; ; start += 7 {
						q.Set("start", strconv.Itoa(start))
						tot, page := listRecordings(t, srv, q)
						switch total {
						case "string":
							if tot != strconv.Itoa(len(want)) {
								t.Fatalf("total %#v; want the string %q", tot, strconv.Itoa(len(want)))
							}
						case "number":
							if tot != float64(len(want)) {
								t.Fatalf("total %#v; want the number %d", tot, len(want))
							}
						case "absent":
							if tot != nil {
								t.Fatalf("total %#v; want none", tot)
							}
						}
						got = append(got, page...)
						if len(page) < 7 {
							break
						}
					}
					if len(got) != len(want) {
						t.Fatalf("%d records from %v to %v; want %d", len(got), from, to, len(want))
					}
					for i, rec := range got {
						keys := slices.Sorted(func(yield func(string) bool) {
							for k := range rec {
								if !yield(k) {
									return
								}
							}
						})
						if !slices.Equal(keys, slices.Sorted(slices.Values(fieldsOf[fields]))) {
							t.Fatalf("record fields %v; want %v", keys, fieldsOf[fields])
						}
						if id, ok := rec["id"]; (ok || fields != "bare") && id != strconv.FormatInt(want[i].ID, 10) {
							t.Fatalf("record %d id %s; want %d (by start)", i, id, want[i].ID)
						}
						if p := rec["path"] + rec["url"]; p != want[i].Path {
							t.Fatalf("record %d file %q; want %q", i, p, want[i].Path)
						}
						at := rec["start"] + rec["time"]
						wantAt := sim.wall(want[i].Start)
						if times == "epoch" {
							wantAt = strconv.FormatInt(want[i].Start.Unix(), 10)
						}
						if at != wantAt {
							t.Fatalf("record %d time %q; want %q", i, at, wantAt)
						}
					}
				})
			}
		}
	}
}

// TestRecordingsFromToForms: a from/to in the form the PBX does not take
// is a 400, as an unknown wire format would be.
func TestRecordingsFromToForms(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		times, from string
	}{{"wall", "1767225600"}, {"epoch", "2026-01-01 00:00:00"}, {"wall", "yesterday"}} {
		_, srv := recSetup(t, Options{Recordings: RecordingOptions{Times: c.times}})
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/PBX/recordings?from="+url.QueryEscape(c.from), nil)
		req.Header.Set("Authorization", "Bearer "+simpleToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "'from'") {
			t.Errorf("times %s, from=%q: %s %s; want 400 naming from", c.times, c.from, resp.Status, body)
		}
	}
}

// TestRecordingFiles: every recording's file, fetched with the Simple
// Token at the path the list gives, is a WAV of the listed size whose
// sha256 is the truth's (served over HTTP at /_sim/truth/recordings).
func TestRecordingFiles(t *testing.T) {
	t.Parallel()
	sim, srv := recSetup(t, Options{Seed: 9, Recordings: RecordingOptions{HostileNames: true, Vanished: []int64{}}})
	resp, err := http.Get(srv.URL + "/_sim/truth/recordings")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var truth []Recording
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r Recording
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		truth = append(truth, r)
	}
	if len(truth) != len(sim.Recordings()) || len(truth) == 0 {
		t.Fatalf("truth has %d recordings; the simulator %d", len(truth), len(sim.Recordings()))
	}
	_, listed := listRecordings(t, srv, url.Values{"count": {"1000"}})
	if len(listed) != len(truth) {
		t.Fatalf("listed %d; truth %d", len(listed), len(truth))
	}
	hostile := 0
	for i, rec := range listed {
		tr := truth[i]
		if rec["fileName"] != tr.FileName || rec["path"] != tr.Path || rec["size"] != strconv.FormatInt(tr.Size, 10) {
			t.Fatalf("listed %v; truth %+v", rec, tr)
		}
		if slices.Contains(hostileNames, tr.FileName) {
			hostile++
		}
		resp, b := fetch(t, srv, rec["path"], "Bearer "+simpleToken)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %q: %s", rec["path"], resp.Status)
		}
		if int64(len(b)) != tr.Size || sha(b) != tr.SHA256 || resp.Header.Get("Content-Length") != rec["size"] {
			t.Fatalf("file %d: %d bytes sha256 %s; want %d, %s", tr.ID, len(b), sha(b), tr.Size, tr.SHA256)
		}
		if string(b[:4]) != "RIFF" || string(b[8:16]) != "WAVEfmt " || string(b[36:40]) != "data" ||
			int64(binary.LittleEndian.Uint32(b[40:44])) != tr.Size-44 || tr.Size != 44+tr.Duration*100 {
			t.Fatalf("file %d: not a WAV of %d s: % x", tr.ID, tr.Duration, b[:44])
		}
	}
	if hostile == 0 || hostile > len(listed)/5 {
		t.Fatalf("%d hostile file names among %d recordings; want about one in 10", hostile, len(listed))
	}
	if n := sim.Stats.Recordings.FileRequests.Load(); n != int64(len(listed)) {
		t.Errorf("Stats.Recordings.FileRequests %d; want %d", n, len(listed))
	}
}

// TestRecordingFilesNeedASimpleToken: /spoolview/ takes a bearer Simple
// Token only; a company key, no credential, a token in the query and
// (unless OAuthFiles) an OAuth token are refused.
func TestRecordingFilesNeedASimpleToken(t *testing.T) {
	t.Parallel()
	for _, oauthFiles := range []bool{false, true} {
		sim, srv := recSetup(t, Options{Recordings: RecordingOptions{OAuthFiles: oauthFiles}})
		path := sim.Recordings()[0].Path
		sim.mu.Lock()
		sim.access["oauth-access-token"] = accessToken{user: "201", expires: time.Now().Add(time.Hour)}
		sim.mu.Unlock()
		for _, c := range []struct {
			auth, query string
			ok          bool
		}{
			{"Bearer " + simpleToken, "", true},
			{"", "", false},
			{"Bearer wsk-v1-testkey", "", false},
			{"Bearer access_unknown", "", false},
			{"Basic " + simpleToken, "", false},
			{"", "?token=" + simpleToken, false},
			{"Bearer oauth-access-token", "", oauthFiles},
		} {
			resp, _ := fetch(t, srv, path+c.query, c.auth)
			if (resp.StatusCode == http.StatusOK) != c.ok || !c.ok && resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("OAuthFiles %v, Authorization %q%s: %s; want ok %v (else 401)", oauthFiles, c.auth, c.query, resp.Status, c.ok)
			}
		}
	}
}

// TestRecordingVanished: a recording deleted between the list and the
// download is still listed and answers 404.
func TestRecordingVanished(t *testing.T) {
	t.Parallel()
	probe, _ := recSetup(t, Options{})
	gone := probe.Recordings()[3]
	sim, srv := recSetup(t, Options{Recordings: RecordingOptions{Vanished: []int64{gone.ID}}})
	_, listed := listRecordings(t, srv, url.Values{"count": {"1000"}})
	if !slices.ContainsFunc(listed, func(r map[string]string) bool { return r["id"] == strconv.FormatInt(gone.ID, 10) }) {
		t.Fatal("the vanished recording is not listed")
	}
	if resp, _ := fetch(t, srv, gone.Path, "Bearer "+simpleToken); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET a vanished recording: %s; want 404", resp.Status)
	}
	if resp, _ := fetch(t, srv, sim.Recordings()[4].Path, "Bearer "+simpleToken); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the next: %s; want 200", resp.Status)
	}
	if resp, _ := fetch(t, srv, "/spoolview/recordings/2026/01/01/nothing.wav", "Bearer "+simpleToken); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET a file never recorded: %s; want 404", resp.Status)
	}
}

// TestRecordingCloudRedirect: with CloudURL, /spoolview/ checks the token
// and answers 302 to the second origin, which serves the file to a request
// without credentials and refuses (and counts) one that carries any.
func TestRecordingCloudRedirect(t *testing.T) {
	t.Parallel()
	cloudMux := http.NewServeMux()
	cloud := httptest.NewServer(cloudMux)
	t.Cleanup(cloud.Close)
	sim, srv := recSetup(t, Options{Seed: 4, Recordings: RecordingOptions{CloudURL: cloud.URL}})
	cloudMux.Handle("/", sim.CloudHandler())
	rec := sim.Recordings()[2]
	if resp, _ := fetch(t, srv, rec.Path, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET without a token: %s; want 401 before any redirect", resp.Status)
	}
	resp, _ := fetch(t, srv, rec.Path, "Bearer "+simpleToken)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, cloud.URL+"/") {
		t.Fatalf("GET with the token: %s to %q; want 302 to %s", resp.Status, loc, cloud.URL)
	}
	get := func(u string, h http.Header) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := get(loc, http.Header{}); code != http.StatusOK || sha(b) != sim.RecordingSHA256(rec) {
		t.Fatalf("the cloud without credentials: %d, %d bytes; want 200 and the file", code, len(b))
	}
	for _, h := range []http.Header{{"Authorization": {"Bearer " + simpleToken}}, {"Cookie": {"session=1"}}} {
		if code, _ := get(loc, h); code != http.StatusBadRequest {
			t.Errorf("the cloud with %v: %d; want 400", h, code)
		}
	}
	if code, _ := get(loc+"&token="+simpleToken, http.Header{}); code != http.StatusBadRequest {
		t.Errorf("the cloud with a token parameter: %d; want 400", code)
	}
	if n := sim.Stats.Recordings.CloudCredentials.Load(); n != 3 {
		t.Errorf("Stats.Recordings.CloudCredentials %d; want 3", n)
	}
	// Go's client, following the redirect to the same host on another
	// port, keeps the Authorization header (it compares host names, not
	// origins): the stand-in catches it. The exporter must drop every
	// credential itself.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+rec.Path, nil)
	req.Header.Set("Authorization", "Bearer "+simpleToken)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != http.StatusBadRequest || sim.Stats.Recordings.CloudCredentials.Load() != 4 {
		t.Errorf("followed by net/http: %s (%d bytes), %d credentials seen; want 400, 4", r2.Status, len(b), sim.Stats.Recordings.CloudCredentials.Load())
	}
	// A signature that does not match, and one expired, are refused.
	u, _ := url.Parse(loc)
	q := u.Query()
	q.Set("expires", strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10))
	u.RawQuery = q.Encode()
	if code, _ := get(u.String(), http.Header{}); code != http.StatusForbidden {
		t.Errorf("the cloud with an expired signature: %d; want 403", code)
	}
}

// TestRecordingBig: the first recording can be several hundred MB,
// generated while sent (skipped with -short).
func TestRecordingBig(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 300 MB")
	}
	t.Parallel()
	const size = 300e6
	sim, srv := recSetup(t, Options{Recordings: RecordingOptions{BigSize: size}})
	recs := sim.Recordings()
	first := slices.MinFunc(recs, func(a, b Recording) int { return int(a.ID - b.ID) })
	if first.Size != size {
		t.Fatalf("the first recording is %d bytes; want %d", first.Size, int64(size))
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+first.Path, nil)
	req.Header.Set("Authorization", "Bearer "+simpleToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != sim.RecordingSHA256(first) {
		t.Fatalf("got %d bytes (%v); want %d of the truth's sha256", n, err, int64(size))
	}
	fmt.Fprint(io.Discard, n)
}

// TestRecordingFileFaults: with Cut, answers promise the whole file and
// drop the connection part-way; whole answers are still right. Broken
// ids answer 500 every time.
func TestRecordingFileFaults(t *testing.T) {
	t.Parallel()
	probe, _ := recSetup(t, Options{Seed: 5})
	broken := probe.Recordings()[1]
	sim, srv := recSetup(t, Options{Seed: 5, Recordings: RecordingOptions{Cut: 0.5, Broken: []int64{broken.ID}}})
	for range 3 {
		if resp, _ := fetch(t, srv, broken.Path, "Bearer "+simpleToken); resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("GET a broken recording: %s; want 500", resp.Status)
		}
	}
	rec := sim.Recordings()[0]
	var cut, whole int
	for range 20 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+rec.Path, nil)
		req.Header.Set("Authorization", "Bearer "+simpleToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil && int64(len(b)) < rec.Size:
			cut++
		case err == nil && sha(b) == sim.RecordingSHA256(rec):
			whole++
		default:
			t.Fatalf("an answer of %d bytes (%v) is neither cut nor the file", len(b), err)
		}
	}
	if cut == 0 || whole == 0 {
		t.Fatalf("%d cut, %d whole of 20 at a rate of 0.5", cut, whole)
	}
	if n := sim.Stats.Recordings.Faults.Load(); n != int64(cut+3) {
		t.Errorf("Stats.Recordings.Faults %d; want %d", n, cut+3)
	}
}

// TestRecordingSelectionsCachedByTheirBounds: two selections whose bounds
// fall in the same second are not one. The spool finds a file among its
// day's recordings up to the day's last nanosecond; a list whose
// exclusive to is that day's 23:59:59 shares the second, and a cache
// keyed by seconds gave one the other's answer (a file at 23:59:59
// answering 404 after such a list, or a list holding it).
func TestRecordingSelectionsCachedByTheirBounds(t *testing.T) {
	t.Parallel()
	for _, exclusive := range []bool{false, true} {
		sim, _ := recSetup(t, Options{Seed: 6, FilterToExclusive: exclusive})
		recs := sim.Recordings()
		r := recs[len(recs)/2]
		has := func(l []Recording) bool {
			return slices.ContainsFunc(l, func(x Recording) bool { return x.ID == r.ID })
		}
		from := r.Start.Add(-time.Hour)
		// to at the start (excluded when exclusive), then later in its second.
		if got := has(sim.selectRecordings(from, r.Start)); got == exclusive {
			t.Errorf("exclusive %v: to at the start: recording listed %v", exclusive, got)
		}
		if !has(sim.selectRecordings(from, r.Start.Add(time.Second-time.Nanosecond))) {
			t.Errorf("exclusive %v: to later in the start's second leaves the recording out", exclusive)
		}
		// from at the start, then later in its second.
		to := r.Start.Add(time.Hour)
		if !has(sim.selectRecordings(r.Start, to)) {
			t.Errorf("exclusive %v: from at the start leaves the recording out", exclusive)
		}
		if has(sim.selectRecordings(r.Start.Add(time.Nanosecond), to)) {
			t.Errorf("exclusive %v: from after the start lists the recording", exclusive)
		}
	}
}
