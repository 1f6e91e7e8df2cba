package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// failingSink is a hand-written sink whose batches fail where the test
// says; it records what was committed. Calls no test expects panic.
type failingSink struct {
	mu         sync.Mutex
	failBegin  int                             // the n-th Begin fails (1-based), 0 never
	failWrite  int                             // the n-th Write fails, 0 never
	failCommit int                             // the n-th Commit fails, 0 never
	commit     func(ctx context.Context) error // when set, runs in each Commit
	begins     int                             // Begins so far
	writes     int                             // Writes so far
	commits    int                             // Commit calls so far
	aborts     int                             // Aborts of batches never committed
	state      []byte                          // the last state committed
	rows       int64                           // rows committed
	seqs       []int                           // BatchInfo.Seq of each Begin
}

var errSink = errors.New("disk full")

func (s *failingSink) State(context.Context, string, string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, nil
}

func (s *failingSink) Begin(_ context.Context, b BatchInfo) (Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.begins++
	s.seqs = append(s.seqs, b.Seq)
	if s.begins == s.failBegin {
		return nil, errSink
	}
	return &failingBatch{s: s}, nil
}

func (s *failingSink) LockPBX(context.Context, string) (func(), error) {
	panic("LockPBX is not the exporter's to call")
}
func (s *failingSink) StartRun(context.Context, *RunResult) error  { return nil }
func (s *failingSink) FinishRun(context.Context, *RunResult) error { return nil }

type failingBatch struct {
	s    *failingSink
	rows int64
	done bool
}

func (b *failingBatch) Write(_ context.Context, rows []record.Row) error {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	b.s.writes++
	if b.s.writes == b.s.failWrite {
		return errSink
	}
	b.rows += int64(len(rows))
	return nil
}

func (b *failingBatch) Commit(ctx context.Context, state []byte, _ Progress) error {
	b.s.mu.Lock()
	b.s.commits++
	n, hook := b.s.commits, b.s.commit
	b.s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx); err != nil {
			return err
		}
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if n == b.s.failCommit {
		return errSink
	}
	b.s.state, b.s.rows, b.done = state, b.s.rows+b.rows, true
	return nil
}

func (b *failingBatch) Abort(context.Context) error {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if !b.done {
		b.s.aborts++
	}
	return nil
}

func rowsN(n int) []record.Row { return make([]record.Row, n) }

// TestCommitter drives the committer and its loader through a sink that
// fails at each step: what was committed before the failure stays, the
// failing batch is aborted, and close returns the sink's error once.
func TestCommitter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		fail       [3]int // the n-th Begin, Write, Commit fails
		wantErr    string
		wantRows   int64
		wantState  string
		wantAborts int
	}{
		{name: "all well", wantRows: 30, wantState: "s3"},
		{name: "first begin fails", fail: [3]int{1, 0, 0}, wantErr: "begin batch 1: disk full"},
		{name: "second begin fails", fail: [3]int{2, 0, 0}, wantErr: "begin batch 2: disk full", wantRows: 10, wantState: "s1"},
		{name: "third write fails", fail: [3]int{0, 3, 0}, wantErr: "disk full", wantRows: 20, wantState: "s2", wantAborts: 1},
		{name: "second commit fails", fail: [3]int{0, 0, 2}, wantErr: "commit batch 2: disk full", wantRows: 10, wantState: "s1", wantAborts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &failingSink{failBegin: tc.fail[0], failWrite: tc.fail[1], failCommit: tc.fail[2]}
			x := &Exporter{Sink: s}
			c := x.newCommitter(context.Background(), BatchInfo{}, &paging.Counters{}, 0)
			for _, st := range []string{"s1", "s2", "s3"} {
				if !c.write(rowsN(10)) || !c.commit([]byte(st)) {
					break // the sink failed: the producer stops
				}
			}
			rows, state, err := c.close(context.Background())
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errSink)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if rows != tc.wantRows || s.rows != tc.wantRows || string(state) != tc.wantState || string(s.state) != tc.wantState {
				t.Fatalf("committed %d rows (sink %d), state %q (sink %q); want %d, %q", rows, s.rows, state, s.state, tc.wantRows, tc.wantState)
			}
			if s.aborts != tc.wantAborts {
				t.Fatalf("%d batches aborted, want %d", s.aborts, tc.wantAborts)
			}
			for i, seq := range s.seqs {
				if seq != i+1 {
					t.Fatalf("batch seqs %v, want 1, 2, …", s.seqs)
				}
			}
		})
	}
}

// TestLoaderGrace: once the run's context is cancelled (SIGTERM), the
// commit in flight may finish within the grace period; past it, the sink
// operation's context is cancelled and the error is returned.
func TestLoaderGrace(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		grace   time.Duration
		blocks  bool // the commit waits for its context to end
		wantErr error
	}{
		{name: "commit within the grace", grace: time.Minute},
		{name: "commit outlasting the grace", grace: 10 * time.Millisecond, blocks: true, wantErr: context.Canceled},
		{name: "no grace", grace: 0, blocks: true, wantErr: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			started := make(chan struct{})
			s := &failingSink{commit: func(ctx context.Context) error {
				close(started)
				if !tc.blocks {
					return ctx.Err() // as a database would refuse a cancelled context
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Minute):
					return errors.New("the grace period did not end the commit")
				}
			}}
			c := (&Exporter{Sink: s}).newCommitter(ctx, BatchInfo{}, &paging.Counters{}, tc.grace)
			if !c.write(rowsN(5)) {
				t.Fatal("write refused before any failure")
			}
			cancel() // SIGTERM: the rows are queued, the commit not yet
			c.commit([]byte("after-sigterm"))
			select {
			case <-started:
			case <-time.After(30 * time.Second):
				t.Fatal("the commit never ran after the cancel")
			}
			rows, state, err := c.close(context.Background())
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (rows != 5 || string(state) != "after-sigterm") {
				t.Fatalf("rows %d, state %q: want the batch committed within the grace", rows, state)
			}
			if tc.wantErr != nil && (rows != 0 || state != nil || s.aborts != 1) {
				t.Fatalf("rows %d, state %q, aborts %d: want nothing committed, the batch aborted", rows, state, s.aborts)
			}
		})
	}
}

// TestIncrementalSinkFailure: a sink failing at its second commit during an
// export over HTTP leaves the first batch and its cursor, and the
// endpoint's error is the sink's.
func TestIncrementalSinkFailure(t *testing.T) {
	t.Parallel()
	_, c := simClient(t, pbxsim.Options{Calls: 1000})
	s := &failingSink{failCommit: 2}
	x := &Exporter{Client: c, Sink: s, PBX: "pbx", PageSize: 100, Concurrency: 4, BatchSize: 300, MaxPages: 1000}
	r := x.Run(context.Background(), "r1", "once", record.Builtin()[:1]).Endpoints[0]
	if r.Err == nil || !errors.Is(r.Err, errSink) {
		t.Fatalf("err = %v, want the sink's", r.Err)
	}
	var st cursorState
	if err := json.Unmarshal(s.state, &st); err != nil || st.Cursor != 300 || r.Cursor != 300 || r.Rows != 300 || s.rows != 300 {
		t.Fatalf("state %s, result cursor %d rows %d, sink rows %d: want the first batch of 300 and its cursor", s.state, r.Cursor, r.Rows, s.rows)
	}
}
