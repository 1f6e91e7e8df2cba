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

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// FileStore keeps tokens in one JSON file, keyed by PBX. Writes go to a
// temporary file that is fsynced and renamed over the old one, so a crash
// leaves the old or the new content, never a torn one. The file is created
// with mode 0600 and refused when others can read it. Lock takes an
// exclusive file lock on a sibling ".lock" file, which serialises processes on
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
	c := fileContent{Version: 1}
	if err := readPrivate(s.path, "token file", &c); err != nil {
		return nil, err
	}
	if c.Tokens == nil {
		c.Tokens = map[string]string{}
	}
	return &c, nil
}

// readPrivate decodes the JSON file at path into v, leaving v as it is
// when there is no file. A file others can read is refused: it holds
// secrets. A symbolic link is refused too, naming its target, as the CSV
// sink refuses them (internal/safefile): the writes, by rename, would
// replace the link rather than write its target, and the "chmod 600"
// advice would change whatever the link points to. what names the file in
// errors ("token file").
func readPrivate(path, what string, v any) error {
	if err := notSymlink(path, what); err != nil {
		return err
	}
	// O_NONBLOCK: a named pipe planted at path would otherwise hold the
	// open until someone writes it, hanging run and authorize for good.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if lst, err := os.Lstat(path); err != nil || !os.SameFile(st, lst) {
		// A link put in place between the check and the open.
		return fmt.Errorf("%s %s changed while it was opened: check who else writes it, and run again", what, path)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s %s is %s, not a file: move it away, and run `wildix-export authorize` (or set WILDIX_TOKEN_FILE to the file)", what, path, fileKind(st.Mode()))
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s %s has mode %04o and can be read by others: run chmod 600 %s", what, path, st.Mode().Perm(), path)
	}
	if err := json.NewDecoder(f).Decode(v); err != nil {
		return fmt.Errorf("%s %s is not valid JSON (%v): move it away and run `wildix-export authorize`", what, path, err)
	}
	return nil
}

// fileKind names what a mode that is not a regular file's is.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// notSymlink refuses a symbolic link at path, naming what it points to.
func notSymlink(path, what string) error {
	err := safefile.NotSymlink(path)
	if !errors.Is(err, safefile.ErrSymlink) {
		return err
	}
	target, terr := filepath.EvalSymlinks(path)
	if terr != nil {
		target, _ = os.Readlink(path)
	}
	return fmt.Errorf("%s %s is a symbolic link to %s, and a file holding secrets is never read or written through one: replace the link with the file (mv %s %s), or set WILDIX_TOKEN_FILE to where the file is: %w",
		what, path, target, target, path, safefile.ErrSymlink)
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
	r, err := s.sealer.open(pbx, data)
	if errors.Is(err, errUnsealed) {
		return nil, refuseUnsealed("token of PBX "+pbx, s.path, fmt.Sprintf("delete the entry %q under \"tokens\" in %s", pbx, s.path))
	}
	return r, err
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
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("create token folder: %w", err)
	}
	return safefile.Write(s.path, append(b, '\n'), 0o600)
}

// Lock implements Store.
func (s *FileStore) Lock(ctx context.Context, _ string) (func(), error) {
	if dir := filepath.Dir(s.path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create token folder: %w", err)
		}
	}
	l := safefile.NewLock(s.path+".lock", 0o600)
	if err := l.Wait(ctx, 20*time.Millisecond); err != nil {
		return nil, fmt.Errorf("lock the token file: %w", err)
	}
	return func() { l.Unlock() }, nil
}
