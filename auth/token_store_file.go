package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FileStore keeps tokens in one JSON file, keyed by PBX. Writes go to a
// temporary file that is fsynced and renamed over the old one, so a crash
// leaves the old or the new content, never a torn one. The file is created
// with mode 0600 and refused when others can read it. Lock takes an
// exclusive flock on a sibling ".lock" file, which serialises processes on
// one machine (and on network filesystems that honour flock).
type FileStore struct {
	path   string
	sealer *sealer
}

// NewFileStore returns a store at path; key, when not nil, is a 32-byte
// AES-256 key that encrypts the records.
func NewFileStore(path string, key []byte) (*FileStore, error) {
	s, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	return &FileStore{path: path, sealer: s}, nil
}

// Path is the file's path.
func (s *FileStore) Path() string { return s.path }

type fileContent struct {
	Version int               `json:"version"`
	Tokens  map[string]string `json:"tokens"`
}

func (s *FileStore) read() (*fileContent, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return &fileContent{Version: 1, Tokens: map[string]string{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("token file %s has mode %04o and can be read by others: run chmod 600 %s", s.path, st.Mode().Perm(), s.path)
	}
	var c fileContent
	if err := json.NewDecoder(f).Decode(&c); err != nil {
		return nil, fmt.Errorf("token file %s is not valid JSON (%v): move it away and run `wildix-export authorize`", s.path, err)
	}
	if c.Tokens == nil {
		c.Tokens = map[string]string{}
	}
	return &c, nil
}

// Load implements Store.
func (s *FileStore) Load(_ context.Context, pbx string) (*Record, error) {
	c, err := s.read()
	if err != nil {
		return nil, err
	}
	data, ok := c.Tokens[pbx]
	if !ok {
		return nil, fmt.Errorf("%w for PBX %s in %s", ErrNoToken, pbx, s.path)
	}
	return s.sealer.open(pbx, data)
}

// Save implements Store. The caller should hold Lock, so that two
// processes saving tokens of different PBXes do not lose one.
func (s *FileStore) Save(_ context.Context, pbx string, r *Record) error {
	c, err := s.read()
	if err != nil {
		return err
	}
	data, err := s.sealer.seal(pbx, r)
	if err != nil {
		return fmt.Errorf("encode token: %w", err)
	}
	c.Tokens[pbx] = data
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path, append(b, '\n'), 0o600)
}

// Lock implements Store.
func (s *FileStore) Lock(ctx context.Context, _ string) (func(), error) {
	if dir := filepath.Dir(s.path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create token folder: %w", err)
		}
	}
	f, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open token lock: %w", err)
	}
	if err := flock(ctx, f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// flock takes an exclusive lock on f, waiting until ctx is done.
func flock(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// writeFileAtomic writes data to path by temporary file, fsync and rename,
// then fsyncs the folder so the rename itself is durable.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create folder %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
