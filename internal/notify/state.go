package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// State is what Tracker remembers of a PBX between runs and processes.
type State struct {
	UpdatedAt    time.Time `json:"updated_at"`
	Failing      bool      `json:"failing"`
	Signature    string    `json:"signature,omitempty"` // which failure: exit code and endpoints
	Meaning      string    `json:"meaning,omitempty"`   // the failure's meaning, for the recovery
	FailingSince time.Time `json:"failing_since,omitzero"`
	FailedRuns   int       `json:"failed_runs,omitempty"`
	LastSent     time.Time `json:"last_sent,omitzero"`    // when the failure was last sent
	SummaryDay   string    `json:"summary_day,omitempty"` // the local day the last summary was sent
	// Days tallies the runs of the last two local days, for the summary:
	// every run, including those that failed before the ledger could
	// record them.
	Days []Tally `json:"days,omitempty"`
}

// Tally is one local day's runs.
type Tally struct {
	Day        string `json:"day"`
	RunsOK     int    `json:"runs_ok"`
	RunsFailed int    `json:"runs_failed"`
	// RunsWarned: runs that ended well with a warning (Outcome.warned),
	// counted in neither of the others (review 42, R42-4).
	RunsWarned int           `json:"runs_warned,omitempty"`
	Endpoints  []EndpointDay `json:"endpoints,omitempty"`
}

// count adds a run's outcome to the tally of its day, keeping the two
// newest days.
func (s *State) count(day string, o Outcome) {
	i := slices.IndexFunc(s.Days, func(t Tally) bool { return t.Day == day })
	if i < 0 {
		s.Days = append(s.Days, Tally{Day: day})
		slices.SortFunc(s.Days, func(a, b Tally) int { return strings.Compare(b.Day, a.Day) })
		s.Days = s.Days[:min(len(s.Days), 2)]
		if i = slices.IndexFunc(s.Days, func(t Tally) bool { return t.Day == day }); i < 0 {
			return // older than the two kept
		}
	}
	t := &s.Days[i]
	switch {
	case !o.OK:
		t.RunsFailed++
	case o.warned():
		t.RunsWarned++
	default:
		t.RunsOK++
	}
	for _, r := range o.Results {
		j := slices.IndexFunc(t.Endpoints, func(e EndpointDay) bool { return e.Endpoint == r.Endpoint })
		if j < 0 {
			t.Endpoints = append(t.Endpoints, EndpointDay{Endpoint: r.Endpoint})
			j = len(t.Endpoints) - 1
		}
		e := &t.Endpoints[j]
		e.Rows += r.Rows
		switch {
		case r.Failed:
			e.RunsFailed++
		case r.Warned:
			e.RunsWarned++
		default:
			e.RunsOK++
		}
	}
}

// warned reports whether a result of the run has a warning
// (EndpointOutcome.Warned).
func (o Outcome) warned() bool {
	return slices.ContainsFunc(o.Results, func(r EndpointOutcome) bool { return r.Warned })
}

// tally returns the day's tally, empty when no run was counted.
func (s *State) tally(day string) Tally {
	for _, t := range s.Days {
		if t.Day == day {
			return t
		}
	}
	return Tally{Day: day}
}

// StateStore keeps State per PBX. LoadState returns the zero State and no
// error when nothing was saved for the PBX yet.
type StateStore interface {
	LoadState(ctx context.Context, pbx string) (State, error)
	SaveState(ctx context.Context, pbx string, s State) error
	String() string // where, for the log
}

// FileState keeps the states of every PBX in one JSON file (0600),
// written by temporary file and rename under a lock file beside it: the
// store beside a token file (the token file's path plus ".notify"), and
// the local fallback when the database is unreachable.
type FileState struct {
	Path string
}

type stateFile struct {
	Version int              `json:"version"`
	States  map[string]State `json:"states"`
}

func (f *FileState) String() string { return "file " + f.Path }

// LoadState implements StateStore.
func (f *FileState) LoadState(_ context.Context, pbx string) (State, error) {
	c, err := f.read()
	if err != nil {
		return State{}, err
	}
	return c.States[pbx], nil
}

func (f *FileState) read() (*stateFile, error) {
	c := &stateFile{Version: 1, States: map[string]State{}}
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read notification state: %w", err)
	}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("read notification state %s: %w", f.Path, err)
	}
	if c.States == nil {
		c.States = map[string]State{}
	}
	return c, nil
}

// SaveState implements StateStore.
func (f *FileState) SaveState(ctx context.Context, pbx string, s State) error {
	lock := safefile.NewLock(f.Path+".lock", 0o600)
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := lock.Wait(lctx, 20*time.Millisecond); err != nil {
		return fmt.Errorf("save notification state: %w", err)
	}
	defer lock.Unlock()
	c, err := f.read()
	if err != nil {
		return err
	}
	c.States[pbx] = s
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := safefile.Write(f.Path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save notification state: %w", err)
	}
	return nil
}

// PostgresState keeps State in the table notify_state of a schema, one
// row per PBX, beside the token table. The table is created by the
// versioned migrations (sinks.Postgres.Migrate), which must have run.
type PostgresState struct {
	Pool   *pgxpool.Pool
	Schema string
}

func (p *PostgresState) table() string { return pgx.Identifier{p.Schema, "notify_state"}.Sanitize() }

func (p *PostgresState) String() string { return "table " + p.Schema + ".notify_state" }

// LoadState implements StateStore.
func (p *PostgresState) LoadState(ctx context.Context, pbx string) (State, error) {
	var s State
	err := p.Pool.QueryRow(ctx, "SELECT state FROM "+p.table()+" WHERE pbx = $1", pbx).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("load notification state from %s: %w", p, err)
	}
	return s, nil
}

// SaveState implements StateStore.
func (p *PostgresState) SaveState(ctx context.Context, pbx string, s State) error {
	_, err := p.Pool.Exec(ctx, "INSERT INTO "+p.table()+` (pbx, state, updated_at) VALUES ($1, $2, now())
ON CONFLICT (pbx) DO UPDATE SET state = EXCLUDED.state, updated_at = now()`, pbx, s)
	if err != nil {
		return fmt.Errorf("save notification state to %s: %w", p, err)
	}
	return nil
}
