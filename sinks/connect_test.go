package sinks

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pgtest"
)

// TestConnectPoolSize: without pool_max_conns a run's pool gets room for
// the lock, the batch, a refresh and the ledger; a size the user set is
// kept; one a run cannot work in is refused as bad configuration (exit 2),
// never silently raised.
func TestConnectPoolSize(t *testing.T) {
	t.Parallel()
	with := func(param string) string {
		u := pgtest.URL()
		if strings.Contains(u, "?") {
			return u + "&" + param
		}
		return u + "?" + param
	}
	for _, tc := range []struct {
		name, url string
		want      int32 // 0: refused
	}{
		{"default", pgtest.URL(), defaultConns},
		{"user's size kept", with("pool_max_conns=5"), 5},
		{"larger kept", with("pool_max_conns=20"), 20},
		{"too small refused", with("pool_max_conns=2"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool, err := Connect(context.Background(), tc.url)
			if tc.want == 0 {
				if !errors.Is(err, record.ErrConfig) || !strings.Contains(err.Error(), "pool_max_conns=2") {
					t.Fatalf("err = %v, want a configuration error naming pool_max_conns=2", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			if got := pool.Config().MaxConns; got != tc.want {
				t.Fatalf("MaxConns = %d, want %d", got, tc.want)
			}
		})
	}
}
