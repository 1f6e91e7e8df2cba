package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// The file store keeps authorizations in progress in a file beside the
// token file (PendingPath), written the same way: 0600, by temporary file
// and rename, under the same lock.

// PendingPath is the file holding the authorizations in progress.
func (s *FileStore) PendingPath() string { return s.path + ".pending" }

type pendingContent struct {
	Version int               `json:"version"`
	Pending map[string]string `json:"pending"`
}

func (s *FileStore) readPending() (*pendingContent, error) {
	c := pendingContent{Version: 1}
	if err := readPrivate(s.PendingPath(), "file of authorizations in progress", &c); err != nil {
		return nil, err
	}
	if c.Pending == nil {
		c.Pending = map[string]string{}
	}
	return &c, nil
}

func (s *FileStore) writePending(c *pendingContent) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return safefile.Write(s.PendingPath(), append(b, '\n'), 0o600)
}

// SavePending implements PendingStore; the caller should hold Lock.
func (s *FileStore) SavePending(_ context.Context, pbx string, p *Pending) error {
	c, err := s.readPending()
	if err != nil {
		return err
	}
	data, err := s.sealer.sealPending(pbx, p)
	if err != nil {
		return fmt.Errorf("encode authorization in progress: %w", err)
	}
	c.Pending[pbx] = data
	return s.writePending(c)
}

// LoadPending implements PendingStore.
func (s *FileStore) LoadPending(_ context.Context, pbx string) (*Pending, error) {
	c, err := s.readPending()
	if err != nil {
		return nil, err
	}
	data, ok := c.Pending[pbx]
	if !ok {
		return nil, fmt.Errorf("%w for PBX %s in %s", ErrNoPending, pbx, s.PendingPath())
	}
	p, err := s.sealer.openPending(pbx, data)
	if errors.Is(err, errUnsealed) {
		return nil, refuseUnsealed("authorization in progress of PBX "+pbx, s.PendingPath(),
			fmt.Sprintf("delete the entry %q under \"pending\" in %s (or the file, when it holds no other)", pbx, s.PendingPath()))
	}
	return p, err
}

// DeletePending implements PendingStore; the caller should hold Lock.
func (s *FileStore) DeletePending(_ context.Context, pbx string) error {
	c, err := s.readPending()
	if err != nil {
		return err
	}
	if _, ok := c.Pending[pbx]; !ok {
		return nil
	}
	delete(c.Pending, pbx)
	if len(c.Pending) == 0 {
		if err := os.Remove(s.PendingPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", s.PendingPath(), err)
		}
		return nil
	}
	return s.writePending(c)
}
