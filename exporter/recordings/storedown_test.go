package recordings

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/sinks/recstore"
	"github.com/wildix-export/wildix-export/sinks/recstore/recstoretest"
)

// TestEraseStoreDown (review 24, R24-1): the store down when Erase runs
// (the folder store's day folder made unwritable; its folder gone, as a
// volume not mounted; the S3 server stopped) is Erase's error, naming
// the store and what to do, nothing counted removed nor kept: the caller
// then writes no row saying the recording's file is not kept while it is
// stored. The file is still there once the store is back, and Erase
// removes it then.
func TestEraseStoreDown(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"dir/unwritable", "dir/gone", "s3/stopped"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := recSetup(t, pbxsim.Options{Seed: 5, Calls: 60}, noCloud)
			store, how, _ := strings.Cut(kind, "/")
			f := newStore(t, store)
			cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: "pbx-test"}
			r := usable(t, e, e.recordings(false))[0]
			if _, _, err := cp.Copy(ctx, []Recording{r}); err != nil {
				t.Fatal(err)
			}
			name, _ := cp.name(r)
			before := f.contents(t)
			if before[name] == "" {
				t.Fatalf("%s not stored", name)
			}
			up := storeDown(t, how, f, cp, name)
			none := func(context.Context, []string) (map[string]bool, error) { return map[string]bool{}, nil }
			out, err := cp.Erase(ctx, []Recording{r}, none, nil)
			up()
			if err == nil || !strings.Contains(err.Error(), "the recordings store") || !strings.Contains(err.Error(), "check that the store is up") {
				t.Errorf("Erase, the store down: %v; want an error naming the store and what to do", err)
			}
			if out.Removed != 0 || len(out.Kept) != 0 {
				t.Errorf("Erase, the store down: %d removed, kept %+v; want nothing counted", out.Removed, out.Kept)
			}
			if got := f.contents(t); got[name] != before[name] {
				t.Fatalf("%s after Erase with the store down: %q; want it as it was", name, got[name])
			}
			cp.Store = f.st
			if out, err := cp.Erase(ctx, []Recording{r}, none, nil); err != nil || out.Removed != 1 || len(out.Kept) != 0 {
				t.Fatalf("Erase, the store back: %+v, %v; want %s removed", out, err, name)
			}
			if got := f.contents(t); got[name] != "" {
				t.Fatalf("%s still stored", name)
			}
		})
	}
}

// storeDown takes f's store down as how says, for cp: "unwritable" (the
// folder holding name), "gone" (the store's folder moved away), "stopped"
// (the S3 server unreachable: cp given a store whose connections go
// through a relay, then stopped). It returns what brings it back.
func storeDown(t *testing.T, how string, f *storeFixture, cp *Copier, name string) (up func()) {
	t.Helper()
	switch how {
	case "unwritable":
		return recstoretest.Unwritable(t, filepath.Join(f.dir, filepath.FromSlash(path.Dir(name))))
	case "gone":
		away := f.dir + ".away"
		if err := os.Rename(f.dir, away); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.Rename(away, f.dir); err != nil {
				t.Fatal(err)
			}
		}
	case "stopped":
		rl := startRelay(t, strings.TrimPrefix(f.s3opt.Endpoint, "http://"))
		o := f.s3opt
		o.Endpoint = "http://" + rl.addr()
		st, err := recstore.OpenS3(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		cp.Store = st
		rl.stop()
		return func() {}
	}
	t.Fatalf("store down: %q", how)
	return nil
}

// relay forwards the connections made to a loopback port to a server,
// until stopped: then that port refuses every connection, as a server
// stopped does.
type relay struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startRelay(t testing.TB, to string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &relay{ln: ln}
	rl.wg.Add(1)
	go func() {
		defer rl.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			rl.mu.Lock()
			rl.conns = append(rl.conns, c, s)
			rl.mu.Unlock()
			rl.wg.Add(2)
			go rl.pipe(c, s)
			go rl.pipe(s, c)
		}
	}()
	t.Cleanup(rl.stop)
	return rl
}

func (rl *relay) addr() string { return rl.ln.Addr().String() }

func (rl *relay) pipe(dst, src net.Conn) {
	defer rl.wg.Done()
	if _, err := io.Copy(dst, src); err != nil && !errors.Is(err, net.ErrClosed) {
		dst.Close()
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// stop closes the port and every connection through it, and waits for
// the relay's goroutines.
func (rl *relay) stop() {
	rl.ln.Close()
	rl.mu.Lock()
	for _, c := range rl.conns {
		c.Close()
	}
	rl.conns = nil
	rl.mu.Unlock()
	rl.wg.Wait()
}
