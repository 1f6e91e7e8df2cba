package exporter

import (
	"context"
	"fmt"
	"time"

	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// committer owns one endpoint's batches: it begins a batch when rows or a
// state first need one, writes rows, commits them with the state that
// covers them, and aborts what is left open at the end. Its sink
// operations run in order on a loader goroutine, so fetching goes on while
// the sink writes; the producer (a policy) only queues them.
//
// A policy reads the outcome (rows committed, the last state committed)
// from close, after the loader has stopped.
type committer struct {
	x    *Exporter
	info BatchInfo // template of each batch, never changed; Seq is set per batch
	n    *paging.Counters
	l    *loader

	// The loader goroutine's, read by the producer only after close.
	batch     Batch
	seq       int
	committed int64 // rows committed
	state     []byte

	queued int64 // rows queued since the last commit (producer side)
}

func (x *Exporter) newCommitter(ctx context.Context, info BatchInfo, n *paging.Counters, grace time.Duration) *committer {
	return &committer{x: x, info: info, n: n, l: newLoader(ctx, grace)}
}

func (c *committer) begin(ctx context.Context) error {
	if c.batch != nil {
		return nil
	}
	info := c.info
	info.Seq += c.seq + 1
	b, err := c.x.Sink.Begin(ctx, info)
	if err != nil {
		return fmt.Errorf("begin batch %d: %w", info.Seq, err)
	}
	c.batch, c.seq = b, c.seq+1
	return nil
}

// failed reports, without waiting, whether a sink operation has failed.
func (c *committer) failed() bool { return c.l.failed() }

// pending is the number of rows queued since the last commit.
func (c *committer) pending() int64 { return c.queued }

// write queues rows, once the Exporter's Guard has seen them (here, on
// the producer's side, so that every policy's rows pass it and none is
// read while it is changed). It reports false when the guard or the sink
// has failed or the grace period is over: the producer should stop.
func (c *committer) write(rows []record.Row) bool {
	if c.x.Guard != nil && len(rows) > 0 {
		in := len(rows)
		kept, err := c.x.Guard.Rows(c.info.Endpoint, rows, &c.n.Warnings)
		if err != nil {
			c.l.do(func(context.Context) error { return fmt.Errorf("apply the privacy settings to %d rows: %w", in, err) })
			return false
		}
		rows = kept
	}
	if len(rows) == 0 {
		return !c.l.failed()
	}
	c.queued += int64(len(rows))
	return c.l.do(func(ctx context.Context) error {
		if err := c.begin(ctx); err != nil {
			return err
		}
		return c.batch.Write(ctx, rows)
	})
}

// commit queues the commit of the rows queued so far with state, which
// must describe exactly what they and every earlier commit cover. A commit
// with no rows still stores the state (a cursor moved over records that
// were all filtered out or already there).
func (c *committer) commit(state []byte) bool {
	rows := c.queued
	c.queued = 0
	return c.l.do(func(ctx context.Context) error {
		if err := c.begin(ctx); err != nil {
			return err
		}
		if err := c.batch.Commit(ctx, state, progress(c.n, c.committed+rows)); err != nil {
			// The batch stays for close to abort: a failed commit may have
			// left its transaction or files open.
			return fmt.Errorf("commit batch %d: %w", c.info.Seq+c.seq, err)
		}
		c.batch = nil
		c.committed += rows
		c.state = state
		return nil
	})
}

// close waits for the queued operations, aborts a batch left open (its
// rows were never covered by a state), and returns the rows committed, the
// last state committed (nil if none) and the sink's first error.
func (c *committer) close(ctx context.Context) (rows int64, state []byte, err error) {
	err = c.l.wait()
	if c.batch != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		c.batch.Abort(actx)
		c.batch = nil
	}
	return c.committed, c.state, err
}
