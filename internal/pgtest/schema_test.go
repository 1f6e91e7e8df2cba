package pgtest

import (
	"context"
	"testing"
)

// TestSchemaOfAnyTestName: a test whose name holds characters that mean
// something in search_path (a comma separates schemas) still gets its own
// schema as the pool's search path.
func TestSchemaOfAnyTestName(t *testing.T) {
	t.Run(`a,b "c" $d-é`, func(t *testing.T) {
		name, pool := Schema(t)
		ctx := context.Background()
		if _, err := pool.Exec(ctx, "CREATE TABLE probe (n int)"); err != nil {
			t.Fatal(err)
		}
		var schema string
		if err := pool.QueryRow(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'probe' AND table_schema = current_schema()").Scan(&schema); err != nil {
			t.Fatalf("the table is not in the current schema: %v", err)
		}
		if schema != name {
			t.Fatalf("table in %q, want %q", schema, name)
		}
	})
}
