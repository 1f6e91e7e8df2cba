package recstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/wildix-export/wildix-export/sinks/recstore/recstoretest"
)

// testPartSize is the smallest part S3 accepts, so multipart uploads
// show with small files.
const testPartSize = 5 << 20

// s3Fixture is an S3 store on a real server (versitygw) of its own, under
// a prefix, with a client to look at the bucket from outside.
func s3Fixture(t *testing.T) (fixture, *recstoretest.Server, S3Options) {
	t.Helper()
	return s3FixtureOn(t, recstoretest.Start(t))
}

// s3FixtureOn is s3Fixture on a server already started (StartTLS).
func s3FixtureOn(t *testing.T, srv *recstoretest.Server) (fixture, *recstoretest.Server, S3Options) {
	t.Helper()
	o := S3Options{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, Prefix: "wildix/recordings", PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: testPartSize}
	if srv.CAFile != "" {
		o.Transport = srv.Transport()
	}
	st, err := OpenS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Client(t)
	leftovers := func(t *testing.T) []string {
		var left []string
		for u := range c.ListIncompleteUploads(context.Background(), srv.Bucket, "", true) {
			if u.Err != nil {
				t.Fatalf("list incomplete uploads: %v", u.Err)
			}
			left = append(left, u.Key)
		}
		return left
	}
	t.Cleanup(func() {
		// Nothing outside the prefix, and no upload left incomplete once
		// every Put returned.
		for obj := range c.ListObjects(context.Background(), srv.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			if obj.Err == nil && !strings.HasPrefix(obj.Key, "wildix/recordings/") {
				t.Errorf("object outside the prefix: %q", obj.Key)
			}
		}
		if left := leftovers(t); len(left) > 0 {
			t.Errorf("incomplete uploads left: %q", left)
		}
	})
	read := func(t *testing.T, name string) ([]byte, error) {
		obj, err := c.GetObject(context.Background(), srv.Bucket, st.Key(name), minio.GetObjectOptions{})
		if err != nil {
			return nil, err
		}
		defer obj.Close()
		b, err := io.ReadAll(obj)
		if minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
			return nil, fs.ErrNotExist
		}
		return b, err
	}
	return fixture{st: st, read: read, partSize: testPartSize, leftovers: leftovers}, srv, o
}

func TestS3Contract(t *testing.T) {
	t.Parallel()
	runContract(t, func(t *testing.T) fixture { f, _, _ := s3Fixture(t); return f })
}

// TestS3ContractOverTLS: the contract over https, as a store is used.
// There minio-go sends a PUT's body unsigned, with only its length, and
// versitygw stored the bytes a PUT cut short had sent: a wrong stream
// (the last byte held back) left all but its last byte under the final
// name, with the announced sha256 as its metadata. The PUT is aws-chunked
// with a trailing checksum now, over http as over https.
func TestS3ContractOverTLS(t *testing.T) {
	t.Parallel()
	runContract(t, func(t *testing.T) fixture { f, _, _ := s3FixtureOn(t, recstoretest.StartTLS(t)); return f })
}

// TestS3OnePutOrParts: a file announced at most the one-PUT limit (5 GiB;
// 6 MiB here) goes in one PUT, whatever the part size; one announced
// larger, or of unknown size, in a multipart upload of parts of PartSize;
// the sha256 announced, and only it, kept as metadata.
func TestS3OnePutOrParts(t *testing.T) {
	t.Parallel()
	srv := recstoretest.Start(t)
	f, _, o := s3FixtureOn(t, srv)
	o.PartSize = 5 << 20
	var uploads atomic.Int64
	o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPost && r.URL.Query().Has("uploads") {
			uploads.Add(1)
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	st, err := OpenS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if st.onePut != 5<<30 {
		t.Fatalf("one PUT up to %d bytes; want S3's 5 GiB", st.onePut)
	}
	// Above a part, by default: one PUT.
	big := testName(t, "above-a-part")
	if _, err := st.Put(context.Background(), big, content(9, 13<<20), Want{Size: 13 << 20}); err != nil || uploads.Load() != 0 {
		t.Fatalf("13 MiB announced, 5 MiB parts: %v, %d multipart uploads; want one PUT", err, uploads.Load())
	}
	st.onePut = 6 << 20
	c := srv.Client(t)
	ctx := context.Background()
	for i, n := range []int64{44, 5<<20 + 1, 6 << 20, 6<<20 + 1, 13 << 20} {
		name := testName(t, fmt.Sprintf("part-%d", i))
		truth := contentSum(t, uint64(i), n)
		for _, w := range []Want{{Size: n, SHA256: truth}, {Size: n}, {}} {
			before := uploads.Load()
			got, err := st.Put(ctx, name, content(uint64(i), n), w)
			if err != nil || got.Size != n || got.SHA256 != truth {
				t.Fatalf("%d bytes announced %+v: Put = %+v, %v", n, w, got, err)
			}
			if b, err := f.read(t, name); err != nil || int64(len(b)) != n || sum(b) != truth {
				t.Fatalf("%d bytes announced %+v: stored %d bytes, %v", n, w, len(b), err)
			}
			one := w.Size > 0 && w.Size <= st.onePut
			if got := uploads.Load() - before; (got == 0) != one {
				t.Errorf("%d bytes announced %+v: %d multipart uploads; want one PUT: %v", n, w, got, one)
			}
			info, err := c.StatObject(ctx, srv.Bucket, st.Key(name), minio.StatObjectOptions{})
			if err != nil || info.UserMetadata[shaMeta] != w.SHA256 {
				t.Errorf("%d bytes announced %+v: metadata %v, %v; want the announced sha256", n, w, info.UserMetadata, err)
			}
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// cutPuts cuts the body of every PUT after 100,000 bytes, as a network
// failing mid-request would, and cancels the copy in cancel once it did,
// so that the client's retries (cut again) end.
type cutPuts struct {
	base   http.RoundTripper
	cancel *atomic.Pointer[context.CancelFunc]
}

func (c cutPuts) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && r.Body != nil {
		r.Body = &cutBody{ReadCloser: r.Body, left: 100_000, cancel: *c.cancel.Load()}
	}
	return c.base.RoundTrip(r)
}

type cutBody struct {
	io.ReadCloser
	left   int
	cancel context.CancelFunc
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		b.cancel()
		return 0, errors.New("network cut")
	}
	n, err := b.ReadCloser.Read(p[:min(len(p), b.left)])
	b.left -= n
	return n, err
}

// TestS3PutCutOnTheWire: a PUT whose body is cut on the way stores
// nothing under the name and keeps what was there, over http and https.
// versitygw keeps what a plain unsigned PUT cut short had sent (over
// https, where minio-go sends a body unsigned by default): the one PUT is
// aws-chunked with a trailing checksum, stored only once its last chunk
// and its trailer arrived.
func TestS3PutCutOnTheWire(t *testing.T) {
	t.Parallel()
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			t.Parallel()
			srv := recstoretest.Start(t)
			var base http.RoundTripper = http.DefaultTransport
			if useTLS {
				srv = recstoretest.StartTLS(t)
				base = srv.Transport()
			}
			f, _, o := s3FixtureOn(t, srv)
			var cancel atomic.Pointer[context.CancelFunc]
			o.Transport = cutPuts{base: base, cancel: &cancel}
			st, err := OpenS3(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			const n = 1_000_000
			good := Want{Size: n, SHA256: contentSum(t, 3, n)}
			kept := testName(t, "kept")
			if _, err := f.st.Put(context.Background(), kept, content(3, n), good); err != nil {
				t.Fatal(err)
			}
			fresh := testName(t, "fresh")
			for _, name := range []string{fresh, kept} {
				ctx, stop := context.WithCancel(context.Background())
				cancel.Store(&stop)
				if _, err := st.Put(ctx, name, content(4, n), Want{Size: n}); err == nil {
					t.Errorf("Put %s cut on the wire succeeded", name)
				} else if ctx.Err() == nil {
					t.Errorf("Put %s failed before it was cut: %v", name, err)
				}
				stop()
			}
			if b, err := f.read(t, fresh); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%d bytes under a name never stored right (%v)", len(b), err)
			}
			if b, err := f.read(t, kept); err != nil || sum(b) != good.SHA256 {
				t.Errorf("the file stored before is %d bytes (%v), not the good one", len(b), err)
			}
		})
	}
}

// cancelOnInitiate cancels a context once the server has answered a
// multipart upload's initiation, and drops the answer: the upload exists
// on the server, and the client never learns its id.
type cancelOnInitiate struct {
	base   http.RoundTripper
	cancel context.CancelFunc
}

func (c cancelOnInitiate) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if r.Method == http.MethodPost && r.URL.Query().Has("uploads") {
		if err == nil {
			resp.Body.Close()
		}
		c.cancel()
		return nil, context.Canceled
	}
	return resp, err
}

// TestS3CancelledWhileInitiating: a Put cancelled while its upload was
// being created leaves no incomplete upload behind, though the client
// never learnt the upload's id to abort it.
func TestS3CancelledWhileInitiating(t *testing.T) {
	t.Parallel()
	f, _, o := s3Fixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	o.Transport = cancelOnInitiate{base: http.DefaultTransport.(*http.Transport).Clone(), cancel: cancel}
	st, err := OpenS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	name := testName(t, "initiating")
	// No size announced: a multipart upload (a file announced at a part or
	// less goes in one PUT).
	if _, err := st.Put(ctx, name, content(1, 1000), Want{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put cancelled while initiating = %v; want context.Canceled", err)
	}
	if left := f.leftovers(t); len(left) > 0 {
		t.Fatalf("incomplete uploads left: %q", left)
	}
	if b, err := f.read(t, name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%d bytes under the name (%v)", len(b), err)
	}
}

// TestS3ServerNotAnswering: a server that takes requests and never
// answers fails the store's calls (after the client's retries) instead of
// holding them for ever: the default transport had no timeout.
func TestS3ServerNotAnswering(t *testing.T) {
	t.Parallel()
	// The kernel completes connections to a listener that never accepts:
	// requests are sent and never answered.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	o := S3Options{Endpoint: "http://" + ln.Addr().String(), Region: "us-east-1", Bucket: "recordings", PathStyle: true,
		AccessKey: "a", SecretKey: "s", Timeout: 20 * time.Millisecond}
	done := make(chan error, 1)
	go func() { _, err := OpenS3(context.Background(), o); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("OpenS3 of a server that never answers succeeds")
		}
		t.Logf("OpenS3: %v", err)
	case <-time.After(5 * time.Minute):
		t.Fatal("OpenS3 of a server that never answers still waits after 5 minutes")
	}
}

// TestS3StatWithoutMetadata: an object stored without the sha256 the PBX
// did not announce (sent in parts, its size unknown) is hashed by reading
// it through.
func TestS3StatWithoutMetadata(t *testing.T) {
	t.Parallel()
	f, srv, o := s3Fixture(t)
	ctx := context.Background()
	name := testName(t, "no-meta")
	if _, err := f.st.Put(ctx, name, content(7, 1000), Want{}); err != nil {
		t.Fatal(err)
	}
	info, err := srv.Client(t).StatObject(ctx, srv.Bucket, o.Prefix+"/"+name, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.UserMetadata[shaMeta] != "" {
		t.Fatalf("metadata %v: a sha256 nobody announced", info.UserMetadata)
	}
	got, err := f.st.Stat(ctx, name)
	if err != nil || got.SHA256 != contentSum(t, 7, 1000) || got.Size != 1000 {
		t.Fatalf("Stat = %+v, %v; want the content's sha256", got, err)
	}
}

func TestOpenS3Refuses(t *testing.T) {
	t.Parallel()
	srv := recstoretest.Start(t)
	good := S3Options{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	for _, c := range []struct {
		name   string
		change func(*S3Options)
		says   string
	}{
		{"no such bucket", func(o *S3Options) { o.Bucket = "nope" }, "no such bucket"},
		{"bad secret", func(o *S3Options) { o.SecretKey = "wrong" }, "S3 bucket recordings"},
		{"endpoint with a path", func(o *S3Options) { o.Endpoint += "/x" }, "expected https://host"},
		{"prefix with ..", func(o *S3Options) { o.Prefix = "a/../b" }, "S3 prefix"},
		{"small part", func(o *S3Options) { o.PartSize = 1 << 20 }, "5 MiB"},
		{"no keys", func(o *S3Options) { o.AccessKey = "" }, "credentials"},
		// A secret pasted into the endpoint is refused without being shown.
		{"endpoint with credentials", func(o *S3Options) { o.Endpoint = "https://key:" + srv.SecretKey + "@127.0.0.1:1" }, "expected https://host"},
		{"endpoint with a signed query", func(o *S3Options) { o.Endpoint += "/?X-Amz-Signature=" + srv.SecretKey }, "expected https://host"},
		{"endpoint not a URL", func(o *S3Options) { o.Endpoint = "https://key:" + srv.SecretKey + "@[::1" }, "expected https://host"},
	} {
		o := good
		c.change(&o)
		_, err := OpenS3(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: OpenS3 = %v; want an error saying %q", c.name, err, c.says)
		}
		if err != nil && strings.Contains(err.Error(), srv.SecretKey) {
			t.Errorf("%s: the error shows the secret: %v", c.name, err)
		}
	}
}

// TestS3KilledMidCopy: a process killed mid-copy, at seeded random bytes
// while its source is read, leaves nothing under the final name, the
// file streamed in one PUT (its size announced) or in parts (not): the
// next Put completes it (and, in parts, aborts the incomplete upload left
// behind). Killed mid-body of its one PUT, through a relay that shows the
// server's handling of it ended: TestS3KilledMidPut.
func TestS3KilledMidCopy(t *testing.T) {
	t.Parallel()
	for _, parts := range []bool{false, true} {
		t.Run(fmt.Sprintf("parts=%v", parts), func(t *testing.T) {
			t.Parallel()
			f, _, o := s3Fixture(t)
			testKilledMidCopy(t, f, func(name string) childJob {
				return childJob{S3: &o, Name: name, Size: 3*testPartSize + 1000, Unannounced: parts}
			}, 10)
		})
	}
}

// TestS3KilledInPartsThenOnePut: a copy sent in parts killed mid-way (a
// file of unknown size; an older version sent every file in parts), then
// completed in one PUT, which does not look for uploads: the Sync of the
// name, once a batch, aborts the upload the killed copy left (recording
// bytes, kept by the server and invisible in listings), and only that
// one: another name's upload in progress is kept.
func TestS3KilledInPartsThenOnePut(t *testing.T) {
	t.Parallel()
	f, srv, o := s3Fixture(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	ctx := context.Background()
	const n = 100_000
	name, other := testName(t, "left"), testName(t, "other")
	j := childJob{S3: &o, Name: name, Seed: seed, Size: n, Unannounced: true}
	j.StopAt = 1 + rand.New(rand.NewPCG(seed, 3)).Int64N(n-1)
	cmd, out := startChild(t, j)
	waitLine(t, out, "ready", 2*time.Minute)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	core := minio.Core{Client: srv.Client(t)}
	otherID, err := core.NewMultipartUpload(ctx, srv.Bucket, f.st.(*S3).Key(other), minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if left := f.leftovers(t); !slices.Contains(left, f.st.(*S3).Key(name)) {
		t.Fatalf("the killed copy in parts left no upload (%q): the test shows nothing", left)
	}
	want := Want{Size: n, SHA256: contentSum(t, seed, n)}
	if _, err := f.st.Put(ctx, name, content(seed, n), want); err != nil {
		t.Fatal(err)
	}
	// A batch of two days: one listing under their common prefix.
	later, err := Name("pbx-test", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), "later")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Put(ctx, later, content(seed+1, 44), Want{Size: 44}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Sync(ctx, []string{later, name}); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if left := f.leftovers(t); !slices.Equal(left, []string{f.st.(*S3).Key(other)}) {
		t.Errorf("incomplete uploads after the Sync: %q; want only the other name's", left)
	}
	if b, err := f.read(t, name); err != nil || sum(b) != want.SHA256 {
		t.Errorf("after the completing copy: %d bytes, %v", len(b), err)
	}
	if err := core.AbortMultipartUpload(ctx, srv.Bucket, f.st.(*S3).Key(other), otherID); err != nil {
		t.Fatal(err)
	}
}

// relay is a TCP relay on loopback in front of a server, for a client
// process killed mid-request: once the client is dead, drained returns
// when the server has closed every connection the client had made, so
// its handling of the request cut short has ended, and whatever it made
// of it is stored.
type relay struct {
	ln       net.Listener
	accepted chan struct{} // closed when the accept loop ended
	conns    sync.WaitGroup
}

// startRelay relays connections to endpoint's host; it returns the
// endpoint to give the client.
func startRelay(t *testing.T, endpoint string) (*relay, string) {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, accepted: make(chan struct{})}
	target := u.Host
	go func() {
		defer close(r.accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.conns.Add(2)
			go func() {
				defer r.conns.Done()
				io.Copy(srv, c) // until the client closes (killed: by its kernel)
				srv.(*net.TCPConn).CloseWrite()
			}()
			go func() {
				defer r.conns.Done()
				io.Copy(c, srv)
				io.Copy(io.Discard, srv) // the client gone: until the server closes
				srv.Close()
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	u.Host = ln.Addr().String()
	return r, u.String()
}

// drained stops accepting and waits, up to limit, for the server to close
// every connection relayed.
func (r *relay) drained(t *testing.T, limit time.Duration) {
	t.Helper()
	r.ln.Close()
	<-r.accepted
	done := make(chan struct{})
	go func() { r.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("the server kept a connection of the killed client open for %s", limit)
	}
}

// TestS3KilledMidPut: a process killed mid-body of its one PUT (a file of
// known size) leaves nothing under a fresh name, and the file
// stored before under a stored one, over http and https; the next copy
// completes the fresh name. A plain unsigned PUT (minio-go's default over
// https), not aws-chunked, versitygw stored the 300,000 bytes sent.
// The server's handling of the cut request is waited for (it closed the
// child's connections, seen through a relay), not guessed.
func TestS3KilledMidPut(t *testing.T) {
	t.Parallel()
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			t.Parallel()
			srv := recstoretest.Start(t)
			if useTLS {
				srv = recstoretest.StartTLS(t)
			}
			f, _, o := s3FixtureOn(t, srv)
			seed := rand.Uint64()
			t.Logf("seed %d", seed)
			const n = 1_000_000
			kept := testName(t, "kept")
			good := Want{Size: n, SHA256: contentSum(t, seed, n)}
			if _, err := f.st.Put(context.Background(), kept, content(seed, n), good); err != nil {
				t.Fatal(err)
			}
			fresh := testName(t, "fresh")
			for i, name := range []string{fresh, kept} {
				rl, endpoint := startRelay(t, o.Endpoint)
				co := o
				co.Endpoint, co.Transport = endpoint, nil
				j := childJob{S3: &co, CAFile: srv.CAFile, Name: name, Seed: seed + 1 + uint64(i), Size: n,
					HoldPutAt: 1 + rand.New(rand.NewPCG(seed, uint64(i))).IntN(n-1)}
				cmd, out := startChild(t, j)
				waitLine(t, out, "ready", 2*time.Minute)
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				cmd.Wait()
				rl.drained(t, time.Minute)
				t.Logf("%s: killed after %d bytes of its PUT", name, j.HoldPutAt)
			}
			if b, err := f.read(t, fresh); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("fresh: %d bytes under a name never stored whole (%v)", len(b), err)
			}
			if b, err := f.read(t, kept); err != nil || sum(b) != good.SHA256 {
				t.Errorf("kept: %d bytes (%v), not the file stored before", len(b), err)
			}
			want := Want{Size: n, SHA256: contentSum(t, seed+1, n)}
			if _, err := f.st.Put(context.Background(), fresh, content(seed+1, n), want); err != nil {
				t.Fatalf("the copy after the kill: %v", err)
			}
			if b, err := f.read(t, fresh); err != nil || sum(b) != want.SHA256 {
				t.Errorf("fresh after the completing copy: %d bytes, %v", len(b), err)
			}
		})
	}
}

// TestS3OnePutStreams: a file sent in one PUT is streamed, not read whole
// first: its PUT has sent a megabyte of the file to the server before the
// source gives the second half (the source waits for it: a Put that
// reads the file whole before sending it never gets there), over http and
// https.
func TestS3OnePutStreams(t *testing.T) {
	t.Parallel()
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			t.Parallel()
			srv := recstoretest.Start(t)
			var base http.RoundTripper = http.DefaultTransport
			if useTLS {
				srv = recstoretest.StartTLS(t)
				base = srv.Transport()
			}
			f, _, o := s3FixtureOn(t, srv)
			sent := make(chan struct{})
			var once sync.Once
			o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.Method == http.MethodPut && r.Body != nil {
					r.Body = &countBody{ReadCloser: r.Body, at: 1 << 20, reached: func() { once.Do(func() { close(sent) }) }}
				}
				return base.RoundTrip(r)
			})
			st, err := OpenS3(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			const n = 4 << 20
			name := testName(t, "streamed")
			src := io.MultiReader(io.LimitReader(content(7, n), n/2), &waitReader{wait: sent, then: func() io.Reader {
				r := content(7, n)
				io.CopyN(io.Discard, r, n/2)
				return r
			}})
			want := Want{Size: n, SHA256: contentSum(t, 7, n)}
			if got, err := st.Put(context.Background(), name, src, want); err != nil || got.SHA256 != want.SHA256 {
				t.Fatalf("Put = %+v, %v", got, err)
			}
			if b, err := f.read(t, name); err != nil || sum(b) != want.SHA256 {
				t.Errorf("stored %d bytes, %v; want the file", len(b), err)
			}
		})
	}
}

// countBody calls reached once at bytes of the body read.
type countBody struct {
	io.ReadCloser
	n, at   int64
	reached func()
}

func (b *countBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.n += int64(n); b.n >= b.at {
		b.reached()
	}
	return n, err
}

// waitReader reads from then() once wait is closed; it fails after a
// minute without.
type waitReader struct {
	wait <-chan struct{}
	then func() io.Reader
	r    io.Reader
}

func (w *waitReader) Read(p []byte) (int, error) {
	if w.r == nil {
		select {
		case <-w.wait:
		case <-time.After(time.Minute):
			return 0, errors.New("the PUT sent nothing of the file's first half: the file is read whole before it is sent")
		}
		w.r = w.then()
	}
	return w.r.Read(p)
}

// TestS3OnePutAllocates: 4 files of 5 MiB sent in one PUT, 2 at once,
// allocate less than one of them: nothing holds a file whole (a buffer a
// file was read into, or a part's kept for the next: 11 MB). A PUT's own
// allocations, minio-go's chunk and framing buffers, are about 350 KB (600
// KB under the race detector). Not parallel: it counts the bytes the
// process allocates.
func TestS3OnePutAllocates(t *testing.T) {
	f, _, o := s3Fixture(t)
	o.Concurrency = 2
	st, err := OpenS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	const n, files, size = 2, 4, testPartSize
	var names []string
	for i := range files {
		names = append(names, testName(t, fmt.Sprintf("buf-%d", i)))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	errs := make(chan error, files)
	for g := range n {
		go func() {
			for i := g; i < files; i += n {
				want := Want{Size: size - int64(i)} // known: one PUT
				_, err := st.Put(context.Background(), names[i], content(seed+uint64(i), want.Size), want)
				errs <- err
			}
		}()
	}
	for range files {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d files of %d bytes, %d at once: %d bytes allocated", files, size, n, alloc)
	if alloc >= size {
		t.Errorf("%d files of %d bytes, %d at once, allocated %d bytes; want under %d (no file held whole)", files, size, n, alloc, size)
	}
	for i, name := range names {
		if b, err := f.read(t, name); err != nil || sum(b) != contentSum(t, seed+uint64(i), size-int64(i)) {
			t.Errorf("%s: %d bytes stored, %v; want the file", name, len(b), err)
		}
	}
}

// TestS3PeakMemory: 500 MB uploaded (in 16 MiB parts, the default) with a
// peak resident memory under 100 MiB, measured in a child process
// (skipped with -short).
func TestS3PeakMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("copies 500 MB")
	}
	t.Parallel()
	f, _, o := s3Fixture(t)
	o.PartSize = 0
	testPeakMemory(t, f, childJob{S3: &o, Name: testName(t, "big"), Size: 500e6}, 100<<10)
}

// TestS3OverTLS: an https endpoint with a certificate the transport
// trusts works; one it does not trust is refused.
func TestS3OverTLS(t *testing.T) {
	t.Parallel()
	srv := recstoretest.StartTLS(t)
	o := S3Options{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Transport: srv.Transport()}
	st, err := OpenS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	name := testName(t, "tls")
	want := Want{Size: 5000, SHA256: contentSum(t, 11, 5000)}
	if _, err := st.Put(context.Background(), name, content(11, 5000), want); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.Stored(context.Background(), name, want); !ok || err != nil {
		t.Fatalf("Stored = %v, %v", ok, err)
	}
	o.Transport = nil
	if _, err := OpenS3(context.Background(), o); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("OpenS3 without the certificate trusted = %v; want a certificate error", err)
	}
}

// TestS3Present: Present tells, by listing each folder of the names once,
// which names hold an object (those stored, in two days' folders) and
// which do not; in a folder holding more objects than a listing of its
// names' share reads (pages of 3 keys here), the names it did not reach
// are left unknown, never said absent.
func TestS3Present(t *testing.T) {
	t.Parallel()
	_, _, o := s3Fixture(t)
	st, err := OpenS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	st.listPage = 3
	ctx := context.Background()
	day := func(d int, id string) string {
		n, err := Name("pbx-test", time.Date(2026, 5, d, 10, 0, 0, 0, time.UTC), id)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	put := func(name string) {
		if _, err := st.Put(ctx, name, content(7, 100), Want{Size: 100}); err != nil {
			t.Fatal(err)
		}
	}
	// Day 4: a1, a2 stored, a3 not. Day 5: b1 stored.
	for _, n := range []string{day(4, "a1"), day(4, "a2"), day(5, "b1")} {
		put(n)
	}
	got, err := st.Present(ctx, []string{day(4, "a1"), day(4, "a3"), day(5, "b1"), day(5, "b2"), day(6, "c1")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{day(4, "a1"): true, day(4, "a3"): false, day(5, "b1"): true, day(5, "b2"): false, day(6, "c1"): false}
	if !maps.Equal(got, want) {
		t.Errorf("Present = %v; want %v", got, want)
	}
	// Day 7 holds 8 objects; one name asked reads one page of 3 and a
	// key beyond: the names not seen are unknown.
	for i := range 8 {
		put(day(7, fmt.Sprintf("d%d", i)))
	}
	names := []string{day(7, "d0"), day(7, "d7"), day(7, "zz")}
	got, err = st.Present(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) >= len(names) || !got[day(7, "d0")] {
		t.Errorf("Present in a folder larger than its listing = %v; want d0 present and the names not reached left out", got)
	}
	for n, ok := range got {
		if !ok {
			t.Errorf("Present said %s absent, in a folder not listed whole", n)
		}
	}
}

// TestS3KeepsAConnectionAPut: with the default transport, Concurrency
// Puts at once, round after round, reuse their connections: at most
// Concurrency + 1 are opened, where http.DefaultTransport's two kept a
// host closed the others after each answer (a TLS handshake a request
// over https). versitygw closes every connection itself, so the store
// talks to it through a reverse proxy in the test's process, which keeps
// the store's connections open and counts them.
func TestS3KeepsAConnectionAPut(t *testing.T) {
	t.Parallel()
	srv := recstoretest.Start(t)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var opened atomic.Int64
	proxy := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	proxy.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	proxy.Start()
	t.Cleanup(proxy.Close)
	const conc, rounds = 4, 5
	st, err := OpenS3(context.Background(), S3Options{Endpoint: proxy.URL, Region: srv.Region, Bucket: srv.Bucket, PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Concurrency: conc})
	if err != nil {
		t.Fatal(err)
	}
	for r := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, conc)
		for g := range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := testName(t, fmt.Sprintf("conn-%d-%d", r, g))
				if _, _, err := st.Stored(context.Background(), name, Want{}); err != nil {
					errs <- err
					return
				}
				_, err := st.Put(context.Background(), name, content(uint64(g), 1000), Want{Size: 1000})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := opened.Load(); n > conc+1 {
		t.Errorf("%d rounds of %d Puts (a HEAD and a PUT each) opened %d connections; want at most %d", rounds, conc, n, conc+1)
	}
}

// TestS3ResumesTLSSessions: with the default transport's settings, over
// https to a server that closes each connection after its answer (as
// versitygw does), the requests after the first resume its TLS session
// instead of a full handshake each.
func TestS3ResumesTLSSessions(t *testing.T) {
	t.Parallel()
	srv := recstoretest.Start(t)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var requests, resumed atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.TLS.DidResume {
			resumed.Add(1)
		}
		w.Header().Set("Connection", "close")
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	tr := defaultTransport(0, 4)
	tr.TLSClientConfig.RootCAs = proxy.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	st, err := OpenS3(context.Background(), S3Options{Endpoint: proxy.URL, Region: srv.Region, Bucket: srv.Bucket, PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := st.Put(context.Background(), testName(t, fmt.Sprintf("tls-%d", i)), content(uint64(i), 1000), Want{Size: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	if n, r := requests.Load(), resumed.Load(); r < n-1 {
		t.Errorf("%d requests, each on a connection of its own: %d resumed a TLS session; want all but the first", n, r)
	}
}

// refuseTrailers answers 400 InvalidArgument, as a server that does not
// take aws-chunked uploads' trailers would, to every PUT with a trailing
// checksum, counting them; other requests go to base.
type refuseTrailers struct {
	base    http.RoundTripper
	refused *atomic.Int64
}

func (rt refuseTrailers) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPut || r.Header.Get("X-Amz-Trailer") == "" {
		return rt.base.RoundTrip(r)
	}
	rt.refused.Add(1)
	if r.Body != nil {
		r.Body.Close()
	}
	body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidArgument</Code><Message>x-amz-trailer is not supported</Message></Error>`
	return &http.Response{StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: r}, nil
}

// TestS3RefusedTrailerFallsBackToParts: a server that refuses PUTs with a
// trailing checksum gets one such PUT: it fails with ErrFetchAgain,
// storing nothing, and the store sends every later file in parts (the
// same file, fetched again, is stored right).
func TestS3RefusedTrailerFallsBackToParts(t *testing.T) {
	t.Parallel()
	f, _, o := s3Fixture(t)
	var refused, uploads atomic.Int64
	o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPost && r.URL.Query().Has("uploads") {
			uploads.Add(1)
		}
		return refuseTrailers{base: http.DefaultTransport, refused: &refused}.RoundTrip(r)
	})
	st, err := OpenS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 200_000
	want := Want{Size: n, SHA256: contentSum(t, 5, n)}
	name := testName(t, "refused")
	if _, err := st.Put(ctx, name, content(5, n), want); !errors.Is(err, ErrFetchAgain) {
		t.Fatalf("Put to a server refusing trailers = %v; want ErrFetchAgain", err)
	}
	if b, err := f.read(t, name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%d bytes stored by the refused PUT (%v)", len(b), err)
	}
	for i, nm := range []string{name, testName(t, "after")} {
		if got, err := st.Put(ctx, nm, content(5, n), want); err != nil || got.SHA256 != want.SHA256 {
			t.Fatalf("Put %d after the refusal = %+v, %v", i, got, err)
		}
		if b, err := f.read(t, nm); err != nil || sum(b) != want.SHA256 {
			t.Errorf("%s: %d bytes stored, %v; want the file", nm, len(b), err)
		}
	}
	if r, u := refused.Load(), uploads.Load(); r != 1 || u != 2 {
		t.Errorf("%d PUTs with a trailer refused, %d uploads in parts; want 1 and 2", r, u)
	}
}

// TestS3OtherRefusalKeepsOnePut: a PUT with a trailing checksum that the
// real server refuses for another reason than the trailer (versitygw's
// 400 KeyTooLongError for a prefix of a folder name longer than its file
// system takes) fails as it is, naming the server's answer, and is not
// taken for a refused trailer: no ErrFetchAgain (the file fetched again
// for nothing), and the store keeps its one PUT a file.
func TestS3OtherRefusalKeepsOnePut(t *testing.T) {
	t.Parallel()
	_, _, o := s3Fixture(t)
	o.Prefix = strings.Repeat("r", 300)
	st, err := OpenS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Put(context.Background(), testName(t, "long"), content(7, 1000), Want{Size: 1000})
	if err == nil {
		t.Fatal("Put under a folder name of 300 bytes succeeded; the test needs the server to refuse it")
	}
	if errors.Is(err, ErrFetchAgain) || st.noTrailer.Load() {
		t.Errorf("Put = %v, and files in parts from now on: %v; want the refusal as it is, one PUT a file kept", err, st.noTrailer.Load())
	}
	if !strings.Contains(err.Error(), "too long") {
		t.Errorf("Put = %v; want the server's answer (key too long)", err)
	}
}

// TestRefusesTrailer: which refusals of a PUT with a trailing checksum are
// taken for the trailer's (then the store sends files in parts) by status,
// S3 error code and message.
func TestRefusesTrailer(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status      int
		code, msg   string
		refusesThat bool
	}{
		{400, "InvalidArgument", "x-amz-trailer is not supported", true},
		{400, "InvalidRequest", "", true},
		{400, "XAmzContentSHA256Mismatch", "", true},
		{403, "SignatureDoesNotMatch", "The request signature we calculated does not match", true},
		{501, "NotImplemented", "A header you provided implies functionality that is not implemented", true},
		{501, "", "", true},
		{400, "UnknownCode", "STREAMING-UNSIGNED-PAYLOAD-TRAILER is not supported", true},
		{400, "UnknownCode", "unsupported Content-Encoding aws-chunked", true},
		{400, "KeyTooLongError", "Your key is too long.", false},
		{400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.", false},
		{403, "AccessDenied", "Access Denied.", false},
		{403, "QuotaExceeded", "", false},
		{404, "NoSuchBucket", "The specified bucket does not exist", false},
		{500, "InternalError", "checksum", false},
	} {
		err := minio.ErrorResponse{StatusCode: c.status, Code: c.code, Message: c.msg}
		if got := refusesTrailer(err); got != c.refusesThat {
			t.Errorf("%d %s %q: taken for a refused trailer %v, want %v", c.status, c.code, c.msg, got, c.refusesThat)
		}
	}
	if refusesTrailer(errors.New("connection reset")) {
		t.Error("a transport error was taken for a refused trailer")
	}
}

// misstore stands for a server, or a proxy in front of one, that takes a
// PUT with a trailing checksum and stores something else: it reads the
// PUT's body and stores store(body) as a plain object on the real server
// (versitygw, through c), answering 200 with the CRC32C of what it stored
// when answer is set (none otherwise); other requests go to base.
type misstore struct {
	base   http.RoundTripper
	c      *minio.Client
	bucket string
	store  func(framed []byte) []byte
	answer bool
	count  *atomic.Int64
}

func (m misstore) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPut || r.Header.Get("X-Amz-Trailer") == "" {
		return m.base.RoundTrip(r)
	}
	m.count.Add(1)
	framed, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	b := m.store(framed)
	key := strings.TrimPrefix(r.URL.Path, "/"+m.bucket+"/")
	if _, err := m.c.PutObject(r.Context(), m.bucket, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		return nil, err
	}
	h := http.Header{"Etag": {`"0123456789abcdef0123456789abcdef"`}}
	if m.answer {
		c := crc32.New(crc32.MakeTable(crc32.Castagnoli))
		c.Write(b)
		h.Set("X-Amz-Checksum-Crc32c", base64.StdEncoding.EncodeToString(c.Sum(nil)))
	}
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Request: r}, nil
}

// unchunk decodes an unsigned aws-chunked body, dropping its trailer.
func unchunk(t *testing.T, framed []byte) []byte {
	var out []byte
	br := bufio.NewReader(bytes.NewReader(framed))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Errorf("aws-chunked: %v", err)
			return out
		}
		n, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(line, ";", 2)[0]), 16, 64)
		if err != nil {
			t.Errorf("aws-chunked size %q: %v", line, err)
			return out
		}
		if n == 0 {
			return out
		}
		chunk := make([]byte, n+2)
		if _, err := io.ReadFull(br, chunk); err != nil {
			t.Errorf("aws-chunked chunk: %v", err)
			return out
		}
		out = append(out, chunk[:n]...)
	}
}

// TestS3WrongObjectFallsBackToParts: a server (or proxy) that answers a
// PUT with a trailing checksum by 200 but stores the aws-chunked framing
// as the body, or a body cut short (the trailer ignored), is caught after
// the PUT, by the CRC32C it answers or, answering none, by a Stat: the
// object is removed, Put returns ErrFetchAgain, and the file fetched again
// goes in parts, stored right, as does every later file.
func TestS3WrongObjectFallsBackToParts(t *testing.T) {
	t.Parallel()
	const n = 200_000
	cases := []struct {
		name   string
		store  func(t *testing.T, framed []byte) []byte
		answer bool
	}{
		{"framing stored", func(t *testing.T, framed []byte) []byte { return framed }, false},
		{"cut, no checksum answered", func(t *testing.T, framed []byte) []byte { return unchunk(t, framed)[:n-1000] }, false},
		{"cut, its checksum answered", func(t *testing.T, framed []byte) []byte { return unchunk(t, framed)[:n-1000] }, true},
		{"one byte changed, its checksum answered", func(t *testing.T, framed []byte) []byte {
			b := unchunk(t, framed)
			b[n/2] ^= 1
			return b
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, srv, o := s3Fixture(t)
			var missed, uploads atomic.Int64
			ms := misstore{base: http.DefaultTransport, c: srv.Client(t), bucket: srv.Bucket, answer: tc.answer, count: &missed,
				store: func(framed []byte) []byte { return tc.store(t, framed) }}
			o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.Method == http.MethodPost && r.URL.Query().Has("uploads") {
					uploads.Add(1)
				}
				return ms.RoundTrip(r)
			})
			var logged bytes.Buffer
			o.Log = slog.New(slog.NewTextHandler(&logged, nil))
			st, err := OpenS3(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			want := Want{Size: n, SHA256: contentSum(t, 6, n)}
			name := testName(t, "misstored")
			if got, err := st.Put(ctx, name, content(6, n), want); !errors.Is(err, ErrFetchAgain) {
				t.Fatalf("Put to a server storing it wrong = %+v, %v; want ErrFetchAgain", got, err)
			}
			if b, err := f.read(t, name); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%d bytes left under the name by the wrong PUT (%v)", len(b), err)
			}
			for i, nm := range []string{name, testName(t, "after")} {
				got, err := st.Put(ctx, nm, content(6, n), want)
				if err != nil || got.SHA256 != want.SHA256 || got.Size != n {
					t.Fatalf("Put %d after the wrong PUT = %+v, %v", i, got, err)
				}
				if b, err := f.read(t, nm); err != nil || sum(b) != want.SHA256 {
					t.Errorf("%s: %d bytes stored, %v; want the file", nm, len(b), err)
				}
			}
			if m, u := missed.Load(), uploads.Load(); m != 1 || u != 2 {
				t.Errorf("%d PUTs stored wrong, %d uploads in parts; want 1 and 2", m, u)
			}
			if w := strings.Count(logged.String(), "level=WARN"); w != 1 || !strings.Contains(logged.String(), "bucket "+srv.Bucket) {
				t.Errorf("logged %q; want one warning naming the bucket", logged.String())
			}
		})
	}
}

// TestS3OnePutVerified: versitygw answers a PUT with a trailing checksum
// with the object's CRC32C, so the store verifies the object without
// asking the server anything more (a server answering none costs a HEAD
// a file): the file is stored in one PUT.
func TestS3OnePutVerified(t *testing.T) {
	t.Parallel()
	f, _, o := s3Fixture(t)
	var heads atomic.Int64
	var answered atomic.Value
	o.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "verified") {
			heads.Add(1)
		}
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil && r.Method == http.MethodPut && r.Header.Get("X-Amz-Trailer") != "" {
			answered.Store(resp.Header.Get("X-Amz-Checksum-Crc32c"))
		}
		return resp, err
	})
	st, err := OpenS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300_000
	want := Want{Size: n, SHA256: contentSum(t, 7, n)}
	name := testName(t, "verified")
	if got, err := st.Put(context.Background(), name, content(7, n), want); err != nil || got.SHA256 != want.SHA256 {
		t.Fatalf("Put = %+v, %v", got, err)
	}
	if b, err := f.read(t, name); err != nil || sum(b) != want.SHA256 {
		t.Errorf("%d bytes stored, %v; want the file", len(b), err)
	}
	if a, h := answered.Load(), heads.Load(); a == nil || a == "" || h != 0 {
		t.Errorf("versitygw answered the PUT with CRC32C %q, and %d HEADs of the object followed; want a CRC32C and none", a, h)
	}
}
