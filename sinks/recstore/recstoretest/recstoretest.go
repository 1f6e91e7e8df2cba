// Package recstoretest runs a real S3-compatible server for tests: Versity's
// S3 gateway (versitygw, Apache-2.0) serving a folder of its own, started
// for one test on a free loopback port and stopped at its end. Used by
// sinks/recstore's tests and, later, the exporter's recordings tests.
package recstoretest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/wildix-export/wildix-export/internal/notify/notifytest"
)

// VersityGWVersion is the version .ci/run installs.
const VersityGWVersion = "v1.8.0"

// Server is a running versitygw with one empty bucket.
type Server struct {
	Endpoint  string // http://127.0.0.1:<port>
	Region    string
	Bucket    string
	AccessKey string
	SecretKey string
	// Root is the folder the gateway serves: the bucket is Root/<Bucket>,
	// an object key a/b its file Root/<Bucket>/a/b.
	Root string
	// CAFile is the certificate a client must trust, with StartTLS.
	CAFile string
	pool   *x509.CertPool
}

// binary finds versitygw on PATH or in GOPATH/bin. In CI it must be there
// (.ci/run installs it); elsewhere the test is skipped with the command
// that installs it, as for mailpit.
func binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	p := filepath.Join(gopath, "bin", "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := "versitygw is not installed: go install github.com/versity/versitygw/cmd/versitygw@" + VersityGWVersion + " (bash .ci/run does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start starts versitygw's posix backend on a new folder and a free
// loopback port, waits until it answers, and creates the bucket. A port
// taken between choosing and binding makes it exit; it is then started
// again on another.
func Start(t testing.TB) *Server { t.Helper(); return start(t, false) }

// StartTLS is Start serving HTTPS, with a self-signed certificate for
// 127.0.0.1 (Server.CAFile, Server.Transport).
func StartTLS(t testing.TB) *Server { t.Helper(); return start(t, true) }

func start(t testing.TB, useTLS bool) *Server {
	t.Helper()
	bin := binary(t)
	s := &Server{Region: "us-east-1", Bucket: "recordings", AccessKey: "test-access-key", SecretKey: "test-secret-key-1234567890", Root: t.TempDir()}
	scheme, tlsArgs := "http", []string(nil)
	if useTLS {
		cert, key := notifytest.SelfSigned(t)
		s.CAFile, scheme, tlsArgs = cert, "https", []string{"--cert", cert, "--key", key}
		pem, err := os.ReadFile(cert)
		if err != nil {
			t.Fatal(err)
		}
		s.pool = x509.NewCertPool()
		s.pool.AppendCertsFromPEM(pem)
	}
	var lastErr error
	for range 3 {
		port := freePort(t)
		s.Endpoint = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
		out, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
			"--port", fmt.Sprintf("127.0.0.1:%d", port), "--quiet"}, tlsArgs...)
		cmd := exec.Command(bin, append(args, "posix", s.Root)...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if lastErr = s.waitReady(exited); lastErr == nil {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			if err := s.makeBucket(); err != nil {
				t.Fatalf("versitygw: create bucket %s: %v", s.Bucket, err)
			}
			return s
		}
		cmd.Process.Kill()
		log, _ := os.ReadFile(out.Name())
		lastErr = fmt.Errorf("%w; its log: %s", lastErr, log)
	}
	t.Fatalf("versitygw did not start: %v", lastErr)
	return nil
}

func (s *Server) waitReady(exited <-chan error) error {
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited: %v", err)
		case <-deadline:
			return fmt.Errorf("versitygw at %s did not answer within 30s", s.Endpoint)
		case <-tick.C:
			// Any HTTP answer (an S3 error for an unsigned request) says
			// it serves.
			if resp, err := (&http.Client{Transport: s.Transport()}).Get(s.Endpoint + "/"); err == nil {
				resp.Body.Close()
				return nil
			}
		}
	}
}

// Client is a client of the server, for tests that look at it from
// outside the code under test.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := s.client()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *Server) client() (*minio.Client, error) {
	host, secure := strings.CutPrefix(s.Endpoint, "https://")
	host = strings.TrimPrefix(host, "http://")
	return minio.New(host, &minio.Options{
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: s.Region, BucketLookup: minio.BucketLookupPath,
		Secure: secure, Transport: s.Transport(),
	})
}

// Transport is a transport that trusts the server's certificate (any
// transport would do without TLS).
func (s *Server) Transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.pool != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}
	}
	return tr
}

func (s *Server) makeBucket() error {
	c, err := s.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region})
}

// Refusing returns the endpoint of a proxy to the server that answers
// 403 AccessDenied, as a server does to a key without the permission, to
// each request refuse matches, and forwards every other one (its signed
// Host kept). It stops at the test's end.
func (s *Server) Refusing(t testing.TB, refuse func(*http.Request) bool) string {
	t.Helper()
	return s.Answering(t, func(w http.ResponseWriter, r *http.Request) bool {
		if !refuse(r) {
			return false
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		if r.Method != http.MethodHead {
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>recstoretest</RequestId></Error>`)
		}
		return true
	})
}

// Answering returns the endpoint of a proxy to the server (a real HTTP
// server on loopback) that lets answer reply to each request, and
// forwards those it did not reply to (answer returns false, having
// written nothing), their signed Host kept. It stops at the test's end.
func (s *Server) Answering(t testing.TB, answer func(http.ResponseWriter, *http.Request) bool) string {
	t.Helper()
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Transport: s.Transport(), Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !answer(w, r) {
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Unwritable makes dir refuse new entries and removals until the function
// it returns is called (or the test ends): its mode 0500, and as root,
// whom no mode stops, the immutable attribute (chattr +i; the test is
// skipped where that cannot be set). A folder store not writable, for
// the tests of a store failing (review 24, R24-1).
func Unwritable(t testing.TB, dir string) (restore func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		restore = func() { os.Chmod(dir, 0o700) }
	} else {
		if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
			t.Skipf("as root, a folder is made unwritable only by chattr +i, which failed here: %v %s", err, out)
		}
		restore = func() { exec.Command("chattr", "-i", dir).Run() }
	}
	t.Cleanup(restore)
	return restore
}
