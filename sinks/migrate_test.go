package sinks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// shippedMigrations pins the SQL of every migration, by the sha256 of its
// text before {schema} is replaced. A database records only a migration's
// version, never its text, and does not run it again: an edited migration
// would leave the databases migrated before the edit and those migrated
// after it different, with nothing to tell. Successive migrations repeat
// a view's whole text on purpose (CREATE OR REPLACE needs all of it, and
// each reads alone); this pin is what keeps a shared fragment, should one
// ever be factored out of them, from rewriting a shipped one.
var shippedMigrations = map[int]string{
	1:  "bf545e3f7a27dddccda11ce60f081bd62db495a79b269e83df39b915092137bd",
	2:  "170f5fa43ee9b7b00e8a413ddb803d9df3f2b41f3426e9e850c83ab77c8497ce",
	3:  "e570941b2e0bff7b91cf73393a99c7a5ce65096c05d7084ccda3c2d7e6cd1a32",
	4:  "88192e6954325da90bf0b7b88600424656b317a034b50bac81a286604f837e7f",
	5:  "b99c83f01f0b84d7da307a300b6d537e0e2766e173ef48131bcc62dd16c2eeb1",
	6:  "87e2b25116c242f1de7b165eb2b0b9ecfdf448f8f2256e07e7d1042ee196dea7",
	7:  "31a643148c583eb08ff320d51473cf1afe4456cc5edb79c69da3c99f495b6971",
	8:  "13f3f5552d529338fb9d5b216042d174bccc1c0a86ac900f114b9628ef746b32",
	9:  "338a65a170f8c6e0a9c2712cfc6b93e631ac65f6692e64c69899f69375f65c1a",
	10: "34380f1ce79555e3d025176709fb98bb53f4770bf9632e7de2da4ddbca526884",
	11: "e957391054cb98dfb8b52d363a11a66d08664cc8de4b9c5209d29a94f5de62d6",
	12: "525340c743cc00e7f1c3dec429ee71c98e39c39c0e48b05d2038d2fca8c4c02d",
	13: "019c106f3f05c8a29fb269ace0280e3783957eb008d2399e1120c2237fa8323b",
	14: "0a53d614b6c4e3402dba8ced903f525594a8db6cd98cd0148e15d34ffc5e2d4d",
	15: "fd69fb0774087193d1d5848f3ba2cff8839d79287d723230782baf06964c7dfb",
	16: "b35f0f3c4e205e0f83b4531f2c3b8cd1d8b4c4ecf0063b9446e2a793adc790ae",
	17: "f566fc6e040c768d69748a8dbc00391c4cafc56784a88369210b958f230048e8",
	18: "30114d4acf66243ff729ed3177bce4e5749b0cd178480bbaa7a566467ef8d74c",
	19: "716e227560fc9800c624db8420e68b9d6f0b7045b26195d3717f0079af9b0da4",
}

// TestEarlierReleaseRefusesTheSchema: a release whose migrations end at
// schemaBeforeKeysByPBX (every release that reads neither the keys of
// recordings' ids by PBX and their marks in the PBX's rows, nor the
// suppression list's tags) refuses a schema this one migrated, changing
// nothing, rather than hand a PBX a new key and copy its k- recordings
// again, or write forgotten numbers again (review 9, R9-3; review 6,
// R6-5). Those releases refuse a schema newer than they know with the
// same check (Migrate, there since the first release of the PostgreSQL
// sink), which migrate(upTo) applies as a release knowing upTo.
func TestEarlierReleaseRefusesTheSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, _ := newPostgres(t)
	err := p.migrate(ctx, record.Builtin(), schemaBeforeKeysByPBX)
	if err == nil || !strings.Contains(err.Error(), "newer than this wildix-export knows") || !strings.Contains(err.Error(), "upgrade wildix-export") {
		t.Fatalf("a release knowing schema version %d, on a schema this one (%d) migrated: %v; want it refused, saying to upgrade", schemaBeforeKeysByPBX, SchemaVersion(), err)
	}
	if err := p.Migrate(ctx, record.Builtin()); err != nil {
		t.Fatalf("this release again: %v", err)
	}
}

// TestShippedMigrationsUnchanged fails when the text of a migration
// changes (migrate.go: never edit one that has shipped; add the next) or a
// migration has no pin.
func TestShippedMigrationsUnchanged(t *testing.T) {
	t.Parallel()
	for _, m := range migrations {
		sum := sha256.Sum256([]byte(m.sql))
		got := hex.EncodeToString(sum[:])
		want, ok := shippedMigrations[m.version]
		switch {
		case !ok:
			t.Errorf("migration %d (%s) has no pin: add %d: %q to shippedMigrations in the commit that adds it", m.version, m.description, m.version, got)
		case got != want:
			t.Errorf("migration %d (%s): sha256 of its SQL is %s, shipped as %s: a shipped migration is never edited (a database past it would not see the edit); restore its text and put the change in migration %d", m.version, m.description, got, want, SchemaVersion()+1)
		}
	}
}
