package sinks

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// TestCommonEncodingIsPgxs: each value the fast path encodes for COPY is
// byte for byte what pgx's type map gives (its length first), and the
// fast path leaves every other pair of column type and value to pgx.
func TestCommonEncodingIsPgxs(t *testing.T) {
	t.Parallel()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		oid    uint32
		v      any
		common bool // the fast path takes it
	}{
		{pgtype.TextOID, "", true},
		{pgtype.TextOID, "Müller, \"quoted\"\n€", true},
		{pgtype.VarcharOID, "x", true},
		{pgtype.Int8OID, int64(0), true},
		{pgtype.Int8OID, int64(-1), true},
		{pgtype.Int8OID, int64(math.MaxInt64), true},
		{pgtype.Int8OID, int64(math.MinInt64), true},
		{pgtype.Int4OID, int64(math.MaxInt32), true},
		{pgtype.Int4OID, int64(math.MinInt32), true},
		{pgtype.Int4OID, int64(-7), true},
		{pgtype.Int4OID, int64(math.MaxInt32) + 1, false}, // pgx refuses it, with its message
		{pgtype.BoolOID, true, true},
		{pgtype.BoolOID, false, true},
		{pgtype.TimestamptzOID, time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC), true},
		{pgtype.TimestamptzOID, time.Date(2026, 10, 25, 2, 30, 0, 123456789, rome), true},
		{pgtype.TimestamptzOID, time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC), true},
		{pgtype.TimestamptzOID, time.Date(1969, 7, 20, 20, 17, 40, 500, time.UTC), true},
		{pgtype.TimestamptzOID, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{pgtype.TimestamptzOID, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), true},
		{pgtype.JSONBOID, json.RawMessage(`{"id":"1","b":[1,2,{"c":null}]}`), true},
		{pgtype.JSONBOID, json.RawMessage(nil), true},
		{pgtype.TextOID, nil, true},
		{pgtype.NumericOID, nil, true},
		{pgtype.TimestampOID, time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC), false},
		{pgtype.Int8OID, "42", false},
		{pgtype.NumericOID, int64(5), false},
		{pgtype.TextOID, int64(5), false},
	}
	types := pgtype.NewMap()
	prefix := []byte("before")
	for _, tc := range cases {
		got, ok := appendCommon(append([]byte(nil), prefix...), tc.oid, tc.v)
		if ok != tc.common {
			t.Fatalf("oid %d, %T %v: fast path %v, want %v", tc.oid, tc.v, tc.v, ok, tc.common)
		}
		if !ok {
			if !bytes.Equal(got, prefix) {
				t.Fatalf("oid %d, %T %v: declined, but wrote %q", tc.oid, tc.v, tc.v, got)
			}
			continue
		}
		want := binary.BigEndian.AppendUint32(append([]byte(nil), prefix...), 0xffffffff)
		out, err := types.Encode(tc.oid, pgtype.BinaryFormatCode, tc.v, want)
		if err != nil {
			t.Fatalf("oid %d, %T %v: pgx: %v", tc.oid, tc.v, tc.v, err)
		}
		if out != nil {
			binary.BigEndian.PutUint32(out[len(prefix):], uint32(len(out)-len(prefix)-4))
			want = out
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("oid %d, %T %v: fast path % x, pgx % x", tc.oid, tc.v, tc.v, got, want)
		}
	}
}
