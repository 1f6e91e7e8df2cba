package sinks

import (
	"strconv"
	"strings"

	"github.com/wildix-export/wildix-export/internal/pglock"
)

// reportingGroupsDeferred is the migration that gives a load its speed
// back (bench/README.md, "Call groups: what the triggers of schema
// migration 12 cost the load"): the statement triggers of migration 12
// brought group_calls_stored and group_intervals_stored up to date after
// every COPY of a batch, and some of their steps read every stored call
// or interval of the PBX for each one.
//
//   - A batch of new legs defers the upkeep: group_calls_defer(pbx), in the
//     batch's transaction, takes the PBX's group lock, reads the PBX's
//     highest leg id and records it in group_calls_deferred. While that
//     row exists (only its own transaction sees it), the triggers on
//     call_history leave alone the PBX's legs above that id, which are all
//     the transaction's own (the lock keeps every other writer of the PBX
//     waiting). group_calls_flush(pbx), before the commit, applies them
//     once, as they then are, set-based, and deletes the row. A
//     transaction that deferred and did not flush cannot commit
//     (group_calls_deferred_flushed, checked at the commit). Legs at or
//     below the id are kept up to date statement by statement, as before;
//     so is every leg of a transaction that did not defer.
//   - group_calls_apply finds the stored calls that the changed legs belong
//     to by index, from all their keys at once, instead of three index
//     probes a leg; group_intervals_refresh finds the intervals to compute
//     again by index from the keys and starts given, instead of in nested
//     loops that read every stored call of the PBX for each interval when
//     the table had no statistics yet.
//   - The lock on a PBX's stored group rows is internal/pglock's
//     GroupCalls class, keyed by schema and PBX as the export lock is
//     (group_calls_lock); it was the table's OID.
//
// Every function that takes the lock is replaced, so that none takes the
// old one.
var reportingGroupsDeferred = strings.ReplaceAll(reportingGroupsDeferredSQL, "{group_calls_lock}", strconv.Itoa(pglock.GroupCalls))

const reportingGroupsDeferredSQL = `
CREATE OR REPLACE FUNCTION {schema}.group_calls_lock(p_pbx text) RETURNS void
LANGUAGE sql AS $$
SELECT pg_advisory_xact_lock({group_calls_lock}, hashtext(n.nspname || '/' || p_pbx))
FROM pg_namespace n WHERE n.oid = '{schema}'::regnamespace $$;

CREATE TABLE IF NOT EXISTS {schema}.group_calls_deferred (
  pbx   text PRIMARY KEY,
  above bigint NOT NULL -- the PBX's highest leg id when the upkeep was deferred
);

CREATE OR REPLACE FUNCTION {schema}.group_calls_deferred_check() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF EXISTS (SELECT 1 FROM {schema}.group_calls_deferred d WHERE d.pbx = NEW.pbx) THEN
    RAISE EXCEPTION 'the group tables of PBX % were not brought up to date with the legs this transaction wrote: call group_calls_flush before the commit', NEW.pbx
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NULL;
END $fn$;
CREATE CONSTRAINT TRIGGER group_calls_deferred_flushed AFTER INSERT ON {schema}.group_calls_deferred
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {schema}.group_calls_deferred_check();

-- group_calls_defer: the upkeep of the legs this transaction writes above
-- the PBX's highest id, deferred to group_calls_flush. Returns that id
-- (the smallest bigint when the PBX has none).
CREATE OR REPLACE FUNCTION {schema}.group_calls_defer(p_pbx text) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
  v_above bigint;
BEGIN
  -- The lock first: a leg another transaction writes before it is in the
  -- highest id and kept by that transaction's own trigger.
  PERFORM {schema}.group_calls_lock(p_pbx);
  SELECT coalesce(max(h.id), -9223372036854775808) INTO v_above FROM {schema}.call_history h WHERE h.pbx = p_pbx;
  -- Deferred already in this transaction: the first bound stays, every leg
  -- above it is still this transaction's own.
  INSERT INTO {schema}.group_calls_deferred (pbx, above) VALUES (p_pbx, v_above) ON CONFLICT (pbx) DO NOTHING;
  RETURN v_above;
END $fn$;

-- channel_peer: the peer a channel names, as substring(c from
-- '^[^/]+/([^-@/;]+)') finds it ('SIP/201-0000001a' gives 201), without
-- a regular expression, which cost a leg more than the rest of its
-- upkeep (TestChannelPeerIsTheRegularExpression holds the two equal).
CREATE OR REPLACE FUNCTION {schema}.channel_peer(c text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT CASE WHEN strpos(c, '/') > 1 THEN nullif(split_part(translate(substr(c, strpos(c, '/') + 1), '-@;', '///'), '/', 1), '') END $$;

CREATE OR REPLACE FUNCTION {schema}.leg_change_of(pbx text, id bigint, sign integer, deleted_at timestamptz, start_time timestamptz,
  raw jsonb, channel text, dstchannel text, to_number text, dst text, lastapp text) RETURNS {schema}.group_leg_change
LANGUAGE sql IMMUTABLE AS $$
SELECT ROW(pbx, id, sign, deleted_at IS NULL, nullif(btrim(raw->>'uniqueid'), ''),
           CASE WHEN nullif(btrim(raw->>'uniqueid'), '') IS NULL AND start_time IS NOT NULL THEN nullif(btrim(channel), '') END,
           nullif(nullif(nullif(btrim(raw->>'dstgrp'), ''), '0'), '-1'),
           coalesce(nullif(btrim(to_number), ''), nullif(btrim(dst), '')),
           {schema}.channel_peer(dstchannel),
           lower(nullif(btrim(lastapp), '')))::{schema}.group_leg_change $$;

-- group_calls_flush: the deferred upkeep of a PBX, applied: its legs
-- above the bound, as they are now, as if written at once. Only the legs
-- group_calls_apply would not pass over are handed to it: those that may
-- be rule 3's evidence (a number not a colleague's that rang another
-- extension: every number rule 3 may give a group is such a leg's), that
-- may reach a group otherwise (dstgrp, Queue, a group's number, a number
-- of rule 3), or that join a stored call (by uniqueid, or by channel; a
-- leg alone cannot: no leg above the bound is stored yet). Keep this in
-- step with group_calls_apply's filter: a superset of it.
CREATE OR REPLACE FUNCTION {schema}.group_calls_flush(p_pbx text) RETURNS void
LANGUAGE plpgsql SET jit = off AS $fn$
DECLARE
  v_above bigint;
  v_stored boolean;
BEGIN
  DELETE FROM {schema}.group_calls_deferred WHERE pbx = p_pbx RETURNING above INTO v_above;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  v_stored := EXISTS (SELECT 1 FROM {schema}.group_calls_stored s WHERE s.pbx = p_pbx);
  PERFORM {schema}.group_calls_apply(ARRAY(
    SELECT {schema}.leg_change_of(h.pbx, h.id, 1, h.deleted_at, h.start_time, h.raw, h.channel, h.dstchannel, h.to_number, h.dst, h.lastapp)
    FROM {schema}.call_history h
    CROSS JOIN LATERAL (SELECT coalesce(nullif(btrim(h.to_number), ''), nullif(btrim(h.dst), '')) AS callee,
                               nullif(btrim(h.raw->>'uniqueid'), '') AS uniqueid) l
    WHERE h.pbx = p_pbx AND h.id > v_above
      AND (h.raw ? 'dstgrp'
           OR lower(btrim(h.lastapp)) = 'queue'
           OR ({schema}.internal_shape(l.callee)
               AND l.callee NOT IN (SELECT ce.extension FROM {schema}.colleague_extensions ce WHERE ce.pbx = p_pbx)
               AND {schema}.channel_peer(h.dstchannel) <> l.callee)
           OR l.callee IN (SELECT m.number FROM {schema}.group_number_members m WHERE m.pbx = p_pbx AND m.legs > 0)
           OR l.callee IN (SELECT nullif(btrim(coalesce(g.raw->>'number', g.raw->>'extension')), '') FROM {schema}.call_groups g WHERE g.pbx = p_pbx)
           OR (v_stored AND l.uniqueid IS NOT NULL
               AND EXISTS (SELECT 1 FROM {schema}.group_calls_stored s WHERE s.pbx = p_pbx AND s.call_key = 'u:' || l.uniqueid))
           OR (v_stored AND l.uniqueid IS NULL AND h.start_time IS NOT NULL
               AND EXISTS (SELECT 1 FROM {schema}.group_calls_stored s WHERE s.pbx = p_pbx AND s.session_channel = nullif(btrim(h.channel), ''))))));
END $fn$;

-- The triggers on call_history: the legs a statement wrote or removed,
-- but for those a deferring transaction applies itself.
CREATE OR REPLACE FUNCTION {schema}.group_calls_legs_changed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  changes {schema}.group_leg_change[];
BEGIN
  IF EXISTS (SELECT 1 FROM {schema}.group_calls_deferred) THEN
    IF TG_OP = 'INSERT' THEN
      changes := ARRAY(SELECT {schema}.leg_change_of(n.pbx, n.id, 1, n.deleted_at, n.start_time, n.raw, n.channel, n.dstchannel, n.to_number, n.dst, n.lastapp)
                       FROM new_legs n LEFT JOIN {schema}.group_calls_deferred d ON d.pbx = n.pbx WHERE d.pbx IS NULL OR n.id <= d.above);
    ELSIF TG_OP = 'UPDATE' THEN
      changes := ARRAY(SELECT {schema}.leg_change_of(n.pbx, n.id, 1, n.deleted_at, n.start_time, n.raw, n.channel, n.dstchannel, n.to_number, n.dst, n.lastapp)
                       FROM new_legs n LEFT JOIN {schema}.group_calls_deferred d ON d.pbx = n.pbx WHERE d.pbx IS NULL OR n.id <= d.above
                       UNION ALL
                       SELECT {schema}.leg_change_of(o.pbx, o.id, -1, o.deleted_at, o.start_time, o.raw, o.channel, o.dstchannel, o.to_number, o.dst, o.lastapp)
                       FROM old_legs o LEFT JOIN {schema}.group_calls_deferred d ON d.pbx = o.pbx WHERE d.pbx IS NULL OR o.id <= d.above);
    ELSE
      changes := ARRAY(SELECT {schema}.leg_change_of(o.pbx, o.id, -1, o.deleted_at, o.start_time, o.raw, o.channel, o.dstchannel, o.to_number, o.dst, o.lastapp)
                       FROM old_legs o LEFT JOIN {schema}.group_calls_deferred d ON d.pbx = o.pbx WHERE d.pbx IS NULL OR o.id <= d.above);
    END IF;
  ELSIF TG_OP = 'INSERT' THEN
    changes := ARRAY(SELECT {schema}.leg_change_of(n.pbx, n.id, 1, n.deleted_at, n.start_time, n.raw, n.channel, n.dstchannel, n.to_number, n.dst, n.lastapp) FROM new_legs n);
  ELSIF TG_OP = 'UPDATE' THEN
    changes := ARRAY(SELECT {schema}.leg_change_of(n.pbx, n.id, 1, n.deleted_at, n.start_time, n.raw, n.channel, n.dstchannel, n.to_number, n.dst, n.lastapp) FROM new_legs n
                     UNION ALL
                     SELECT {schema}.leg_change_of(o.pbx, o.id, -1, o.deleted_at, o.start_time, o.raw, o.channel, o.dstchannel, o.to_number, o.dst, o.lastapp) FROM old_legs o);
  ELSE
    changes := ARRAY(SELECT {schema}.leg_change_of(o.pbx, o.id, -1, o.deleted_at, o.start_time, o.raw, o.channel, o.dstchannel, o.to_number, o.dst, o.lastapp) FROM old_legs o);
  END IF;
  IF cardinality(changes) > 0 THEN
    PERFORM {schema}.group_calls_apply(changes);
  END IF;
  RETURN NULL;
END $fn$;

-- group_calls_rebuild computes the stored rows of a PBX again, whole:
-- deferred legs included, so nothing is left to flush.
CREATE OR REPLACE FUNCTION {schema}.group_calls_rebuild(p_pbx text) RETURNS void
LANGUAGE plpgsql SET jit = off AS $fn$
BEGIN
  PERFORM {schema}.group_calls_lock(p_pbx);
  DELETE FROM {schema}.group_calls_deferred WHERE pbx = p_pbx;
  DELETE FROM {schema}.group_number_members WHERE pbx = p_pbx;
  INSERT INTO {schema}.group_number_members (pbx, number, member, legs)
  SELECT x.pbx, x.number, x.member, x.legs FROM {schema}.number_member_pairs(p_pbx, true, NULL) x WHERE x.legs > 0;
  DELETE FROM {schema}.group_calls_stored WHERE pbx = p_pbx;
  EXECUTE 'INSERT INTO {schema}.group_calls_stored SELECT * FROM {schema}.group_call_rows($1, true, NULL, NULL, NULL)' USING p_pbx;
  PERFORM {schema}.group_intervals_refresh(p_pbx, true, NULL, NULL);
  -- Statistics now, or the next batch's plans guess on empty tables.
  ANALYZE {schema}.group_calls_stored, {schema}.group_intervals_stored;
  INSERT INTO {schema}.group_calls_inputs (pbx, fingerprint) VALUES (p_pbx, {schema}.group_inputs_fingerprint(p_pbx))
  ON CONFLICT (pbx) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, updated_at = now();
END $fn$;

-- group_calls_apply (migration 12) with the calls touched found by index:
-- the stored calls the changed legs belong to are looked up once, from all
-- the legs' keys and channels, not with three probes a leg.
CREATE OR REPLACE FUNCTION {schema}.group_calls_apply(changes {schema}.group_leg_change[]) RETURNS void
LANGUAGE plpgsql SET jit = off SET enable_nestloop = off AS $fn$
DECLARE
  p text;
  pairs_number text[];
  pairs_member text[];
  pairs_legs bigint[];
  candidates text[];
  before jsonb;
  after jsonb;
  renumbered text[];
  keys text[];
  chans text[];
  hit_keys text[];
  hit_chans text[];
  u text[];
  c text[];
  i bigint[];
  dk text[];
  ds timestamptz[];
  ik text[];
  iks timestamptz[];
BEGIN
  FOR p IN SELECT DISTINCT x.pbx FROM unnest(changes) x ORDER BY 1 LOOP
    PERFORM {schema}.group_calls_lock(p);
    candidates := NULL;
    before := NULL;
    after := NULL;
    renumbered := NULL;
    IF NOT EXISTS (SELECT 1 FROM {schema}.group_calls_inputs WHERE pbx = p) THEN
      INSERT INTO {schema}.group_calls_inputs (pbx, fingerprint) VALUES (p, {schema}.group_inputs_fingerprint(p));
    END IF;

    SELECT array_agg(x.number), array_agg(x.member), array_agg(x.legs)
    INTO pairs_number, pairs_member, pairs_legs
    FROM {schema}.number_member_pairs(p, false, changes) x WHERE x.legs <> 0;
    IF pairs_number IS NOT NULL THEN
      -- Numbers gaining their first leg to a member, or losing its last.
      SELECT array_agg(DISTINCT d.number) INTO candidates
      FROM unnest(pairs_number, pairs_member, pairs_legs) AS d(number, member, legs)
      LEFT JOIN {schema}.group_number_members m ON m.pbx = p AND m.number = d.number AND m.member = d.member
      WHERE (coalesce(m.legs, 0) > 0) <> (coalesce(m.legs, 0) + d.legs > 0);
      IF candidates IS NOT NULL THEN
        SELECT jsonb_object_agg(n.number, n.group_id) INTO before FROM {schema}.number_groups(p, candidates) n;
      END IF;
      INSERT INTO {schema}.group_number_members AS m (pbx, number, member, legs)
      SELECT p, d.number, d.member, d.legs FROM unnest(pairs_number, pairs_member, pairs_legs) AS d(number, member, legs)
      ON CONFLICT (pbx, number, member) DO UPDATE SET legs = m.legs + EXCLUDED.legs;
      DELETE FROM {schema}.group_number_members WHERE pbx = p AND number = ANY(pairs_number) AND legs <= 0;
      IF candidates IS NOT NULL THEN
        SELECT jsonb_object_agg(n.number, n.group_id) INTO after FROM {schema}.number_groups(p, candidates) n;
        SELECT array_agg(k) INTO renumbered
        FROM (SELECT jsonb_object_keys(coalesce(before, '{}')) UNION SELECT jsonb_object_keys(coalesce(after, '{}'))) AS keys(k)
        WHERE before->k IS DISTINCT FROM after->k;
      END IF;
    END IF;

    -- The stored calls the legs may belong to: by call key ('u:' uniqueid
    -- or 'l:' id, whichever the leg has) or by channel, looked up with the
    -- values (EXECUTE), by index.
    SELECT array_agg(DISTINCT k.k) INTO keys
    FROM unnest(changes) x CROSS JOIN LATERAL (VALUES ('u:' || x.uniqueid), ('l:' || x.id)) AS k(k)
    WHERE x.pbx = p AND k.k IS NOT NULL;
    SELECT array_agg(DISTINCT x.session_channel) INTO chans
    FROM unnest(changes) x WHERE x.pbx = p AND x.uniqueid IS NULL AND x.session_channel IS NOT NULL;
    hit_keys := NULL;
    hit_chans := NULL;
    IF EXISTS (SELECT 1 FROM {schema}.group_calls_stored s WHERE s.pbx = p) THEN
      EXECUTE 'SELECT array_agg(s.call_key) FROM {schema}.group_calls_stored s WHERE s.pbx = $1 AND s.call_key = ANY($2)'
      INTO hit_keys USING p, keys;
      IF chans IS NOT NULL THEN
        EXECUTE 'SELECT array_agg(DISTINCT s.session_channel) FROM {schema}.group_calls_stored s WHERE s.pbx = $1 AND s.session_channel = ANY($2)'
        INTO hit_chans USING p, chans;
      END IF;
    END IF;

    -- The calls touched: by uniqueid, by channel, or the leg alone; with,
    -- when a number's group changed, every call to it (read whole: rare).
    SELECT array_agg(DISTINCT a.uniqueid) FILTER (WHERE a.uniqueid IS NOT NULL),
           array_agg(DISTINCT a.session_channel) FILTER (WHERE a.uniqueid IS NULL AND a.session_channel IS NOT NULL),
           array_agg(DISTINCT a.id) FILTER (WHERE a.uniqueid IS NULL AND a.session_channel IS NULL)
    INTO u, c, i
    FROM (
      -- A leg that reached no group, of a call with no stored row, changes
      -- nothing: its call had no group leg and still has none.
      SELECT x.uniqueid, x.session_channel, x.id FROM unnest(changes) x
      WHERE x.pbx = p
        AND (x.dstgrp IS NOT NULL OR x.lastapp = 'queue'
             OR x.callee_number IN (SELECT m.number FROM {schema}.group_number_members m WHERE m.pbx = p AND m.legs > 0)
             OR x.callee_number IN (SELECT nullif(btrim(coalesce(g.raw->>'number', g.raw->>'extension')), '')
                                    FROM {schema}.call_groups g WHERE g.pbx = p)
             OR ('u:' || x.uniqueid) IN (SELECT unnest(hit_keys))
             OR ('l:' || x.id) IN (SELECT unnest(hit_keys))
             OR (x.uniqueid IS NULL AND x.session_channel IN (SELECT unnest(hit_chans))))
      UNION ALL
      SELECT (lc).uniqueid, (lc).session_channel, (lc).id FROM (
        SELECT {schema}.leg_change_of(h.pbx, h.id, 1, h.deleted_at, h.start_time, h.raw, h.channel, h.dstchannel, h.to_number, h.dst, h.lastapp) AS lc
        FROM {schema}.call_history h
        WHERE renumbered IS NOT NULL AND h.pbx = p AND h.deleted_at IS NULL
          AND coalesce(nullif(btrim(h.to_number), ''), nullif(btrim(h.dst), '')) = ANY(renumbered)) r
    ) a;

    IF u IS NULL AND c IS NULL AND i IS NULL THEN
      CONTINUE;
    END IF;
    EXECUTE 'WITH d AS (
      DELETE FROM {schema}.group_calls_stored s
      WHERE s.pbx = $1 AND (s.session_channel = ANY($2) OR s.call_key = ANY($3))
      RETURNING s.group_key, s.interval_start)
    SELECT array_agg(d.group_key), array_agg(d.interval_start) FROM d'
    INTO dk, ds USING p, c, ARRAY(SELECT 'u:' || x FROM unnest(u) x) || ARRAY(SELECT 'l:' || x FROM unnest(i) x);
    -- EXECUTE plans with the values: the indexes on uniqueid and channel.
    EXECUTE 'WITH n AS (INSERT INTO {schema}.group_calls_stored SELECT * FROM {schema}.group_call_rows($1, false, $2, $3, $4)
                        RETURNING group_key, interval_start)
             SELECT array_agg(n.group_key), array_agg(n.interval_start) FROM n' INTO ik, iks USING p, u, c, i;
    IF dk IS NOT NULL OR ik IS NOT NULL THEN
      PERFORM {schema}.group_intervals_refresh(p, false, coalesce(dk, '{}') || coalesce(ik, '{}'), coalesce(ds, '{}') || coalesce(iks, '{}'));
    END IF;
  END LOOP;
END $fn$;

-- group_interval_rows (migration 12), the pairs given found by index: the
-- calls of the groups and of the starts given (few groups, any number of
-- starts), kept to the pairs.
CREATE OR REPLACE FUNCTION {schema}.group_interval_rows(p_pbx text, p_all boolean, p_keys text[], p_starts timestamptz[])
RETURNS SETOF {schema}.group_intervals_stored
LANGUAGE sql STABLE AS $fn$
WITH t AS (
  SELECT DISTINCT t.k, t.s FROM unnest(p_keys, p_starts) AS t(k, s)
),
c AS (
  SELECT c.* FROM {schema}.group_calls c WHERE p_all AND c.pbx = p_pbx
  UNION ALL
  SELECT c.* FROM {schema}.group_calls c
  WHERE NOT p_all AND c.pbx = p_pbx
    AND c.group_key = ANY(ARRAY(SELECT DISTINCT t.k FROM t WHERE t.s IS NOT NULL))
    AND c.interval_start = ANY(ARRAY(SELECT DISTINCT t.s FROM t WHERE t.s IS NOT NULL))
    -- IS TRUE: a hashed filter, never a join the planner may nest.
    AND ((c.group_key, c.interval_start) IN (SELECT t.k, t.s FROM t)) IS TRUE
  UNION ALL
  SELECT c.* FROM {schema}.group_calls c
  WHERE NOT p_all AND c.pbx = p_pbx AND c.interval_start IS NULL AND c.group_key IN (SELECT t.k FROM t WHERE t.s IS NULL)
)
SELECT c.pbx, c.group_key, max(c.group_id) AS group_id, max(c.group_name) AS group_name,
       c.interval_start,
       min(c.interval_local) AS interval_local,
       (extract(epoch FROM min(c.interval_local) - (c.interval_start AT TIME ZONE 'UTC')) / 60)::integer AS utc_offset_minutes,
       count(*) AS offered,
       count(*) FILTER (WHERE c.answered) AS answered,
       count(*) FILTER (WHERE c.answered_in_service_level) AS answered_in_service_level,
       count(*) FILTER (WHERE c.abandoned) AS abandoned,
       count(*) FILTER (WHERE c.short_abandon) AS short_abandons,
       count(*) FILTER (WHERE c.overflowed) AS overflowed,
       round(100.0 * count(*) FILTER (WHERE c.answered_in_service_level) / count(*), 1) AS service_level_percent,
       round(avg(c.wait_seconds) FILTER (WHERE c.answered), 1) AS avg_speed_of_answer_seconds,
       round(avg(c.wait_seconds), 1) AS avg_wait_seconds,
       max(c.wait_seconds) AS max_wait_seconds,
       round(avg(c.talk_seconds) FILTER (WHERE c.answered), 1) AS avg_handle_seconds,
       coalesce(sum(c.talk_seconds), 0)::bigint AS talk_seconds,
       max(c.service_level_seconds) AS service_level_seconds
FROM c
GROUP BY c.pbx, c.group_key, c.interval_start
$fn$;

-- group_intervals_refresh computes again the stored intervals of a PBX,
-- all or those given (then found by index from the groups and starts
-- given, with the values: EXECUTE).
CREATE OR REPLACE FUNCTION {schema}.group_intervals_refresh(p_pbx text, p_all boolean, p_keys text[], p_starts timestamptz[]) RETURNS void
LANGUAGE plpgsql SET jit = off SET enable_nestloop = on SET enable_hashjoin = on SET enable_mergejoin = on AS $fn$
BEGIN
  IF p_all THEN
    DELETE FROM {schema}.group_intervals_stored WHERE pbx = p_pbx;
  ELSE
    EXECUTE 'DELETE FROM {schema}.group_intervals_stored g
    WHERE g.pbx = $1 AND g.group_key = ANY($2) AND g.interval_start = ANY($3)
      AND ((g.group_key, g.interval_start) IN (SELECT t.k, t.s FROM unnest($4, $5) AS t(k, s))) IS TRUE'
    USING p_pbx,
          ARRAY(SELECT DISTINCT t.k FROM unnest(p_keys, p_starts) AS t(k, s) WHERE t.s IS NOT NULL),
          ARRAY(SELECT DISTINCT t.s FROM unnest(p_keys, p_starts) AS t(k, s) WHERE t.s IS NOT NULL),
          p_keys, p_starts;
    DELETE FROM {schema}.group_intervals_stored g
    WHERE g.pbx = p_pbx AND g.interval_start IS NULL
      AND g.group_key IN (SELECT t.k FROM unnest(p_keys, p_starts) AS t(k, s) WHERE t.s IS NULL);
  END IF;
  EXECUTE 'INSERT INTO {schema}.group_intervals_stored SELECT * FROM {schema}.group_interval_rows($1, $2, $3, $4)'
  USING p_pbx, p_all, p_keys, p_starts;
END $fn$;

-- The trigger on pbx_settings: a PBX's zone changed, its local times too.
CREATE OR REPLACE FUNCTION {schema}.group_calls_zone_changed() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $fn$
DECLARE
  p text;
  zone text;
BEGIN
  IF TG_OP = 'DELETE' THEN
    p := OLD.pbx;
  ELSE
    p := NEW.pbx;
    zone := NEW.time_zone;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.pbx = NEW.pbx AND OLD.time_zone IS NOT DISTINCT FROM NEW.time_zone THEN
    RETURN NULL;
  END IF;
  PERFORM {schema}.group_calls_lock(p);
  UPDATE {schema}.group_calls_stored
  SET local_offered = {schema}.pbx_local(offered_at, zone, tz_offset),
      interval_local = {schema}.pbx_local(interval_start, zone, tz_offset)
  WHERE pbx = p;
  PERFORM {schema}.group_intervals_refresh(p, true, NULL, NULL);
  IF TG_OP = 'UPDATE' AND OLD.pbx <> NEW.pbx THEN
    PERFORM {schema}.group_calls_lock(OLD.pbx);
    UPDATE {schema}.group_calls_stored
    SET local_offered = {schema}.pbx_local(offered_at, NULL, tz_offset),
        interval_local = {schema}.pbx_local(interval_start, NULL, tz_offset)
    WHERE pbx = OLD.pbx;
    PERFORM {schema}.group_intervals_refresh(OLD.pbx, true, NULL, NULL);
  END IF;
  RETURN NULL;
END $fn$;

-- The trigger on reporting_settings: the thresholds are in the stored
-- intervals, which are computed again for every PBX.
CREATE OR REPLACE FUNCTION {schema}.group_calls_thresholds_changed() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $fn$
DECLARE
  p text;
BEGIN
  FOR p IN SELECT DISTINCT s.pbx FROM {schema}.group_calls_stored s ORDER BY 1 LOOP
    PERFORM {schema}.group_calls_lock(p);
    PERFORM {schema}.group_intervals_refresh(p, true, NULL, NULL);
  END LOOP;
  RETURN NULL;
END $fn$;

-- The trigger on TRUNCATE of pbx_settings (migration 13).
CREATE OR REPLACE FUNCTION {schema}.group_calls_zones_truncated() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $fn$
DECLARE
  p text;
BEGIN
  FOR p IN SELECT DISTINCT s.pbx FROM {schema}.group_calls_stored s ORDER BY 1 LOOP
    PERFORM {schema}.group_calls_lock(p);
    UPDATE {schema}.group_calls_stored
    SET local_offered = {schema}.pbx_local(offered_at, NULL, tz_offset),
        interval_local = {schema}.pbx_local(interval_start, NULL, tz_offset)
    WHERE pbx = p;
    PERFORM {schema}.group_intervals_refresh(p, true, NULL, NULL);
  END LOOP;
  RETURN NULL;
END $fn$;
`
