package paging

import (
	"context"
	"slices"
	"sync"
	"time"
)

// slots bounds the requests in flight of a read by time windows, and
// grants a freed slot to the request of the earliest window waiting:
// windows are handed over in time order, so the pieces of a window that
// came back full go before windows read ahead of it, which could not be
// handed over before it anyway. Among requests of the same time, first
// come, first served.
type slots struct {
	mu      sync.Mutex
	free    int
	waiting []*slotWait // by at, then by arrival
}

type slotWait struct {
	at    time.Time
	ready chan struct{} // closed when the slot is granted
}

func newSlots(n int) *slots { return &slots{free: max(1, n)} }

// acquire waits for a slot for a request of the window starting at at,
// or for ctx to end (its cause is returned; no slot is then held).
func (s *slots) acquire(ctx context.Context, at time.Time) error {
	s.mu.Lock()
	if s.free > 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	w := &slotWait{at: at, ready: make(chan struct{})}
	i, _ := slices.BinarySearchFunc(s.waiting, at, func(x *slotWait, at time.Time) int {
		if x.at.After(at) {
			return 1
		}
		return -1 // equal times: after those already waiting
	})
	s.waiting = slices.Insert(s.waiting, i, w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		if i := slices.Index(s.waiting, w); i >= 0 {
			s.waiting = slices.Delete(s.waiting, i, i+1)
			s.mu.Unlock()
			return context.Cause(ctx)
		}
		s.mu.Unlock()
		s.release() // granted as ctx ended: handed on
		return context.Cause(ctx)
	}
}

// release frees a slot: to the earliest request waiting, if any.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiting) == 0 {
		s.free++
		return
	}
	w := s.waiting[0]
	s.waiting = s.waiting[1:]
	close(w.ready)
}
