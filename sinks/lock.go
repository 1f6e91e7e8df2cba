package sinks

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// ErrLocked means another export of the same PBX holds its lock.
var ErrLocked = errors.New("another export of this PBX is running")

// LockPBX takes the PBX's export lock without waiting: an exclusive file
// lock on Dir/.state/<pbx>/export.lock, released by unlock or when the
// process ends (however it ends). It returns ErrLocked when another
// process holds it.
func (s *CSV) LockPBX(_ context.Context, pbx string) (_ func(), err error) {
	defer func() { err = s.advise(err) }()
	dir, err := s.mkStateDir(pbx)
	if err != nil {
		return nil, fmt.Errorf("lock PBX: %w", err)
	}
	l := safefile.NewLock(filepath.Join(dir, "export.lock"), fileMode)
	ok, err := l.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock PBX: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("%w (lock file %s)", ErrLocked, l.Path())
	}
	return func() { l.Unlock() }, nil
}
