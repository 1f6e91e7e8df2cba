package recstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// content is n bytes that depend on seed only.
func content(seed uint64, n int64) io.Reader {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return io.LimitReader(rand.NewChaCha8(key), n)
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// contentSum is the sha256 of content(seed, n).
func contentSum(t testing.TB, seed uint64, n int64) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, content(seed, n)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestVerifierHoldsLastByteUntilProven: a consumer that stops once it has
// the announced length (as an HTTP request with a Content-Length does)
// gets it only from a stream that proved right; a wrong one leaves it a
// byte short, with the mismatch as the error.
func TestVerifierHoldsLastByteUntilProven(t *testing.T) {
	t.Parallel()
	data := []byte("RIFF....WAVEfmt a recording of some length")
	right := Want{Size: int64(len(data)), SHA256: sum(data)}
	longer := append(bytes.Clone(data), 'x')
	cases := []struct {
		name     string
		src      []byte
		want     Want
		mismatch string // "" when the stream is right
	}{
		{"right", data, right, ""},
		{"nothing announced", data, Want{}, ""},
		{"size only", data, Want{Size: int64(len(data))}, ""},
		{"short", data[:len(data)-1], right, "size"},
		{"long", longer, right, "size"},
		{"other bytes", bytes.ToUpper(data), right, "sha256"},
		{"other bytes, size only known", bytes.ToUpper(data), Want{SHA256: right.SHA256}, "sha256"},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data+EOF": iotest.DataErrReader,
	}
	for _, c := range cases {
		for rn, wrap := range readers {
			t.Run(c.name+"/"+rn, func(t *testing.T) {
				t.Parallel()
				v := newVerifier(wrap(bytes.NewReader(c.src)), c.want)
				// The consumer reads exactly the announced length, or
				// everything when none was announced.
				n := int64(len(c.src))
				if c.want.Size > 0 {
					n = c.want.Size
				}
				got, err := io.ReadAll(io.LimitReader(iotest.OneByteReader(v), n))
				if c.mismatch == "" {
					if err != nil || !bytes.Equal(got, c.src) {
						t.Fatalf("got %d bytes, err %v; want the %d bytes", len(got), err, len(c.src))
					}
					// Past the length: the end, verified.
					if k, err := v.Read(make([]byte, 8)); k != 0 || err != io.EOF || !v.done() {
						t.Fatalf("after the stream: %d, %v, done %v; want 0, EOF, done", k, err, v.done())
					}
					if v.sum() != sum(c.src) || v.n != int64(len(c.src)) {
						t.Fatalf("sum %s size %d; want %s %d", v.sum(), v.n, sum(c.src), len(c.src))
					}
					return
				}
				var m *MismatchError
				if !errors.As(err, &m) || m.What != c.mismatch {
					t.Fatalf("err %v; want a %s mismatch", err, c.mismatch)
				}
				if int64(len(got)) >= n {
					t.Fatalf("the consumer got the whole announced length (%d bytes) of a wrong stream", len(got))
				}
				if v.done() {
					t.Fatal("a wrong stream is done")
				}
			})
		}
	}
}

// TestVerifierPassesSourceErrors: an error of the source ends the stream
// with that error, the last byte still held.
func TestVerifierPassesSourceErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection reset")
	v := newVerifier(io.MultiReader(bytes.NewReader([]byte("abc")), iotest.ErrReader(boom)), Want{})
	got, err := io.ReadAll(v)
	if !errors.Is(err, boom) || string(got) != "ab" {
		t.Fatalf("got %q, %v; want \"ab\", %v", got, err, boom)
	}
}

func TestCheckWant(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		w  Want
		ok bool
	}{
		{Want{}, true},
		{Want{Size: 44, SHA256: sum(nil)}, true},
		{Want{Size: -1}, false},
		{Want{SHA256: "abc"}, false},
		{Want{SHA256: "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"}, false},
	} {
		if err := checkWant(c.w); (err == nil) != c.ok {
			t.Errorf("checkWant(%+v) = %v; want ok %v", c.w, err, c.ok)
		}
	}
}
