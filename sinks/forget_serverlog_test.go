package sinks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pgtest"
)

// serverLogNumber is the number the tests below erase: one no other test
// writes, so that the server's log holding it is theirs.
const serverLogNumber = "+39 347 215 9068"

// loggingDB is a scratch database (forget2_…) whose sessions log every
// statement (log_min_duration_statement = 0, set for the database, as a
// managed server logging slow queries does), holding a migrated sink
// (schema export) whose rows mention serverLogNumber. It is dropped at
// cleanup. admin is a superuser's connection to another database.
func loggingDB(t *testing.T) (name string, admin *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.URL())
	if err != nil {
		t.Fatalf("PostgreSQL at %s is unreachable: %v", pgtest.URL(), err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	b := make([]byte, 5)
	rand.Read(b)
	name = "forget2_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	pool := dbPool(t, name, "")
	p := NewPostgres(pool, "export", nil)
	if err := p.Migrate(ctx, record.Builtin()); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO export.export_state (pbx, key, state) VALUES ('x', 'test', '{"last":"+39 347 2159068"}')`,
		`INSERT INTO export.export_quarantine (pbx, endpoint, key, run_id, field, error, record) VALUES ('x', 'call_history', '9', 'r1', 'cost', 'bad', '{"src":"00393472159068","from_name":"Q"}')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	pool.Close()
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+name+" SET log_min_duration_statement = 0"); err != nil {
		t.Fatal(err)
	}
	return name, admin
}

// dbPool is a pool on database db as role (the URL's when "").
func dbPool(t *testing.T, db, role string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Database = db
	if role != "" {
		cfg.ConnConfig.User = role
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// serverLog reads what the server writes into its log from now on,
// through admin (a superuser: pg_read_file): the logging collector's
// file, or else the file the server's stderr goes to, as on Debian
// (/var/log/postgresql/…, pg_ctlcluster).
type serverLogTail struct {
	admin *pgx.Conn
	path  string
	from  int64
}

func tailServerLog(t *testing.T, admin *pgx.Conn) *serverLogTail {
	t.Helper()
	ctx := context.Background()
	var cur *string
	if err := admin.QueryRow(ctx, "SELECT pg_current_logfile()").Scan(&cur); err != nil {
		t.Fatal(err)
	}
	l := &serverLogTail{admin: admin, path: "/proc/self/fd/2"}
	if cur != nil {
		l.path = *cur
	}
	l.from = l.size(t)
	return l
}

func (l *serverLogTail) size(t *testing.T) int64 {
	t.Helper()
	var n int64
	if err := l.admin.QueryRow(context.Background(), "SELECT (pg_stat_file($1)).size", l.path).Scan(&n); err != nil {
		t.Fatalf("read the server's log %s: %v", l.path, err)
	}
	return n
}

// text is what the server logged since tailServerLog, once its log has
// stopped growing a moment (the server writes it after replying).
func (l *serverLogTail) text(t *testing.T) string {
	t.Helper()
	n := l.size(t)
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		m := l.size(t)
		if m == n {
			break
		}
		n = m
	}
	var s string
	if err := l.admin.QueryRow(context.Background(), "SELECT pg_read_file($1, $2, $3)", l.path, l.from, n-l.from).Scan(&s); err != nil {
		t.Fatalf("read the server's log %s: %v", l.path, err)
	}
	return s
}

// noNumber fails when log holds f in a form forget sends: a clear form,
// its search pattern, or a statement's parameters logged in db.
func noNumber(t *testing.T, log, db string, f *Forgotten) {
	t.Helper()
	for _, d := range append(f.ClearForms(), f.pattern()) {
		if strings.Contains(log, d) {
			t.Errorf("the server's log holds the number (%.40s…)", d)
		}
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "@"+db+" ") && strings.Contains(line, "parameters: $") {
			t.Errorf("the server logged parameters in %s: %.200s", db, line)
		}
	}
}

// TestForgetKeepsTheNumberOutOfTheServerLog (attack10 F1): on a database
// logging every statement, forget's statements (the extension check, the
// dry run's search, the erasure and its last search) reach the server's
// log without the number: its parameters are not logged, and no
// statement's text holds it.
//
// With default_query_exec_mode=simple_protocol in the URL (usual behind
// pgbouncer), pgx would write the parameters into the statement's text,
// which log_parameter_max_length = 0 does not hide: forget sends them
// with the extended protocol all the same (R46-1 HIGH).
func TestForgetKeepsTheNumberOutOfTheServerLog(t *testing.T) {
	for _, mode := range []string{"", "simple_protocol"} {
		t.Run("mode="+mode, func(t *testing.T) { forgetKeepsTheNumberOutOfTheServerLog(t, mode) })
	}
}

// forgetKeepsTheNumberOutOfTheServerLog is the test above with the pool's
// default_query_exec_mode set to mode (the URL's when "").
func forgetKeepsTheNumberOutOfTheServerLog(t *testing.T, mode string) {
	db, admin := loggingDB(t)
	ctx := context.Background()
	f, err := NewForgotten(serverLogNumber)
	if err != nil {
		t.Fatal(err)
	}
	log := tailServerLog(t, admin)
	pool := dbPool(t, db, "")
	if mode != "" {
		url := strings.Replace(pgtest.URL(), "/test", "/"+db, 1)
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		var err error
		if pool, err = Connect(ctx, url+sep+"default_query_exec_mode="+mode); err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		if c := pool.Config().ConnConfig; c.DefaultQueryExecMode != pgx.QueryExecModeSimpleProtocol || c.Database != db {
			t.Fatalf("the pool (database %s, mode %v) is not in simple_protocol mode on %s: fix the test's URL", c.Database, c.DefaultQueryExecMode, db)
		}
	}
	p := NewPostgres(pool, "export", nil)
	if _, err := p.ForgetExtensions(ctx, f); err != nil {
		t.Fatal(err)
	}
	found, err := p.ForgetFind(ctx, f, record.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if found.Rows() < 2 {
		t.Fatalf("the search found %+v: want the state's and the quarantine's rows", found.Places)
	}
	done, err := p.ForgetErase(ctx, "x", f, record.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if done.Rows() < 2 {
		t.Fatalf("the erasure erased %+v: want the state's and the quarantine's rows", done.Places)
	}
	text := log.text(t)
	for _, want := range []string{"t::text ~ ", "extension = ANY(", "UPDATE "} {
		if !strings.Contains(text, want) {
			t.Fatalf("the server's log (%s) does not hold forget's statements (%q): the test reads the wrong log", log.path, want)
		}
	}
	noNumber(t, text, db, f)
}

// TestForgetKeepsTheNumberOutOfAutoExplain (attack11 F1): with
// auto_explain logging the plan of every statement, forget's plans (the
// extension check, the search, the erasure) hold no value of the number:
// a custom plan would write its parameters as constants.
func TestForgetKeepsTheNumberOutOfAutoExplain(t *testing.T) {
	db, admin := loggingDB(t)
	ctx := context.Background()
	for _, q := range []string{
		"ALTER DATABASE " + db + " SET session_preload_libraries = 'auto_explain'",
		"ALTER DATABASE " + db + " SET auto_explain.log_min_duration = 0",
		"ALTER DATABASE " + db + " RESET log_min_duration_statement",
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	f, err := NewForgotten(serverLogNumber)
	if err != nil {
		t.Fatal(err)
	}
	log := tailServerLog(t, admin)
	p := NewPostgres(dbPool(t, db, ""), "export", nil)
	if _, err := p.ForgetExtensions(ctx, f); err != nil {
		t.Fatal(err)
	}
	if found, err := p.ForgetFind(ctx, f, record.Builtin()); err != nil || found.Rows() < 2 {
		t.Fatalf("the search found %v (%v): want the state's and the quarantine's rows", found, err)
	}
	if done, err := p.ForgetErase(ctx, "x", f, record.Builtin()); err != nil || done.Rows() < 2 {
		t.Fatalf("the erasure erased %v (%v): want the state's and the quarantine's rows", done, err)
	}
	text := log.text(t)
	if !strings.Contains(text, "Query Text:") || !strings.Contains(text, "extension = ANY(") {
		t.Fatalf("the server's log (%s) holds no plan of forget's statements: the test reads the wrong log, or auto_explain is not loaded", log.path)
	}
	noNumber(t, text, db, f)
}

// TestForgetRefusedWhenTheServerWouldLogTheNumber (attack10 F1): a role
// that may not set log_parameter_max_length, on a database logging every
// statement, is refused (record.ErrConfig, exit 2) before any statement
// carrying the number, by the extension check, the search and the
// erasure, the message naming the settings and what to do; ALTER ROLE
// … SET log_parameter_max_length = 0, as it says, lets it search.
func TestForgetRefusedWhenTheServerWouldLogTheNumber(t *testing.T) {
	db, admin := loggingDB(t)
	ctx := context.Background()
	b := make([]byte, 5)
	rand.Read(b)
	role := "forget2_r_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // the database first: the role's privileges there go with it
		if _, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", db, err)
		}
		if _, err := admin.Exec(context.Background(), "DROP ROLE "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	grant := dbPool(t, db, "")
	for _, q := range []string{"GRANT ALL ON SCHEMA export TO " + role, "GRANT ALL ON ALL TABLES IN SCHEMA export TO " + role} {
		if _, err := grant.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	grant.Close()
	f, err := NewForgotten(serverLogNumber)
	if err != nil {
		t.Fatal(err)
	}
	log := tailServerLog(t, admin)
	p := NewPostgres(dbPool(t, db, role), "export", nil)
	_, errExt := p.ForgetExtensions(ctx, f)
	_, errFind := p.ForgetFind(ctx, f, record.Builtin())
	_, errErase := p.ForgetErase(ctx, "x", f, record.Builtin())
	for _, err := range []error{errExt, errFind, errErase} {
		if !errors.Is(err, record.ErrConfig) {
			t.Fatalf("forget as %s on a database logging statements: %v, want a refusal (record.ErrConfig)", role, err)
		}
		for _, want := range []string{"log_min_duration_statement=0", "log_parameter_max_length=-1", role, "ALTER ROLE \"" + role + "\" SET log_parameter_max_length = 0", "GRANT SET ON PARAMETER"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the refusal does not say %q: %v", want, err)
			}
		}
	}
	noNumber(t, log.text(t), db, f)

	if _, err := admin.Exec(ctx, "ALTER ROLE "+role+" SET log_parameter_max_length = 0"); err != nil {
		t.Fatal(err)
	}
	log = tailServerLog(t, admin)
	p = NewPostgres(dbPool(t, db, role), "export", nil)
	found, err := p.ForgetFind(ctx, f, record.Builtin())
	if err != nil {
		t.Fatalf("forget as %s with log_parameter_max_length = 0 for the role: %v", role, err)
	}
	if found.Rows() < 2 {
		t.Fatalf("the search found %+v: want the state's and the quarantine's rows", found.Places)
	}
	text := log.text(t)
	if !strings.Contains(text, "t::text ~ $1") {
		t.Fatalf("the server's log (%s) does not hold forget's search: the test reads the wrong log", log.path)
	}
	noNumber(t, text, db, f)
}

// TestServerLogLogsStatements: which settings make the server log a
// statement (its parameters then logged unless log_parameter_max_length
// is 0).
func TestServerLogLogsStatements(t *testing.T) {
	quietServer := serverLog{"log_statement": "none", "log_min_duration_statement": "-1", "log_min_duration_sample": "-1",
		"log_statement_sample_rate": "1", "log_transaction_sample_rate": "0"}
	with := func(kv ...string) serverLog {
		s := serverLog{}
		for n, x := range quietServer {
			s[n] = x
		}
		for i := 0; i+1 < len(kv); i += 2 {
			s[kv[i]] = kv[i+1]
		}
		return s
	}
	for _, c := range []struct {
		s    serverLog
		logs bool
	}{
		{quietServer, false},
		{with("log_statement", "ddl"), false},
		{with("log_statement", "mod"), true},
		{with("log_statement", "all"), true},
		{with("log_min_duration_statement", "0"), true},
		{with("log_min_duration_statement", "250"), true},
		{with("log_min_duration_sample", "0"), true},
		{with("log_min_duration_sample", "0", "log_statement_sample_rate", "0"), false},
		{with("log_transaction_sample_rate", "0.01"), true},
		{with("log_min_duration_statement", ""), true}, // not readable: taken as logging
		{serverLog{}, true},
	} {
		if got := c.s.logsStatements(true); got != c.logs {
			t.Errorf("%v: logsStatements(modifies) %v, want %v", c.s, got, c.logs)
		}
		// A connection only searching (the dry run, the extension check):
		// log_statement = mod logs no SELECT (R46-6 LOW).
		if want := c.logs && c.s["log_statement"] != "mod"; c.s.logsStatements(false) != want {
			t.Errorf("%v: logsStatements(searches only) %v, want %v", c.s, !want, want)
		}
	}
}

// TestServerLogQuietOnError (R46-9 LOW): log_parameter_max_length_on_error
// is set to 0 when it is not 0, and left alone where the server lacks it
// (PostgreSQL 12 or older: no failed statement's parameter is logged),
// where setting it would fail every forget.
func TestServerLogQuietOnError(t *testing.T) {
	for _, c := range []struct {
		s    serverLog
		want bool
	}{
		{serverLog{"log_parameter_max_length_on_error": "0"}, false},
		{serverLog{"log_parameter_max_length_on_error": "-1"}, true},
		{serverLog{"log_parameter_max_length_on_error": "64"}, true},
		{serverLog{}, false},
	} {
		if got := c.s.quietOnError(); got != c.want {
			t.Errorf("%v: quietOnError %v, want %v", c.s, got, c.want)
		}
	}
}

// TestForgetFailedStatementKeepsTheNumberOutOfTheServerLog (attack10 F1):
// on a database logging no statement but a failed statement's parameters
// (log_parameter_max_length_on_error = -1, which any role may set), a
// search failing after the number is sent (a table the role may write
// but not read) leaves the number out of the server's log: forget sets it
// to 0 for its session, as any role may.
func TestForgetFailedStatementKeepsTheNumberOutOfTheServerLog(t *testing.T) {
	db, admin := loggingDB(t)
	ctx := context.Background()
	for _, q := range []string{"ALTER DATABASE " + db + " RESET log_min_duration_statement", "ALTER DATABASE " + db + " SET log_parameter_max_length_on_error = -1"} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	b := make([]byte, 5)
	rand.Read(b)
	role := "forget2_r_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // the database first: the role's privileges there go with it
		if _, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", db, err)
		}
		if _, err := admin.Exec(context.Background(), "DROP ROLE "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	grant := dbPool(t, db, "")
	for _, q := range []string{"GRANT USAGE ON SCHEMA export TO " + role, "GRANT INSERT ON export.export_state TO " + role} {
		if _, err := grant.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	grant.Close()
	f, err := NewForgotten(serverLogNumber)
	if err != nil {
		t.Fatal(err)
	}
	log := tailServerLog(t, admin)
	p := NewPostgres(dbPool(t, db, role), "export", nil)
	if _, err := p.ForgetFind(ctx, f, record.Builtin()); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("the search as %s, who may not read export_state: %v, want it refused by the server", role, err)
	}
	text := log.text(t)
	if !strings.Contains(text, "permission denied for table export_state") {
		t.Fatalf("the server's log (%s) does not hold the failed search: the test reads the wrong log", log.path)
	}
	noNumber(t, text, db, f)
}

// TestForgetListAndJournalStayOutOfTheServerLog (R46-3 MEDIUM): on a
// database logging every statement, the suppression list forget writes
// (its random key, the number's hash) and the forget journal (the
// number's tag) reach the server's log as statements without their
// parameters.
func TestForgetListAndJournalStayOutOfTheServerLog(t *testing.T) {
	db, admin := loggingDB(t)
	ctx := context.Background()
	f, err := NewForgotten(serverLogNumber)
	if err != nil {
		t.Fatal(err)
	}
	log := tailServerLog(t, admin)
	p := NewPostgres(dbPool(t, db, ""), "export", nil)
	f.ListUnder(nil, true)
	tag, _, err := p.Suppress(ctx, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.BeginForget(ctx, ForgetBegun{ID: "forget3-run", PBX: "x", Started: time.Now(), Tag: tag}); err != nil {
		t.Fatal(err)
	}
	l, err := p.Suppression(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Key) == 0 {
		t.Fatalf("the list has no random key of its own: the test proves nothing")
	}
	text := log.text(t)
	for _, want := range []string{"UPDATE ", "INSERT INTO "} {
		if !strings.Contains(text, want) {
			t.Fatalf("the server's log (%s) does not hold the list's and the journal's writes (%q): the test reads the wrong log", log.path, want)
		}
	}
	// The list's reads (its constant row names as parameters) may be
	// logged; what it holds may not.
	key, _ := json.Marshal(l.Key)
	for _, secret := range append(f.ClearForms(), f.pattern(), strings.Trim(string(key), `"`), tag) {
		if strings.Contains(text, secret) {
			t.Errorf("the server's log holds the list's key or the number's tag (%.8s…)", secret)
		}
	}
}
