// Package recstore keeps copies of call recordings in storage the customer
// owns: a directory (a mounted volume or NAS, Dir) or an S3-compatible
// bucket (S3). Both stream a file whatever its size with bounded memory,
// compute its size and sha256 on the way, refuse it when it differs from
// what the PBX announced, and never leave a partial file under its final
// name: a copy cut short (error, cancelled context, killed process) leaves
// the name as it was, and the next copy completes it.
//
// Names are built by Name from what the exporter controls (the PBX's id in
// configuration, a date, a recording id or hash), never from the PBX's
// file name, which carries the caller's number and may be hostile. Both
// stores refuse a name Name could not have built.
//
// The exporter defines the interface it needs; Dir and S3 have the same
// methods (Put, Stat, Stored, Present, Sync). Like every package in this module,
// it is not a supported Go API.
package recstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Want is what the PBX announced of a file, to be checked while it is
// copied. A zero field is unknown and not checked: a recording is never
// empty (a WAV header alone is 44 bytes).
type Want struct {
	Size   int64  // bytes
	SHA256 string // lowercase hex
}

// Object is a stored file: its name in the store, size and sha256.
type Object struct {
	Name   string
	Size   int64
	SHA256 string // lowercase hex
}

// matches reports whether o is what w announced (unknown fields match).
func (o Object) matches(w Want) bool {
	return (w.Size == 0 || o.Size == w.Size) && (w.SHA256 == "" || o.SHA256 == w.SHA256)
}

// MismatchError is a file that was not what the PBX announced. Nothing is
// stored under the name; copying it again may succeed (a file changed or
// cut on the way) or not (a PBX announcing wrong values).
type MismatchError struct {
	What      string // "size" or "sha256"
	Want, Got string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s is %s, the PBX announced %s", e.What, e.Got, e.Want)
}

// checkWant refuses an announced sha256 that is not 64 lowercase hex
// digits, and a negative size.
func checkWant(w Want) error {
	if w.Size < 0 {
		return fmt.Errorf("announced size %d: expected 0 (unknown) or more", w.Size)
	}
	if w.SHA256 == "" {
		return nil
	}
	if len(w.SHA256) != 64 {
		return fmt.Errorf("announced sha256 %q: expected 64 lowercase hex digits", w.SHA256)
	}
	for _, c := range []byte(w.SHA256) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("announced sha256 %q: expected 64 lowercase hex digits", w.SHA256)
		}
	}
	return nil
}

// verifier passes a stream on while counting and hashing it, and holds its
// last byte back until the source has ended and the stream proved to be
// what was announced. So a consumer that stops reading once it has the
// length it was told (an HTTP request with a Content-Length) can never
// complete a stream that turns out wrong: it is short of one byte.
type verifier struct {
	src  io.Reader
	want Want
	h    hash.Hash
	n    int64 // bytes read from src
	held []byte
	err  error // sticky: the end of the stream, io.EOF when verified
	buf  []byte
}

func newVerifier(src io.Reader, want Want) *verifier {
	return &verifier{src: src, want: want, h: sha256.New(), held: make([]byte, 0, 1)}
}

func (v *verifier) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if v.err != nil {
			if v.err == io.EOF && len(v.held) > 0 {
				p[0] = v.held[0]
				v.held = v.held[:0]
				return 1, nil
			}
			return 0, v.err
		}
		// Read into p after the held byte's place, then give the held
		// byte first and keep the new last byte back.
		off := 0
		if len(v.held) > 0 {
			p[0] = v.held[0]
			off = 1
		}
		if off == len(p) {
			// p has room for the held byte only: read into a spare byte.
			if v.buf == nil {
				v.buf = make([]byte, 1)
			}
			n, err := v.src.Read(v.buf)
			v.take(v.buf[:n], err)
			if v.failed() {
				return 0, v.err
			}
			if n == 1 {
				v.held = append(v.held[:0], v.buf[0])
				return 1, nil
			}
			continue
		}
		n, err := v.src.Read(p[off:])
		v.take(p[off:off+n], err)
		if v.failed() {
			// Not even the held byte: the consumer stays short.
			return 0, v.err
		}
		if n == 0 {
			continue
		}
		total := off + n
		v.held = append(v.held[:0], p[total-1])
		if total-1 > 0 {
			return total - 1, nil
		}
	}
}

// take hashes what was read and, at the source's end, checks the stream.
func (v *verifier) take(b []byte, err error) {
	v.h.Write(b)
	v.n += int64(len(b))
	if v.want.Size > 0 && v.n > v.want.Size {
		v.err = &MismatchError{What: "size", Want: fmt.Sprint(v.want.Size), Got: fmt.Sprintf("more than %d", v.want.Size)}
		return
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		v.err = v.check()
	default:
		// Wrapped, never passed on as it is: minio-go takes a source's
		// io.ErrUnexpectedEOF (a body cut short) for the end of a stream
		// of unknown length and completes the upload with what came
		// before. errors.Is still finds the source's error.
		v.err = fmt.Errorf("reading the file to store: %w", err)
	}
}

func (v *verifier) check() error {
	if v.want.Size > 0 && v.n != v.want.Size {
		return &MismatchError{What: "size", Want: fmt.Sprint(v.want.Size), Got: fmt.Sprint(v.n)}
	}
	if v.want.SHA256 != "" && v.sum() != v.want.SHA256 {
		return &MismatchError{What: "sha256", Want: v.want.SHA256, Got: v.sum()}
	}
	return io.EOF
}

func (v *verifier) sum() string { return hex.EncodeToString(v.h.Sum(nil)) }

// failed reports whether the stream ended in an error.
func (v *verifier) failed() bool { return v.err != nil && v.err != io.EOF }

// done reports whether the whole stream was read and verified.
func (v *verifier) done() bool { return v.err == io.EOF && len(v.held) == 0 }

// copyBufSize is the buffer of one copy: what a file costs in memory
// beyond the S3 client's part buffer.
const copyBufSize = 256 << 10
