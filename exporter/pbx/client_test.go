package pbx_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
)

const key = "wsk-v1-client"

// newClient starts a simulator with o and returns a client for it with
// short backoffs and a timeout generous enough for a loaded machine.
func newClient(t *testing.T, o pbxsim.Options) (*simtest.Fixture, *pbx.Client) {
	t.Helper()
	o.APIKeys = append(o.APIKeys, key)
	f := simtest.New(t, o)
	c := f.Client(&http.Client{Transport: &auth.Transport{Source: auth.Static(key)}})
	c.MaxAttempts, c.Timeout = 4, 30*time.Second
	return f, c
}

var page = url.Values{"sort": {"id"}, "dir": {"ASC"}, "count": {"10"}}

// TestListRetries: what may pass on its own is retried, the rest fails at
// once with the PBX's reason.
func TestListRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		status   int
		body     string
		fails    int64 // answers spoiled before the real one
		err      string
		requests int64
	}{
		{"500 then fine", 500, `{"type":"error","reason":"Internal error"}`, 2, "", 3},
		{"html 502 then fine", 502, `<html>502 Bad Gateway</html>`, 1, "", 2},
		{"429 then fine", 429, `{"type":"error","reason":"Too many requests"}`, 3, "", 4},
		{"cut body then fine", 200, `{"type":"result","result":{"total":"10","records":[{"id":"1"`, 1, "", 2},
		{"500 for good", 500, `{"type":"error","reason":"Database gone"}`, 99, `(after 4 attempts): 500 Internal Server Error: "Database gone"`, 4},
		{"400", 400, `{"type":"error","reason":"Invalid value of parameter 'count'"}`, 99, `400 Bad Request: "Invalid value of parameter 'count'"`, 1},
		{"403", 403, `{"type":"error","reason":"Forbidden"}`, 99, "the token's user may not read this", 1},
		{"404", 404, `{"type":"error","reason":"404 Not Found","code":404}`, 99, "this PBX has no such endpoint", 1},
		{"error envelope with 200", 200, `{"type":"error","reason":"Session expired"}`, 99, `200 OK: "Session expired"`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var seen atomic.Int64
			spoil := func(_ *http.Request, status int, body []byte) (int, []byte) {
				if seen.Add(1) <= tc.fails {
					return tc.status, []byte(tc.body)
				}
				return status, body
			}
			_, c := newClient(t, pbxsim.Options{Calls: 50, Rewrite: spoil})
			n := &pbx.Counts{}
			p, err := c.List(context.Background(), "/api/v1/PBX/CallHistory/", page, n)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Records) != 10 || p.Total != 50 {
					t.Fatalf("%d records, total %d; want 10 of 50", len(p.Records), p.Total)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			if got := n.Requests.Load(); got != tc.requests {
				t.Fatalf("%d requests, want %d", got, tc.requests)
			}
		})
	}
}

// chunked drops the Content-Length the simulator sets, so the answer is
// sent chunked and its size is known only while it is read.
type chunked struct{ http.ResponseWriter }

func (c chunked) WriteHeader(status int) {
	c.Header().Del("Content-Length")
	c.ResponseWriter.WriteHeader(status)
}

func (c chunked) Write(b []byte) (int, error) { return c.ResponseWriter.Write(b) }

// TestResponseSizeLimit: an answer larger than EXPORT_MAX_RESPONSE_SIZE is
// refused, announced or not, with an error naming the limit and the
// variable, and not retried; one of exactly the limit is read.
func TestResponseSizeLimit(t *testing.T) {
	t.Parallel()
	f, c := newClient(t, pbxsim.Options{Calls: 500})
	q := url.Values{"sort": {"id"}, "dir": {"ASC"}, "count": {"500"}}
	status, body, err := c.Get(context.Background(), "/api/v1/PBX/CallHistory/?"+q.Encode())
	if err != nil || status != 200 {
		t.Fatalf("status %d, err %v", status, err)
	}
	size := int64(len(body))
	if size < 64<<10 {
		t.Fatalf("a page of %d bytes is too small for the test", size)
	}
	chunkedSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.Sim.ServeHTTP(chunked{w}, r) }))
	t.Cleanup(chunkedSrv.Close)
	chunkedURL, err := url.Parse(chunkedSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		base  *url.URL
		limit int64
		err   string
	}{
		{"announced, at the limit", f.URL, size, ""},
		{"announced, one byte over", f.URL, size - 1, "the PBX's answer is larger than EXPORT_MAX_RESPONSE_SIZE=" + strconv.FormatInt(size-1, 10) + " bytes"},
		{"chunked, at the limit", chunkedURL, size, ""},
		{"chunked, one byte over", chunkedURL, size - 1, "larger than EXPORT_MAX_RESPONSE_SIZE"},
		{"chunked, far over", chunkedURL, 64 << 10, "larger than EXPORT_MAX_RESPONSE_SIZE=65536 bytes (64KiB); lower EXPORT_PAGE_SIZE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc := *c
			cc.Base, cc.MaxResponseSize = tc.base, tc.limit
			n := &pbx.Counts{}
			p, err := cc.List(context.Background(), "/api/v1/PBX/CallHistory/", q, n)
			if tc.err == "" {
				if err != nil || len(p.Records) != 500 {
					t.Fatalf("err %v, want the 500 records", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			if n.Requests.Load() != 1 {
				t.Fatalf("%d requests: a refused size must not be retried", n.Requests.Load())
			}
			if _, _, err := cc.Get(context.Background(), "/api/v1/PBX/CallHistory/?"+q.Encode()); err == nil || !strings.Contains(err.Error(), "EXPORT_MAX_RESPONSE_SIZE") {
				t.Fatalf("Get: err = %v, want the limit", err)
			}
		})
	}
}

// TestLongReasonIsCut: a PBX error text of megabytes is cut to a few KiB
// wherever it goes, even when the body is larger than the size limit.
func TestLongReasonIsCut(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 10<<20) // 20 MiB, two bytes a rune
	huge := func(_ *http.Request, _ int, _ []byte) (int, []byte) {
		return 400, []byte(`{"type":"error","reason":"` + long + `"}`)
	}
	for _, limit := range []int64{0, 1 << 20} {
		_, c := newClient(t, pbxsim.Options{Calls: 10, Rewrite: huge})
		c.MaxResponseSize = limit
		_, err := c.List(context.Background(), "/api/v1/PBX/CallHistory/", page, &pbx.Counts{})
		var ae *pbx.APIError
		if !errors.As(err, &ae) || ae.Status != 400 {
			t.Fatalf("limit %d: err = %v, want the 400", limit, err)
		}
		if msg := err.Error(); len(msg) > 4<<10 || !utf8.ValidString(msg) || !strings.Contains(ae.Reason, "éééé") {
			t.Fatalf("limit %d: error of %d bytes (valid UTF-8: %v), want a few KiB showing the reason", limit, len(msg), utf8.ValidString(msg))
		}
		if limit == 0 && !strings.Contains(ae.Reason, "more bytes)") {
			t.Fatalf("reason %q…: does not say it was cut", ae.Reason[:40])
		}
	}
	if r := pbx.Reason([]byte("<html>" + strings.Repeat("x ", 5<<20) + "</html>")); len(r) > 130 {
		t.Fatalf("excerpt of a non-JSON body: %d bytes", len(r))
	}
}

func TestParseList(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body  string
		total int64
		n     int
		err   string
	}{
		{`{"type":"result","result":{"total":"2","records":[{"id":"1"},{"id":"2"}]}}`, 2, 2, ""},
		{`{"type":"result","result":{"total":6,"records":[]}}`, 6, 0, ""},
		{`{"type":"result","result":{"records":[{"id":"1"}]}}`, -1, 1, ""},
		{`{"type":"result","result":{"total":null,"records":[]}}`, -1, 0, ""},
		{`<html>oops</html>`, 0, 0, "expected a JSON object"},
		{`{"type":"result","result":{"total":"2","records":[`, 0, 0, "malformed JSON"},
		{`{"type":"error","reason":"Permission denied"}`, 0, 0, `200 OK: "Permission denied"`},
		{`{"type":"result","result":"Success"}`, 0, 0, "result is not a list object"},
		{`{"type":"result","result":{"total":"2"}}`, 0, 0, "no records array"},
		{`{"type":"result","result":{"total":"2","records":{"a":1}}}`, 0, 0, "result is not a list object"},
		{`{"type":"result","result":{"total":"lots","records":[]}}`, 0, 0, `result.total "lots" is not a count`},
		{`{"type":"result","result":{"total":"-1","records":[]}}`, 0, 0, "is not a count"},
		{`{"type":"result","result":{"total":"9223372036854775807","records":[]}}`, 0, 0, "9223372036854775807 is not a plausible count"},
		{`{"type":"result","result":{"total":9223372036854775808,"records":[]}}`, 0, 0, "is not a count"},
		{`{"type":"result","result":{"total":1e3,"records":[]}}`, 1000, 0, ""},
		{`{"type":"result","result":{"total":"2.5","records":[]}}`, 0, 0, `result.total "2.5" is not a count`},
		{`{"type":"result","result":{"total":"1099511627776","records":[]}}`, 1099511627776, 0, ""},
		{`{"type":"result","result":{"total":"1","records":[{},{}]}}`, 0, 0, "smaller than the 2 records"},
		{`{"type":"surprise","result":{}}`, 0, 0, `expected "type":"result"`},
	} {
		p, err := pbx.ParseList([]byte(tc.body))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.body, err, tc.err)
			}
			continue
		}
		if err != nil || p.Total != tc.total || len(p.Records) != tc.n {
			t.Errorf("%s: %+v %v", tc.body, p, err)
		}
	}
}
