package sinks

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// The CSV sink reads some state files several times a run: the
// suppression list at each of a run's two checks (its start and under
// the PBX's lock, each tagging then checking it) and when the run loads
// it, the run ledgers and the mark of the manifests checked at each
// check. stateCache keeps what it last made of each, with the identity
// of the version it read (fileIdentity: device, inode, size, times), and
// reads a file again only when the path names another version. The file
// read stays open, so that its inode is not given to another file while
// its identity is kept: the program replaces these files by renaming a
// new file over them (a new inode) or appends to them (a new size and
// change time), and any other change of a file changes its change time.
// So a cached value is never of another content than the file's, and a
// list restored, a forget's number added or a ledger line appended by
// another process is read at the next look. Where fileIdentity tells
// nothing (outside Linux) every look reads the file, as before.
type stateCache struct {
	mu    sync.Mutex
	files map[string]*stateFile
}

// stateFile is what the sink made of one version of a state file.
type stateFile struct {
	f   *os.File // the version read, held open
	id  string   // its fileIdentity
	key string   // what else the value was made with
	v   any
}

// cachedState returns what make made of the content of the state file at
// path with key (what else make depends on), reading the file only when
// it is another version than the one this sink made it of last, or key
// is another; reads counts the reads. os.Stat's error (fs.ErrNotExist
// when there is no file) is returned as it is. make must not keep or
// change the content, nor may its callers change the value.
func (s *CSV) cachedState(path, key string, reads *atomic.Int64, make func([]byte) (any, error)) (any, error) {
	c := &s.state
	fi, err := os.Stat(path)
	if err != nil {
		c.put(path, nil)
		return nil, err
	}
	if id := fileIdentity(fi); id != "" {
		c.mu.Lock()
		f := c.files[path]
		c.mu.Unlock()
		if f != nil && f.id == id && f.key == key {
			return f.v, nil
		}
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	id := ""
	if fi, err := file.Stat(); err == nil {
		id = fileIdentity(fi)
	}
	b, err := io.ReadAll(file)
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	reads.Add(1)
	v, err := make(b)
	if err != nil || id == "" {
		file.Close()
		return v, err
	}
	c.put(path, &stateFile{f: file, id: id, key: key, v: v})
	return v, nil
}

// put keeps f for path (nil: nothing), closing the version it replaces.
func (c *stateCache) put(path string, f *stateFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.files[path]; old != nil {
		old.f.Close()
	}
	if f == nil {
		delete(c.files, path)
		return
	}
	if c.files == nil {
		c.files = map[string]*stateFile{}
	}
	c.files[path] = f
}
