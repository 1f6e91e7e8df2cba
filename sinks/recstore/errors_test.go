package recstore

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/sinks/recstore/recstoretest"
)

// TestS3Forbidden (review 40, R40-1): only a 403 whose S3 error the
// server sent says AccessDenied is the key wanting a permission
// (ErrDenied, naming the permission to give: exit 2). A 403 the client cannot parse (a proxy's HTML
// page, an empty body) was taken for AccessDenied by the client: it is
// an error naming the status and what the server sent, shortened and
// without credentials, with no permission claimed. A HEAD's 403 tells no
// reason: the store asks a GET of the object's first byte, whose reason
// (AccessDenied, RequestTimeTooSkewed) is then the error's; when the GET
// tells none, the error says it may be a permission or the clock. Each
// answer comes from a real HTTP server on loopback in front of
// versitygw; the object stays stored.
func TestS3Forbidden(t *testing.T) {
	t.Parallel()
	srv := recstoretest.Start(t)
	f, _, o := s3FixtureOn(t, srv)
	ctx := context.Background()
	name := testName(t, "forbidden")
	if _, err := f.st.Put(ctx, name, strings.NewReader("RIFF....WAVE"), Want{Size: 12}); err != nil {
		t.Fatal(err)
	}
	page := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "<html><head><title>403</title></head><body><h1>Forbidden</h1>\n<p>Request blocked by the egress policy.</p>"+
			"<p>Authorization: AWS4-HMAC-SHA256 Credential="+o.AccessKey+"/20261208/us-east-1/s3/aws4_request, Signature=0123456789abcdef "+o.SecretKey+"</p></body></html>")
	}
	s3err := func(w http.ResponseWriter, code, msg string) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>`+msg+`</Message></Error>`)
	}
	empty := func(w http.ResponseWriter) { w.WriteHeader(http.StatusForbidden) }
	object := func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, ".wav") }
	remove := func(st *S3) error { return st.Remove(ctx, name) }
	stat := func(st *S3) error { _, err := st.Stat(ctx, name); return err }
	discard := func(st *S3) error { _, err := st.Discard(ctx, name); return err }
	for _, tc := range []struct {
		name   string
		answer func(http.ResponseWriter, *http.Request) bool
		do     func(*S3) error
		denied bool
		want   []string // in the error
	}{
		{"proxy page to a delete", func(w http.ResponseWriter, r *http.Request) bool {
			if object(r) && r.Method == http.MethodDelete {
				page(w)
				return true
			}
			return false
		}, remove, false, []string{"403", "not an S3 error", "text/html", "Request blocked by the egress policy"}},
		{"proxy page to a discard's delete", func(w http.ResponseWriter, r *http.Request) bool {
			if object(r) && r.Method == http.MethodDelete {
				page(w)
				return true
			}
			return false
		}, discard, false, []string{"403", "Request blocked by the egress policy"}},
		{"empty 403 to a delete", func(w http.ResponseWriter, r *http.Request) bool {
			if object(r) && r.Method == http.MethodDelete {
				empty(w)
				return true
			}
			return false
		}, remove, false, []string{"403", "without a body", "clock"}},
		{"AccessDenied to a delete", func(w http.ResponseWriter, r *http.Request) bool {
			if object(r) && r.Method == http.MethodDelete {
				s3err(w, "AccessDenied", "Access Denied")
				return true
			}
			return false
		}, remove, true, []string{"s3:DeleteObject"}},
		// R45-1: Remove first aborts what a killed Put left, listing the
		// name's uploads (s3:ListBucketMultipartUploads).
		{"AccessDenied to the listing of uploads", func(w http.ResponseWriter, r *http.Request) bool {
			if _, ok := r.URL.Query()["uploads"]; ok && r.Method == http.MethodGet {
				s3err(w, "AccessDenied", "Access Denied")
				return true
			}
			return false
		}, remove, true, []string{"s3:ListBucketMultipartUploads", "s3:AbortMultipartUpload"}},
		{"HEAD refused, GET clock skew", func(w http.ResponseWriter, r *http.Request) bool {
			switch {
			case object(r) && r.Method == http.MethodHead:
				empty(w)
			case object(r) && r.Method == http.MethodGet:
				s3err(w, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.")
			default:
				return false
			}
			return true
		}, stat, false, []string{"HEAD", "too large"}},
		{"HEAD refused, GET AccessDenied", func(w http.ResponseWriter, r *http.Request) bool {
			switch {
			case object(r) && r.Method == http.MethodHead:
				empty(w)
			case object(r) && r.Method == http.MethodGet:
				s3err(w, "AccessDenied", "Access Denied")
			default:
				return false
			}
			return true
		}, discard, true, []string{"s3:GetObject"}},
		{"HEAD refused, GET allowed", func(w http.ResponseWriter, r *http.Request) bool {
			if object(r) && r.Method == http.MethodHead {
				empty(w)
				return true
			}
			return false
		}, stat, false, []string{"HEAD", "permission", "clock"}},
		{"HEAD and GET refused by a proxy page", func(w http.ResponseWriter, r *http.Request) bool {
			switch {
			case object(r) && r.Method == http.MethodHead:
				empty(w)
			case object(r) && r.Method == http.MethodGet:
				page(w)
			default:
				return false
			}
			return true
		}, stat, false, []string{"HEAD", "Request blocked by the egress policy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := o
			o.Endpoint = srv.Answering(t, tc.answer)
			st, err := OpenS3(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.do(st)
			if err == nil {
				t.Fatal("no error; want the 403's")
			}
			if errors.Is(err, ErrDenied) != tc.denied {
				t.Errorf("%v: matches ErrDenied %v; want %v", err, errors.Is(err, ErrDenied), tc.denied)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%v: want it to say %q", err, w)
				}
			}
			if !tc.denied && (strings.Contains(msg, "give the key") || strings.Contains(msg, "Access Denied")) {
				t.Errorf("%v: claims a permission missing; the server said no such thing", err)
			}
			for _, secret := range []string{o.AccessKey, o.SecretKey, "0123456789abcdef"} {
				if strings.Contains(msg, secret) {
					t.Errorf("%v: shows %q", err, secret)
				}
			}
			if b, err := f.read(t, name); err != nil || string(b) != "RIFF....WAVE" {
				t.Fatalf("%s after the refusal: %q, %v; want it kept", name, b, err)
			}
		})
	}
}

// TestOpenS3Forbidden (review 45): the 403s OpenS3 meets. With the
// region not set, the client asks the bucket's region (GET ?location)
// and takes a refusal for us-east-1, so a 403 that is no S3 error (a
// gateway refusing that request, empty or with a page) is left as it is
// for the client, and the store opens (R45-2). A HEAD's 403 carrying
// MinIO's X-Minio-Error-Code/-Desc headers (MinIO's only way to say why
// on a HEAD) says what they say (R45-3), and one carrying nothing names
// a wrong secret key among its possible causes. Real HTTP servers on
// loopback in front of versitygw.
func TestOpenS3Forbidden(t *testing.T) {
	t.Parallel()
	srv := recstoretest.Start(t)
	_, _, o := s3FixtureOn(t, srv)
	ctx := context.Background()
	location := func(r *http.Request) bool {
		_, ok := r.URL.Query()["location"]
		return ok && r.Method == http.MethodGet
	}
	bucketHead := func(r *http.Request) bool {
		return r.Method == http.MethodHead && strings.Trim(r.URL.Path, "/") == o.Bucket
	}
	const sigDesc = "The request signature we calculated does not match the signature you provided. Check your key and signing method."
	for _, tc := range []struct {
		name   string
		region string
		answer func(http.ResponseWriter, *http.Request) bool
		want   []string // in OpenS3's error; none: it opens
	}{
		{"empty 403 to the region lookup", "", func(w http.ResponseWriter, r *http.Request) bool {
			if location(r) {
				w.WriteHeader(http.StatusForbidden)
				return true
			}
			return false
		}, nil},
		{"page 403 to the region lookup", "", func(w http.ResponseWriter, r *http.Request) bool {
			if location(r) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, "<html><body>Forbidden</body></html>")
				return true
			}
			return false
		}, nil},
		{"HEAD of the bucket refused with MinIO's headers", o.Region, func(w http.ResponseWriter, r *http.Request) bool {
			if bucketHead(r) {
				w.Header().Set("X-Minio-Error-Code", "SignatureDoesNotMatch")
				w.Header().Set("X-Minio-Error-Desc", `"`+sigDesc+`"`)
				w.WriteHeader(http.StatusForbidden)
				return true
			}
			return false
		}, []string{sigDesc}},
		{"HEAD of the bucket refused, no reason", o.Region, func(w http.ResponseWriter, r *http.Request) bool {
			if bucketHead(r) {
				w.WriteHeader(http.StatusForbidden)
				return true
			}
			return false
		}, []string{"HEAD", "secret key", "permission", "clock"}},
		// No proxy: versitygw itself, given a wrong secret key, answers
		// the HEAD 403 without a reason; the listing asked then tells it.
		{"wrong secret key", o.Region, nil, []string{"HEAD", "signature"}},
		{"HEAD of the bucket refused, listing AccessDenied", o.Region, func(w http.ResponseWriter, r *http.Request) bool {
			switch {
			case bucketHead(r):
				w.WriteHeader(http.StatusForbidden)
			case r.Method == http.MethodGet && strings.Trim(r.URL.Path, "/") == o.Bucket && !location(r):
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
			default:
				return false
			}
			return true
		}, []string{"HEAD", "s3:ListBucket"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := o
			o.Region = tc.region
			if tc.answer == nil {
				o.SecretKey = "wrong-secret-key-0000000000"
			} else {
				o.Endpoint = srv.Answering(t, tc.answer)
			}
			st, err := OpenS3(ctx, o)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("open: %v; want it opened (the client takes the refused lookup for us-east-1)", err)
				}
				name := testName(t, strings.ReplaceAll(tc.name, " ", "-"))
				if _, err := st.Put(ctx, name, strings.NewReader("RIFF....WAVE"), Want{Size: 12}); err != nil {
					t.Fatalf("put after opening: %v", err)
				}
				if _, err := st.Stat(ctx, name); err != nil {
					t.Fatalf("stat after opening: %v", err)
				}
				if err := st.Remove(ctx, name); err != nil {
					t.Fatalf("remove after opening: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("opened; want the 403's error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: want it to say %q", err, w)
				}
			}
			if denied := strings.Contains(tc.name, "AccessDenied"); errors.Is(err, ErrDenied) != denied {
				t.Errorf("%v: matches ErrDenied %v; want %v", err, !denied, denied)
			}
			if strings.Contains(err.Error(), o.SecretKey) || strings.Contains(err.Error(), "wrong-secret-key") {
				t.Errorf("%v: shows the secret key", err)
			}
			if tc.want[0] == sigDesc && strings.Contains(err.Error(), "tells no reason") {
				t.Errorf("%v: says no reason was told; the server told it", err)
			}
		})
	}
}
