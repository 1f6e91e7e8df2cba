package paging

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestSlotsGrantTheEarliestWindowFirst: with every slot taken, freed
// slots go to the requests of the earliest windows waiting, those of the
// same time in arrival order, whatever order they came in; a request
// whose context ends stops waiting, holds no slot and is skipped.
func TestSlotsGrantTheEarliestWindowFirst(t *testing.T) {
	t.Parallel()
	s := newSlots(2)
	ctx := context.Background()
	for range 2 {
		if err := s.acquire(ctx, time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	granted := make(chan string, 8)
	wait := func(name string, at int64, ctx context.Context) {
		n := s.queued()
		go func() {
			if err := s.acquire(ctx, time.Unix(at, 0)); err != nil {
				granted <- name + " " + err.Error()
				return
			}
			granted <- name
		}()
		for s.queued() == n { // each in its place before the next comes
			runtime.Gosched()
		}
	}
	gone, cancel := context.WithCancelCause(ctx)
	wait("late", 30, ctx)
	wait("early", 10, ctx)
	wait("cancelled", 5, gone)
	wait("middle", 20, ctx)
	wait("early too", 10, ctx)
	cancel(errors.New("stopped"))
	if got := <-granted; got != "cancelled stopped" {
		t.Fatalf("got %q first, want the cancelled request's error", got)
	}
	for _, want := range []string{"early", "early too", "middle", "late"} {
		s.release()
		if got := <-granted; got != want {
			t.Fatalf("slot granted to %q, want %q", got, want)
		}
	}
	// Two slots held by the last two granted; one freed is free again.
	s.release()
	if err := s.acquire(ctx, time.Unix(99, 0)); err != nil {
		t.Fatal(err)
	}
	if s.queued() != 0 || s.free != 0 {
		t.Fatalf("%d waiting, %d free, want none", s.queued(), s.free)
	}
}

// queued is how many requests wait for a slot.
func (s *slots) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}
