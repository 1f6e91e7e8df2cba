package main

// The recordings case (issue 29): wildix-export copying call recordings
// against a plain copy of the same files by a minimal client (GET with the
// Simple Token, written to the same store, the same number at once), in
// the same run, for the directory store and versitygw's S3; and one
// recording of -recordings-big bytes copied by wildix-export with its peak
// resident memory measured from outside (the child's rusage).
//
// The simulator runs in the bench's process, so that its memory is not the
// exporter's; both subjects read it the same way.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/plaincopy"
)

var (
	// The default is a small company's night of recordings (bench/README:
	// about 26 hours of the PBX's WAV), not the 400 calls (156 MB) of
	// before, whose copy took 400-500 ms: a sixth of it was the run's fixed
	// cost (the process's start, the listing, the CSV commit).
	recCalls  = flag.Int("recordings-calls", 2000, "call records of the recordings case's PBX (one answered call in 10 has a recording of 16,000 bytes a second: 131 files, 1.5 GB at 2000; 29 files, 156 MB at 400)")
	recBig    = flag.Int64("recordings-big", 500_000_000, "bytes of the one recording whose copy's peak memory is measured (0: not measured)")
	recStores = flag.String("recordings-stores", "dir,s3", "stores of the recordings case: dir, s3 (versitygw on PATH or in GOPATH/bin), s3tls (the same over https, a self-signed certificate given to wildix-export as SSL_CERT_FILE)")
	recWrap   = flag.String("recordings-wrap", "", "a command the recordings case runs wildix-export under, for a profile (its times then mean nothing); {n} in it is the run's number, e.g. 'strace -f -c -o /tmp/st.{n}' or 'perf record -g -o /tmp/perf.{n}'")
)

// recToken is the bench PBX's Simple Token: the main credential too, so
// that wildix-export takes it for the files (WILDIX_API_KEY=access_…).
const recToken = "access_bench-recordings"

// recPBX is a simulated PBX served in the bench's process.
type recPBX struct {
	sim  *pbxsim.Sim
	srv  *http.Server
	base string
}

func startRecPBX(calls int, big int64) (*recPBX, error) {
	gap := 30 * time.Second
	sim := pbxsim.New(pbxsim.Options{
		Seed: 29, Calls: int64(calls), CallGap: gap,
		// Recent calls: the recordings a nightly run finds.
		CallsStart: time.Now().UTC().Add(-time.Duration(calls) * gap).Add(-time.Hour),
		APIKeys:    []string{recToken},
		Recordings: pbxsim.RecordingOptions{Every: 10, BigSize: big},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return &recPBX{sim: sim, srv: srv, base: "http://" + ln.Addr().String()}, nil
}

func (p *recPBX) stop() { p.srv.Close() }

// recStore is one store the case writes to: a fresh folder or prefix per
// copy, and the environment that points wildix-export at it.
type recStore struct {
	name  string
	fresh func() (env []string, put plaincopy.Put, count func() (int, int64, error), err error)
	stop  func() // ends what the store started (versitygw); nil: nothing
}

// recordings runs issue 29's case: for each store of -recordings-stores,
// the plain copy, the plain copy with sha256 and wildix-export in turn,
// -runs times, then the same run with nothing to copy, then the large file.
// It stays one function (about 120 lines): one round's steps in the order
// they are measured, each a few lines, read as the case's script.
func (b *bench) recordings(ctx context.Context) error {
	pbx, err := startRecPBX(*recCalls, 0)
	if err != nil {
		return err
	}
	defer pbx.stop()
	recs := pbx.sim.Recordings()
	var total int64
	for _, r := range recs {
		total += r.Size
	}
	fmt.Fprintf(os.Stderr, "recordings: %d files, %.1f MB\n", len(recs), float64(total)/1e6)
	stores, err := b.recStores(ctx)
	defer func() {
		for _, st := range stores {
			if st.stop != nil {
				st.stop()
			}
		}
	}()
	if err != nil {
		return err
	}
	for r := 0; r < b.o.runs; r++ {
		for _, st := range stores {
			fmt.Fprintf(os.Stderr, "recordings run %d/%d, %s store…\n", r+1, b.o.runs, st.name)
			plain := func() error {
				return b.plainRecordings(ctx, pbx.base, recs, st, nil)
			}
			plainSHA := func() error {
				// The plain copy hashing what it writes, as wildix-export must
				// (issue 29, point 3): the part of the gap that is the sha256.
				return b.plainRecordings(ctx, pbx.base, recs, st, hashing)
			}
			exporter := func() error {
				// The baseline before this wildix-export every other round:
				// the one measured last in a round was faster in the same
				// run, whichever it was (2026-12-07, a loaded machine).
				if b.base != "" && r%2 == 1 {
					if err := b.recordingsBaseline(pbx.base, st, len(recs), total); err != nil {
						return err
					}
				}
				// Twice: the second run has nothing left to copy, so it is
				// what a run costs besides the files (start, list, call
				// history, ledger).
				smps, n, bytes, err := b.exportRecordings(b.wx, pbx.base, st, 2)
				if err != nil {
					return fmt.Errorf("wildix-export to %s: %w", st.name, err)
				}
				if n != len(recs) || bytes != total {
					return fmt.Errorf("wildix-export to %s stored %d files of %d, %d bytes of %d", st.name, n, len(recs), bytes, total)
				}
				smp, again := smps[0], smps[1]
				b.add("recordings: wildix-export, "+st.name, len(recs), smp, "run --once, EXPORT_ENDPOINTS=recordings, CSV rows")
				b.add("recordings: wildix-export again (nothing to copy), "+st.name, len(recs), again, "the same run --once once more: its cost besides the files")
				if b.base != "" && r%2 == 0 {
					if err := b.recordingsBaseline(pbx.base, st, len(recs), total); err != nil {
						return err
					}
				}
				return nil
			}
			// The subjects' order alternates: the plain copies first in even
			// rounds, wildix-export first in odd ones, so that whatever the one
			// before leaves the next (the disk still freeing the last copy's
			// files, a warm cache) weighs on each as often (review 11).
			steps := []func() error{plain, plainSHA, exporter}
			if r%2 == 1 {
				steps = []func() error{exporter, plain, plainSHA}
			}
			for _, step := range steps {
				if err := step(); err != nil {
					return err
				}
			}
		}
	}
	if *recBig <= 0 {
		return nil
	}
	big, err := startRecPBX(20, *recBig) // one or two recordings, the first of -recordings-big bytes
	if err != nil {
		return err
	}
	defer big.stop()
	for _, st := range stores {
		fmt.Fprintf(os.Stderr, "recordings: %d bytes to the %s store…\n", *recBig, st.name)
		smps, _, bytes, err := b.exportRecordings(b.wx, big.base, st, 1)
		if err != nil {
			return fmt.Errorf("wildix-export, %d bytes to %s: %w", *recBig, st.name, err)
		}
		if bytes < *recBig {
			return fmt.Errorf("wildix-export stored %d bytes in %s, want at least %d", bytes, st.name, *recBig)
		}
		b.add("recordings: one of "+strconv.FormatInt(*recBig/1e6, 10)+" MB, "+st.name, 1, smps[0], "peak RSS of run --once")
	}
	return nil
}

// recordingsBaseline copies the files to a fresh folder or prefix of st
// with the -baseline binary, in the same round: the before of a change
// beside its after.
func (b *bench) recordingsBaseline(pbx string, st recStore, files int, total int64) error {
	smps, n, bytes, err := b.exportRecordings(b.base, pbx, st, 1)
	if err != nil {
		return fmt.Errorf("baseline wildix-export to %s: %w", st.name, err)
	}
	if n != files || bytes != total {
		return fmt.Errorf("baseline wildix-export to %s stored %d files of %d, %d bytes of %d", st.name, n, files, bytes, total)
	}
	b.add("recordings: baseline wildix-export, "+st.name, files, smps[0], "-baseline "+b.o.baseline)
	return nil
}

// plainRecordings times the plain copy of recs into a fresh folder or
// prefix of st, its writes wrapped by wrap when not nil (hashing: the
// plain copy with sha256), and checks that every file arrived.
func (b *bench) plainRecordings(ctx context.Context, pbx string, recs []pbxsim.Recording, st recStore, wrap func(plaincopy.Put) plaincopy.Put) error {
	var total int64
	for _, r := range recs {
		total += r.Size
	}
	name, note := "recordings: plain copy, "+st.name, fmt.Sprintf("%.1f MB, %d at once", float64(total)/1e6, b.o.conc)
	if wrap != nil {
		name, note = "recordings: plain copy with sha256, "+st.name, "the plain copy, each file's sha256 computed as it is written"
	}
	_, put, count, err := st.fresh()
	if err != nil {
		return err
	}
	if wrap != nil {
		put = wrap(put)
	}
	began, host := time.Now(), selfCPU()
	if err := plainCopy(ctx, pbx, recs, b.o.conc, put); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	d, host := time.Since(began), selfCPU()-host
	if n, _, err := count(); err != nil || n != len(recs) {
		return fmt.Errorf("%s stored %d files of %d (%v)", name, n, len(recs), err)
	}
	b.add(name, len(recs), sample{d: d, host: host}, note)
	return nil
}

// exportRecordings runs wx (`run --once`, recordings alone) times times
// into a fresh folder or prefix of st with one CSV sink, then counts what
// the store holds: the samples of each run, the files and bytes stored.
func (b *bench) exportRecordings(wx, pbx string, st recStore, times int) ([]sample, int, int64, error) {
	env, _, count, err := st.fresh()
	if err != nil {
		return nil, 0, 0, err
	}
	csv, err := os.MkdirTemp(b.dir, "rec-csv-")
	if err != nil {
		return nil, 0, 0, err
	}
	defer os.RemoveAll(csv)
	var smps []sample
	for i := 0; i < times; i++ {
		smp, err := b.copyRecordings(wx, pbx, csv, env)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("run %d of %d: %w", i+1, times, err)
		}
		smps = append(smps, smp)
	}
	n, bytes, err := count()
	if err != nil {
		return nil, 0, 0, fmt.Errorf("counting what the store holds: %w", err)
	}
	return smps, n, bytes, nil
}

// copyRecordings runs `wildix-export run --once` (wx: the binary) on the recordings alone,
// its CSV sink (rows, state, ledger) in csv, under /usr/bin/time, whose own report of the peak RSS is taken: the
// child's rusage would not do here. Go starts a child sharing the parent's
// memory until it execs (CLONE_VM), and Linux keeps the larger of the old
// and new high-water marks across exec, so the bench's own peak (the
// simulator in its process, the plain copy's buffers) would show as the
// exporter's. time is a small process that forks the exporter afresh.
func (b *bench) copyRecordings(wx, base, csv string, env []string) (sample, error) {
	report := filepath.Join(csv, "time.out")
	args := []string{"-f", "%M", "-o", report}
	if *recWrap != "" {
		b.wrapped++
		args = append(args, strings.Fields(strings.ReplaceAll(*recWrap, "{n}", strconv.Itoa(b.wrapped)))...)
	}
	cmd := exec.Command("/usr/bin/time", append(args, wx, "run", "--once")...)
	cmd.Env = append(os.Environ(), append([]string{"WILDIX_PBX_URL=" + base, "WILDIX_API_KEY=" + recToken, "EXPORT_ENDPOINTS=recordings",
		"WILDIX_TIMEZONE=Europe/Rome", "EXPORT_SINK=csv", "EXPORT_CSV_DIR=" + csv, "EXPORT_LOG_LEVEL=warn",
		"EXPORT_CONCURRENCY=" + strconv.Itoa(b.o.conc)}, env...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	began, host := time.Now(), selfCPU()
	if err := cmd.Run(); err != nil {
		return sample{}, fmt.Errorf("wildix-export (under /usr/bin/time, which the recordings case needs): %v\n%s", err, stderr.String())
	}
	d, host := time.Since(began), selfCPU()-host
	out, err := os.ReadFile(report)
	if err != nil {
		return sample{}, err
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return sample{}, fmt.Errorf("/usr/bin/time's report %q: %v", out, err)
	}
	return sample{d: d, rss: kib << 10, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), host: host}, nil
}

// plainCopy is the minimal client (internal/plaincopy): each file
// fetched with the token and stored as durably as the store does, conc at
// once, nothing checked.
func plainCopy(ctx context.Context, base string, recs []pbxsim.Recording, conc int, put plaincopy.Put) error {
	files := make([]plaincopy.File, len(recs))
	for i, r := range recs {
		files[i] = plaincopy.File{Path: r.Path, Key: fmt.Sprintf("bench/%s/%d.wav", r.Start.UTC().Format("2006/01/02"), r.ID)}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc + 1}}
	return plaincopy.Copy(ctx, client, base, recToken, files, conc, put)
}

// hashing is put computing the sha256 of what it stores on the way.
func hashing(put plaincopy.Put) plaincopy.Put {
	return func(ctx context.Context, key string, r io.Reader, size int64) error {
		h := sha256.New()
		if err := put(ctx, key, io.TeeReader(r, h), size); err != nil {
			return err
		}
		h.Sum(nil)
		return nil
	}
}

// recStores prepares the stores -recordings-stores names; on an error,
// with those prepared before it, to be stopped.
func (b *bench) recStores(ctx context.Context) ([]recStore, error) {
	var out []recStore
	for _, name := range strings.Split(*recStores, ",") {
		switch name = strings.TrimSpace(name); name {
		case "dir":
			out = append(out, b.dirStore())
		case "s3", "s3tls":
			st, err := b.s3Store(ctx, name == "s3tls")
			if err != nil {
				return out, err
			}
			out = append(out, st)
		default:
			return out, fmt.Errorf("-recordings-stores %q: expected dir, s3 or s3tls, separated by commas", *recStores)
		}
	}
	return out, nil
}

func (b *bench) dirStore() recStore {
	return recStore{name: "dir", fresh: func() ([]string, plaincopy.Put, func() (int, int64, error), error) {
		dir, err := os.MkdirTemp(b.dir, "rec-dir-")
		if err != nil {
			return nil, nil, nil, err
		}
		put := plaincopy.Dir(dir)
		count := func() (n int, bytes int64, err error) {
			err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || !strings.HasSuffix(p, ".wav") {
					return err
				}
				fi, err := d.Info()
				if err == nil {
					n, bytes = n+1, bytes+fi.Size()
				}
				return err
			})
			defer os.RemoveAll(dir)
			return n, bytes, err
		}
		return []string{"EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR=" + dir}, put, count, nil
	}}
}

// s3Store starts versitygw on a folder of the bench's, over https with a
// certificate of its own when useTLS (as a store is used: minio-go then
// sends a plain PUT's body unsigned, where over http it signs it chunk by
// chunk, hashing it); each copy writes under a prefix of its own.
func (b *bench) s3Store(ctx context.Context, useTLS bool) (recStore, error) {
	gw, err := startVersityGW(b.dir, useTLS, b.o.conc)
	if err != nil {
		return recStore{}, err
	}
	name := "s3 (versitygw)"
	if useTLS {
		name = "s3 over https (versitygw)"
	}
	n := 0
	return recStore{name: name, stop: gw.stop, fresh: func() ([]string, plaincopy.Put, func() (int, int64, error), error) {
		n++
		prefix := fmt.Sprintf("copy-%d/", n)
		put := plaincopy.S3(gw.client, gw.bucket, prefix)
		count := func() (n int, bytes int64, err error) {
			for o := range gw.client.ListObjects(ctx, gw.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
				if o.Err != nil {
					return n, bytes, o.Err
				}
				if strings.HasSuffix(o.Key, ".wav") {
					n, bytes = n+1, bytes+o.Size
				}
			}
			os.RemoveAll(filepath.Join(gw.root, gw.bucket, strings.TrimSuffix(prefix, "/")))
			return n, bytes, nil
		}
		env := []string{"EXPORT_RECORDINGS_STORE=s3", "EXPORT_RECORDINGS_S3_ENDPOINT=" + gw.endpoint, "EXPORT_RECORDINGS_S3_BUCKET=" + gw.bucket,
			"EXPORT_RECORDINGS_S3_PREFIX=" + prefix, "EXPORT_RECORDINGS_S3_PATH_STYLE=true", "EXPORT_RECORDINGS_S3_REGION=us-east-1",
			"EXPORT_RECORDINGS_S3_ACCESS_KEY=" + gw.access, "EXPORT_RECORDINGS_S3_SECRET_KEY=" + gw.secret}
		if gw.certFile != "" {
			// Go's roots on Linux: the store's certificate alone, as the
			// plain copy's pool holds. SSL_CERT_FILE alone would add the
			// system's certificate folders (292 here: 20 ms of the
			// exporter's CPU at its first handshake, which the plain copy,
			// given its pool, never pays).
			env = append(env, "SSL_CERT_FILE="+gw.certFile, "SSL_CERT_DIR="+gw.noCerts)
		}
		return env, put, count, nil
	}}, nil
}

type versityGW struct {
	endpoint, bucket, access, secret, root string
	certFile                               string // over https: its certificate
	noCerts                                string // over https: an empty folder, SSL_CERT_DIR
	client                                 *minio.Client
	stop                                   func() // kills it and waits for its end
}

// startVersityGW starts versitygw's posix backend on a new folder under
// dir and a free loopback port, with one bucket, over https with a
// self-signed certificate when useTLS. gw.stop ends it: a process of its
// own, it would outlive the bench; and, on Linux, the kernel kills it when
// the bench ends without gw.stop (killed, SIGTERM). Its client (the plain
// copy's) keeps a connection for each of conc copies at once.
// It stays one function (64 lines): finding the binary, the certificate,
// the process and waiting for its port are one start-up, in order.
func startVersityGW(dir string, useTLS bool, conc int) (*versityGW, error) {
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		bin = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
		if _, err := os.Stat(bin); err != nil {
			return nil, errors.New("versitygw is not installed: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0, or -recordings-stores dir")
		}
	}
	root, err := os.MkdirTemp(dir, "versitygw-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	gw := &versityGW{endpoint: "http://" + addr, bucket: "recordings", access: "bench-access", secret: "bench-secret-key-0123456789", root: root}
	args := []string{"--access", gw.access, "--secret", gw.secret, "--region", "us-east-1", "--port", addr, "--quiet"}
	opts := &minio.Options{Creds: credentials.NewStaticV4(gw.access, gw.secret, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath}
	if useTLS {
		cert, key, pool, err := selfSigned(dir)
		if err != nil {
			return nil, err
		}
		gw.endpoint, gw.certFile = "https://"+addr, cert
		if gw.noCerts, err = os.MkdirTemp(dir, "no-certs-"); err != nil {
			return nil, err
		}
		args = append(args, "--cert", cert, "--key", key)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		// A connection kept for each copy at once, as wildix-export's
		// store keeps (versitygw closes each after its answer anyway).
		tr.MaxIdleConnsPerHost = conc + 1
		opts.Secure, opts.Transport = true, tr
	}
	cmd := exec.Command(bin, append(args, "posix", root)...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	diesWithBench(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	gw.stop = func() { cmd.Process.Kill(); <-exited }
	if gw.client, err = minio.New(addr, opts); err != nil {
		gw.stop()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		err := gw.client.MakeBucket(ctx, gw.bucket, minio.MakeBucketOptions{Region: "us-east-1"})
		if err == nil {
			return gw, nil
		}
		select {
		case <-ctx.Done():
			gw.stop()
			return nil, fmt.Errorf("versitygw at %s did not answer: %v", addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir, and returns their files and a pool trusting it.
func selfSigned(dir string) (certFile, keyFile string, pool *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wildix-export bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile, keyFile = filepath.Join(dir, "versitygw-cert.pem"), filepath.Join(dir, "versitygw-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", "", nil, err
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pool, nil
}

// reportRecordings prints the recordings case's ratios.
func (b *bench) reportRecordings(w io.Writer) {
	var lines []string
	for _, name := range b.order {
		st, ok := strings.CutPrefix(name, "recordings: wildix-export, ")
		if !ok {
			continue
		}
		wx, plain := b.figures[name], b.figures["recordings: plain copy, "+st]
		if plain == nil {
			continue
		}
		lines = append(lines, fmt.Sprintf("| %s: wildix-export throughput ÷ plain copy's | %.2f | ≥ 0.9 |", st, plain.median().Seconds()/wx.median().Seconds()))
		if hashed := b.figures["recordings: plain copy with sha256, "+st]; hashed != nil {
			lines = append(lines, fmt.Sprintf("| %s: wildix-export throughput ÷ the plain copy's with sha256 | %.2f | (the gap beyond the sha256) |", st, hashed.median().Seconds()/wx.median().Seconds()))
		}
		if base := b.figures["recordings: baseline wildix-export, "+st]; base != nil {
			lines = append(lines, fmt.Sprintf("| %s: the baseline's throughput ÷ plain copy's, CPU per run | %.2f, %.2f s | (-baseline) |", st, plain.median().Seconds()/base.median().Seconds(), base.medianCPU().Seconds()))
		}
		if hashed := b.figures["recordings: plain copy with sha256, "+st]; hashed != nil {
			lines = append(lines, fmt.Sprintf("| %s: CPU per run (median): the plain copy, with sha256, wildix-export; each with the simulator's (the bench process's) | %.2f, %.2f, %.2f + %.2f s | |", st,
				plain.medianHost().Seconds(), hashed.medianHost().Seconds(), wx.medianCPU().Seconds(), wx.medianHost().Seconds()))
		}
		if again := b.figures["recordings: wildix-export again (nothing to copy), "+st]; again != nil {
			lines = append(lines, fmt.Sprintf("| %s: wildix-export's CPU per run (median), and a run with nothing to copy | %.2f s, %s | |", st, wx.medianCPU().Seconds(), again.median().Round(time.Millisecond)))
		}
	}
	for _, name := range b.order {
		if strings.HasPrefix(name, "recordings: one of ") {
			lines = append(lines, fmt.Sprintf("| %s: peak RSS | %.0f MiB | < 100 MiB |", strings.TrimPrefix(name, "recordings: "), float64(b.figures[name].medianRSS())/(1<<20)))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Recordings (issue 29)\n\nload average at the end: %s\n\n| figure | value | goal |\n|---|---|---|\n", loadAverage())
	bw := bufio.NewWriter(w)
	for _, l := range lines {
		fmt.Fprintln(bw, l)
	}
	bw.Flush()
}

// runIf runs f when on: a case's one line in run.
func runIf(on bool, f func() error) error {
	if !on {
		return nil
	}
	return f()
}
