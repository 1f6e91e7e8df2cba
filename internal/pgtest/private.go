package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Private is a PostgreSQL cluster of one test's own, for tests that stop or
// restart the server, which they must never do to the shared one.
type Private struct {
	URL  string
	dir  string
	port int
	t    testing.TB
}

func pgBin(t testing.TB, name string) string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) == 0 {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		t.Fatalf("PostgreSQL's %s is not installed (Debian package postgresql)", name)
	}
	return matches[len(matches)-1]
}

// asPostgres runs a PostgreSQL program as the postgres user when we are
// root, as initdb refuses to run as root.
func asPostgres(t testing.TB, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
	}
	return exec.Command(args[0], args[1:]...)
}

// NewPrivate initdb's and starts a cluster on a free port; it is stopped
// and removed at cleanup.
func NewPrivate(t testing.TB) *Private {
	t.Helper()
	dir, err := os.MkdirTemp("", "wildix-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		exec.Command("chown", "postgres", dir).Run()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := &Private{dir: dir, port: port, t: t, URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres(t, pgBin(t, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		asPostgres(t, pgBin(t, "pg_ctl"), "-D", data, "-m", "immediate", "stop").Run()
		os.RemoveAll(dir)
	})
	p.ctl("start", "-w", "-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir))
	return p
}

func (p *Private) ctl(args ...string) {
	p.t.Helper()
	full := append([]string{pgBin(p.t, "pg_ctl"), "-D", filepath.Join(p.dir, "data"), "-l", filepath.Join(p.dir, "log")}, args...)
	if out, err := asPostgres(p.t, full...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		p.t.Fatalf("pg_ctl %s: %v\n%s\n%s", strings.Join(args, " "), err, out, log)
	}
}

// Restart restarts the server, dropping every connection (fast shutdown,
// as pg_ctlcluster restart does).
func (p *Private) Restart() { p.ctl("restart", "-w", "-m", "fast") }
