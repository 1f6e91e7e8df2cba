package sinks

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// ownNames are the relations and types wildix-export itself keeps in an export
// schema: its tables, the reporting views, and the indexes it names. The
// one list of them; an endpoint's table may take none of these names.
var ownNames = []string{
	// tables
	"export_state", "export_runs", "export_run_endpoints", "export_schema_migrations",
	"oauth_tokens", "oauth_pending", "pbx_settings", "export_quarantine",
	// reporting views
	"calls", "call_legs", "calls_daily", "calls_hourly", "calls_by_extension", "calls_by_department",
	"colleague_extensions", "missed_calls", "data_quality",
	"group_legs", "group_calls", "group_intervals", "agent_calls", "call_group_members",
	// reporting tables and types (schema migrations 6, 12 and 14)
	"reporting_settings", "group_calls_stored", "group_intervals_stored", "group_number_members",
	"group_calls_inputs", "group_calls_deferred", "group_leg_change",
	// the notifier's table
	"notify_state",
	// indexes with names of their own
	"export_runs_pbx_started_idx",
}

// ownSuffixes end the names PostgreSQL and wildix-export give indexes and
// constraints (primary key, unique key, index): a table named so could
// take the name of another table's index.
var ownSuffixes = []string{"_pkey", "_key", "_idx"}

// CheckEndpointNames refuses endpoints whose table would collide with one
// of the program's own relations or with an index name, with an error
// wrapping record.ErrConfig.
func CheckEndpointNames(endpoints []record.Endpoint) error {
	for _, e := range endpoints {
		for _, own := range ownNames {
			if e.Name == own {
				return fmt.Errorf("%w: endpoint %q has the name of one of wildix-export's own tables or views: rename the endpoint in EXPORT_ENDPOINTS_FILE", record.ErrConfig, e.Name)
			}
		}
		for _, suffix := range ownSuffixes {
			if strings.HasSuffix(e.Name, suffix) {
				return fmt.Errorf("%w: endpoint %q ends in %q, which index names end in: rename the endpoint in EXPORT_ENDPOINTS_FILE", record.ErrConfig, e.Name, suffix)
			}
		}
	}
	return nil
}

// indexName names the index of table on column: table_column_idx, or,
// when that is longer than PostgreSQL's 63 bytes, its start then a hash of
// the whole, so that two long names never share an index name and none
// is cut to the table's own name.
func indexName(table, column string) string {
	name := table + "_" + column + "_idx"
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(table + "\x00" + column))
	h := "_" + hex.EncodeToString(sum[:6]) + "_idx"
	return (table + "_" + column)[:63-len(h)] + h
}
