// Package plaincopy is the minimal client issue 29's throughput goal is
// measured against: the recording files fetched with the Simple Token and
// written to a store as durably as wildix-export's stores write them,
// several at once, nothing checked. The bench (bench/recordings.go) and
// exporter/recordings' BenchmarkCopy both compare the exporter with it;
// it is no part of the product.
package plaincopy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/minio/minio-go/v7"
)

// File is one file to copy: its path on the PBX (under
// /spoolview/recordings/) and the key it is stored under.
type File struct {
	Path, Key string
}

// Put stores one file's body under key; size is the body's length (-1
// when the server did not say).
type Put func(ctx context.Context, key string, r io.Reader, size int64) error

// Copy fetches each file from base (the PBX's URL) with token as a Bearer
// credential and gives its body to put, conc files at once. The first
// error stops it and is returned once every copy in flight has ended.
func Copy(ctx context.Context, client *http.Client, base, token string, files []File, conc int, put Put) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan File)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				if err := one(ctx, client, base, token, f, put); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for _, f := range files {
		select {
		case jobs <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return context.Cause(ctx)
}

func one(ctx context.Context, client *http.Client, base, token string, f File, put Put) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+f.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", f.Path, resp.Status)
	}
	if err := put(ctx, f.Key, resp.Body, resp.ContentLength); err != nil {
		return fmt.Errorf("store %s: %w", f.Key, err)
	}
	return nil
}

// Dir stores files under root as durably as recstore.Dir does: each in a
// temporary file beside its final name, synced, renamed, and its folder
// synced (recstore.Dir syncs a batch's folders once each; the plain copy,
// knowing no batch, syncs each file's).
func Dir(root string) Put {
	return func(_ context.Context, key string, r io.Reader, _ int64) error {
		p := filepath.Join(root, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		f, err := os.CreateTemp(filepath.Dir(p), ".partial-")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(f.Name(), p); err != nil {
			return err
		}
		d, err := os.Open(filepath.Dir(p))
		if err != nil {
			return err
		}
		defer d.Close()
		return d.Sync()
	}
}

// S3 stores files in bucket under prefix with one PutObject each, given
// the body's length: what a minimal minio-go client does.
func S3(c *minio.Client, bucket, prefix string) Put {
	return func(ctx context.Context, key string, r io.Reader, size int64) error {
		_, err := c.PutObject(ctx, bucket, prefix+key, r, size, minio.PutObjectOptions{ContentType: "audio/wav"})
		return err
	}
}
