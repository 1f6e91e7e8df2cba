package recordings

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// BenchmarkCopy measures the copier against the limit of a plain copy:
// the same files fetched by a minimal client (GET with the token, no
// checks) and written to the same storage as durably (directory:
// temporary file, sync, rename, folder synced; S3: one PutObject with the
// length), at the same
// concurrency, alternating in the same run. It reports both rates and
// their ratio (issue 29 asks for at least 0.9):
//
//	go test ./exporter/recordings -run '^$' -bench Copy -benchtime 3x
func BenchmarkCopy(b *testing.B) {
	for _, kind := range []string{"dir", "s3"} {
		b.Run(kind, func(b *testing.B) {
			e := recSetupB(b)
			recs := e.recordings(false)
			var total int64
			for _, r := range recs {
				total += r.Size
			}
			var copier, plain time.Duration
			for i := 0; i < b.N; i++ {
				f := newStore(b, kind)
				start := time.Now()
				plainCopy(b, e, f, recs, 4)
				plain += time.Since(start)

				f = newStore(b, kind)
				cp := &Copier{Spool: e.spool(b), Store: f.st, PBX: testPBX, Concurrency: 4}
				start = time.Now()
				if _, n, err := cp.Copy(context.Background(), recs); err != nil || n.Copied != len(recs) {
					b.Fatalf("Copy: %+v, %v", n, err)
				}
				copier += time.Since(start)
			}
			mbps := func(d time.Duration) float64 { return float64(total) * float64(b.N) / 1e6 / d.Seconds() }
			b.ReportMetric(mbps(copier), "copier-MB/s")
			b.ReportMetric(mbps(plain), "plain-MB/s")
			b.ReportMetric(plain.Seconds()/copier.Seconds(), "ratio")
			b.Logf("%d files, %d MB a pass", len(recs), total/1e6)
		})
	}
}

// plainCopy is the minimal client.
func plainCopy(b *testing.B, e *env, f *storeFixture, recs []Recording, conc int) {
	var c *minio.Client
	if f.s3 != nil {
		c = f.s3.Client(b)
	}
	jobs := make(chan Recording)
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range jobs {
				if err := plainOne(e, f, c, r); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for _, r := range recs {
		jobs <- r
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

func plainOne(e *env, f *storeFixture, c *minio.Client, r Recording) error {
	req, err := http.NewRequest(http.MethodGet, e.pbx.URL+r.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", r.Path, resp.Status)
	}
	key := fmt.Sprintf("plain/%s/%s.wav", r.Start.UTC().Format("2006/01/02"), r.ID)
	if c != nil {
		_, err := c.PutObject(context.Background(), f.s3.Bucket, s3Prefix+key, resp.Body, resp.ContentLength, minio.PutObjectOptions{PartSize: 16 << 20})
		return err
	}
	p := filepath.Join(f.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".partial-")
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(tmp, resp.Body, make([]byte, 256<<10)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(p))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync() // durable as the store's: the rename too
}

// recSetupB is recSetup for a benchmark: 28 recordings of about 4 MB
// (4,000 bytes a second), served by the PBX itself.
func recSetupB(b *testing.B) *env {
	return recSetup(b, pbxsim.Options{Seed: 12, Calls: 160, Recordings: pbxsim.RecordingOptions{BytesPerSecond: 4000}}, noCloud)
}
