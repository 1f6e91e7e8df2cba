// Package notifytest runs real receivers of notifications for tests: a
// Mailpit SMTP server read back through its API, and an HTTP receiver
// that keeps what it is sent. Used by internal/notify's tests and the
// command's.
package notifytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"go/build"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// MailpitVersion is the version .ci/run installs.
const MailpitVersion = "v1.33.1"

// Mailpit is a real SMTP server that keeps what it receives and serves it
// over its HTTP API (https://mailpit.axllent.org/docs/api-v1/), started for
// one test and stopped at its end.
type Mailpit struct {
	SMTPPort int
	API      string
}

// mailpitBinary finds mailpit on PATH or in GOPATH/bin. In CI it must be
// there (.ci/run installs it); elsewhere the test is skipped with the
// command that installs it.
func mailpitBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	p := filepath.Join(gopath, "bin", "mailpit")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := "mailpit is not installed: go install github.com/axllent/mailpit@" + MailpitVersion + " (bash .ci/run does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartMailpit starts mailpit on free loopback ports with extra flags
// and waits until its API answers. A port taken between choosing and
// binding makes mailpit exit; it is then started again on others.
func StartMailpit(t testing.TB, flags ...string) *Mailpit {
	t.Helper()
	bin := mailpitBinary(t)
	var lastErr error
	for range 3 {
		m := &Mailpit{SMTPPort: FreePort(t)}
		httpPort := FreePort(t)
		m.API = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
		args := append([]string{"--smtp", fmt.Sprintf("127.0.0.1:%d", m.SMTPPort), "--listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
			"--database", filepath.Join(t.TempDir(), "mailpit.db"), "--disable-version-check", "--smtp-disable-rdns", "--quiet"}, flags...)
		cmd := exec.Command(bin, args...)
		out, err := os.Create(filepath.Join(t.TempDir(), "mailpit.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start mailpit: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if lastErr = m.waitReady(exited); lastErr == nil {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return m
		}
		cmd.Process.Kill()
		log, _ := os.ReadFile(out.Name())
		lastErr = fmt.Errorf("%w; its log: %s", lastErr, log)
	}
	t.Fatalf("mailpit did not start: %v", lastErr)
	return nil
}

func (m *Mailpit) waitReady(exited <-chan error) error {
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("mailpit exited: %v", err)
		case <-deadline:
			return fmt.Errorf("mailpit's API %s did not answer within 20s", m.API)
		case <-tick.C:
			if resp, err := http.Get(m.API + "/api/v1/info"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
	}
}

// Message is what the API tells of a message.
type Message struct {
	ID      string
	From    struct{ Address string }
	To      []struct{ Address string }
	Subject string
	Text    string
}

// Messages returns the messages received, once there are want of them
// (or fails the test after 10 s).
func (m *Mailpit) Messages(t testing.TB, want int) []Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		var list struct {
			Messages []struct{ ID string }
		}
		m.get(t, "/api/v1/messages", &list)
		if len(list.Messages) >= want {
			out := make([]Message, len(list.Messages))
			for i, l := range list.Messages {
				m.get(t, "/api/v1/message/"+l.ID, &out[i])
			}
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("mailpit holds %d message(s), want %d", len(list.Messages), want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Raw returns a message as the server received it.
func (m *Mailpit) Raw(t testing.TB, id string) string {
	t.Helper()
	resp, err := http.Get(m.API + "/api/v1/message/" + id + "/raw")
	if err != nil {
		t.Fatalf("mailpit API raw: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit API raw: %s %v", resp.Status, err)
	}
	return string(b)
}

// Headers returns a message's headers as the server received them.
func (m *Mailpit) Headers(t testing.TB, id string) map[string][]string {
	t.Helper()
	var h map[string][]string
	m.get(t, "/api/v1/message/"+id+"/headers", &h)
	return h
}

func (m *Mailpit) get(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := http.Get(m.API + path)
	if err != nil {
		t.Fatalf("mailpit API %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit API %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("mailpit API %s: %v", path, err)
	}
}

// SelfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths: the server's pair, and the CA file a target trusts.
func SelfSigned(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailpit test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// Received is one request a receiver got.
type Received struct {
	Path   string
	Header http.Header
	Body   []byte
}

// Receiver is a real HTTP server standing for a chat service or a
// webhook's receiver: it keeps every request and answers with the next
// status of its script (200 once the script is used up). A status of 0
// hangs until the test ends.
type Receiver struct {
	Server *httptest.Server
	mu     sync.Mutex
	got    []Received
	script []int
}

func NewReceiver(t testing.TB, script ...int) *Receiver {
	t.Helper()
	r := &Receiver{script: script}
	release := make(chan struct{})
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, Received{Path: req.URL.RequestURI(), Header: req.Header.Clone(), Body: body})
		status := http.StatusOK
		if len(r.script) > 0 {
			status, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		if status == 0 {
			select {
			case <-release:
			case <-req.Context().Done():
			}
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, "answer of the receiver")
	}))
	t.Cleanup(func() {
		close(release)
		r.Server.Close()
	})
	return r
}

// Requests returns what the receiver got so far.
func (r *Receiver) Requests() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Received(nil), r.got...)
}
