// Package pglock names the PostgreSQL advisory locks wildix-export takes,
// in one place, so that no two purposes can share an id by accident.
// Each lock is taken as the two-key form pg_advisory_*(Class, key), where
// key is a hash of what the lock is about.
package pglock

const (
	// TokenRefresh serialises OAuth token refreshes of one PBX across every
	// process sharing the database (key: hashtext(pbx)), so that a
	// single-use refresh token is spent once.
	TokenRefresh = 7711
	// Migrate serialises schema migrations of one export schema (key:
	// hashtext(schema)), so that two processes starting at once do not race
	// on CREATE ... IF NOT EXISTS.
	Migrate = 7712
	// Export is the per-PBX export lock (key: hashtext(schema || '/' ||
	// pbx)): one export of a PBX into a schema at a time.
	Export = 7713
	// GroupCalls serialises the upkeep of one PBX's stored call-group rows
	// (group_calls_stored, group_intervals_stored) in one export schema
	// (key: hashtext(schema || '/' || pbx)), taken in SQL by the schema's
	// group_calls_lock function (sinks/reporting_deferred.go), which holds
	// this number since schema migration 14: never change it.
	GroupCalls = 7714
)
