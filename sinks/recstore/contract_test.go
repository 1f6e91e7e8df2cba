package recstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"testing"
	"time"
)

// store is what the exporter will ask of a recordings store: both Dir and
// S3 must pass the same contract.
type store interface {
	Put(ctx context.Context, name string, r io.Reader, want Want) (Object, error)
	Stat(ctx context.Context, name string) (Object, error)
	Stored(ctx context.Context, name string, want Want) (Object, bool, error)
	Sync(ctx context.Context, names []string) error
}

// fixture is one store under test with ways to look at it from outside.
type fixture struct {
	st store
	// read returns the bytes under name as the storage holds them, or an
	// error matching fs.ErrNotExist.
	read func(t *testing.T, name string) ([]byte, error)
	// partSize is the size above which a Put of unannounced size goes in
	// several parts (0: one).
	partSize int64
	// leftovers lists what copies left beside final names: partial files,
	// incomplete uploads.
	leftovers func(t *testing.T) []string
}

// name builds a name for the test, with a seed-chosen id.
func testName(t *testing.T, id string) string {
	t.Helper()
	n, err := Name("pbx-test", time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC), id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// runContract runs the contract against stores made by mk (a new, empty
// store each call).
func runContract(t *testing.T, mk func(t *testing.T) fixture) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)

	t.Run("put, stat, stored", func(t *testing.T) {
		t.Parallel()
		f := mk(t)
		ctx := context.Background()
		sizes := []int64{44, 100_003}
		if f.partSize > 0 {
			sizes = append(sizes, 2*f.partSize+12345) // three parts when not announced
		}
		for i, n := range sizes {
			name := testName(t, fmt.Sprintf("rec-%d", i))
			want := Want{Size: n, SHA256: contentSum(t, seed+uint64(i), n)}
			if _, ok, err := f.st.Stored(ctx, name, want); ok || err != nil {
				t.Fatalf("Stored before Put = %v, %v; want false, nil", ok, err)
			}
			for _, w := range []Want{want, {}} { // announced, then not
				got, err := f.st.Put(ctx, name, content(seed+uint64(i), n), w)
				if err != nil {
					t.Fatalf("Put %d bytes: %v", n, err)
				}
				if got != (Object{Name: name, Size: n, SHA256: want.SHA256}) {
					t.Fatalf("Put = %+v; want size %d sha256 %s", got, n, want.SHA256)
				}
			}
			b, err := f.read(t, name)
			if err != nil || sum(b) != want.SHA256 {
				t.Fatalf("stored bytes: %d, %v; want %d bytes of sha256 %s", len(b), err, n, want.SHA256)
			}
			if o, err := f.st.Stat(ctx, name); err != nil || o.SHA256 != want.SHA256 || o.Size != n {
				t.Fatalf("Stat = %+v, %v", o, err)
			}
			if err := f.st.Sync(ctx, []string{name, name}); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			for _, c := range []struct {
				w  Want
				ok bool
			}{{want, true}, {Want{}, true}, {Want{Size: n}, true}, {Want{Size: n + 1}, false}, {Want{SHA256: sum(nil)}, false}} {
				if _, ok, err := f.st.Stored(ctx, name, c.w); ok != c.ok || err != nil {
					t.Errorf("Stored(%+v) = %v, %v; want %v", c.w, ok, err, c.ok)
				}
			}
		}
	})

	t.Run("a wrong stream stores nothing and keeps what was there", func(t *testing.T) {
		t.Parallel()
		f := mk(t)
		ctx := context.Background()
		sizes := []int64{70_000} // S3: one PUT, whose length is announced
		if f.partSize > 0 {
			sizes = append(sizes, f.partSize+7) // two parts when the size is not announced: the mismatch is found in the last
		}
		for _, n := range sizes {
			good := Want{Size: n, SHA256: contentSum(t, seed, n)}
			fresh, kept := testName(t, fmt.Sprintf("fresh-%d", n)), testName(t, fmt.Sprintf("kept-%d", n))
			if _, err := f.st.Put(ctx, kept, content(seed, n), good); err != nil {
				t.Fatal(err)
			}
			boom := errors.New("connection reset by peer")
			for _, c := range []struct {
				name string
				r    func() io.Reader
				want Want
				is   func(error) bool
			}{
				{"other bytes", func() io.Reader { return content(seed+1, n) }, good, isMismatch("sha256")},
				{"other last byte", func() io.Reader {
					return io.MultiReader(content(seed, n-1), bytes.NewReader([]byte{lastByte(t, seed, n) ^ 0x55}))
				}, good, isMismatch("sha256")},
				{"short", func() io.Reader { return content(seed, n-1) }, good, isMismatch("size")},
				{"long", func() io.Reader { return content(seed, n+1) }, good, isMismatch("size")},
				{"short, nothing announced but the hash", func() io.Reader { return content(seed, n-1) }, Want{SHA256: good.SHA256}, isMismatch("sha256")},
				{"source fails", func() io.Reader { return io.MultiReader(content(seed, n-10), errReader{boom}) }, Want{}, func(err error) bool { return errors.Is(err, boom) }},
				{"source fails, size announced", func() io.Reader { return io.MultiReader(content(seed, n-1), errReader{boom}) }, Want{Size: n}, func(err error) bool { return errors.Is(err, boom) }},
				// A body cut short (net/http's io.ErrUnexpectedEOF): minio-go
				// takes that very error for the end of a stream of unknown
				// length and would complete the upload with what came before.
				{"source cut short", func() io.Reader { return io.MultiReader(content(seed, n-10), errReader{io.ErrUnexpectedEOF}) }, Want{}, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
				{"source cut short, hash announced", func() io.Reader { return io.MultiReader(content(seed, n-10), errReader{io.ErrUnexpectedEOF}) }, Want{SHA256: good.SHA256}, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
			} {
				for _, name := range []string{fresh, kept} {
					_, err := f.st.Put(ctx, name, c.r(), c.want)
					if err == nil || !c.is(err) {
						t.Errorf("%d bytes, %s: Put %s = %v; want its error", n, c.name, name, err)
					}
				}
				if b, err := f.read(t, fresh); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%d bytes, %s: %d bytes under a name never stored right (%v)", n, c.name, len(b), err)
				}
				if b, err := f.read(t, kept); err != nil || sum(b) != good.SHA256 {
					t.Errorf("%d bytes, %s: the file stored before is %d bytes (%v), not the good one", n, c.name, len(b), err)
				}
			}
		}
	})

	t.Run("a cancelled copy stores nothing, the next completes", func(t *testing.T) {
		t.Parallel()
		f := mk(t)
		n := int64(3 << 20)
		if f.partSize > 0 {
			n = 2*f.partSize + 1
		}
		name := testName(t, "cancelled")
		ctx, cancel := context.WithCancel(context.Background())
		cut := int64(rand.New(rand.NewPCG(seed, 1)).Int64N(n))
		t.Logf("cancelled after %d of %d bytes", cut, n)
		r := io.MultiReader(content(seed, cut), funcReader(func() { cancel() }), io.LimitReader(content(seed+99, n), n-cut))
		if _, err := f.st.Put(ctx, name, r, Want{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put with its context cancelled mid-stream = %v; want context.Canceled", err)
		}
		if b, err := f.read(t, name); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%d bytes under the final name after a cancelled copy (%v)", len(b), err)
		}
		if left := f.leftovers(t); len(left) > 0 {
			t.Fatalf("a cancelled copy left %q", left)
		}
		want := Want{Size: n, SHA256: contentSum(t, seed, n)}
		if _, err := f.st.Put(context.Background(), name, content(seed, n), want); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := f.st.Stored(context.Background(), name, want); !ok || err != nil {
			t.Fatalf("Stored after the completing copy = %v, %v", ok, err)
		}
	})

	t.Run("names not built by Name are refused", func(t *testing.T) {
		t.Parallel()
		f := mk(t)
		ctx := context.Background()
		for _, h := range append([]string{"../../etc/x", "/etc/x", "pbx/2026/05/04/../../../x.wav"}, hostile...) {
			if _, err := f.st.Put(ctx, h, content(seed, 10), Want{}); err == nil {
				t.Errorf("Put accepts the name %q", h)
			}
			if _, err := f.st.Stat(ctx, h); err == nil || errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat(%q) = %v; want a refusal", h, err)
			}
			if err := f.st.Sync(ctx, []string{h}); err == nil {
				t.Errorf("Sync(%q) = nil; want a refusal", h)
			}
		}
	})
}

func isMismatch(what string) func(error) bool {
	return func(err error) bool {
		var m *MismatchError
		return errors.As(err, &m) && m.What == what
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// funcReader calls f when read, and ends.
type funcReader func()

func (f funcReader) Read([]byte) (int, error) { f(); return 0, io.EOF }

// lastByte is the last byte of content(seed, n).
func lastByte(t *testing.T, seed uint64, n int64) byte {
	t.Helper()
	b, err := io.ReadAll(content(seed, n))
	if err != nil {
		t.Fatal(err)
	}
	return b[n-1]
}
