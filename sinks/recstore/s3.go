package recstore

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Options configure an S3 store.
type S3Options struct {
	// Endpoint is the server's URL, https://host[:port] (http:// only
	// where the caller allows it, e.g. a server on loopback).
	Endpoint string
	Region   string // e.g. eu-west-1; empty: asked of the server
	Bucket   string // must exist
	// Prefix goes before every name, e.g. "recordings/"; a slash is
	// added when it has none at its end.
	Prefix string
	// PathStyle addresses the bucket in the path (https://host/bucket/...)
	// instead of the host name (https://bucket.host/...): for most
	// self-hosted servers.
	PathStyle bool
	// AccessKey and SecretKey are the credentials.
	AccessKey, SecretKey string
	// PartSize is the size of one part of a multipart upload, and the
	// memory a Put in parts holds (default 16 MiB, at least 5 MiB as S3
	// wants); up to 10,000 parts. Files go in parts when their size is
	// not known, or above 5 GiB; others are streamed in one PUT.
	PartSize int64
	// Concurrency is how many Puts the caller runs at once (the
	// exporter's EXPORT_CONCURRENCY; default 4): the default transport
	// keeps a connection open for each, and one for a listing.
	Concurrency int
	// Transport carries the requests (default: http.DefaultTransport's
	// settings with Timeout, keeping Concurrency + 1 connections open);
	// for extra CA certificates.
	Transport http.RoundTripper
	// Timeout bounds the wait for the server's answer to a request once
	// sent (the default transport's ResponseHeaderTimeout; default 2
	// minutes), so that a server that stops answering fails the copy,
	// after the client's retries, instead of holding the run for ever.
	// A Transport given brings its own.
	Timeout time.Duration
	// Log gets the warning that the store sends files in parts from now
	// on, and why (default: slog.Default(), so that it is never lost).
	Log *slog.Logger
}

// DefaultTimeout is S3Options.Timeout's default.
const DefaultTimeout = 2 * time.Minute

// minPartSize is the smallest part S3 accepts (but for the last).
const minPartSize = 5 << 20

// maxOnePut is the largest object S3 takes in one PUT: a file of known
// size up to it is streamed in one (putOne), holding no part in memory; a
// part's retry would gain nothing, since a failed copy is fetched again
// from the PBX from its start.
const maxOnePut = 5 << 30

// DefaultPartSize is S3Options.PartSize's default: 16 MiB, so files up to
// 160 GB go in at most 10,000 parts.
const DefaultPartSize = 16 << 20

// shaMeta is the user metadata carrying a stored object's sha256
// (x-amz-meta-sha256): the one the PBX announced, whether the file goes in
// one PUT or in parts; none when it announced none. Metadata is a header,
// sent before the body whose sha256 is known only after it; recording the
// computed one afterwards would take a server-side copy of every object
// (most servers rewrite it whole), and a trailing x-amz-checksum-sha256 a
// second sha256 of every byte on each side, for what only a copy made
// again after a kill or a clash asks (Stat), which then reads the object
// through.
const shaMeta = "Sha256"

// S3 stores recordings as objects in an S3-compatible bucket. A file whose
// size is announced (up to 5 GiB) is streamed in one PUT, framed in
// aws-chunked encoding with a trailing checksum that the server checks
// (putOne): a PUT cut short, or not those bytes, stores nothing. Any
// other file goes in a multipart upload, whose object appears under its
// name only when the upload is completed, and a Put whose stream turns out
// wrong never completes it; an upload cut short is aborted, or, when the
// process was killed, aborted by the next Put of the same name sent in
// parts, or by the Sync of the name once stored. Safe for concurrent use
// with different names; one writer per name.
type S3 struct {
	c        *minio.Client
	bucket   string
	prefix   string
	partSize int64
	onePut   int64 // the largest file streamed in one PUT (maxOnePut; a test's less)
	// noTrailer is set once the server refused a PUT with a trailing
	// checksum (putOne): every later file goes in parts.
	noTrailer atomic.Bool
	listPage  int // keys a page of Present's listing (defaultListPage; a test's fewer)
	log       *slog.Logger
	where     string // the bucket and endpoint, for the warning
}

// OpenS3 connects to the bucket and checks that it exists.
//
// It stays one function (about 60 lines): it checks every option in the
// order a user reads them in the docs, each refusal naming its setting,
// then builds the client; a check method on S3Options is the first cut
// when another option comes.
func OpenS3(ctx context.Context, o S3Options) (*S3, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("S3 endpoint %s: expected https://host[:port] (no path, query or credentials)", redactEndpoint(o.Endpoint, u, err))
	}
	if o.Bucket == "" {
		return nil, errors.New("S3 bucket: not set")
	}
	if o.AccessKey == "" || o.SecretKey == "" {
		return nil, errors.New("S3 credentials: the access key and secret key are both needed")
	}
	prefix := o.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	for _, p := range strings.Split(strings.TrimSuffix(prefix, "/"), "/") {
		if prefix != "" && (p == "" || p == "." || p == "..") {
			return nil, fmt.Errorf("S3 prefix %q: expected names separated by single slashes, none of them . or ..", o.Prefix)
		}
	}
	if strings.ContainsFunc(prefix, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, fmt.Errorf("S3 prefix %q: control characters are not allowed", o.Prefix)
	}
	part := o.PartSize
	if part == 0 {
		part = DefaultPartSize
	}
	if part < minPartSize {
		return nil, fmt.Errorf("S3 part size %d: expected 5 MiB or more", part)
	}
	lookup := minio.BucketLookupDNS
	if o.PathStyle {
		lookup = minio.BucketLookupPath
	}
	n := o.Concurrency
	if n <= 0 {
		n = 4
	}
	tr := o.Transport
	if tr == nil {
		tr = defaultTransport(o.Timeout, n)
	}
	tr = forbidden{next: tr, secrets: []string{o.AccessKey, o.SecretKey}}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure:       u.Scheme == "https",
		Region:       o.Region,
		BucketLookup: lookup,
		Transport:    tr,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 endpoint %s: %w", o.Endpoint, err)
	}
	ok, err := c.BucketExists(ctx, o.Bucket)
	if err != nil {
		return nil, fmt.Errorf("S3 bucket %s at %s: %w", o.Bucket, o.Endpoint, bucketRefused(ctx, c, o.Bucket, err))
	}
	if !ok {
		return nil, fmt.Errorf("S3 bucket %s at %s: no such bucket (create it first)", o.Bucket, o.Endpoint)
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	return &S3{c: c, bucket: o.Bucket, prefix: prefix, partSize: part, onePut: maxOnePut, listPage: defaultListPage,
		log: log, where: fmt.Sprintf("bucket %s at %s", o.Bucket, u.Host)}, nil
}

// bucketRefused is err, BucketExists' error for bucket, with the reason
// a one-key listing of the bucket gives when err is a HEAD's 403 that
// told none (codeNoReason; a HEAD's answer has no body): a wrong secret
// key (SignatureDoesNotMatch), an unknown access key
// (InvalidAccessKeyId), the clock (RequestTimeTooSkewed), the key
// without s3:ListBucket (AccessDenied: ErrDenied), a proxy's page. Else
// err as it is (R45-3: a wrong secret key at start said "no reason").
func bucketRefused(ctx context.Context, c *minio.Client, bucket string, err error) error {
	if minio.ToErrorResponse(err).Code != codeNoReason {
		return err
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lerr error
	ch := c.ListObjects(lctx, bucket, minio.ListObjectsOptions{MaxKeys: 1})
	for o := range ch {
		lerr = o.Err
		break
	}
	cancel()
	for range ch {
		// Read to its end: the listing's goroutine ends only so.
	}
	if minio.ToErrorResponse(lerr).StatusCode == http.StatusForbidden {
		return fmt.Errorf("%w; a listing of it answered: %w", err, denied(lerr, "s3:ListBucket"))
	}
	return err
}

// defaultTransport is http.DefaultTransport's settings with timeout as
// its ResponseHeaderTimeout (DefaultTimeout when 0), resuming TLS
// sessions, keeping a connection for each of the concurrent Puts and one
// for a listing: the default
// keeps 2 a host, so that with 4 copies at once, 2 connections were
// closed after each answer and opened again for the next request, a TLS
// handshake each over https (on a server that keeps connections open).
func defaultTransport(timeout time.Duration, concurrency int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = timeout
	if t.ResponseHeaderTimeout <= 0 {
		t.ResponseHeaderTimeout = DefaultTimeout
	}
	t.MaxIdleConnsPerHost = concurrency + 1
	// TLS sessions resumed: on a server that closes each connection
	// after its answer (versitygw does), each request over https is a
	// handshake, and a resumed one skips the certificate's verification
	// here and its signature there.
	t.TLSClientConfig = &tls.Config{ClientSessionCache: tls.NewLRUClientSessionCache(concurrency + 1)}
	return t
}

// redactEndpoint is a refused endpoint as a message may show it: without
// the password of a user-info part or a query's values (a signature, a
// key), which belong in the secret key and nowhere else.
func redactEndpoint(raw string, u *url.URL, err error) string {
	if err != nil {
		// Unparsed: nothing tells a password from a host name.
		return fmt.Sprintf("(%d bytes, not a URL)", len(raw))
	}
	r := *u
	if r.RawQuery != "" {
		r.RawQuery = "…"
	}
	return fmt.Sprintf("%q", r.Redacted())
}

// Key is the object key a name is stored under: the prefix and the name.
func (s *S3) Key(name string) string { return s.prefix + name }

// Put copies r to name (built by Name), checking it against want: streamed
// in one PUT when want.Size is known and at most 5 GiB (S3's most for one
// PUT), else in a multipart upload holding one part in memory (one part
// for a file of unknown size that turns out to be a part or less). The
// sha256 the PBX announced, if any, is kept as the object's metadata
// (x-amz-meta-sha256). On any error nothing is stored under the name but
// what was there before, and no incomplete upload is left.
// It stays one function (about 60 lines): the single PUT and the
// multipart path share the name check and the one cleanup on error, and
// read as one decision better than split.
func (s *S3) Put(ctx context.Context, name string, r io.Reader, want Want) (Object, error) {
	if err := checkName(name); err != nil {
		return Object{}, err
	}
	if err := checkWant(want); err != nil {
		return Object{}, fmt.Errorf("store %s: %w", name, err)
	}
	key := s.Key(name)
	if want.Size > 0 && want.Size <= s.onePut && !s.noTrailer.Load() {
		return s.putOne(ctx, name, key, r, want)
	}
	// What a killed Put of the same name left: invisible, but kept (and
	// billed) by the server until aborted.
	if err := s.c.RemoveIncompleteUpload(ctx, s.bucket, key); err != nil {
		return Object{}, fmt.Errorf("store %s: abort earlier uploads: %w", name, err)
	}
	opts := minio.PutObjectOptions{
		ContentType: "audio/wav",
		PartSize:    uint64(s.partSize),
		// Parts one at a time: one part's buffer in memory per Put.
		NumThreads: 1,
	}
	if want.SHA256 != "" {
		opts.UserMetadata = map[string]string{shaMeta: want.SHA256}
	}
	// A multipart upload, never an unsigned PUT: a part is read whole (and
	// the stream verified) before it is sent, and the object appears only
	// when the upload is completed, which a wrong stream never reaches.
	// A PUT cut short can leave what it sent under the name on a server
	// that does not check the body's length: versitygw did, over https,
	// where minio-go sends the body unsigned. A file of unknown size goes
	// as a stream of unknown length, which minio-go always sends in parts;
	// so does one of a part or less, where one PUT is not taken.
	size := int64(-1)
	if want.Size > s.partSize {
		size = want.Size
	}
	v := newVerifier(ctxReader{ctx, r}, want)
	// On an error, the client aborts the multipart upload it knows of, on
	// a context that outlives ctx's cancellation; not one the server
	// created while the client gave up waiting for its id (ctx cancelled
	// during the initiation), which only a listing finds.
	info, err := s.c.PutObject(ctx, s.bucket, key, v, size, opts)
	if err != nil {
		err = fmt.Errorf("store %s: %w", name, unwrapVerify(err, v))
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if aerr := s.c.RemoveIncompleteUpload(actx, s.bucket, key); aerr != nil {
			return Object{}, fmt.Errorf("%w; abort its upload: %v", err, aerr)
		}
		return Object{}, err
	}
	if !v.done() {
		return Object{}, fmt.Errorf("store %s: the upload ended before its source", name)
	}
	if info.Size != v.n {
		return Object{}, fmt.Errorf("store %s: the server stored %d bytes of %d", name, info.Size, v.n)
	}
	return Object{Name: name, Size: v.n, SHA256: v.sum()}, nil
}

// putOne streams a file of known size, verifying it on the way, in
// one PUT framed in aws-chunked encoding with a trailing CRC32C
// (x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER, which minio-go
// sends when its payload signing is off and a checksum asked for): the
// server stores the object only when the stream's last chunk and its
// trailer arrived, and their checksum matches. So a PUT cut short (on the
// wire, or by the verifier, which holds the stream's last byte back until
// it proved to be what was announced) stores nothing, as the PUT signed
// with the sha256 of a file read whole first did, without that: the GET and
// the PUT overlap, nothing but minio-go's 64 KiB chunk is held, and the
// file's bytes are hashed once, by the verifier (the CRC32C costs a
// twentieth of a sha256, on either side). The sha256 goes into the
// object's metadata only when the PBX announced it (a header is sent
// before the body); Stat reads a file through otherwise.
func (s *S3) putOne(ctx context.Context, name, key string, r io.Reader, want Want) (Object, error) {
	v := newVerifier(ctxReader{ctx, r}, want)
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	opts := minio.PutObjectOptions{
		ContentType:          "audio/wav",
		DisableContentSha256: true,
		Checksum:             minio.ChecksumCRC32C,
	}
	if want.SHA256 != "" {
		opts.UserMetadata = map[string]string{shaMeta: want.SHA256}
	}
	info, err := (minio.Core{Client: s.c}).PutObject(ctx, s.bucket, key, io.TeeReader(v, crc), want.Size, "", "", opts)
	if err != nil {
		if refusesTrailer(err) && !v.failed() && ctx.Err() == nil {
			s.toParts(fmt.Sprintf("it refused a PUT with a trailing checksum (%v)", err))
			return Object{}, fmt.Errorf("store %s: %w (it answered %v)", name, ErrFetchAgain, err)
		}
		return Object{}, fmt.Errorf("store %s: %w", name, unwrapVerify(err, v))
	}
	if !v.done() {
		return Object{}, fmt.Errorf("store %s: the upload ended before its source", name)
	}
	if err := s.checkOne(ctx, key, info.ChecksumCRC32C, v.n, crc); err != nil {
		// Not the bytes sent: a server (or a proxy) that stored the
		// aws-chunked framing as the body, or ignored the trailer.
		s.toParts(err.Error())
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if rerr := s.c.RemoveObject(actx, s.bucket, key, minio.RemoveObjectOptions{}); rerr != nil {
			return Object{}, fmt.Errorf("store %s: %w (%v; remove it: %v)", name, ErrFetchAgain, err, rerr)
		}
		return Object{}, fmt.Errorf("store %s: %w (%v)", name, ErrFetchAgain, err)
	}
	return Object{Name: name, Size: v.n, SHA256: v.sum()}, nil
}

// checkOne checks that the object a PUT stored is the n bytes sent, of
// CRC32C sent: by the CRC32C the server answered, else (none answered)
// by its size, and its CRC32C if any, as StatObject tells them. The
// server's answer alone does not prove it: minio-go reports the size it
// sent, and one that does not decode aws-chunked stores the framing too.
func (s *S3) checkOne(ctx context.Context, key, answered string, n int64, sent hash.Hash32) error {
	local := base64.StdEncoding.EncodeToString(sent.Sum(nil))
	if answered != "" {
		if answered != local {
			return fmt.Errorf("the server answered CRC32C %s for the object, %s sent", answered, local)
		}
		return nil
	}
	info, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		return fmt.Errorf("stat the object just stored: %w", err)
	}
	if info.Size != n {
		return fmt.Errorf("the server stored %d bytes, %d sent", info.Size, n)
	}
	if info.ChecksumCRC32C != "" && info.ChecksumCRC32C != local {
		return fmt.Errorf("the server stored an object of CRC32C %s, %s sent", info.ChecksumCRC32C, local)
	}
	return nil
}

// toParts makes every later file go in parts, warning once why.
func (s *S3) toParts(why string) {
	if s.noTrailer.CompareAndSwap(false, true) {
		s.log.Warn("S3 store: files go in parts from now on (one PUT with a trailing checksum did not work)", "store", s.where, "why", why)
	}
}

// ErrFetchAgain is a Put that read its stream, or part of it, and stored
// nothing, and would store the file given its stream again from the start:
// the server refused a PUT with a trailing checksum (a server older than
// aws-chunked uploads' trailers), or stored an object that is not the
// bytes sent (one, or a proxy, not decoding aws-chunked or ignoring the
// trailer; the object removed), and the store now sends every file in
// parts, which every S3 server takes.
var ErrFetchAgain = errors.New("the S3 server refused a PUT with a trailing checksum, or stored it wrong: the store sends files in parts from now on; fetch the file again")

// refusesTrailer reports whether err is the server's refusal of a PUT
// framed in aws-chunked with a trailer, which one in parts would not
// meet: a 501 (what such a PUT asks beyond a plain one is its framing, its
// x-amz-content-sha256, Content-Encoding and x-amz-trailer), or a 400 or
// 403 whose S3 error code says a header, the payload's hash or its
// signature was not understood (trailerCodes), or whose message names the
// framing (trailerWords). Any other 400 or 403 (AccessDenied,
// KeyTooLongError, EntityTooLarge, a quota) is about the file, its name
// or the account, which parts would meet too: it fails as it is, and the
// store keeps its one PUT a file.
func refusesTrailer(err error) bool {
	e := minio.ToErrorResponse(err)
	switch e.StatusCode {
	case http.StatusNotImplemented:
		return true
	case http.StatusBadRequest, http.StatusForbidden:
		if e.Code == codeNoReason {
			// A 403 without an S3 error: its message quotes
			// whatever the server sent, which tells nothing here.
			return false
		}
		if trailerCodes[e.Code] {
			return true
		}
		msg := strings.ToLower(e.Message)
		for _, w := range trailerWords {
			if strings.Contains(msg, w) {
				return true
			}
		}
	}
	return false
}

// trailerCodes are the S3 error codes of a server not understanding a PUT
// framed in aws-chunked with a trailer: an argument or header it does not
// take, a payload hash it cannot check (the STREAMING-UNSIGNED-PAYLOAD-
// TRAILER in place of one), a signature computed over it.
var trailerCodes = map[string]bool{
	"InvalidArgument": true, "InvalidRequest": true, "NotImplemented": true, "InvalidHeader": true,
	"XAmzContentSHA256Mismatch": true, "ContentSHA256Mismatch": true, "InvalidDigest": true, "BadDigest": true,
	"SignatureDoesNotMatch": true, "MalformedTrailerError": true, "InvalidEncoding": true, "UnexpectedContent": true,
}

// trailerWords, in an error's message, name what a PUT with a trailer
// sends that a plain one does not.
var trailerWords = []string{"trailer", "aws-chunked", "content-sha256", "streaming-", "content-encoding", "checksum", "chunk"}

// unwrapVerify prefers the stream's own error (a mismatch, a cancelled
// context) to what the client made of it.
func unwrapVerify(err error, v *verifier) error {
	var m *MismatchError
	if v.err != nil && v.err != io.EOF && !errors.As(err, &m) {
		return fmt.Errorf("%w (%v)", v.err, err)
	}
	return err
}

// Stat returns the object stored under name. Its sha256 comes from its
// metadata when a Put recorded it there, else from reading the object
// through. An absent object is an error matching fs.ErrNotExist; a key
// without s3:GetObject, one matching ErrDenied.
func (s *S3) Stat(ctx context.Context, name string) (Object, error) {
	if err := checkName(name); err != nil {
		return Object{}, err
	}
	key := s.Key(name)
	info, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
			return Object{}, fmt.Errorf("stat %s: %w", name, fs.ErrNotExist)
		}
		return Object{}, fmt.Errorf("stat %s: %w", name, s.headRefused(ctx, key, err, "s3:GetObject"))
	}
	if sum := info.UserMetadata[shaMeta]; checkWant(Want{SHA256: sum}) == nil && sum != "" {
		return Object{Name: name, Size: info.Size, SHA256: sum}, nil
	}
	obj, err := s.c.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return Object{}, fmt.Errorf("stat %s: read: %w", name, err)
	}
	defer obj.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, ctxReader{ctx, obj}, make([]byte, copyBufSize))
	if err != nil {
		return Object{}, fmt.Errorf("stat %s: read: %w", name, denied(err, "s3:GetObject"))
	}
	return Object{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// headRefused is err, a HEAD's error for key (StatObject), with the
// permission perm the request needs named when the server refused for
// want of it. A HEAD's answer has no body, so a 403 to it tells no
// reason (codeNoReason: a permission, or the clock off): a GET of the
// object's first byte asks again, and its refusal, when the server gives
// its reason, is the error (AccessDenied: ErrDenied, naming perm;
// RequestTimeTooSkewed: the clock; a proxy's page, shortened). Else err
// is returned as it is, saying it may be either (R40-1).
func (s *S3) headRefused(ctx context.Context, key string, err error, perm string) error {
	if minio.ToErrorResponse(err).Code != codeNoReason {
		return denied(err, perm)
	}
	var o minio.GetObjectOptions
	if o.SetRange(0, 0) != nil {
		return err
	}
	body, _, _, gerr := minio.Core{Client: s.c}.GetObject(ctx, s.bucket, key, o)
	if gerr == nil {
		body.Close()
		return err
	}
	if minio.ToErrorResponse(gerr).StatusCode == http.StatusForbidden {
		return fmt.Errorf("%w; a GET of it answered: %w", err, denied(gerr, perm))
	}
	return err
}

// Stored reports whether name holds an object that is what want announces
// (any object when want is zero), and returns it: an object already
// stored is not copied again.
func (s *S3) Stored(ctx context.Context, name string, want Want) (Object, bool, error) {
	return stored(ctx, s.Stat, name, want)
}

// Present reports, for each of names it can tell, whether an object is
// stored under it: one listing of each folder of the names (a day's), in
// place of a request a name (Stored's HEAD; and, on a server that closes
// every connection after its answer, as versitygw does, a TLS handshake a
// name over https). A folder holding many more objects than names is
// listed only so far (a page of listPage keys for each listPage names, and
// one), its names not seen left out of the map: unknown, for Stored to
// tell. A name found absent is absent when it is put only with one writer
// per name (the exporter's run lock), as Put requires.
func (s *S3) Present(ctx context.Context, names []string) (map[string]bool, error) {
	folders := map[string][]string{}
	for _, name := range names {
		if err := checkName(name); err != nil {
			return nil, err
		}
		dir := path.Dir(name) + "/"
		folders[dir] = append(folders[dir], name)
	}
	out := make(map[string]bool, len(names))
	for dir, in := range folders {
		seen, whole, err := s.list(ctx, dir, (len(in)/s.listPage+1)*s.listPage)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		for _, name := range in {
			if seen[name] || whole {
				out[name] = seen[name]
			}
		}
	}
	return out, nil
}

// list lists the names of the objects under dir (a name's folder), at
// most limit: those seen, and whether the listing ended within limit.
func (s *S3) list(ctx context.Context, dir string, limit int) (seen map[string]bool, whole bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.Key(dir), Recursive: true, MaxKeys: s.listPage})
	seen, whole = map[string]bool{}, true
	for o := range ch {
		if o.Err != nil {
			err = o.Err
			break
		}
		if len(seen) == limit {
			whole = false
			break
		}
		seen[strings.TrimPrefix(o.Key, s.prefix)] = true
	}
	cancel()
	for range ch {
		// Read to its end: the listing's goroutine ends only so.
	}
	return seen, whole, err
}

// defaultListPage is the keys a page of Present's listing asks for: S3's
// most.
const defaultListPage = 1000

// Sync aborts the incomplete multipart uploads of the names, each put or
// found stored before: what a killed Put of the same name left, invisible
// but kept (and billed) by the server, holding recording bytes. A Put
// sent in parts aborts them first itself; one sent in a single PUT does
// not (a listing a file would cost the throughput a batch's one listing
// does not): an upload left by an earlier attempt of the name sent in
// parts (an older version sent every file so; a first attempt of unknown
// size) is aborted here. One listing of the uploads under the names'
// common prefix a call. An object is durable once stored: nothing else to
// do. Safe for concurrent use with other names.
func (s *S3) Sync(ctx context.Context, names []string) error {
	keys := map[string]bool{}
	for _, name := range names {
		if err := checkName(name); err != nil {
			return err
		}
		keys[s.Key(name)] = true
	}
	if len(names) == 0 {
		return nil
	}
	prefix := s.Key(commonPrefix(names))
	type upload struct{ key, id string }
	var left []upload
	var lerr error
	// Read to its end: the listing's goroutine ends only so.
	for u := range s.c.ListIncompleteUploads(ctx, s.bucket, prefix, true) {
		switch {
		case u.Err != nil:
			lerr = u.Err
		case keys[u.Key]:
			left = append(left, upload{u.Key, u.UploadID})
		}
	}
	if lerr != nil {
		return fmt.Errorf("sync: list incomplete uploads under %s: %w", prefix, lerr)
	}
	for _, u := range left {
		err := minio.Core{Client: s.c}.AbortMultipartUpload(ctx, s.bucket, u.key, u.id)
		if err != nil && minio.ToErrorResponse(err).Code != "NoSuchUpload" {
			return fmt.Errorf("sync %s: abort an upload left by an earlier copy: %w", strings.TrimPrefix(u.key, s.prefix), err)
		}
	}
	return nil
}

// commonPrefix is the longest prefix of every name.
func commonPrefix(names []string) string {
	p := names[0]
	for _, k := range names[1:] {
		n := 0
		for n < len(p) && n < len(k) && p[n] == k[n] {
			n++
		}
		p = p[:n]
	}
	return p
}
