package recstore

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/minio/minio-go/v7"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// ErrNotRegular is the folder store's error for a name under which is
// something else than a regular file or nothing (a folder, a device): the
// store never writes one, and neither reads nor removes it. (A symbolic
// link is safefile.ErrSymlink.)
var ErrNotRegular = errors.New("is not a regular file")

// Planted reports whether err, a store's error for one name (or a day
// folder's), is that name's own, met again by every later run: what is
// under it is not a file the store wrote (a symbolic link, a folder:
// planted; ErrNotRegular, safefile.ErrSymlink, ENOTDIR, EISDIR, ELOOP),
// or a folder of its path leads outside the store's folder (os.Root's
// "path escapes from parent", matched by its value: rootEscapes). Any
// other error is the store's (down, unreachable, not writable, refusing
// a permission), which is not one name's.
func Planted(err error) bool {
	if err == nil {
		return false
	}
	if esc := rootEscapes(); esc != nil && errors.Is(err, esc) {
		return true
	}
	return errors.Is(err, ErrNotRegular) || errors.Is(err, safefile.ErrSymlink) ||
		errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ELOOP)
}

// rootEscapes is the error value os.Root gives a path that leads outside
// it, which the os package does not export: taken once from a path that
// escapes lexically ("..", refused before any file is looked at), so that
// Planted matches it by value, not by its text. Nil if os.Root ever stops
// refusing so (TestPlanted fails then).
var rootEscapes = sync.OnceValue(func() error {
	r, err := os.OpenRoot(os.TempDir())
	if err != nil {
		return nil
	}
	defer r.Close()
	_, err = r.Lstat("..")
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return nil
})

// ErrDenied marks the S3 server refusing a request for want of a
// permission of the store's key (403 and the S3 error code AccessDenied
// in the server's answer): configuration, not a server busy or down,
// which the next run meets again until the key is given the permission
// the error names; the command exits 2 wherever it meets it (run,
// forget, retention; attack9 F3). A 403 whose reason the server did not
// say (a proxy's page, a HEAD's empty answer) is not it (R40-1): see
// forbidden.
var ErrDenied = errors.New("refused for want of a permission")

// denied wraps err, a request's error, with ErrDenied and the permission
// perm the request needs when the server answered AccessDenied, saying
// what to set; any other error it returns as it is. Only an S3 error the
// server sent has that code: a 403 that is not one is given another by
// forbidden (the client would take it for AccessDenied).
func denied(err error, perm string) error {
	if err == nil || minio.ToErrorResponse(err).Code != "AccessDenied" {
		return err
	}
	return fmt.Errorf("%w: %w: give the key of EXPORT_RECORDINGS_S3_ACCESS_KEY %s on the bucket (docs/sinks.md, Recordings)", err, ErrDenied, perm)
}

// codeNoReason is the S3 error code forbidden gives a 403 answer that is
// not an S3 error document.
const codeNoReason = "Forbidden, not an S3 error"

// forbidden is the S3 store's transport (around the one it is given):
// a 403 answer whose body is not an S3 error document (<Error> with a
// <Code>) gets one of code codeNoReason, whose message names the status
// and what the server sent, shortened and without credentials. The
// client (minio-go) takes any 403 it cannot parse for AccessDenied, so
// that a proxy's HTML page, or a HEAD refused (a HEAD's answer has no
// body: a permission, or this machine's clock off from the server's),
// was reported as the key wanting a permission, exit 2 and the advice
// to give it one (R40-1). secrets (the keys) are cut out of what is
// shown. Some 403s it leaves as they are (passForbidden).
type forbidden struct {
	next    http.RoundTripper
	secrets []string
}

// maxErrBody is as much of a 403's body as forbidden reads: an S3 error
// document is far shorter; a longer answer is not one.
const maxErrBody = 64 << 10

func (f forbidden) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := f.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusForbidden || passForbidden(r, resp) {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrBody+1))
	resp.Body.Close()
	if rerr == nil && len(body) <= maxErrBody && isS3Error(body) {
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	}
	var why string
	switch {
	case rerr != nil:
		why = fmt.Sprintf("403 Forbidden, its answer cut short (%v): no reason read", rerr)
	case r.Method == http.MethodHead:
		why = "403 Forbidden to a HEAD request, whose answer tells no reason: the keys may be wrong (a wrong secret key: SignatureDoesNotMatch), the key lack a permission, or this machine's clock be off from the server's (RequestTimeTooSkewed)"
	case len(body) == 0:
		why = "403 Forbidden without a body, no S3 error: a proxy or gateway in the way, the key lacking a permission, or this machine's clock off from the server's; check EXPORT_RECORDINGS_S3_ENDPOINT"
	default:
		why = fmt.Sprintf("403 Forbidden with an answer that is not an S3 error (%s, %d bytes: %s): a proxy or gateway in the way, or not an S3 server; check EXPORT_RECORDINGS_S3_ENDPOINT",
			quoteShort(resp.Header.Get("Content-Type")), len(body), f.shown(body))
	}
	doc, _ := xml.Marshal(struct {
		XMLName xml.Name `xml:"Error"`
		Code    string
		Message string
	}{Code: codeNoReason, Message: why})
	resp.Body = io.NopCloser(bytes.NewReader(doc))
	resp.ContentLength = int64(len(doc))
	resp.Header.Set("Content-Length", strconv.Itoa(len(doc)))
	resp.Header.Set("Content-Type", "application/xml")
	return resp, nil
}

// passForbidden reports whether forbidden leaves r's 403 answer resp as
// it is, for the client to read: the bucket's region asked (GET
// ?location, when EXPORT_RECORDINGS_S3_REGION is not set), whose refusal
// of any kind the client takes for us-east-1 on purpose, and the store
// then opens, as it did before forbidden (R45-2); and an answer carrying
// MinIO's X-Minio-Error-Code (with -Desc), MinIO's way to say why on a
// HEAD, whose answer has no body: the client makes its error of them
// (a wrong secret key's SignatureDoesNotMatch; R45-3). A proxy does not
// send that header.
func passForbidden(r *http.Request, resp *http.Response) bool {
	if _, ok := r.URL.Query()["location"]; ok && r.Method == http.MethodGet {
		return true
	}
	return resp.Header.Get("X-Minio-Error-Code") != ""
}

// isS3Error reports whether body is an S3 error document with a code.
func isS3Error(body []byte) bool {
	var e struct {
		XMLName xml.Name
		Code    string
	}
	return xml.Unmarshal(body, &e) == nil && e.XMLName.Local == "Error" && e.Code != ""
}

var (
	tags         = regexp.MustCompile(`<[^>]*>`)
	secretParams = regexp.MustCompile(`(?i)(signature|credential|security-token|authorization)([=:]\s*)[^\s,&;"'<>]+`)
)

// shown is body as an error shows it: its text without markup, spaces
// collapsed, credentials (a signature, a key echoed back) cut out, at
// most 160 characters, quoted.
func (f forbidden) shown(body []byte) string {
	s := strings.Join(strings.Fields(tags.ReplaceAllString(string(body), " ")), " ")
	s = secretParams.ReplaceAllString(s, "$1$2…")
	for _, k := range f.secrets {
		if k != "" {
			s = strings.ReplaceAll(s, k, "…")
		}
	}
	if r := []rune(s); len(r) > 160 {
		s = string(r[:160]) + "…"
	}
	return strconv.Quote(s)
}
