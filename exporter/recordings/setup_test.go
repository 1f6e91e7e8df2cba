package recordings

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/sinks/recstore"
	"github.com/wildix-export/wildix-export/sinks/recstore/recstoretest"
)

const testToken = "access_simple-token-of-admin-5f3a"

// env is a simulator with recordings on loopback, maybe with its cloud
// stand-in, and what it saw.
type env struct {
	sim   *pbxsim.Sim
	pbx   *httptest.Server
	cloud *httptest.Server // nil without one
	// caPEM is the cloud stand-in's certificate (nil: none, or plain http).
	caPEM []byte
	seen  *requestLog
	idKey *pseudonym.Keyed // the recordings' IDKey
}

// cloudMode is how the cloud stand-in is served.
type cloudMode int

const (
	noCloud    cloudMode = iota
	cloudTLS             // https, as cloud storage is
	cloudPlain           // plain http: a redirect the client must refuse
)

// requestLog records the escaped path of every request the PBX received.
type requestLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *requestLog) add(p string) { l.mu.Lock(); l.paths = append(l.paths, p); l.mu.Unlock() }
func (l *requestLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.paths...)
}

// recSetup starts the simulator (one answered call in 4 recorded, 200
// bytes a second unless o says otherwise) with testToken accepted.
func recSetup(t testing.TB, o pbxsim.Options, cloud cloudMode) *env {
	t.Helper()
	if o.Calls == 0 {
		o.Calls = 300
	}
	if o.Recordings.Every == 0 {
		o.Recordings.Every = 4
	}
	if o.Recordings.BytesPerSecond == 0 {
		o.Recordings.BytesPerSecond = 200
	}
	o.APIKeys = append(o.APIKeys, testToken, "wsk-v1-companykey")
	o.Log = nil
	e := &env{seen: &requestLog{}, idKey: testIDKey(t, "setup-test-key-0123456789abcdefghijk")}
	var sim atomic.Pointer[pbxsim.Sim]
	if cloud != noCloud {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sim.Load().CloudHandler().ServeHTTP(w, r) })
		if cloud == cloudTLS {
			e.cloud = httptest.NewUnstartedServer(h)
			// Clients that close idle connections at the end of a test
			// make the server log handshake errors: not the test's news.
			e.cloud.Config.ErrorLog = log.New(io.Discard, "", 0)
			e.cloud.StartTLS()
			e.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.cloud.Certificate().Raw})
		} else {
			e.cloud = httptest.NewServer(h)
		}
		t.Cleanup(e.cloud.Close)
		o.Recordings.CloudURL = e.cloud.URL
	}
	e.sim = pbxsim.New(o)
	sim.Store(e.sim)
	e.sim.Quiet()
	e.pbx = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.seen.add(r.URL.EscapedPath())
		e.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(e.pbx.Close)
	return e
}

// transport trusts the cloud stand-in's certificate.
func transportFor(caPEM []byte) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caPEM != nil {
		tr.TLSClientConfig = tlsTrusting(caPEM)
	}
	return tr
}

func (e *env) spool(t testing.TB) *Spool {
	t.Helper()
	u, err := url.Parse(e.pbx.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr := transportFor(e.caPEM)
	t.Cleanup(tr.CloseIdleConnections)
	return &Spool{Origin: u, Token: testToken, Transport: tr, MinBackoff: time.Millisecond, MaxAttempts: 12}
}

// recordings is the simulator's recordings as the exporter would give
// them: with the announced size unless noSize (the list's "attachment"
// shape announces none).
func (e *env) recordings(noSize bool) []Recording {
	var out []Recording
	for _, r := range e.sim.Recordings() {
		rec := Recording{ID: strconv.FormatInt(r.ID, 10), Path: r.Path, Start: r.Start, Size: r.Size, IDKey: e.idKey}
		if noSize {
			rec.Size = 0
		}
		out = append(out, rec)
	}
	return out
}

// truthLine is a line of /_sim/truth/recordings.
type truthLine struct {
	ID       int64     `json:"id"`
	Start    time.Time `json:"start"`
	Path     string    `json:"path"`
	FileName string    `json:"file_name"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	Vanished bool      `json:"vanished"`
}

// truth reads /_sim/truth/recordings over HTTP.
func (e *env) truth(t testing.TB) []truthLine {
	t.Helper()
	resp, err := http.Get(e.pbx.URL + "/_sim/truth/recordings")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []truthLine
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l truthLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("truth line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantStore is what the store must hold: every recording not vanished,
// whose path is not refused, under its name, with the truth's sha256.
func wantStore(t testing.TB, pbx string, truth []truthLine) map[string]string {
	t.Helper()
	want := map[string]string{}
	for _, l := range truth {
		if l.Vanished || strings.Contains(l.Path, "/"+strconv.FormatInt(l.ID, 10)+"/") {
			continue // gone, or a hostile name's folder: refused
		}
		name, err := recstore.Name(pbx, l.Start.UTC(), strconv.FormatInt(l.ID, 10))
		if err != nil {
			t.Fatal(err)
		}
		want[name] = l.SHA256
	}
	return want
}

// storeFixture is a real store and a view of it from outside.
type storeFixture struct {
	kind  string
	st    Store
	dir   string               // Dir's root
	s3    *recstoretest.Server // S3's server
	s3opt recstore.S3Options
	// contents maps every complete name to its sha256, failing on
	// anything else: a partial file or incomplete upload is reported by
	// leftovers.
	contents  func(t testing.TB) map[string]string
	leftovers func(t testing.TB) []string
}

const s3Prefix = "wildix/recordings/"

func newStore(t testing.TB, kind string) *storeFixture {
	t.Helper()
	f := &storeFixture{kind: kind}
	switch kind {
	case "dir":
		f.dir = t.TempDir()
		d, err := recstore.OpenDir(f.dir, recstore.DirOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f.st = d
		f.contents = func(t testing.TB) map[string]string {
			got := map[string]string{}
			err := filepath.WalkDir(f.dir, func(p string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() || strings.Contains(e.Name(), ".partial-") {
					return err
				}
				rel, _ := filepath.Rel(f.dir, p)
				got[filepath.ToSlash(rel)] = fileSum(t, p)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		f.leftovers = func(t testing.TB) []string {
			var left []string
			filepath.WalkDir(f.dir, func(p string, e fs.DirEntry, err error) error {
				if err == nil && strings.Contains(e.Name(), ".partial-") {
					left = append(left, p)
				}
				return nil
			})
			return left
		}
	case "s3":
		f.s3 = recstoretest.Start(t)
		f.s3opt = recstore.S3Options{Endpoint: f.s3.Endpoint, Region: f.s3.Region, Bucket: f.s3.Bucket, Prefix: s3Prefix, PathStyle: true,
			AccessKey: f.s3.AccessKey, SecretKey: f.s3.SecretKey, PartSize: 5 << 20}
		st, err := recstore.OpenS3(context.Background(), f.s3opt)
		if err != nil {
			t.Fatal(err)
		}
		f.st = st
		c := f.s3.Client(t)
		f.contents = func(t testing.TB) map[string]string {
			got := map[string]string{}
			ctx := context.Background()
			for obj := range c.ListObjects(ctx, f.s3.Bucket, minio.ListObjectsOptions{Recursive: true}) {
				if obj.Err != nil {
					t.Fatal(obj.Err)
				}
				name, ok := strings.CutPrefix(obj.Key, s3Prefix)
				if !ok {
					t.Errorf("object outside the prefix: %q", obj.Key)
					continue
				}
				o, err := c.GetObject(ctx, f.s3.Bucket, obj.Key, minio.GetObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				_, err = io.Copy(h, o)
				o.Close()
				if err != nil {
					t.Fatal(err)
				}
				got[name] = hex.EncodeToString(h.Sum(nil))
			}
			return got
		}
		f.leftovers = func(t testing.TB) []string {
			var left []string
			for u := range c.ListIncompleteUploads(context.Background(), f.s3.Bucket, "", true) {
				if u.Err != nil {
					t.Fatal(u.Err)
				}
				left = append(left, u.Key)
			}
			return left
		}
	default:
		t.Fatalf("store kind %q", kind)
	}
	return f
}

func fileSum(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkExact fails unless the store holds exactly want, with nothing
// partial left.
func checkExact(t testing.TB, f *storeFixture, want map[string]string) {
	t.Helper()
	got := f.contents(t)
	for name, sum := range want {
		if got[name] != sum {
			t.Errorf("%s store: %s holds sha256 %q; want %s", f.kind, name, got[name], sum)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s store: %s stored, but is no recording to store", f.kind, name)
		}
	}
	if left := f.leftovers(t); len(left) > 0 {
		t.Errorf("%s store: partial copies left: %q", f.kind, left)
	}
}

func tlsTrusting(caPEM []byte) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
