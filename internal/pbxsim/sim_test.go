package pbxsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

const redirect = "http://127.0.0.1:9/callback"

func setup(t *testing.T, o Options) (*Sim, *httptest.Server) {
	t.Helper()
	o.Clients = append(o.Clients, Client{ID: "app", Secret: "s3cret", RedirectURIs: []string{redirect}})
	o.APIKeys = append(o.APIKeys, "wsk-v1-testkey")
	sim := New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

func oauthConfig(srv *httptest.Server, style oauth2.AuthStyle) *oauth2.Config {
	return &oauth2.Config{
		ClientID: "app", ClientSecret: "s3cret", RedirectURL: redirect,
		Endpoint: oauth2.Endpoint{
			AuthURL:   srv.URL + "/authorization/oauth2",
			TokenURL:  srv.URL + "/authorization/oauth2Token",
			AuthStyle: style,
		},
	}
}

// consent plays the browser: it follows the authorization URL and returns
// the query of the redirect it was sent to.
func consent(t *testing.T, authURL string) url.Values {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: status %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc.Query()
}

func TestOAuthCodeFlowAndRefresh(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		clientAuth string
		style      oauth2.AuthStyle
		wantErr    string
	}{
		{"body accepted by default", "", oauth2.AuthStyleInParams, ""},
		{"basic refused by default", "", oauth2.AuthStyleInHeader, "Empty client ID"},
		{"basic accepted when switched", "both", oauth2.AuthStyleInHeader, ""},
		{"body accepted in both mode", "both", oauth2.AuthStyleInParams, ""},
		{"body refused in basic mode", "basic", oauth2.AuthStyleInParams, "HTTP Basic"},
		{"autodetect works against the default", "", oauth2.AuthStyleAutoDetect, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, srv := setup(t, Options{ClientAuth: tc.clientAuth, RotateRefreshTokens: true})
			cfg := oauthConfig(srv, tc.style)
			verifier := oauth2.GenerateVerifier()
			back := consent(t, cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)))
			if got := back.Get("state"); got != "st4te" {
				t.Fatalf("state = %q, want st4te", got)
			}
			tok, err := cfg.Exchange(context.Background(), back.Get("code"), oauth2.VerifierOption(verifier))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("exchange error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.RefreshToken == "" || tok.Expiry.IsZero() {
				t.Fatalf("token lacks refresh token or expiry: %+v", tok)
			}
			get(t, srv, "/api/v1/personal/info", tok.AccessToken, http.StatusOK)

			// Refresh, then check that the old refresh token is single use.
			next, err := cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil {
				t.Fatal(err)
			}
			if next.RefreshToken == tok.RefreshToken {
				t.Fatal("refresh token was not rotated")
			}
			_, err = cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Fatalf("reused refresh token: err = %v, want invalid_grant", err)
			}
			// The code is single use too.
			if _, err := cfg.Exchange(context.Background(), back.Get("code"), oauth2.VerifierOption(verifier)); err == nil {
				t.Fatal("code could be exchanged twice")
			}
			if sim.Stats.Refreshes.Load() != 1 {
				t.Fatalf("refreshes = %d, want 1", sim.Stats.Refreshes.Load())
			}
		})
	}
}

func TestOAuthRefusals(t *testing.T) {
	t.Parallel()
	_, srv := setup(t, Options{})
	cfg := oauthConfig(srv, oauth2.AuthStyleInParams)

	// Unknown redirect URI: an error page, never a redirect.
	bad := *cfg
	bad.RedirectURL = "http://127.0.0.1:1/elsewhere"
	resp, err := http.Get(bad.AuthCodeURL("x"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "redirect_uri is not registered") {
		t.Fatalf("unregistered redirect: %d %s", resp.StatusCode, body)
	}
	// Wrong secret.
	wrong := *cfg
	wrong.ClientSecret = "nope"
	back := consent(t, cfg.AuthCodeURL("x"))
	_, err = wrong.Exchange(context.Background(), back.Get("code"))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
		t.Fatalf("wrong secret: %v", err)
	}
	// PKCE verifier mismatch.
	back = consent(t, cfg.AuthCodeURL("x", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if _, err = cfg.Exchange(context.Background(), back.Get("code"), oauth2.VerifierOption("wrong")); !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("pkce mismatch: %v", err)
	}
	// Denied consent.
	_, srv2 := setup(t, Options{DenyConsent: true})
	back = consent(t, oauthConfig(srv2, 0).AuthCodeURL("s"))
	if back.Get("error") != "access_denied" || back.Get("state") != "s" {
		t.Fatalf("denied consent redirect query = %v", back)
	}
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	sim, srv := setup(t, Options{AccessTokenTTL: time.Hour})
	get(t, srv, "/api/v1/Colleagues/", "", http.StatusUnauthorized)
	get(t, srv, "/api/v1/Colleagues/", "wrong", http.StatusUnauthorized)
	cfg := oauthConfig(srv, oauth2.AuthStyleInParams)
	tok, err := cfg.Exchange(context.Background(), consent(t, cfg.AuthCodeURL("x")).Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	get(t, srv, "/api/v1/Colleagues/", tok.AccessToken, http.StatusOK)
	sim.ExpireAccessTokens()
	body := get(t, srv, "/api/v1/Colleagues/", tok.AccessToken, http.StatusUnauthorized)
	if !strings.Contains(body, `"type":"error"`) {
		t.Fatalf("401 body = %s", body)
	}
	get(t, srv, "/api/v1/Colleagues/?token=wsk-v1-testkey", "", http.StatusOK)
}

func get(t *testing.T, srv *httptest.Server, path, token string, want int) string {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: status %d, want %d: %s", path, resp.StatusCode, want, b)
	}
	return string(b)
}

type envelope struct {
	Type   string
	Reason string
	Result struct {
		Total   json.RawMessage
		Records []map[string]any
	}
}

func list(t *testing.T, srv *httptest.Server, path string) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal([]byte(get(t, srv, path, "wsk-v1-testkey", http.StatusOK)), &e); err != nil {
		t.Fatal(err)
	}
	if e.Type != "result" {
		t.Fatalf("type = %q", e.Type)
	}
	return e
}

func TestPagingTotalsAndTyping(t *testing.T) {
	t.Parallel()
	_, srv := setup(t, Options{Calls: 1234})
	seen := map[string]bool{}
	for start := 0; start < 1300; start += 100 {
		e := list(t, srv, fmt.Sprintf("/api/v1/PBX/CallHistory/?start=%d&count=100&sort=id&dir=ASC", start))
		if string(e.Result.Total) != `"1234"` {
			t.Fatalf("total = %s, want the string \"1234\"", e.Result.Total)
		}
		for _, r := range e.Result.Records {
			for k, v := range r {
				if _, ok := v.(string); !ok {
					t.Fatalf("field %s = %v (%T), want a string", k, v, v)
				}
			}
			id := r["id"].(string)
			if seen[id] {
				t.Fatalf("id %s seen twice", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != 1234 {
		t.Fatalf("paged %d records, want 1234", len(seen))
	}
	e := list(t, srv, "/api/v1/phonebooks")
	if string(e.Result.Total) != "5" {
		t.Fatalf("phonebooks total = %s, want the number 5", e.Result.Total)
	}
	if _, ok := e.Result.Records[0]["id"].(float64); !ok {
		t.Fatalf("phonebook id = %T, want a number", e.Result.Records[0]["id"])
	}
	// Paths: case and trailing slash do not matter.
	for _, p := range []string{"/api/v1/pbx/colleagues", "/api/v1/PBX/Colleagues/", "/API/V1/Colleagues"} {
		if e := list(t, srv, p); string(e.Result.Total) != `"25"` {
			t.Fatalf("%s total = %s", p, e.Result.Total)
		}
	}
	body := get(t, srv, "/api/v1/Nope", "wsk-v1-testkey", http.StatusNotFound)
	if !strings.Contains(body, `"reason":"404 Not Found"`) {
		t.Fatalf("404 body = %s", body)
	}
	get(t, srv, "/api/v1/PBX/CallHistory/?count=-1", "wsk-v1-testkey", http.StatusBadRequest)
	get(t, srv, "/api/v1/PBX/CallHistory/?filter[start][from]=yesterday", "wsk-v1-testkey", http.StatusBadRequest)
}

// TestFiltersMatchBruteForce checks the fast query paths against a plain
// scan of the ground truth.
func TestFiltersMatchBruteForce(t *testing.T) {
	t.Parallel()
	sim, srv := setup(t, Options{Calls: 3000, CallGap: 10 * time.Minute, CallsStart: time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)})
	from, to := "2026-03-29 01:00:00", "2026-03-30 12:00:00"
	want := []string{}
	for id := int64(1); id <= sim.CallCount(); id++ {
		var r map[string]any
		json.Unmarshal(sim.CallJSON(id), &r)
		if s := r["start"].(string); s >= from && s <= to && id >= 100 && id <= 2000 {
			want = append(want, r["id"].(string))
		}
	}
	q := url.Values{"filter[start][from]": {from}, "filter[start][to]": {to}, "filter[id][from]": {"100"}, "filter[id][to]": {"2000"},
		"sort": {"id"}, "dir": {"ASC"}, "count": {"50"}}
	var got []string
	for start := 0; ; start += 50 {
		q.Set("start", strconv.Itoa(start))
		e := list(t, srv, "/api/v1/PBX/CallHistory/?"+q.Encode())
		for _, r := range e.Result.Records {
			got = append(got, r["id"].(string))
		}
		if string(e.Result.Total) != fmt.Sprintf(`"%d"`, len(want)) {
			t.Fatalf("total = %s, want %d", e.Result.Total, len(want))
		}
		if len(e.Result.Records) < 50 {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("filtered ids differ:\n got %d %v\nwant %d %v", len(got), got, len(want), want)
	}
	if len(want) == 0 {
		t.Fatal("test window selects nothing")
	}
	// Default order: start descending.
	e := list(t, srv, "/api/v1/PBX/CallHistory/?count=20")
	for i := 1; i < len(e.Result.Records); i++ {
		if e.Result.Records[i-1]["start"].(string) < e.Result.Records[i]["start"].(string) {
			t.Fatal("default order is not start descending")
		}
	}
	// Equality filter and fields selection.
	e = list(t, srv, "/api/v1/PBX/CallHistory/?filter[disposition]=BUSY&fields=id,disposition&count=5")
	for _, r := range e.Result.Records {
		if r["disposition"] != "BUSY" || len(r) != 2 {
			t.Fatalf("record %v, want only id and disposition=BUSY", r)
		}
	}
}

func TestTimesAreLocalWithOffset(t *testing.T) {
	t.Parallel()
	rome, _ := time.LoadLocation("Europe/Rome")
	// Calls around the autumn change of 2026-10-25, when 02:00-03:00 repeats.
	sim, _ := setup(t, Options{Calls: 400, CallGap: time.Minute, CallsStart: time.Date(2026, 10, 24, 21, 0, 0, 0, time.UTC), Location: rome})
	offsets := map[string]bool{}
	for id := int64(1); id <= sim.CallCount(); id++ {
		c := sim.Call(id)
		var r map[string]string
		json.Unmarshal(sim.CallJSON(id), &r)
		off, _ := time.Parse("-0700", r["timezone"])
		_, secs := off.Zone()
		wall, err := time.ParseInLocation(wallLayout, r["start"], time.FixedZone("", secs))
		if err != nil {
			t.Fatal(err)
		}
		if !wall.Equal(c.Start) {
			t.Fatalf("id %d: start %q %s is %v, truth %v", id, r["start"], r["timezone"], wall.UTC(), c.Start)
		}
		offsets[r["timezone"]] = true
	}
	if !offsets["+0200"] || !offsets["+0100"] {
		t.Fatalf("offsets seen %v, want both +0200 and +0100", offsets)
	}
}

func TestFaultSwitches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults Faults
		check  func(t *testing.T, resp *http.Response, body []byte, err error)
	}{
		{"server error", Faults{ServerError: 1}, func(t *testing.T, r *http.Response, b []byte, err error) {
			if err != nil || r.StatusCode != 500 || !strings.Contains(string(b), `"type":"error"`) {
				t.Fatalf("got %v %v %s", err, r, b)
			}
		}},
		{"html 502", Faults{HTMLGateway: 1}, func(t *testing.T, r *http.Response, b []byte, err error) {
			if err != nil || r.StatusCode != 502 || !strings.HasPrefix(string(b), "<html>") {
				t.Fatalf("got %v %v %s", err, r, b)
			}
		}},
		{"429", Faults{TooMany: 1, RetryAfter: 3 * time.Second}, func(t *testing.T, r *http.Response, b []byte, err error) {
			if err != nil || r.StatusCode != 429 || r.Header.Get("Retry-After") != "3" {
				t.Fatalf("got %v %v", err, r)
			}
		}},
		{"cut", Faults{Cut: 1}, func(t *testing.T, r *http.Response, b []byte, err error) {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("got err %v, want unexpected EOF", err)
			}
		}},
		{"slow", Faults{Slow: 1, SlowDelay: 300 * time.Millisecond}, func(t *testing.T, r *http.Response, b []byte, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got err %v, want the client's deadline", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, srv := setup(t, Options{Faults: tc.faults})
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			if tc.name != "slow" {
				ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
			}
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/PBX/CallHistory/", nil)
			req.Header.Set("Authorization", "Bearer wsk-v1-testkey")
			resp, err := srv.Client().Do(req)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			tc.check(t, resp, body, err)
			if sim.Stats.Faults.Load() != 1 {
				t.Fatalf("faults counted = %d, want 1", sim.Stats.Faults.Load())
			}
		})
	}
	t.Run("latency", func(t *testing.T) {
		t.Parallel()
		_, srv := setup(t, Options{Faults: Faults{Latency: 50 * time.Millisecond}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/Devices/", nil)
		req.Header.Set("Authorization", "Bearer wsk-v1-testkey")
		if _, err := srv.Client().Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the deadline to pass during the latency", err)
		}
	})
}

func TestLiveInsertsAndTruth(t *testing.T) {
	t.Parallel()
	sim, srv := setup(t, Options{Calls: 100, LiveInsertEvery: 2, LiveInsertBatch: 5})
	for i := 0; i < 4; i++ {
		list(t, srv, "/api/v1/PBX/CallHistory/?count=1")
	}
	if sim.CallCount() != 110 {
		t.Fatalf("calls = %d, want 110 after 4 requests inserting 5 every 2", sim.CallCount())
	}
	lines := strings.Split(strings.TrimSpace(get(t, srv, "/_sim/truth/call_history", "", 200)), "\n")
	if len(lines) != 110 {
		t.Fatalf("truth has %d lines, want 110", len(lines))
	}
	// A long call ends after calls that started later: starts are not
	// monotonic in id while the ends of calls are (a call's legs are
	// written together when it ends: a ring-all's members cancelled at
	// the answer may end before records with lower ids).
	longSeen := false
	for id := int64(2); id <= 2000; id++ {
		a, b := sim.Call(id-1), sim.Call(id)
		if a.CallID != b.CallID && !callEnd(sim, b).After(callEnd(sim, a)) {
			t.Fatalf("end of call %d (record %d) not after end of call %d (record %d)", b.CallID, id, a.CallID, id-1)
		}
		if b.Start.Before(a.Start) {
			longSeen = true
		}
	}
	if !longSeen {
		t.Fatal("no call started before its predecessor; long calls are not simulated")
	}
}

// callEnd is the end of the call record c belongs to: its last leg's.
func callEnd(sim *Sim, c Call) time.Time {
	end := c.End
	for id := c.CallID; id < c.CallID+legsBlock; id++ {
		l := sim.Call(id)
		if l.CallID != c.CallID {
			break
		}
		if l.End.After(end) {
			end = l.End
		}
	}
	return end
}

// pageIDs reads every page of a call-history query with start/count
// paging and returns the ids in the order served, with the total of the
// first page.
func pageIDs(t *testing.T, srv *httptest.Server, path string, q url.Values, count int) ([]int64, string) {
	t.Helper()
	var ids []int64
	var total string
	q = maps.Clone(q) // callers share one query across parallel subtests
	q.Set("count", strconv.Itoa(count))
	for start := 0; ; start += count {
		q.Set("start", strconv.Itoa(start))
		e := list(t, srv, path+"?"+q.Encode())
		if start == 0 {
			total = string(e.Result.Total)
		}
		for _, r := range e.Result.Records {
			id, err := strconv.ParseInt(r["id"].(string), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if len(e.Result.Records) < count {
			return ids, total
		}
	}
}

// truth returns the surviving calls' ids for which keep holds, in the
// order sorted by less (nil: by id).
func truth(t *testing.T, sim *Sim, keep func(map[string]string) bool, less func(a, b map[string]string) int) []int64 {
	t.Helper()
	type rec struct {
		id int64
		m  map[string]string
	}
	var recs []rec
	for _, id := range sim.CallIDs() {
		var m map[string]string
		if err := json.Unmarshal(sim.CallJSON(id), &m); err != nil {
			t.Fatal(err)
		}
		if keep == nil || keep(m) {
			recs = append(recs, rec{id, m})
		}
	}
	if less != nil {
		slices.SortStableFunc(recs, func(a, b rec) int { return less(a.m, b.m) })
	}
	ids := make([]int64, len(recs))
	for i, r := range recs {
		ids[i] = r.id
	}
	return ids
}

func startDesc(a, b map[string]string) int { return strings.Compare(b["start"], a["start"]) }

func TestDeletionsDuringRun(t *testing.T) {
	t.Parallel()
	const seed = 7
	sim, srv := setup(t, Options{Seed: seed, Calls: 300, DeleteAfter: 2, DeleteOldest: 40, DeleteRandom: 25})
	byID := url.Values{"sort": {"id"}, "dir": {"ASC"}}
	for i := 1; i <= 2; i++ {
		ids, total := pageIDs(t, srv, "/api/v1/PBX/CallHistory/", url.Values{"sort": {"id"}, "dir": {"ASC"}, "fields": {"id"}}, 1000)
		if len(ids) != 300 || total != `"300"` {
			t.Fatalf("request %d (before the deletions): %d ids, total %s; want 300", i, len(ids), total)
		}
	}
	if got := sim.CallCount(); got != 300-40-25 {
		t.Fatalf("after the 2nd request: %d calls, want 235", got)
	}
	if sim.MaxCallID() != 300 {
		t.Fatalf("max id = %d, want 300", sim.MaxCallID())
	}
	surviving := sim.CallIDs()
	for id := int64(1); id <= 40; id++ {
		if sim.Exists(id) {
			t.Fatalf("call %d survived the purge of the 40 oldest", id)
		}
	}
	// The random deletions are a function of the seed alone.
	again := New(Options{Seed: seed, Calls: 300, DeleteAfter: 1, DeleteOldest: 40, DeleteRandom: 25})
	again.purge()
	if !slices.Equal(again.CallIDs(), surviving) {
		t.Fatalf("seed %d: two simulators deleted different calls", seed)
	}
	other := New(Options{Seed: seed + 1, Calls: 300, DeleteOldest: 40, DeleteRandom: 25})
	other.purge()
	if slices.Equal(other.CallIDs(), surviving) {
		t.Fatalf("seeds %d and %d deleted the same calls", seed, seed+1)
	}

	// Deleted calls vanish from every list, filter, total and order.
	from, to := sim.wall(sim.Call(50).Start), sim.wall(sim.Call(250).Start)
	inStart := func(m map[string]string) bool { return m["start"] >= from && m["start"] <= to }
	for _, tc := range []struct {
		name  string
		path  string
		q     url.Values
		count int
		want  []int64
	}{
		{"by id", "/api/v1/PBX/CallHistory/", byID, 7, surviving},
		{"by id descending", "/api/v1/PBX/CallHistory/", url.Values{"sort": {"id"}, "dir": {"DESC"}}, 9, truth(t, sim, nil, func(a, b map[string]string) int {
			return compareValues(b["id"], a["id"])
		})},
		{"id range", "/api/v1/PBX/CallHistory/", url.Values{"sort": {"id"}, "dir": {"ASC"}, "filter[id][from]": {"30"}, "filter[id][to]": {"120"}}, 10,
			truth(t, sim, func(m map[string]string) bool {
				return compareValues(m["id"], "30") >= 0 && compareValues(m["id"], "120") <= 0
			}, nil)},
		{"default order", "/api/v1/PBX/CallHistory/", url.Values{}, 50, truth(t, sim, nil, startDesc)},
		{"start range", "/api/v1/PBX/CallHistory/", url.Values{"sort": {"id"}, "dir": {"ASC"}, "filter[start][from]": {from}, "filter[start][to]": {to}}, 20, truth(t, sim, inStart, nil)},
		{"one user's calls", "/api/v1/CallHistory/", url.Values{"sort": {"id"}, "dir": {"ASC"}}, 3, truth(t, sim, func(m map[string]string) bool { return m["src"] == "201" || m["dst"] == "201" }, nil)},
	} {
		got, total := pageIDs(t, srv, tc.path, tc.q, tc.count)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %d ids %v\nwant %d %v", tc.name, len(got), got, len(tc.want), tc.want)
		}
		if total != fmt.Sprintf(`"%d"`, len(tc.want)) {
			t.Errorf("%s: total %s, want %d", tc.name, total, len(tc.want))
		}
		if len(tc.want) == 0 {
			t.Errorf("%s: the case selects nothing", tc.name)
		}
	}
	truthLines := strings.Split(strings.TrimSpace(get(t, srv, "/_sim/truth/call_history", "", 200)), "\n")
	if len(truthLines) != len(surviving) {
		t.Fatalf("truth route has %d calls, want %d", len(truthLines), len(surviving))
	}
	// Live inserts keep getting higher ids; deleted ids are not reused.
	sim.InsertCalls(3)
	if ids := sim.CallIDs(); !slices.Equal(ids[len(ids)-3:], []int64{301, 302, 303}) {
		t.Fatalf("inserted ids = %v, want 301-303", ids[len(ids)-3:])
	}
}

func TestDeleteCall(t *testing.T) {
	t.Parallel()
	sim, srv := setup(t, Options{Calls: 20})
	del := func(path string, want int) string {
		t.Helper()
		req, err := http.NewRequest(http.MethodDelete, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer wsk-v1-testkey")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Fatalf("DELETE %s: status %d, want %d: %s", path, resp.StatusCode, want, b)
		}
		return string(b)
	}
	if body := del("/api/v1/CallHistory/5", 200); body != `{"type":"result","result":"Success"}` {
		t.Fatalf("DELETE body = %s", body)
	}
	del("/api/v1/PBX/CallHistory/7/", 200)
	del("/api/v1/CallHistory/5", 404)
	del("/api/v1/CallHistory/21", 404)
	del("/api/v1/CallHistory/x", 404)
	del("/api/v1/Colleagues/2951881", 405)
	if e := list(t, srv, "/api/v1/PBX/CallHistory/?filter[id]=5"); string(e.Result.Total) != `"0"` || len(e.Result.Records) != 0 {
		t.Fatalf("deleted call 5 still listed: %+v", e.Result)
	}
	want := []int64{1, 2, 3, 4, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	if got := sim.CallIDs(); !slices.Equal(got, want) {
		t.Fatalf("CallIDs = %v, want %v", got, want)
	}
	if got, _ := pageIDs(t, srv, "/api/v1/PBX/CallHistory/", url.Values{"sort": {"id"}, "dir": {"ASC"}}, 4); !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	if sim.CallCount() != 18 || sim.Stats.Deleted.Load() != 2 {
		t.Fatalf("count %d, deleted %d; want 18 and 2", sim.CallCount(), sim.Stats.Deleted.Load())
	}
}

func TestTotalVariants(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		total            string
		calls, phonebook string // result.total as sent, "" when absent
	}{
		{"", `"40"`, `5`},
		{"string", `"40"`, `5`},
		{"number", `40`, `5`},
		{"absent", ``, ``},
	} {
		t.Run(tc.total, func(t *testing.T) {
			t.Parallel()
			_, srv := setup(t, Options{Calls: 40, Total: tc.total})
			for path, want := range map[string]string{"/api/v1/PBX/CallHistory/?count=10": tc.calls, "/api/v1/Phonebooks/": tc.phonebook} {
				body := get(t, srv, path, "wsk-v1-testkey", http.StatusOK)
				var e struct {
					Result map[string]json.RawMessage
				}
				if err := json.Unmarshal([]byte(body), &e); err != nil {
					t.Fatal(err)
				}
				got, ok := e.Result["total"]
				if want == "" && ok || want != "" && string(got) != want {
					t.Fatalf("%s: total %s (present %v), want %q", path, got, ok, want)
				}
				if _, ok := e.Result["records"]; !ok {
					t.Fatalf("%s: no records in %s", path, body)
				}
			}
		})
	}
}

// TestIgnoredParameters checks that a PBX ignoring a parameter answers as
// if it had not been sent: the default order, no id bounds, a capped page;
// and that a start range is still honoured when the id filter is not.
func TestIgnoredParameters(t *testing.T) {
	t.Parallel()
	o := Options{Calls: 600, CallGap: 5 * time.Minute, CallsStart: time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC)}
	ref, _ := setup(t, o)
	from, to := ref.wall(ref.Call(100).Start), ref.wall(ref.Call(400).Start)
	inStart := func(m map[string]string) bool { return m["start"] >= from && m["start"] <= to }
	idsOnly := url.Values{"sort": {"id"}, "dir": {"ASC"}, "filter[id][from]": {"200"}, "filter[id][to]": {"300"}}
	withStart := url.Values{"sort": {"id"}, "dir": {"ASC"}, "filter[id][from]": {"200"}, "filter[id][to]": {"300"},
		"filter[start][from]": {from}, "filter[start][to]": {to}}
	byID := func(a, b map[string]string) int { return compareValues(a["id"], b["id"]) }
	inIDs := func(m map[string]string) bool {
		return compareValues(m["id"], "200") >= 0 && compareValues(m["id"], "300") <= 0
	}
	for _, tc := range []struct {
		name   string
		ignore []string
		sort   bool
		q      url.Values
		keep   func(map[string]string) bool
		order  func(a, b map[string]string) int
	}{
		{"id filter ignored", []string{"id"}, false, idsOnly, nil, byID},
		{"id filter ignored, start honoured", []string{"id"}, false, withStart, inStart, byID},
		{"sort ignored: start descending", nil, true, idsOnly, inIDs, startDesc},
		{"both ignored, start honoured", []string{"id"}, true, withStart, inStart, startDesc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := o
			o.IgnoreFilter, o.IgnoreSort = tc.ignore, tc.sort
			sim, srv := setup(t, o)
			got, total := pageIDs(t, srv, "/api/v1/PBX/CallHistory/", tc.q, 25)
			want := truth(t, sim, tc.keep, tc.order)
			if !slices.Equal(got, want) {
				t.Fatalf("got %d ids %v\nwant %d %v", len(got), got, len(want), want)
			}
			if total != fmt.Sprintf(`"%d"`, len(want)) || len(want) == 0 {
				t.Fatalf("total %s, want %d (not zero)", total, len(want))
			}
		})
	}
	t.Run("count capped", func(t *testing.T) {
		t.Parallel()
		o := o
		o.MaxCount = 40
		sim, srv := setup(t, o)
		e := list(t, srv, "/api/v1/PBX/CallHistory/?sort=id&dir=ASC&count=100&start=80")
		if len(e.Result.Records) != 40 || string(e.Result.Total) != `"600"` {
			t.Fatalf("count=100 under a cap of 40: %d records, total %s", len(e.Result.Records), e.Result.Total)
		}
		if e.Result.Records[0]["id"] != "81" {
			t.Fatalf("first record %v, want id 81", e.Result.Records[0]["id"])
		}
		got, _ := pageIDs(t, srv, "/api/v1/PBX/CallHistory/", url.Values{"sort": {"id"}, "dir": {"ASC"}}, 40)
		if !slices.Equal(got, sim.CallIDs()) {
			t.Fatalf("paging at the cap read %d ids, want %d", len(got), len(sim.CallIDs()))
		}
	})
}

func TestOmitTimezoneField(t *testing.T) {
	t.Parallel()
	for _, omit := range []bool{false, true} {
		_, srv := setup(t, Options{Calls: 10, OmitTimezoneField: omit})
		e := list(t, srv, "/api/v1/PBX/CallHistory/")
		if len(e.Result.Records) != 10 {
			t.Fatalf("omit=%v: %d records, want 10", omit, len(e.Result.Records))
		}
		for _, r := range e.Result.Records {
			if _, has := r["timezone"]; has == omit {
				t.Fatalf("omit=%v: record %v", omit, r)
			}
		}
	}
}

// TestCallerIDFields: with CallerIDFields each call record carries clid
// ("name" <src>, the name's quotes escaped, the number as src writes it),
// c_from (src), c_to (dst), dnid (dst, or CompanyDID inbound) and did
// (CompanyDID inbound, else empty); without it none, every other field
// as it was.
func TestCallerIDFields(t *testing.T) {
	t.Parallel()
	const calls = 200
	_, plainSrv := setup(t, Options{Calls: calls, NumberForms: true})
	_, srv := setup(t, Options{Calls: calls, NumberForms: true, CallerIDFields: true})
	plain := list(t, plainSrv, "/api/v1/PBX/CallHistory/?count=1000").Result.Records
	recs := list(t, srv, "/api/v1/PBX/CallHistory/?count=1000").Result.Records
	if len(recs) != calls || len(plain) != calls {
		t.Fatalf("%d and %d records, want %d", len(plain), len(recs), calls)
	}
	inbound, quoted := 0, 0
	for i, r := range recs {
		for _, k := range []string{"clid", "c_from", "c_to", "dnid", "did"} {
			if _, ok := plain[i][k]; ok {
				t.Fatalf("record %v has %s without the option", plain[i], k)
			}
			if _, ok := r[k]; !ok {
				t.Fatalf("record %v has no %s", r, k)
			}
			delete(r, k)
		}
		if fmt.Sprint(r) != fmt.Sprint(plain[i]) {
			t.Fatalf("record %d: other fields changed:\n%v\n%v", i, plain[i], r)
		}
	}
	for _, r := range list(t, srv, "/api/v1/PBX/CallHistory/?count=1000").Result.Records {
		src, dst, name := r["src"].(string), r["dst"].(string), r["from_name"].(string)
		wantClid := "<" + src + ">"
		if name != "" {
			wantClid = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `" ` + wantClid
		}
		if strings.Contains(name, `"`) {
			quoted++
		}
		wantDnid, wantDid := dst, ""
		if len(src) > 7 { // an external caller: inbound
			inbound++
			wantDnid, wantDid = CompanyDID, CompanyDID
		}
		if r["clid"] != wantClid || r["c_from"] != src || r["c_to"] != dst || r["dnid"] != wantDnid || r["did"] != wantDid {
			t.Fatalf("record %v: want clid %q, c_from %q, c_to %q, dnid %q, did %q", r, wantClid, src, dst, wantDnid, wantDid)
		}
	}
	if inbound == 0 || quoted == 0 {
		t.Fatalf("%d inbound calls, %d names with quotes: the test proves little", inbound, quoted)
	}
}

// TestCachedCallJSONServesTheSamePages: with CacheCallJSON the simulator
// answers every request byte for byte as without it, for the calls of the
// start and calls inserted later, whole records and chosen fields, with
// deletions.
// TestCachedCallJSONServesTheSamePages: with CacheCallJSON and
// CacheCalls, the simulator answers every query as without them, before
// and after inserts and deletions.
func TestCachedCallJSONServesTheSamePages(t *testing.T) {
	t.Parallel()
	o := Options{Seed: 3, Calls: 250, DeleteAfter: 2, DeleteRandom: 20, OmitTimezoneField: true, ExtraCallField: true}
	plain, plainSrv := setup(t, o)
	o.CacheCallJSON, o.CacheCalls = true, true
	cached, cachedSrv := setup(t, o)
	get := func(srv *httptest.Server, q url.Values) string {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/PBX/CallHistory/?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer wsk-v1-testkey")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, %v", q.Encode(), resp.StatusCode, err)
		}
		return string(b)
	}
	queries := []url.Values{
		{"sort": {"id"}, "dir": {"ASC"}, "count": {"100"}},
		{"sort": {"id"}, "dir": {"ASC"}, "start": {"100"}, "count": {"300"}}, // the deletions happen after this one
		{"sort": {"start"}, "dir": {"DESC"}, "count": {"1000"}},
		{"sort": {"id"}, "dir": {"ASC"}, "count": {"1000"}, "fields": {"id,start"}},
	}
	for round := 0; round < 2; round++ {
		for _, q := range queries {
			want, got := get(plainSrv, q), get(cachedSrv, q)
			if got != want {
				t.Fatalf("round %d, %s: the cached simulator answered\n%.300s\nwhere the plain one answered\n%.300s", round, q.Encode(), got, want)
			}
			if !strings.Contains(got, `"id":"`) {
				t.Fatalf("%s: no record in %.200s", q.Encode(), got)
			}
		}
		plain.InsertCalls(30)
		cached.InsertCalls(30)
	}
	if cached.MaxCallID() != 310 || cached.CallCount() != plain.CallCount() {
		t.Fatalf("cached simulator: max id %d, %d calls; plain: %d calls", cached.MaxCallID(), cached.CallCount(), plain.CallCount())
	}
}

// TestExclusiveBounds: filter[f][from] (for the fields listed) and
// filter[f][to] may exclude their bound, on the fast path (sort=id, id
// bounds) and on the general one (a start bound beside them), and only
// for the fields listed.
func TestExclusiveBounds(t *testing.T) {
	t.Parallel()
	o := Options{Calls: 600, CallGap: 5 * time.Minute}
	ref, _ := setup(t, o)
	wall := func(id int64) string { return ref.wall(ref.Call(id).Start) }
	for _, tc := range []struct {
		name         string
		from         []string
		to           bool
		start        bool // a start range beside the ids: the general path
		first, last  int64
		startIsBound bool
	}{
		{"inclusive", nil, false, false, 200, 300, false},
		{"from exclusive", []string{"id"}, false, false, 201, 300, false},
		{"to exclusive", nil, true, false, 200, 299, false},
		{"both exclusive", []string{"id"}, true, false, 201, 299, false},
		{"from exclusive, general path", []string{"id"}, false, true, 201, 300, false},
		{"from exclusive for start only", []string{"start"}, false, true, 200, 300, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := o
			o.FilterFromExclusive, o.FilterToExclusive = tc.from, tc.to
			_, srv := setup(t, o)
			q := url.Values{"sort": {"id"}, "dir": {"ASC"}, "filter[id][from]": {"200"}, "filter[id][to]": {"300"}}
			if tc.start {
				q.Set("filter[start][from]", wall(100))
				q.Set("filter[start][to]", wall(500))
			}
			got, _ := pageIDs(t, srv, "/api/v1/PBX/CallHistory/", q, 1000)
			if len(got) == 0 || got[0] != tc.first || got[len(got)-1] != tc.last {
				t.Fatalf("ids %v: want %d to %d", got, tc.first, tc.last)
			}
			if !tc.startIsBound {
				return
			}
			// The start bound itself: call 200 starts at it and is left out.
			q.Set("filter[start][from]", wall(200))
			if got, _ := pageIDs(t, srv, "/api/v1/PBX/CallHistory/", q, 1000); len(got) == 0 || got[0] != 201 {
				t.Fatalf("from the start of call 200, exclusive: ids %v, want from 201", got)
			}
		})
	}
}

// TestListInProcess: List answers as the API over HTTP does, byte for
// byte, under the switches the exporter's paging tests use, and plays
// live inserts and deletions as requests over HTTP do.
func TestListInProcess(t *testing.T) {
	t.Parallel()
	queries := []string{
		"/api/v1/PBX/CallHistory/?sort=id&dir=ASC&count=7&filter[id][from]=11&filter[id][to]=40",
		"/api/v1/pbx/callhistory?sort=id&dir=DESC&count=2&fields=id",
		"/api/v1/PBX/CallHistory/?filter[start][from]=2026-01-01%2000:10:00&filter[start][to]=2026-01-01%2001:00:00&count=4&start=2",
		"/api/v1/CallHistory/?count=3",
		"/api/v1/Colleagues/?count=5&start=3",
		"/api/v1/Phonebooks/",
		"/api/v1/Dialplan/CallGroups/?count=2",
		"/api/v1/PBX/CallHistory/?count=-1",
		"/api/v1/Nope",
	}
	for _, o := range []Options{
		{Calls: 60},
		{Calls: 60, IgnoreSort: true, IgnoreFilter: []string{"id"}, MaxCount: 3, Total: "number"},
		{Calls: 60, FilterFromExclusive: []string{"id"}, FilterToExclusive: true, Total: "absent"},
	} {
		_, srv := setup(t, o)
		sim := New(o)
		for _, pq := range queries {
			u, err := url.Parse(pq)
			if err != nil {
				t.Fatal(err)
			}
			status, body := sim.List(u.Path, u.Query())
			want := get(t, srv, pq, "wsk-v1-testkey", status)
			if string(body) != want {
				t.Fatalf("%+v: %s: in process %s\nover HTTP %s", o, pq, body, want)
			}
		}
	}
	sim := New(Options{Calls: 20, LiveInsertEvery: 2, LiveInsertBatch: 5, DeleteAfter: 3, DeleteOldest: 4})
	for range 3 {
		sim.List("/api/v1/PBX/CallHistory/", url.Values{"count": {"1"}})
	}
	if got, want := sim.CallIDs(), 21; len(got) != want || got[0] != 5 || sim.MaxCallID() != 25 {
		t.Fatalf("after 3 requests: %d calls from %v, newest %d: want 21 (25 inserted, the 4 oldest deleted)", len(got), got[:1], sim.MaxCallID())
	}
}

// TestLiveInsertsStop: live inserts stop after LiveInsertMax calls in all,
// and at once when the PBX is made quiet.
func TestLiveInsertsStop(t *testing.T) {
	t.Parallel()
	sim := New(Options{Calls: 10, LiveInsertEvery: 1, LiveInsertBatch: 3, LiveInsertMax: 7})
	for range 5 {
		sim.List("/api/v1/PBX/CallHistory/", url.Values{"count": {"1"}})
	}
	if sim.MaxCallID() != 17 {
		t.Fatalf("after 5 requests inserting 3 each, at most 7: newest id %d, want 17", sim.MaxCallID())
	}
	sim = New(Options{Calls: 10, LiveInsertEvery: 1, LiveInsertBatch: 3})
	sim.List("/api/v1/PBX/CallHistory/", url.Values{"count": {"1"}})
	sim.Quiet()
	sim.List("/api/v1/PBX/CallHistory/", url.Values{"count": {"1"}})
	if sim.MaxCallID() != 13 {
		t.Fatalf("one request, then quiet, then one more: newest id %d, want 13", sim.MaxCallID())
	}
}

// TestGroupCallsAreTheirLegs: each offered call of the ground truth is
// what its CDR legs say by the definitions of docs/reporting.md (offered
// at the group's first leg's start, the answer's wait and talk, or the
// wait until the group's last leg ended; the members rung), every
// scenario of issue 26 is played in every group, and ends never decrease
// with ids within a call, calls' ends grow with ids, also on a PBX whose
// calls are a second apart.
func TestGroupCallsAreTheirLegs(t *testing.T) {
	t.Parallel()
	for _, gap := range []time.Duration{time.Second, 30 * time.Second, 10 * time.Minute} {
		sim := New(Options{Seed: 3, Calls: 4000, CallGap: gap, GroupFields: GroupFields{QueueLeg: gap == time.Second}})
		seen := map[string]bool{}
		byCall := map[int64][]Call{}
		ownLegs := 0
		for id := int64(1); id <= 4000; id++ {
			c := sim.Call(id)
			byCall[c.CallID] = append(byCall[c.CallID], c)
			if p := sim.Call(max(id-1, 1)); id > 1 && p.CallID != c.CallID && !callEnd(sim, c).After(callEnd(sim, p)) {
				t.Fatalf("gap %s: call %d (record %d) ends at %v, call %d (record %d) at %v", gap, c.CallID, id, callEnd(sim, c), p.CallID, id-1, callEnd(sim, p))
			}
			if p := sim.Call(max(id-1, 1)); p.CallID == c.CallID && c.End.Before(p.End) {
				t.Fatalf("gap %s: leg %d of call %d ends before leg %d", gap, id, c.CallID, id-1)
			}
		}
		gcs := sim.GroupCalls()
		for _, gc := range gcs {
			seen[gc.GroupID+" "+gc.Scenario] = true
			var offered, answer, left time.Time
			var talk int64
			var by string
			var members []string
			legs := 0
			for _, c := range byCall[gc.CallID] {
				if c.Group != gc.GroupID {
					continue
				}
				legs++
				if offered.IsZero() || c.Start.Before(offered) {
					offered = c.Start
				}
				if c.End.After(left) {
					left = c.End
				}
				if c.Dst != gc.Number || c.LastApp != "Queue" || !strings.HasPrefix(c.LastData, gc.GroupID+",t,,,") {
					t.Fatalf("gap %s: leg %d of %+v: dst %s, %s(%s)", gap, c.ID, gc, c.Dst, c.LastApp, c.LastData)
				}
				if c.DstChannel == "" { // a queue's own leg, answered by the PBX: no member's answer
					ownLegs++
					continue
				}
				m := strings.TrimPrefix(strings.Split(c.DstChannel, "-")[0], "SIP/")
				if !slices.Contains(members, m) {
					members = append(members, m)
				}
				if c.Disposition == "ANSWERED" && (answer.IsZero() || c.Answer.Before(answer)) {
					answer, talk, by = c.Answer, c.Billsec, m
				}
			}
			wait := int64(left.Sub(offered) / time.Second)
			outcome := Abandoned
			if !answer.IsZero() {
				outcome, wait = Answered, int64(answer.Sub(offered)/time.Second)
			} else if gc.NextDestination != "" {
				outcome = Overflowed
			}
			slices.Sort(members)
			want := slices.Sorted(slices.Values(gc.Members))
			if !offered.Equal(gc.Offered) || outcome != gc.Outcome || wait != gc.Wait || by != gc.AnsweredBy || talk != gc.Talk ||
				legs != gc.Legs || !slices.Equal(members, want) {
				t.Fatalf("gap %s: truth %+v; its legs say offered %v, %s by %q, wait %d, talk %d, %d legs, members %v",
					gap, gc, offered, outcome, by, wait, talk, legs, members)
			}
		}
		if gap == 10*time.Minute {
			for _, g := range []string{"1", "2", "3"} {
				for _, sc := range []string{"answered", "answered, then transferred to a colleague", "the caller hung up after 3 s",
					"the caller hung up after 60 s", "nobody answered: voicemail at the dialplan's timeout",
					"nobody answered: sent to another group at the dialplan's timeout", "overflowed from another group, answered",
					"overflowed from another group; the caller hung up after 60 s"} {
					if !seen[g+" "+sc] {
						t.Errorf("gap %s: group %s never plays %q", gap, g, sc)
					}
				}
			}
		}
		if gap == time.Second && ownLegs < 50 {
			t.Fatalf("QueueLeg: %d queues' own legs", ownLegs)
		}
		if len(gcs) < 200 {
			t.Fatalf("gap %s: %d group calls in 4000 records", gap, len(gcs))
		}
	}
}
