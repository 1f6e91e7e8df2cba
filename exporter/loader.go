package exporter

import (
	"context"
	"sync/atomic"
	"time"
)

// loader runs an endpoint's sink operations (begin, write, commit) on a
// goroutine of its own, in order, so that fetching and converting go on
// while the sink writes and commits: the database's time and the PBX's
// time overlap instead of adding up. The queue is short, so memory stays
// bounded: a slow sink holds the producer back.
//
// The operations get a context that outlives the run's context by grace:
// after a SIGTERM, rows already queued are still written and the batch in
// flight can commit; when grace is over, the operations are cancelled.
type loader struct {
	ops    chan func(ctx context.Context) error
	done   chan struct{}
	err    error // the first error; set by the goroutine, read after done
	bad    atomic.Bool
	ctx    context.Context
	cancel context.CancelFunc
	stop   func() bool
}

// queueDepth is how many sink operations may wait: about that many pages.
const queueDepth = 4

func newLoader(ctx context.Context, grace time.Duration) *loader {
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &loader{ops: make(chan func(context.Context) error, queueDepth), done: make(chan struct{}), ctx: lctx, cancel: cancel}
	l.stop = context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	go l.run()
	return l
}

func (l *loader) run() {
	defer close(l.done)
	for op := range l.ops {
		if l.err != nil {
			continue // drain: after a failure nothing more is applied
		}
		if l.err = op(l.ctx); l.err != nil {
			l.bad.Store(true)
		}
	}
}

// do queues an operation. It reports false when the loader has already
// failed (the producer should stop) or gave up waiting for grace.
func (l *loader) do(op func(ctx context.Context) error) bool {
	select {
	case l.ops <- op:
		return true
	case <-l.ctx.Done():
		return false
	}
}

// failed reports, without waiting, whether an operation has failed.
func (l *loader) failed() bool { return l.bad.Load() }

// wait closes the queue, waits for the operations to finish, and returns
// the first error.
func (l *loader) wait() error {
	close(l.ops)
	<-l.done
	l.stop()
	l.cancel()
	return l.err
}
