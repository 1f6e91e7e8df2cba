package sinks

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// Rows reach PostgreSQL in COPY's binary format, a batch's pages gathered
// into chunks of about Postgres.chunk bytes: each page is encoded as it
// arrives, and a full chunk is sent with one COPY by a goroutine of its
// own while the next chunk fills, so that PostgreSQL loads while the
// exporter reads and converts. Few, large COPYs matter: each COPY costs
// PostgreSQL a set of tuple slots and memory it hands back to the system
// when the COPY ends, and a COPY per page of a thousand rows cost it about
// half again as much CPU as the same rows in a few COPYs (bench/README.md).
// A chunk is kept whole until its COPY is in, so that a direct COPY that
// meets an existing key can send the same bytes through the merge
// (direct.go). The batch's connection is used by one goroutine at a time:
// every statement waits for the chunk being sent (sent).
const chunkBytes = 8 << 20

// copyChunk is rows encoded for COPY … FROM STDIN (FORMAT binary), without
// the format's header and trailer.
type copyChunk struct {
	data []byte
	rows int64
}

// sending is a chunk being copied into its table by another goroutine.
type sending struct {
	chunk  copyChunk
	direct bool
	err    chan error
}

var (
	copyHeader  = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	copyTrailer = []byte{0xff, 0xff}
)

// flush sends each path's chunk that holds at least limit bytes and a row.
func (b *pgBatch) flush(ctx context.Context, limit int) error {
	for _, c := range []*copyChunk{&b.directRows, &b.mergeRows} {
		if c.rows == 0 || len(c.data) < limit {
			continue
		}
		if err := b.send(ctx, c == &b.directRows, c); err != nil {
			return fmt.Errorf("load rows of %s: %w", b.info.Endpoint.Name, dbError(err))
		}
	}
	return nil
}

// send starts copying chunk c, direct or through the staging table, once
// the chunk sent before it is in; c is left empty.
func (b *pgBatch) send(ctx context.Context, direct bool, c *copyChunk) error {
	if err := b.sent(ctx); err != nil {
		return err
	}
	direct = direct && b.direct // after a fallback, every row is merged
	table := pgx.Identifier{b.sink.schema, b.info.Endpoint.Name}
	if direct {
		if err := b.deferUpkeep(ctx); err != nil {
			return err
		}
		if _, err := b.tx.Exec(ctx, "SAVEPOINT direct"); err != nil {
			return err
		}
	} else {
		if err := b.ensureStage(ctx); err != nil {
			return err
		}
		table = pgx.Identifier{b.stage}
		if _, err := b.tx.Exec(ctx, "SAVEPOINT chunk"); err != nil { // quarantine.go
			return err
		}
	}
	s := &sending{chunk: *c, direct: direct, err: make(chan error, 1)}
	*c = copyChunk{data: b.spare[:0]}
	b.spare = nil
	b.sending = s
	go func() { s.err <- b.copyIn(ctx, table, &s.chunk) }()
	return nil
}

// sent waits for the chunk being sent, if any, and settles it.
func (b *pgBatch) sent(ctx context.Context) error {
	s := b.sending
	if s == nil {
		return nil
	}
	b.sending = nil
	err := <-s.err
	defer func() { b.spare = s.chunk.data }()
	if s.direct {
		return b.directDone(ctx, &s.chunk, err)
	}
	n, err := b.settleChunk(ctx, pgx.Identifier{b.stage}, &s.chunk, err)
	b.loads.Merged += n
	return err
}

// release keeps the batch's chunk buffers for the sink's next batches
// (up to three: the chunks filling for each path and the one being sent),
// once the batch is over and no COPY uses them.
func (b *pgBatch) release() {
	for _, buf := range [][]byte{b.directRows.data, b.mergeRows.data, b.spare} {
		if buf == nil {
			continue
		}
		select {
		case b.sink.buffers <- buf[:0]:
		default:
		}
	}
	b.directRows, b.mergeRows, b.spare = copyChunk{}, copyChunk{}, nil
}

// copyIn sends a chunk's rows into table with one COPY in the batch's
// transaction.
func (b *pgBatch) copyIn(ctx context.Context, table pgx.Identifier, c *copyChunk) error {
	sql := fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", table.Sanitize(), strings.Join(quoted(b.cols), ", "))
	r := &chunkReader{r: io.MultiReader(bytes.NewReader(copyHeader), bytes.NewReader(c.data), bytes.NewReader(copyTrailer))}
	_, err := b.tx.Conn().PgConn().CopyFrom(ctx, r, sql)
	r.close()
	return err
}

// chunkReader reads a chunk for one COPY, and nothing once closed: after a
// fatal error pgconn's CopyFrom returns without waiting for its reading
// goroutine, which may read once more, when the chunk may already be
// filling again.
type chunkReader struct {
	mu     sync.Mutex
	r      io.Reader
	closed bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, io.ErrClosedPipe
	}
	return c.r.Read(p)
}

func (c *chunkReader) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// drain waits for the chunk being sent, if any, and drops its outcome: the
// batch is being rolled back.
func (b *pgBatch) drain() {
	if s := b.sending; s != nil {
		b.sending = nil
		<-s.err
		b.spare = s.chunk.data
	}
}

// describe reads the types of the batch's columns, which the encoding
// needs.
func (b *pgBatch) describe(ctx context.Context) error {
	sd, err := b.tx.Conn().PgConn().Prepare(ctx, "", fmt.Sprintf("SELECT %s FROM %s",
		strings.Join(quoted(b.cols), ", "), b.sink.ident(b.info.Endpoint.Name)), nil)
	if err != nil {
		return fmt.Errorf("read the columns of %s (has the schema been migrated?): %w", b.info.Endpoint.Name, dbError(err))
	}
	b.oids = make([]uint32, len(sd.Fields))
	for i, f := range sd.Fields {
		b.oids[i] = f.DataTypeOID
	}
	return nil
}

// encode appends row r to chunk c: the PBX, the row's values, its extra
// fields and raw record, and the run.
func (b *pgBatch) encode(c *copyChunk, r record.Row) error {
	if c.data == nil {
		select {
		case c.data = <-b.sink.buffers:
		default:
			c.data = make([]byte, 0, b.sink.chunk+b.sink.chunk/8)
		}
	}
	buf := binary.BigEndian.AppendUint16(c.data, uint16(len(b.cols)))
	var err error
	buf, err = b.appendValue(buf, 0, b.info.PBX)
	for i, v := range r.Values {
		if err == nil {
			buf, err = b.appendValue(buf, 1+i, b.value(v))
		}
	}
	n := len(r.Values) + 1
	if err == nil {
		buf, err = b.appendValue(buf, n, b.jsonValue(r.Extra))
	}
	if err == nil {
		buf, err = b.appendValue(buf, n+1, b.jsonValue(r.Raw))
	}
	if err == nil {
		buf, err = b.appendValue(buf, n+2, b.info.RunID)
	}
	if err != nil {
		return err
	}
	c.data, c.rows = buf, c.rows+1
	return nil
}

// appendValue appends one field: its length (-1 for NULL) and its binary
// form, as pgx's own CopyFrom encodes it.
func (b *pgBatch) appendValue(buf []byte, col int, v any) ([]byte, error) {
	if out, ok := appendCommon(buf, b.oids[col], v); ok {
		return out, nil
	}
	types := b.tx.Conn().TypeMap()
	at := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, 0xffffffff)
	out, err := types.Encode(b.oids[col], pgtype.BinaryFormatCode, v, buf)
	if err != nil {
		// A string for a non-text column: parsed as PostgreSQL would parse it.
		s, ok := v.(string)
		var parsed any
		if !ok || types.Scan(b.oids[col], pgtype.TextFormatCode, []byte(s), &parsed) != nil {
			return nil, &encodeError{b.cols[col], err, v, b.oids[col]}
		}
		if out, err = types.Encode(b.oids[col], pgtype.BinaryFormatCode, parsed, buf); err != nil {
			return nil, &encodeError{b.cols[col], err, v, b.oids[col]}
		}
	}
	if out == nil {
		return buf, nil // NULL
	}
	binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at-4))
	return out, nil
}

// encodeError is a value that cannot be encoded for its column. Its
// message names the value's Go type, never the value (pgx's error quotes
// it, and it may be personal data bound for the log and the ledger).
type encodeError struct {
	column string
	err    error
	value  any
	oid    uint32
}

func (e *encodeError) Error() string {
	return fmt.Sprintf("column %s: a %T value cannot be encoded for its type (OID %d)", e.column, e.value, e.oid)
}
func (e *encodeError) Unwrap() error { return e.err }

// microsecondsToY2K is 2000-01-01 UTC, where PostgreSQL's binary times
// count from, in microseconds after the Unix epoch.
const microsecondsToY2K = 946684800 * 1000000

// appendCommon appends one field of the types most values have (text,
// whole numbers, instants, booleans, JSON, NULL) in COPY's binary format,
// as pgx's type map would, without its per-value planning; it reports
// false for any other pair of column type and value, which the type map
// then encodes. TestCommonEncodingIsPgxs holds it to pgx's bytes.
func appendCommon(buf []byte, oid uint32, v any) ([]byte, bool) {
	be := binary.BigEndian
	switch x := v.(type) {
	case nil:
		return be.AppendUint32(buf, 0xffffffff), true
	case string:
		if oid == pgtype.TextOID || oid == pgtype.VarcharOID {
			return append(be.AppendUint32(buf, uint32(len(x))), x...), true
		}
	case int64:
		switch {
		case oid == pgtype.Int8OID:
			return be.AppendUint64(be.AppendUint32(buf, 8), uint64(x)), true
		case oid == pgtype.Int4OID && x >= math.MinInt32 && x <= math.MaxInt32:
			return be.AppendUint32(be.AppendUint32(buf, 4), uint32(int32(x))), true
		}
	case bool:
		if oid == pgtype.BoolOID {
			b := byte(0)
			if x {
				b = 1
			}
			return append(be.AppendUint32(buf, 1), b), true
		}
	case time.Time:
		if oid == pgtype.TimestamptzOID {
			us := x.Unix()*1000000 + int64(x.Nanosecond())/1000 - microsecondsToY2K
			return be.AppendUint64(be.AppendUint32(buf, 8), uint64(us)), true
		}
	case json.RawMessage:
		if x == nil {
			return be.AppendUint32(buf, 0xffffffff), true
		}
		if oid == pgtype.JSONBOID {
			return append(append(be.AppendUint32(buf, uint32(len(x)+1)), 1), x...), true
		}
	}
	return buf, false
}
