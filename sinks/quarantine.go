package sinks

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// A row PostgreSQL refuses must never stop an export for good. The
// converter makes every value known to be refused storable
// (exporter/storable.go); this is the net under it, for what is not known
// yet. When a COPY is refused, the chunk is copied again in halves, inside
// savepoints, down to the rows refused alone: each goes to the table
// export_quarantine (pbx, endpoint, key, run_id, field, error, the record
// as text), is logged naming the endpoint, the key and the field, and is
// counted in the endpoint's notes in the run ledger; the rest of the batch
// commits. With Postgres.Strict, the first such row fails the batch
// instead, naming the same. The fast path pays one savepoint per chunk.

// refused returns err as PostgreSQL's refusal of a value of a row (a data
// exception, a value too large, a column's constraint), as opposed to the
// database failing or a key met twice.
func refused(err error) (*pgconn.PgError, bool) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil, false
	}
	c := pgErr.Code
	return pgErr, strings.HasPrefix(c, "22") || c == "54000" || c == "23502" || c == "23514"
}

// quarantined is a row kept out of its table.
type quarantined struct {
	key, field, err, record string
}

// copyProtected copies chunk c into table inside a savepoint; a refused
// COPY is settled by settleRefused. It returns the rows loaded.
func (b *pgBatch) copyProtected(ctx context.Context, table pgx.Identifier, c *copyChunk) (int64, error) {
	if _, err := b.tx.Exec(ctx, "SAVEPOINT chunk"); err != nil {
		return 0, err
	}
	return b.settleChunk(ctx, table, c, b.copyIn(ctx, table, c))
}

// settleChunk settles a COPY of chunk c into table made after "SAVEPOINT
// chunk" (err its outcome): kept, or, refused, undone and copied again by
// halves, the rows refused alone quarantined. It returns the rows loaded.
func (b *pgBatch) settleChunk(ctx context.Context, table pgx.Identifier, c *copyChunk, err error) (int64, error) {
	if err == nil {
		_, err = b.tx.Exec(ctx, "RELEASE SAVEPOINT chunk")
		return c.rows, err
	}
	if _, bad := refused(err); !bad {
		return 0, err
	}
	if err := b.undo(ctx, "chunk"); err != nil {
		return 0, err
	}
	return b.bisect(ctx, table, splitRows(c.data))
}

func (b *pgBatch) undo(ctx context.Context, savepoint string) error {
	if _, err := b.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+savepoint); err != nil {
		return err
	}
	_, err := b.tx.Exec(ctx, "RELEASE SAVEPOINT "+savepoint)
	return err
}

// bisect copies rows into table, each half on its own when the whole is
// refused, down to single rows, which are quarantined: one bad row among
// n costs about 2·log2(n) COPYs, and only after a COPY was refused.
func (b *pgBatch) bisect(ctx context.Context, table pgx.Identifier, rows [][]byte) (int64, error) {
	if _, err := b.tx.Exec(ctx, "SAVEPOINT bisect"); err != nil {
		return 0, err
	}
	parts := make([]io.Reader, 0, len(rows)+2)
	parts = append(parts, bytes.NewReader(copyHeader))
	for _, r := range rows {
		parts = append(parts, bytes.NewReader(r))
	}
	parts = append(parts, bytes.NewReader(copyTrailer))
	sql := fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", table.Sanitize(), strings.Join(quoted(b.cols), ", "))
	_, err := b.tx.Conn().PgConn().CopyFrom(ctx, io.MultiReader(parts...), sql)
	pgErr, bad := refused(err)
	switch {
	case err == nil:
		_, err = b.tx.Exec(ctx, "RELEASE SAVEPOINT bisect")
		return int64(len(rows)), err
	case !bad:
		return 0, err
	}
	if err := b.undo(ctx, "bisect"); err != nil {
		return 0, err
	}
	if len(rows) == 1 {
		return 0, b.quarantine(b.rowOf(rows[0], columnOf(pgErr)), pgErr)
	}
	n, err := b.bisect(ctx, table, rows[:len(rows)/2])
	if err != nil {
		return n, err
	}
	m, err := b.bisect(ctx, table, rows[len(rows)/2:])
	return n + m, err
}

// quarantine keeps q out of the table, to be saved at commit; with
// Strict, it fails the batch instead.
func (b *pgBatch) quarantine(q quarantined, cause error) error {
	if b.sink.Strict {
		return fmt.Errorf("%s: key %s, field %q: %w (EXPORT_STRICT is set: nothing of the batch is kept)", b.info.Endpoint.Name, pseudonym.ShownKey(q.key), q.field, cause)
	}
	q.err = cause.Error()
	b.quarantined = append(b.quarantined, q)
	b.sink.log.Warn("record quarantined: PostgreSQL refused it", "endpoint", b.info.Endpoint.Name, "run_id", b.info.RunID,
		"key", pseudonym.ShownKey(q.key), "field", q.field, "err", cause)
	return nil
}

// saveQuarantine stores the batch's quarantined rows, in its transaction:
// a record quarantined again replaces its earlier entry.
func (b *pgBatch) saveQuarantine(ctx context.Context) error {
	for _, q := range b.quarantined {
		if _, err := b.tx.Exec(ctx, "INSERT INTO "+b.sink.ident("export_quarantine")+` (pbx, endpoint, key, run_id, field, error, record)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (pbx, endpoint, key) DO UPDATE SET run_id = EXCLUDED.run_id, field = EXCLUDED.field, error = EXCLUDED.error,
record = EXCLUDED.record, quarantined_at = now()`,
			b.info.PBX, b.info.Endpoint.Name, q.key, b.info.RunID, q.field, q.err, storableText(q.record)); err != nil {
			return fmt.Errorf("quarantine a record of %s: %w", b.info.Endpoint.Name, err)
		}
	}
	return nil
}

// storableText is s as a text column takes it: valid UTF-8, no NUL.
func storableText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// splitRows returns the rows of a chunk (COPY binary tuples: a field
// count, then each field's length, -1 for NULL, and bytes).
func splitRows(data []byte) [][]byte {
	var rows [][]byte
	for i := 0; i+2 <= len(data); {
		start, n := i, int(int16(binary.BigEndian.Uint16(data[i:])))
		i += 2
		for range n {
			l := int(int32(binary.BigEndian.Uint32(data[i:])))
			i += 4 + max(l, 0)
		}
		rows = append(rows, data[start:i])
	}
	return rows
}

// rowOf describes an encoded row for the quarantine: its key, the field
// named by column, and the record as the PBX sent it (raw).
func (b *pgBatch) rowOf(row []byte, column string) quarantined {
	var fields [][]byte
	for i := 2; i+4 <= len(row); {
		l := int(int32(binary.BigEndian.Uint32(row[i:])))
		i += 4
		if l < 0 {
			fields = append(fields, nil)
			continue
		}
		fields = append(fields, row[i:i+l])
		i += l
	}
	q := quarantined{field: b.fieldOf(column)}
	var keys []string
	for _, k := range keyColumns(b.info.Endpoint)[1:] {
		for i, c := range b.cols {
			if c == k && i < len(fields) {
				keys = append(keys, fieldText(b.oids[i], fields[i]))
			}
		}
	}
	q.key = strings.Join(keys, ",")
	if raw := len(b.cols) - 2; raw < len(fields) && len(fields[raw]) > 0 {
		q.record = string(fields[raw][1:]) // jsonb's binary form: a version byte, then the text
	}
	return q
}

// keyOf is row r's key as rowOf names it: its key columns' values as
// PostgreSQL prints them, joined by commas (markDeleted matches them).
func (b *pgBatch) keyOf(r record.Row) string {
	var keys []string
	for _, k := range keyColumns(b.info.Endpoint)[1:] {
		for i, c := range b.info.Endpoint.Columns {
			if c.Name == k && i < len(r.Values) {
				keys = append(keys, fmt.Sprint(r.Values[i]))
			}
		}
	}
	return strings.Join(keys, ",")
}

// fieldText is a key field's binary value as text.
func fieldText(oid uint32, v []byte) string {
	switch {
	case oid == pgtype.Int8OID && len(v) == 8:
		return strconv.FormatInt(int64(binary.BigEndian.Uint64(v)), 10)
	case oid == pgtype.Int4OID && len(v) == 4:
		return strconv.FormatInt(int64(int32(binary.BigEndian.Uint32(v))), 10)
	case oid == pgtype.TextOID || oid == pgtype.VarcharOID:
		return string(v)
	}
	return hex.EncodeToString(v)
}

// copyColumn finds the column in a COPY error's context ("COPY t, line 1,
// column raw: …").
var copyColumn = regexp.MustCompile(`, column ([^:,]+)`)

func columnOf(pgErr *pgconn.PgError) string {
	if pgErr.ColumnName != "" {
		return pgErr.ColumnName
	}
	if m := copyColumn.FindStringSubmatch(pgErr.Where); m != nil {
		return strings.Trim(m[1], `"`)
	}
	return ""
}

// fieldOf names a column by the PBX's field, as conversion warnings do.
func (b *pgBatch) fieldOf(column string) string {
	for _, c := range b.info.Endpoint.Columns {
		if c.Name == column {
			return c.Field
		}
	}
	return column
}

// quarantineCounts counts, per run and endpoint, the records quarantined,
// with the first, for the run ledger's notes. Safe for concurrent use.
type quarantineCounts struct {
	mu    sync.Mutex
	count map[[2]string]int
	first map[[2]string]quarantined
}

func (c *quarantineCounts) add(runID, endpoint string, qs []quarantined) {
	if len(qs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.count == nil {
		c.count, c.first = map[[2]string]int{}, map[[2]string]quarantined{}
	}
	k := [2]string{runID, endpoint}
	if c.count[k] == 0 {
		c.first[k] = qs[0]
	}
	c.count[k] += len(qs)
}

// notes adds to each endpoint of run r a note counting its records
// quarantined, and forgets them.
func (c *quarantineCounts) notes(r *exporter.RunResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range r.Endpoints {
		e := &r.Endpoints[i]
		k := [2]string{r.ID, e.Endpoint}
		if n := c.count[k]; n > 0 {
			q := c.first[k]
			e.Notes = append(e.Notes, fmt.Sprintf("%d records PostgreSQL refused, kept in export_quarantine instead of the table (first: key %s, field %q: %s)", n, pseudonym.ShownKey(q.key), q.field, q.err))
			delete(c.count, k)
			delete(c.first, k)
		}
	}
}
