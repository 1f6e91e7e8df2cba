package sinks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrLocked means another export of the same PBX holds its lock.
var ErrLocked = errors.New("another export of this PBX is running")

// LockPBX takes the PBX's export lock without waiting: an exclusive flock
// on Dir/.state/<pbx>/export.lock, released by unlock or when the process
// ends (however it ends). It returns ErrLocked when another process holds it.
func (s *CSV) LockPBX(_ context.Context, pbx string) (func(), error) {
	dir := s.stateDir(pbx)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock PBX: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "export.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock PBX: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock file %s)", ErrLocked, f.Name())
		}
		return nil, fmt.Errorf("lock PBX: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
