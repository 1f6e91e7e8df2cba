package sinks

// reportingGroupsStored is the migration that stores group_calls instead
// of computing it at each query: grouping every leg of a year into calls
// and groups took minutes (bench/README.md, "Call groups"), so that
// group_intervals for one group and a year could not answer in seconds.
//
//   - group_calls_stored: one row per call offered to a group with what
//     depends on the call's legs, the colleagues' extensions, the call
//     groups and the PBX's zone; group_calls adds at the query what
//     depends on the thresholds and the colleagues' names.
//   - group_number_members: rule 3's evidence (a number not a colleague's
//     rang these extensions), with the legs that showed it, so that no
//     leg needs reading again to decide it.
//   - group_legs_in: THE rule of how a leg reaches a group (moved here
//     from the view group_legs, which now reads it over every leg), for
//     every leg or only the calls of some legs.
//   - Triggers keep both tables exact in the transaction that writes
//     call_history (whatever writes it: the sink's COPY and merge, a hand
//     edit, a deletion): the calls of the legs written are deleted and
//     computed again from all their legs. A change of colleagues' extensions
//     or of call groups (names, numbers, members) computes the PBX again
//     whole, as does TRUNCATE; a change of zone in pbx_settings updates
//     the PBX's local times.
//
// call_key is computed as call_legs computes it (migration 4): the same
// windows over the legs of one channel, which is why the legs of the
// calls touched are read whole by uniqueid or channel (two indexes).
const reportingGroupsStored = `
CREATE TABLE IF NOT EXISTS {schema}.group_calls_stored (
  pbx                   text NOT NULL,
  call_key              text NOT NULL,
  group_key             text NOT NULL,
  session_channel       text, -- the channel whose legs make the call, when keyed by channel
  group_id              text,
  group_number          text,
  group_name            text,
  group_source          text,
  first_leg_id          bigint,
  offered_at            timestamptz,
  interval_start        timestamptz,
  local_offered         timestamp, -- in the zone of pbx_settings, kept so by a trigger there
  interval_local        timestamp,
  tz_offset             text,
  caller_number         text,
  outcome               text NOT NULL,
  answered_by_extension text,
  wait_seconds          integer,
  talk_seconds          integer,
  transferred_out       boolean NOT NULL,
  next_destination      text,
  legs                  integer NOT NULL,
  members_rung          integer NOT NULL,
  members               text[] NOT NULL, -- the members rung, for agent_calls
  PRIMARY KEY (pbx, call_key, group_key)
);
CREATE INDEX IF NOT EXISTS group_calls_stored_interval_idx ON {schema}.group_calls_stored (pbx, group_key, interval_start);
CREATE INDEX IF NOT EXISTS group_calls_stored_channel_idx ON {schema}.group_calls_stored (pbx, session_channel) WHERE session_channel IS NOT NULL;

CREATE TABLE IF NOT EXISTS {schema}.group_number_members (
  pbx    text NOT NULL,
  number text NOT NULL,
  member text NOT NULL,
  legs   bigint NOT NULL,
  PRIMARY KEY (pbx, number, member)
);

-- What the stored rows of a PBX were computed with: a digest of its
-- colleagues' extensions and its call groups' ids, names, numbers and
-- members. Another digest means computing the PBX again.
CREATE TABLE IF NOT EXISTS {schema}.group_calls_inputs (
  pbx         text PRIMARY KEY,
  fingerprint text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The legs of a call, found again when one of them is written.
CREATE INDEX IF NOT EXISTS call_history_channel_idx ON {schema}.call_history (pbx, btrim(channel));
CREATE INDEX IF NOT EXISTS call_history_uniqueid_idx ON {schema}.call_history (pbx, nullif(btrim(raw->>'uniqueid'), '')) WHERE raw ? 'uniqueid';

CREATE OR REPLACE FUNCTION {schema}.group_inputs_fingerprint(p_pbx text) RETURNS text
LANGUAGE sql STABLE AS $$
SELECT md5(jsonb_build_array(
  (SELECT jsonb_agg(ce.extension ORDER BY ce.extension) FROM {schema}.colleague_extensions ce WHERE ce.pbx = p_pbx),
  (SELECT jsonb_agg(jsonb_build_array(g.id, coalesce(nullif(btrim(g.title), ''), nullif(btrim(g.name), '')),
                                      nullif(btrim(coalesce(g.raw->>'number', g.raw->>'extension')), '')) ORDER BY g.id)
   FROM {schema}.call_groups g WHERE g.pbx = p_pbx),
  (SELECT jsonb_agg(jsonb_build_array(m.group_id, m.extension) ORDER BY m.group_id, m.extension)
   FROM {schema}.call_group_members m WHERE m.pbx = p_pbx))::text) $$;

-- A written or removed leg, as the maintenance needs it: which call it
-- belongs to (by uniqueid, by channel, or alone) and rule 3's fields.
CREATE TYPE {schema}.group_leg_change AS (
  pbx text, id bigint, sign integer, live boolean, uniqueid text, session_channel text,
  dstgrp text, callee_number text, dst_peer text, lastapp text);

CREATE OR REPLACE FUNCTION {schema}.leg_change_of(pbx text, id bigint, sign integer, deleted_at timestamptz, start_time timestamptz,
  raw jsonb, channel text, dstchannel text, to_number text, dst text, lastapp text) RETURNS {schema}.group_leg_change
LANGUAGE sql IMMUTABLE AS $$
SELECT ROW(pbx, id, sign, deleted_at IS NULL, nullif(btrim(raw->>'uniqueid'), ''),
           CASE WHEN nullif(btrim(raw->>'uniqueid'), '') IS NULL AND start_time IS NOT NULL THEN nullif(btrim(channel), '') END,
           nullif(nullif(nullif(btrim(raw->>'dstgrp'), ''), '0'), '-1'),
           coalesce(nullif(btrim(to_number), ''), nullif(btrim(dst), '')),
           substring(dstchannel from '^[^/]+/([^-@/;]+)'),
           lower(nullif(btrim(lastapp), '')))::{schema}.group_leg_change $$;

-- number_member_pairs: rule 3's evidence in legs (every live leg of
-- p_pbx when p_all, plus the legs given, each counted with its sign): a
-- leg to a number shaped like an extension, not a colleague's, that rang
-- another extension (its dstchannel's peer, a colleague's or shaped like
-- an extension).
CREATE OR REPLACE FUNCTION {schema}.number_member_pairs(p_pbx text, p_all boolean, p_legs {schema}.group_leg_change[])
RETURNS TABLE (pbx text, number text, member text, legs bigint)
LANGUAGE sql STABLE AS $$
WITH x AS (
  SELECT * FROM unnest(p_legs)
  UNION ALL
  SELECT (c).* FROM (
    SELECT {schema}.leg_change_of(h.pbx, h.id, 1, h.deleted_at, h.start_time, h.raw, h.channel, h.dstchannel, h.to_number, h.dst, h.lastapp) AS c
    FROM {schema}.call_history h WHERE p_all AND h.pbx = p_pbx) a
)
SELECT x.pbx, x.callee_number, x.dst_peer, sum(x.sign)::bigint
FROM x
LEFT JOIN {schema}.colleague_extensions cc ON cc.pbx = x.pbx AND cc.extension = x.callee_number
LEFT JOIN {schema}.colleague_extensions cp ON cp.pbx = x.pbx AND cp.extension = x.dst_peer
WHERE x.pbx = p_pbx AND x.live AND x.dstgrp IS NULL AND {schema}.internal_shape(x.callee_number) AND cc.extension IS NULL
  AND x.dst_peer IS NOT NULL AND x.dst_peer <> x.callee_number
  AND (cp.extension IS NOT NULL OR {schema}.internal_shape(x.dst_peer))
GROUP BY x.pbx, x.callee_number, x.dst_peer $$;

-- number_groups: the group of each number rule 3 applies to (p_numbers,
-- or all): the call_groups record whose members include most of the
-- extensions ever rung for it; NULL on a tie or with no record.
CREATE OR REPLACE FUNCTION {schema}.number_groups(p_pbx text, p_numbers text[])
RETURNS TABLE (pbx text, number text, group_id text)
LANGUAGE sql STABLE AS $$
WITH b AS (
  SELECT m.pbx, m.number, m.member FROM {schema}.group_number_members m
  WHERE m.legs > 0 AND (p_pbx IS NULL OR m.pbx = p_pbx) AND (p_numbers IS NULL OR m.number = ANY(p_numbers))
),
overlap AS (
  SELECT b.pbx, b.number, m.group_id,
         rank() OVER (PARTITION BY b.pbx, b.number ORDER BY count(*) DESC) AS rnk
  FROM b
  JOIN {schema}.call_group_members m ON m.pbx = b.pbx AND m.extension = b.member
  GROUP BY b.pbx, b.number, m.group_id
)
SELECT n.pbx, n.number,
       CASE WHEN count(o.group_id) = 1 THEN min(o.group_id) END -- a tie is no answer
FROM (SELECT DISTINCT b.pbx, b.number FROM b) n
LEFT JOIN overlap o ON o.pbx = n.pbx AND o.number = n.number AND o.rnk = 1
GROUP BY n.pbx, n.number $$;

-- group_legs_in: the legs of every PBX (p_pbx NULL), of one PBX
-- (p_all), or of the calls of one PBX that have a leg with one of
-- p_uniqueids, of p_channels (a call keyed by channel) or of p_ids (a leg
-- alone), with their call (call_key and leg_no as in call_legs) and the
-- group each reached. THE rule (docs/pbx-api.md, "How a call reaches a
-- group"), in order: the group id the PBX sent (dstgrp); the number
-- dialled is a group's number (a number field of call_groups); the number
-- dialled is not a colleague's and rang other extensions (number_groups,
-- a guess); the leg ran the Queue application (a guess, the queue named
-- by lastdata).
CREATE OR REPLACE FUNCTION {schema}.group_legs_in(p_pbx text, p_all boolean, p_uniqueids text[], p_channels text[], p_ids bigint[])
RETURNS TABLE (pbx text, id bigint, call_key text, leg_no bigint, start_time timestamptz, answer_time timestamptz,
  end_time timestamptz, duration integer, billsec integer, disposition text, caller_number text, callee_number text,
  callee_name text, tz_offset text, member text, group_source text, group_key text, group_id text, group_number text,
  group_name text, lastapp text, queue_timeout integer, session_channel text)
LANGUAGE sql STABLE AS $fn$
WITH h AS NOT MATERIALIZED (
  SELECT h.pbx, h.id, h.start_time, h.answer_time, h.end_time, h.duration, h.billsec, h.disposition,
         h.from_number, h.src, h.to_name, h.tz_offset, h.lastdata,
         coalesce(nullif(btrim(h.to_number), ''), nullif(btrim(h.dst), '')) AS callee_number,
         nullif(btrim(h.dst), '') AS dst,
         substring(h.dstchannel from '^[^/]+/([^-@/;]+)') AS dst_peer,
         nullif(btrim(h.raw->>'uniqueid'), '') AS uniqueid,
         nullif(btrim(h.channel), '') AS channel,
         nullif(nullif(nullif(btrim(h.raw->>'dstgrp'), ''), '0'), '-1') AS dstgrp,
         lower(nullif(btrim(h.lastapp), '')) AS lastapp
  FROM {schema}.call_history h
  WHERE h.deleted_at IS NULL AND (p_pbx IS NULL OR h.pbx = p_pbx)
    AND (p_all
         OR (h.raw ? 'uniqueid' AND nullif(btrim(h.raw->>'uniqueid'), '') = ANY(p_uniqueids))
         OR (btrim(h.channel) = ANY(p_channels) AND h.start_time IS NOT NULL AND nullif(btrim(h.raw->>'uniqueid'), '') IS NULL)
         OR (h.id = ANY(p_ids) AND nullif(btrim(h.raw->>'uniqueid'), '') IS NULL
             AND (h.start_time IS NULL OR nullif(btrim(h.channel), '') IS NULL)))
),
-- call_key and leg_no exactly as call_legs computes them.
by_channel AS (
  SELECT h.pbx, h.id, h.start_time, h.uniqueid,
         coalesce(h.end_time, h.start_time + make_interval(secs => greatest(h.duration, 0))) AS end_guess,
         CASE WHEN h.uniqueid IS NULL AND h.start_time IS NOT NULL THEN h.channel END AS session_channel
  FROM h
),
opened AS (
  SELECT b.*,
         CASE WHEN b.session_channel IS NULL THEN 0
              WHEN b.start_time <= max(b.end_guess) OVER w + interval '5 seconds' THEN 0
              ELSE 1 END AS opens
  FROM by_channel b
  WINDOW w AS (PARTITION BY b.pbx, b.session_channel ORDER BY b.start_time, b.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
keyed AS (
  SELECT o.pbx, o.id, o.start_time, o.session_channel,
         CASE WHEN o.uniqueid IS NOT NULL THEN 'u:' || o.uniqueid
              WHEN o.session_channel IS NOT NULL THEN 'c:' || o.session_channel || '#' ||
                   sum(o.opens) OVER (PARTITION BY o.pbx, o.session_channel ORDER BY o.start_time, o.id)
              ELSE 'l:' || o.id END AS call_key
  FROM opened o
),
numbered AS (
  SELECT k.pbx, k.id, k.call_key, k.session_channel,
         row_number() OVER (PARTITION BY k.pbx, k.call_key ORDER BY k.start_time NULLS LAST, k.id) AS leg_no
  FROM keyed k
),
-- Materialised: the regular expressions below run once a leg, not once
-- a reference.
l AS MATERIALIZED (
  SELECT h.pbx, h.id, n.call_key, n.leg_no, n.session_channel, h.start_time, h.answer_time, h.end_time, h.duration, h.billsec,
         nullif(upper(btrim(h.disposition)), '') AS disposition,
         coalesce(nullif(btrim(h.from_number), ''), nullif(btrim(h.src), '')) AS caller_number,
         h.callee_number, nullif(btrim(h.to_name), '') AS callee_name, h.tz_offset,
         CASE WHEN h.dst_peer IS NOT NULL AND (ce.extension IS NOT NULL OR {schema}.internal_shape(h.dst_peer)) THEN h.dst_peer
              WHEN {schema}.internal_shape(h.callee_number) THEN h.callee_number
              WHEN {schema}.internal_shape(h.dst) THEN h.dst END AS member,
         h.dst_peer, h.dstgrp, h.lastapp, h.lastdata,
         nullif(btrim(split_part(h.lastdata, ',', 1)), '') AS queue_name
  FROM h
  JOIN numbered n ON n.pbx = h.pbx AND n.id = h.id
  LEFT JOIN {schema}.colleague_extensions ce ON ce.pbx = h.pbx AND ce.extension = h.dst_peer
),
groups AS (
  SELECT g.pbx, g.id, coalesce(nullif(btrim(g.title), ''), nullif(btrim(g.name), '')) AS name,
         nullif(btrim(coalesce(g.raw->>'number', g.raw->>'extension')), '') AS number
  FROM {schema}.call_groups g
),
ruled AS (
  SELECT l.*,
         CASE WHEN l.dstgrp IS NOT NULL THEN 'dstgrp'
              WHEN gn.id IS NOT NULL THEN 'group_number'
              WHEN ng.number IS NOT NULL THEN 'members_rung'
              WHEN l.lastapp = 'queue' THEN 'queue_app' END AS group_source,
         CASE WHEN l.dstgrp IS NOT NULL THEN l.dstgrp
              WHEN gn.id IS NOT NULL THEN gn.id
              WHEN ng.number IS NOT NULL THEN ng.group_id
              WHEN l.lastapp = 'queue' THEN gq.id END AS group_id,
         CASE WHEN l.dstgrp IS NOT NULL OR gn.id IS NOT NULL OR ng.number IS NOT NULL THEN l.callee_number
              WHEN l.lastapp = 'queue' THEN coalesce(l.queue_name, l.callee_number) END AS group_number
  FROM l
  LEFT JOIN LATERAL (
    SELECT g.id FROM groups g
    WHERE l.dstgrp IS NULL AND g.pbx = l.pbx AND g.number = l.callee_number
    ORDER BY g.id LIMIT 1) gn ON true
  -- rule 3 needs a number that is not a colleague's: number_member_pairs
  -- keeps no other.
  LEFT JOIN {schema}.number_groups(p_pbx, NULL) ng ON ng.pbx = l.pbx AND ng.number = l.callee_number AND l.dstgrp IS NULL AND gn.id IS NULL
  LEFT JOIN LATERAL (
    SELECT g.id FROM groups g
    WHERE l.lastapp = 'queue' AND g.pbx = l.pbx AND (g.id = l.queue_name OR g.name = l.queue_name OR g.number = l.queue_name)
    ORDER BY g.id LIMIT 1) gq ON true
)
SELECT r.pbx, r.id, r.call_key, r.leg_no, r.start_time, r.answer_time, r.end_time, r.duration, r.billsec,
       r.disposition, r.caller_number, r.callee_number, r.callee_name, r.tz_offset,
       -- A group's member is the extension its leg rang (dstchannel), never
       -- the number dialled.
       CASE WHEN r.group_source IS NULL OR (r.member = r.dst_peer AND r.member IS DISTINCT FROM r.group_number) THEN r.member END AS member,
       r.group_source,
       CASE WHEN r.group_source IS NOT NULL THEN coalesce('g:' || r.group_id, 'n:' || r.group_number, 'n:?') END AS group_key,
       r.group_id,
       r.group_number,
       CASE WHEN r.group_source IS NOT NULL THEN coalesce(g.name, r.callee_name, r.group_number) END AS group_name,
       r.lastapp,
       CASE WHEN r.lastapp = 'queue' AND btrim(split_part(r.lastdata, ',', 5)) ~ '^[0-9]{1,6}$'
            THEN btrim(split_part(r.lastdata, ',', 5))::integer END AS queue_timeout,
       r.session_channel
FROM ruled r
LEFT JOIN groups g ON g.pbx = r.pbx AND g.id = r.group_id
$fn$;

-- group_call_rows: the stored rows of the calls group_legs_in selects
-- (the same arguments): one per call offered to a group, with exactly one
-- outcome. A call is answered when a member answered; it overflowed when
-- a later leg took it elsewhere or it waited the dialplan's timeout for
-- the group (the Queue application's fifth argument); else the caller
-- abandoned.
CREATE OR REPLACE FUNCTION {schema}.group_call_rows(p_pbx text, p_all boolean, p_uniqueids text[], p_channels text[], p_ids bigint[])
RETURNS SETOF {schema}.group_calls_stored
LANGUAGE sql STABLE AS $fn$
WITH gl AS MATERIALIZED (
  SELECT * FROM {schema}.group_legs_in(p_pbx, p_all, p_uniqueids, p_channels, p_ids)
),
gc AS (
  SELECT g.pbx, g.call_key, g.group_key,
         max(g.session_channel) AS session_channel,
         max(g.group_id) AS group_id, max(g.group_number) AS group_number, max(g.group_name) AS group_name,
         (array_agg(g.group_source ORDER BY g.start_time NULLS LAST, g.id))[1] AS group_source,
         min(g.id) AS first_leg_id,
         min(g.start_time) AS offered_at,
         (array_agg(g.tz_offset ORDER BY g.start_time NULLS LAST, g.id))[1] AS tz_offset,
         (array_agg(g.caller_number ORDER BY g.start_time NULLS LAST, g.id))[1] AS caller_number,
         max(coalesce(g.end_time, g.start_time + make_interval(secs => greatest(g.duration, 0)))) AS left_at,
         coalesce(bool_or(g.disposition = 'ANSWERED' AND g.member IS NOT NULL), false) AS answered,
         (array_agg(g.member ORDER BY g.answer_time NULLS LAST, g.id) FILTER (WHERE g.disposition = 'ANSWERED' AND g.member IS NOT NULL))[1] AS answered_by_extension,
         min(coalesce(g.answer_time, g.start_time + make_interval(secs => greatest(g.duration - g.billsec, 0)))) FILTER (WHERE g.disposition = 'ANSWERED' AND g.member IS NOT NULL) AS answered_at,
         (array_agg(g.billsec ORDER BY g.answer_time NULLS LAST, g.id) FILTER (WHERE g.disposition = 'ANSWERED' AND g.member IS NOT NULL))[1] AS talk_seconds,
         count(*) AS legs,
         coalesce(array_agg(DISTINCT g.member) FILTER (WHERE g.member IS NOT NULL), '{}') AS members,
         max(g.queue_timeout) AS queue_timeout
  FROM gl g
  WHERE g.group_key IS NOT NULL
  GROUP BY g.pbx, g.call_key, g.group_key
),
-- The call went on elsewhere: the first leg of the same call, outside
-- the group, starting after the group was offered the call.
later AS (
  SELECT gc.pbx, gc.call_key, gc.group_key,
         (array_agg(coalesce(o.group_name, o.member, o.callee_number) ORDER BY o.start_time, o.id))[1] AS next_destination
  FROM gc
  JOIN gl o ON o.pbx = gc.pbx AND o.call_key = gc.call_key AND o.group_key IS DISTINCT FROM gc.group_key
           AND o.start_time > gc.offered_at
  GROUP BY gc.pbx, gc.call_key, gc.group_key
),
timed AS (
  SELECT gc.*, lt.next_destination,
         date_bin('15 minutes', gc.offered_at, timestamptz '2000-01-01 00:00:00+00') AS interval_start,
         CASE WHEN gc.answered THEN extract(epoch FROM gc.answered_at - gc.offered_at)
              ELSE extract(epoch FROM gc.left_at - gc.offered_at) END AS wait
  FROM gc
  LEFT JOIN later lt ON lt.pbx = gc.pbx AND lt.call_key = gc.call_key AND lt.group_key = gc.group_key
)
SELECT t.pbx, t.call_key, t.group_key, t.session_channel, t.group_id, t.group_number, t.group_name, t.group_source,
       t.first_leg_id, t.offered_at, t.interval_start,
       {schema}.pbx_local(t.offered_at, s.time_zone, t.tz_offset),
       {schema}.pbx_local(t.interval_start, s.time_zone, t.tz_offset),
       t.tz_offset, t.caller_number,
       CASE WHEN t.answered THEN 'answered'
            WHEN t.next_destination IS NOT NULL OR t.wait >= t.queue_timeout THEN 'overflowed'
            ELSE 'abandoned' END,
       t.answered_by_extension,
       CASE WHEN t.wait IS NOT NULL THEN greatest(round(t.wait), 0)::integer END,
       CASE WHEN t.answered THEN coalesce(t.talk_seconds, 0) END,
       t.answered AND t.next_destination IS NOT NULL,
       t.next_destination,
       t.legs::integer,
       cardinality(t.members),
       t.members
FROM timed t
LEFT JOIN {schema}.pbx_settings s ON s.pbx = t.pbx
$fn$;

-- group_calls_rebuild computes the stored rows of a PBX again, whole.
-- (JIT is off in the maintenance: compiling its plans costs more than
-- they run.)
CREATE OR REPLACE FUNCTION {schema}.group_calls_rebuild(p_pbx text) RETURNS void
LANGUAGE plpgsql SET jit = off AS $fn$
BEGIN
  PERFORM pg_advisory_xact_lock('{schema}.group_calls_stored'::regclass::oid::integer, hashtext(p_pbx));
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

-- (No nested loops either: the planner cannot estimate how many legs an
-- array of channels selects and, guessing one, joined the calls with their
-- legs in a nested loop, seconds for a batch of thousands.)
-- group_calls_apply brings the stored rows up to date with legs written
-- (sign 1) or removed (sign -1; an update is both): the calls they belong
-- to, before and after, are deleted and computed again from all their
-- legs; and when they add or remove rule 3's evidence so that a number's
-- group changes, every call to that number.
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
  u text[];
  c text[];
  i bigint[];
  dk text[];
  ds timestamptz[];
  ik text[];
  iks timestamptz[];
BEGIN
  FOR p IN SELECT DISTINCT x.pbx FROM unnest(changes) x ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock('{schema}.group_calls_stored'::regclass::oid::integer, hashtext(p));
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
             OR EXISTS (SELECT 1 FROM {schema}.group_number_members m WHERE m.pbx = p AND m.number = x.callee_number AND m.legs > 0)
             OR EXISTS (SELECT 1 FROM {schema}.call_groups g
                        WHERE g.pbx = p AND nullif(btrim(coalesce(g.raw->>'number', g.raw->>'extension')), '') = x.callee_number)
             OR EXISTS (SELECT 1 FROM {schema}.group_calls_stored s
                        WHERE s.pbx = p AND (s.call_key = 'u:' || x.uniqueid OR s.call_key = 'l:' || x.id
                                             OR (x.uniqueid IS NULL AND s.session_channel = x.session_channel))))
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
    WITH d AS (
      DELETE FROM {schema}.group_calls_stored s
      WHERE s.pbx = p AND (s.session_channel = ANY(c)
                           OR s.call_key = ANY(ARRAY(SELECT 'u:' || x FROM unnest(u) x) || ARRAY(SELECT 'l:' || x FROM unnest(i) x)))
      RETURNING s.group_key, s.interval_start)
    SELECT array_agg(d.group_key), array_agg(d.interval_start) INTO dk, ds FROM d;
    -- EXECUTE plans with the values: the indexes on uniqueid and channel.
    EXECUTE 'WITH n AS (INSERT INTO {schema}.group_calls_stored SELECT * FROM {schema}.group_call_rows($1, false, $2, $3, $4)
                        RETURNING group_key, interval_start)
             SELECT array_agg(n.group_key), array_agg(n.interval_start) FROM n' INTO ik, iks USING p, u, c, i;
    IF dk IS NOT NULL OR ik IS NOT NULL THEN
      PERFORM {schema}.group_intervals_refresh(p, false, coalesce(dk, '{}') || coalesce(ik, '{}'), coalesce(ds, '{}') || coalesce(iks, '{}'));
    END IF;
  END LOOP;
END $fn$;

-- The triggers on call_history: the legs a statement wrote or removed.
CREATE OR REPLACE FUNCTION {schema}.group_calls_legs_changed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  changes {schema}.group_leg_change[];
BEGIN
  IF TG_OP = 'INSERT' THEN
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

-- The trigger on colleagues and call_groups (and TRUNCATE of any of the
-- three): every PBX whose inputs' digest changed is computed again.
CREATE OR REPLACE FUNCTION {schema}.group_calls_inputs_changed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  p text;
BEGIN
  FOR p IN
    SELECT k.pbx FROM (
      SELECT pbx FROM {schema}.group_calls_inputs
      UNION SELECT pbx FROM {schema}.colleagues
      UNION SELECT pbx FROM {schema}.call_groups) k
    LEFT JOIN {schema}.group_calls_inputs i ON i.pbx = k.pbx
    WHERE TG_OP = 'TRUNCATE' OR i.fingerprint IS DISTINCT FROM {schema}.group_inputs_fingerprint(k.pbx)
    ORDER BY 1
  LOOP
    PERFORM {schema}.group_calls_rebuild(p);
  END LOOP;
  RETURN NULL;
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
  PERFORM pg_advisory_xact_lock('{schema}.group_calls_stored'::regclass::oid::integer, hashtext(p));
  UPDATE {schema}.group_calls_stored
  SET local_offered = {schema}.pbx_local(offered_at, zone, tz_offset),
      interval_local = {schema}.pbx_local(interval_start, zone, tz_offset)
  WHERE pbx = p;
  PERFORM {schema}.group_intervals_refresh(p, true, NULL, NULL);
  IF TG_OP = 'UPDATE' AND OLD.pbx <> NEW.pbx THEN
    PERFORM pg_advisory_xact_lock('{schema}.group_calls_stored'::regclass::oid::integer, hashtext(OLD.pbx));
    UPDATE {schema}.group_calls_stored
    SET local_offered = {schema}.pbx_local(offered_at, NULL, tz_offset),
        interval_local = {schema}.pbx_local(interval_start, NULL, tz_offset)
    WHERE pbx = OLD.pbx;
    PERFORM {schema}.group_intervals_refresh(OLD.pbx, true, NULL, NULL);
  END IF;
  RETURN NULL;
END $fn$;

CREATE TRIGGER group_calls_zone_changed AFTER INSERT OR UPDATE OR DELETE ON {schema}.pbx_settings
  FOR EACH ROW EXECUTE FUNCTION {schema}.group_calls_zone_changed();
CREATE TRIGGER group_calls_legs_inserted AFTER INSERT ON {schema}.call_history
  REFERENCING NEW TABLE AS new_legs FOR EACH STATEMENT EXECUTE FUNCTION {schema}.group_calls_legs_changed();
CREATE TRIGGER group_calls_legs_updated AFTER UPDATE ON {schema}.call_history
  REFERENCING OLD TABLE AS old_legs NEW TABLE AS new_legs FOR EACH STATEMENT EXECUTE FUNCTION {schema}.group_calls_legs_changed();
CREATE TRIGGER group_calls_legs_deleted AFTER DELETE ON {schema}.call_history
  REFERENCING OLD TABLE AS old_legs FOR EACH STATEMENT EXECUTE FUNCTION {schema}.group_calls_legs_changed();
CREATE TRIGGER group_calls_legs_truncated AFTER TRUNCATE ON {schema}.call_history
  FOR EACH STATEMENT EXECUTE FUNCTION {schema}.group_calls_inputs_changed();
CREATE TRIGGER group_calls_colleagues_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.colleagues
  FOR EACH STATEMENT EXECUTE FUNCTION {schema}.group_calls_inputs_changed();
CREATE TRIGGER group_calls_groups_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.call_groups
  FOR EACH STATEMENT EXECUTE FUNCTION {schema}.group_calls_inputs_changed();

-- The views keep their names and columns; group_legs reads the rule over
-- every leg, group_calls the stored rows with what settings decide.
CREATE OR REPLACE VIEW {schema}.group_legs AS
SELECT g.pbx, g.id, g.call_key, g.leg_no, g.start_time, g.answer_time, g.end_time, g.duration, g.billsec,
       g.disposition, g.caller_number, g.callee_number, g.callee_name, g.tz_offset, g.member, g.group_source,
       g.group_key, g.group_id, g.group_number, g.group_name, g.lastapp
FROM {schema}.group_legs_in(NULL, true, NULL, NULL, NULL) g;

CREATE OR REPLACE VIEW {schema}.group_calls AS
SELECT s.pbx, s.group_key, s.group_id, s.group_number, s.group_name, s.call_key, s.first_leg_id,
       s.offered_at, s.local_offered, s.local_offered::date AS local_day, s.interval_start, s.interval_local,
       s.caller_number, s.outcome,
       s.outcome = 'answered' AS answered,
       s.outcome = 'abandoned' AS abandoned,
       coalesce(s.outcome = 'abandoned' AND s.wait_seconds <= coalesce(sp.short_abandon_seconds, sd.short_abandon_seconds, 6), false) AS short_abandon,
       s.outcome = 'overflowed' AS overflowed,
       coalesce(s.outcome = 'answered' AND s.wait_seconds <= coalesce(sp.service_level_seconds, sd.service_level_seconds, 20), false) AS answered_in_service_level,
       s.answered_by_extension, ce.name AS answered_by_colleague,
       s.wait_seconds, s.talk_seconds, s.transferred_out, s.next_destination, s.legs, s.members_rung, s.group_source,
       coalesce(sp.service_level_seconds, sd.service_level_seconds, 20) AS service_level_seconds,
       coalesce(sp.short_abandon_seconds, sd.short_abandon_seconds, 6) AS short_abandon_seconds
FROM {schema}.group_calls_stored s
LEFT JOIN {schema}.reporting_settings sp ON sp.pbx = s.pbx
LEFT JOIN {schema}.reporting_settings sd ON sd.pbx = '*'
LEFT JOIN {schema}.colleague_extensions ce ON ce.pbx = s.pbx AND ce.extension = s.answered_by_extension;

-- agent_calls: per group, member and PBX-local day, the group's calls
-- that rang the member.
CREATE OR REPLACE VIEW {schema}.agent_calls AS
WITH rung AS (
  SELECT s.pbx, s.call_key, s.group_key, m.member
  FROM {schema}.group_calls_stored s
  CROSS JOIN LATERAL unnest(s.members) AS m(member)
),
gc AS MATERIALIZED (
  SELECT pbx, call_key, group_key, group_id, group_name, local_day, answered, answered_by_extension, talk_seconds
  FROM {schema}.group_calls
),
a AS (
  SELECT g.pbx, g.group_key, g.group_id, g.group_name, r.member AS extension, g.local_day, g.answered,
         coalesce(g.answered_by_extension = r.member, false) AS answered_here, g.talk_seconds
  FROM rung r
  JOIN gc g ON g.pbx = r.pbx AND g.call_key = r.call_key AND g.group_key = r.group_key
),
days AS (
  SELECT pbx, group_key, local_day, count(*) FILTER (WHERE answered) AS group_answered
  FROM gc GROUP BY pbx, group_key, local_day
)
SELECT a.pbx, a.group_key, max(a.group_id) AS group_id, max(a.group_name) AS group_name,
       a.extension, ce.name AS colleague, a.local_day AS day,
       count(*) AS calls_rung,
       count(*) FILTER (WHERE a.answered_here) AS answered,
       count(*) FILTER (WHERE NOT a.answered_here) AS missed,
       count(*) FILTER (WHERE a.answered AND NOT a.answered_here) AS answered_by_others,
       coalesce(sum(a.talk_seconds) FILTER (WHERE a.answered_here), 0)::bigint AS talk_seconds,
       round(avg(a.talk_seconds) FILTER (WHERE a.answered_here), 1) AS avg_handle_seconds,
       max(d.group_answered) AS group_answered,
       round(100.0 * count(*) FILTER (WHERE a.answered_here) / nullif(max(d.group_answered), 0), 1) AS answered_share_percent
FROM a
LEFT JOIN days d ON d.pbx = a.pbx AND d.group_key = a.group_key AND d.local_day IS NOT DISTINCT FROM a.local_day
LEFT JOIN {schema}.colleague_extensions ce ON ce.pbx = a.pbx AND ce.extension = a.extension
GROUP BY a.pbx, a.group_key, a.extension, ce.name, a.local_day;

-- group_intervals_stored: group_intervals, stored: a year of one group is
-- 35,000 rows to read instead of a million calls to count. Kept by the
-- maintenance above (the intervals of the calls it deletes and inserts)
-- and computed again for every PBX when reporting_settings changes.
CREATE TABLE IF NOT EXISTS {schema}.group_intervals_stored AS SELECT * FROM {schema}.group_intervals WITH NO DATA;
CREATE INDEX IF NOT EXISTS group_intervals_stored_idx ON {schema}.group_intervals_stored (pbx, group_key, interval_start);

-- group_interval_rows: group_intervals' rows (its definition, migration
-- 6) of a PBX, all of them (p_all) or those of the groups and interval
-- starts given in pairs (a NULL start: the calls with no start).
CREATE OR REPLACE FUNCTION {schema}.group_interval_rows(p_pbx text, p_all boolean, p_keys text[], p_starts timestamptz[])
RETURNS SETOF {schema}.group_intervals_stored
LANGUAGE sql STABLE AS $fn$
WITH t AS (
  SELECT DISTINCT t.k, t.s FROM unnest(p_keys, p_starts) AS t(k, s)
),
c AS (
  SELECT c.* FROM {schema}.group_calls c WHERE p_all AND c.pbx = p_pbx
  UNION ALL
  SELECT c.* FROM t JOIN {schema}.group_calls c ON c.pbx = p_pbx AND c.group_key = t.k AND c.interval_start = t.s
  WHERE NOT p_all
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
-- all or those given: then by index, in nested loops only (the table's
-- statistics may be none yet, and a hash join read every interval of the
-- PBX for each batch).
CREATE OR REPLACE FUNCTION {schema}.group_intervals_refresh(p_pbx text, p_all boolean, p_keys text[], p_starts timestamptz[]) RETURNS void
LANGUAGE plpgsql SET jit = off SET enable_nestloop = on SET enable_hashjoin = on SET enable_mergejoin = on AS $fn$
BEGIN
  IF p_all THEN
    DELETE FROM {schema}.group_intervals_stored WHERE pbx = p_pbx;
  ELSE
    PERFORM set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true);
    DELETE FROM {schema}.group_intervals_stored g
    USING (SELECT DISTINCT t.k, t.s FROM unnest(p_keys, p_starts) AS t(k, s) WHERE t.s IS NOT NULL) t
    WHERE g.pbx = p_pbx AND g.group_key = t.k AND g.interval_start = t.s;
    DELETE FROM {schema}.group_intervals_stored g
    WHERE g.pbx = p_pbx AND g.interval_start IS NULL
      AND g.group_key IN (SELECT t.k FROM unnest(p_keys, p_starts) AS t(k, s) WHERE t.s IS NULL);
  END IF;
  EXECUTE 'INSERT INTO {schema}.group_intervals_stored SELECT * FROM {schema}.group_interval_rows($1, $2, $3, $4)'
  USING p_pbx, p_all, p_keys, p_starts;
END $fn$;

-- The trigger on reporting_settings: the thresholds are in the stored
-- intervals, which are computed again for every PBX.
CREATE OR REPLACE FUNCTION {schema}.group_calls_thresholds_changed() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $fn$
DECLARE
  p text;
BEGIN
  FOR p IN SELECT DISTINCT s.pbx FROM {schema}.group_calls_stored s ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock('{schema}.group_calls_stored'::regclass::oid::integer, hashtext(p));
    PERFORM {schema}.group_intervals_refresh(p, true, NULL, NULL);
  END LOOP;
  RETURN NULL;
END $fn$;
CREATE TRIGGER group_calls_thresholds_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.reporting_settings
  FOR EACH STATEMENT EXECUTE FUNCTION {schema}.group_calls_thresholds_changed();

CREATE OR REPLACE VIEW {schema}.group_intervals AS
SELECT pbx, group_key, group_id, group_name, interval_start, interval_local, utc_offset_minutes, offered, answered,
       answered_in_service_level, abandoned, short_abandons, overflowed, service_level_percent,
       avg_speed_of_answer_seconds, avg_wait_seconds, max_wait_seconds, avg_handle_seconds, talk_seconds,
       service_level_seconds
FROM {schema}.group_intervals_stored;

-- Once: the stored rows of every PBX already exported.
SELECT {schema}.group_calls_rebuild(k.pbx)
FROM (SELECT DISTINCT pbx FROM {schema}.call_history
      UNION SELECT pbx FROM {schema}.colleagues
      UNION SELECT pbx FROM {schema}.call_groups) k
ORDER BY k.pbx;
`

// reportingGroupsZoneTruncated is the migration that keeps the stored
// local times exact when pbx_settings is emptied by TRUNCATE, which fires
// no row trigger: every PBX's local times are computed again without a
// zone (each record's offset, else UTC), as the views computed at the
// query would.
const reportingGroupsZoneTruncated = `
CREATE OR REPLACE FUNCTION {schema}.group_calls_zones_truncated() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $fn$
DECLARE
  p text;
BEGIN
  FOR p IN SELECT DISTINCT s.pbx FROM {schema}.group_calls_stored s ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock('{schema}.group_calls_stored'::regclass::oid::integer, hashtext(p));
    UPDATE {schema}.group_calls_stored
    SET local_offered = {schema}.pbx_local(offered_at, NULL, tz_offset),
        interval_local = {schema}.pbx_local(interval_start, NULL, tz_offset)
    WHERE pbx = p;
    PERFORM {schema}.group_intervals_refresh(p, true, NULL, NULL);
  END LOOP;
  RETURN NULL;
END $fn$;
CREATE TRIGGER group_calls_zones_truncated AFTER TRUNCATE ON {schema}.pbx_settings
  FOR EACH STATEMENT EXECUTE FUNCTION {schema}.group_calls_zones_truncated();
`
