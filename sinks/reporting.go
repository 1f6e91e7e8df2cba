package sinks

// reportingV4 is migration 4: the reporting layer counts calls, not CDR
// legs. docs/pbx-api.md ("Calls and their legs") gives the evidence for
// how legs are grouped; docs/reporting.md lists every view.
//
// Layers, each a view on the one before, so that a rule lives in one place:
//
//   - pbx_settings: the PBX's time zone, written by the sink at every run.
//   - call_legs: each call_history row with safe, normalised values and
//     call_key, the one rule that groups legs into calls.
//   - calls: one row per call.
//   - calls_daily, calls_hourly, calls_by_extension, missed_calls,
//     calls_by_department: counts of calls; data_quality: what the views
//     could not read.
//
// Nothing here parses raw text: times are the typed columns, and a value
// the exporter could not read is NULL there, so no view fails on a
// malformed record; data_quality counts them. The old views keep their
// names and columns (same order and types, new columns appended), so
// CREATE OR REPLACE keeps views of users built on them.
const reportingV4 = `
CREATE OR REPLACE FUNCTION {schema}.known_time_zone(zone text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
  PERFORM now() AT TIME ZONE zone;
  RETURN true;
EXCEPTION WHEN others THEN
  RETURN false;
END $$;

CREATE TABLE IF NOT EXISTS {schema}.pbx_settings (
  pbx        text PRIMARY KEY,
  -- The PBX's zone (WILDIX_TIMEZONE), NULL when not configured: views
  -- then use each record's own offset (its timezone field).
  time_zone  text CHECK (time_zone IS NULL OR {schema}.known_time_zone(time_zone)),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION {schema}.offset_minutes(o text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
SELECT CASE
  WHEN o ~ '^\s*[+-][01][0-9](:?[0-5][0-9])?\s*$' THEN
    (CASE WHEN btrim(o) LIKE '-%' THEN -1 ELSE 1 END)
    * (substr(replace(btrim(o), ':', ''), 2, 2)::int * 60
       + coalesce(nullif(substr(replace(btrim(o), ':', ''), 4, 2), '')::int, 0))
  WHEN btrim(o) IN ('Z', 'UTC') THEN 0
END $$;

-- pbx_local turns an instant into PBX-local wall time: with the PBX's zone
-- when known, else with the record's offset ("+0100", "-04:00", "+01"),
-- else as UTC (counted by data_quality).
CREATE OR REPLACE FUNCTION {schema}.pbx_local(t timestamptz, zone text, tz_offset text) RETURNS timestamp
LANGUAGE sql STABLE AS $$
SELECT CASE
  WHEN t IS NULL THEN NULL
  WHEN zone IS NOT NULL THEN t AT TIME ZONE zone
  WHEN {schema}.offset_minutes(tz_offset) IS NOT NULL
    THEN (t AT TIME ZONE 'UTC') + make_interval(mins => {schema}.offset_minutes(tz_offset))
  ELSE t AT TIME ZONE 'UTC'
END $$;

-- internal_shape: a number that looks like an extension or a group, 2 to
-- 6 digits not starting with 0. Colleagues' extensions are internal too,
-- whatever their shape (see docs/pbx-api.md for the limits of this rule).
CREATE OR REPLACE FUNCTION {schema}.internal_shape(n text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
SELECT coalesce(n ~ '^[1-9][0-9]{1,5}$', false) $$;

CREATE OR REPLACE VIEW {schema}.colleague_extensions AS
SELECT DISTINCT ON (pbx, btrim(extension)) pbx, btrim(extension) AS extension, name, nullif(btrim(department), '') AS department
FROM {schema}.colleagues
WHERE deleted_at IS NULL AND nullif(btrim(extension), '') IS NOT NULL
ORDER BY pbx, btrim(extension), id;

-- call_legs: one row per CDR leg. call_key is THE rule grouping legs into
-- calls (docs/pbx-api.md, "Calls and their legs"): the PBX's uniqueid when
-- it sends one; else the originating channel, a leg joining the call when
-- it starts before the legs so far have ended (plus 5 s); else the leg
-- alone.
CREATE OR REPLACE VIEW {schema}.call_legs AS
WITH leg AS NOT MATERIALIZED (
  SELECT h.pbx, h.id, h.start_time, h.answer_time, h.end_time,
         h.duration, h.billsec,
         nullif(upper(btrim(h.disposition)), '') AS disposition,
         nullif(lower(btrim(h.type)), '') AS type,
         coalesce(nullif(btrim(h.from_number), ''), nullif(btrim(h.src), '')) AS caller_number,
         nullif(btrim(h.from_name), '') AS caller_name,
         coalesce(nullif(btrim(h.to_number), ''), nullif(btrim(h.dst), '')) AS callee_number,
         nullif(btrim(h.to_name), '') AS callee_name,
         substring(h.dstchannel from '^[^/]+/([^-@/;]+)') AS dst_peer,
         nullif(btrim(h.dst), '') AS dst,
         h.cost, h.tz_offset,
         nullif(btrim(h.channel), '') AS channel
  FROM {schema}.call_history h
  WHERE h.deleted_at IS NULL
),
-- The grouping works on narrow rows: sorting whole legs would cost more.
by_channel AS (
  SELECT h.pbx, h.id, h.start_time,
         coalesce(h.end_time, h.start_time + make_interval(secs => greatest(h.duration, 0))) AS end_guess,
         nullif(btrim(h.raw->>'uniqueid'), '') AS uniqueid,
         CASE WHEN nullif(btrim(h.raw->>'uniqueid'), '') IS NULL AND h.start_time IS NOT NULL THEN nullif(btrim(h.channel), '') END AS session_channel
  FROM {schema}.call_history h
  WHERE h.deleted_at IS NULL
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
  SELECT o.pbx, o.id, o.start_time, o.uniqueid,
         CASE WHEN o.uniqueid IS NOT NULL THEN 'u:' || o.uniqueid
              WHEN o.session_channel IS NOT NULL THEN 'c:' || o.session_channel || '#' ||
                   sum(o.opens) OVER (PARTITION BY o.pbx, o.session_channel ORDER BY o.start_time, o.id)
              ELSE 'l:' || o.id END AS call_key
  FROM opened o
),
numbered AS (
  SELECT k.pbx, k.id, k.uniqueid, k.call_key,
         row_number() OVER (PARTITION BY k.pbx, k.call_key ORDER BY k.start_time NULLS LAST, k.id) AS leg_no
  FROM keyed k
)
SELECT l.pbx, l.id, n.call_key, n.leg_no,
       l.start_time, l.answer_time, l.end_time, l.duration, l.billsec,
       l.disposition,
       CASE l.disposition WHEN 'ANSWERED' THEN 1 WHEN 'NO ANSWER' THEN 2 WHEN 'BUSY' THEN 3
                          WHEN 'CONGESTION' THEN 4 WHEN 'FAILED' THEN 5 END AS disposition_rank,
       l.type, l.caller_number, l.caller_name, l.callee_number, l.callee_name,
       CASE WHEN l.dst_peer IS NOT NULL AND (ce.extension IS NOT NULL OR {schema}.internal_shape(l.dst_peer)) THEN l.dst_peer
            WHEN {schema}.internal_shape(l.callee_number) THEN l.callee_number
            WHEN {schema}.internal_shape(l.dst) THEN l.dst END AS member,
       l.cost, l.tz_offset, n.uniqueid, l.channel
FROM leg l
JOIN numbered n ON n.pbx = l.pbx AND n.id = l.id
LEFT JOIN {schema}.colleague_extensions ce ON ce.pbx = l.pbx AND ce.extension = l.dst_peer;

-- calls: one row per call; caller, callee, type and local time from its
-- first leg, the outcome from all of them.
CREATE OR REPLACE VIEW {schema}.calls AS
WITH c AS (
  SELECT l.pbx, l.call_key,
         min(l.id) FILTER (WHERE l.leg_no = 1) AS first_leg_id,
         min(l.start_time) AS start_time,
         max(l.end_time) AS end_time,
         max(l.tz_offset) FILTER (WHERE l.leg_no = 1) AS tz_offset,
         max(l.type) FILTER (WHERE l.leg_no = 1) AS type,
         max(l.caller_number) FILTER (WHERE l.leg_no = 1) AS caller_number,
         max(l.caller_name) FILTER (WHERE l.leg_no = 1) AS caller_name,
         max(l.callee_number) FILTER (WHERE l.leg_no = 1) AS callee_number,
         max(l.callee_name) FILTER (WHERE l.leg_no = 1) AS callee_name,
         coalesce(bool_or(l.disposition = 'ANSWERED'), false) AS answered,
         (array_agg(l.member ORDER BY l.answer_time NULLS LAST, l.id) FILTER (WHERE l.disposition = 'ANSWERED'))[1] AS answered_by_extension,
         min(l.answer_time) FILTER (WHERE l.disposition = 'ANSWERED') AS answer_time,
         min(l.start_time + make_interval(secs => greatest(l.duration - l.billsec, 0))) FILTER (WHERE l.disposition = 'ANSWERED') AS answer_guess,
         sum(l.billsec) FILTER (WHERE l.disposition = 'ANSWERED') AS talk_seconds,
         max(l.duration) AS longest_leg_seconds,
         count(*) AS legs,
         min(l.disposition_rank) AS disposition_rank,
         sum(l.cost) AS cost
  FROM {schema}.call_legs l
  GROUP BY l.pbx, l.call_key
),
typed AS (
  SELECT c.*,
         {schema}.pbx_local(c.start_time, s.time_zone, c.tz_offset) AS local_start,
         (ce1.extension IS NOT NULL OR {schema}.internal_shape(c.caller_number)) AS caller_internal,
         (ce2.extension IS NOT NULL OR {schema}.internal_shape(c.callee_number)) AS callee_internal
  FROM c
  LEFT JOIN {schema}.pbx_settings s ON s.pbx = c.pbx
  LEFT JOIN {schema}.colleague_extensions ce1 ON ce1.pbx = c.pbx AND ce1.extension = c.caller_number
  LEFT JOIN {schema}.colleague_extensions ce2 ON ce2.pbx = c.pbx AND ce2.extension = c.callee_number
)
SELECT t.pbx,
       t.first_leg_id,
       t.start_time,
       t.local_start,
       t.local_start::date AS local_day,
       CASE WHEN t.caller_internal AND t.callee_internal THEN 'internal'
            WHEN t.caller_internal THEN 'outbound'
            ELSE 'inbound' END AS direction,
       t.type,
       t.caller_number, t.caller_name, t.callee_number, t.callee_name,
       t.answered,
       t.answered_by_extension,
       ae.name AS answered_by_colleague,
       -- greatest() skips NULLs: the CASEs keep an unknown time unknown.
       CASE WHEN t.answered THEN CASE WHEN t.start_time IS NOT NULL AND coalesce(t.answer_time, t.answer_guess) IS NOT NULL
                                      THEN greatest(extract(epoch FROM coalesce(t.answer_time, t.answer_guess) - t.start_time), 0)::integer END
            WHEN t.start_time IS NOT NULL AND t.end_time IS NOT NULL THEN greatest(extract(epoch FROM t.end_time - t.start_time), 0)::integer
            ELSE t.longest_leg_seconds END AS wait_seconds,
       coalesce(t.talk_seconds, 0)::integer AS talk_seconds,
       t.legs::integer AS legs,
       CASE t.disposition_rank WHEN 1 THEN 'ANSWERED' WHEN 2 THEN 'NO ANSWER' WHEN 3 THEN 'BUSY'
                               WHEN 4 THEN 'CONGESTION' WHEN 5 THEN 'FAILED' END AS disposition,
       t.cost,
       t.end_time,
       CASE WHEN t.start_time IS NOT NULL AND t.end_time IS NOT NULL THEN greatest(extract(epoch FROM t.end_time - t.start_time), 0)::integer
            ELSE t.longest_leg_seconds END AS duration_seconds,
       t.call_key
FROM typed t
LEFT JOIN {schema}.colleague_extensions ae ON ae.pbx = t.pbx AND ae.extension = t.answered_by_extension;

-- The views of migration 2 keep their names and columns, now counting
-- calls; their new columns come last.
CREATE OR REPLACE VIEW {schema}.calls_daily AS
SELECT pbx,
       local_day AS day,
       disposition,
       type,
       count(*) AS calls,
       count(*) FILTER (WHERE answered) AS answered,
       coalesce(sum(talk_seconds), 0)::bigint AS talk_seconds,
       round(avg(talk_seconds) FILTER (WHERE answered), 1) AS avg_talk_seconds,
       coalesce(sum(duration_seconds), 0)::bigint AS total_seconds,
       direction,
       count(*) FILTER (WHERE NOT answered) AS missed,
       coalesce(sum(wait_seconds), 0)::bigint AS wait_seconds,
       round(avg(wait_seconds), 1) AS avg_wait_seconds
FROM {schema}.calls
GROUP BY pbx, local_day, disposition, type, direction;

CREATE OR REPLACE VIEW {schema}.calls_by_extension AS
WITH c AS MATERIALIZED ( -- computed once for the three roles below
  SELECT pbx, direction, caller_number, callee_number, answered, answered_by_extension, talk_seconds FROM {schema}.calls
),
roles AS (
  SELECT pbx, caller_number AS extension, 1 AS made, 0 AS received, 0 AS answered_here, answered, talk_seconds
  FROM c WHERE direction IN ('outbound', 'internal')
  UNION ALL
  SELECT pbx, callee_number, 0, 1, 0, answered, 0
  FROM c WHERE direction IN ('inbound', 'internal')
  UNION ALL
  SELECT pbx, answered_by_extension, 0, 0, 1, true, talk_seconds
  FROM c WHERE answered_by_extension IS NOT NULL
)
SELECT r.pbx,
       r.extension,
       ce.name AS colleague,
       count(*) FILTER (WHERE r.made = 1) AS calls_made,
       count(*) FILTER (WHERE r.received = 1) AS calls_received,
       count(*) FILTER (WHERE r.received = 1 AND r.answered) AS received_answered,
       count(*) FILTER (WHERE r.received = 1 AND NOT r.answered) AS received_missed,
       coalesce(sum(r.talk_seconds) FILTER (WHERE r.made = 1 OR r.answered_here = 1), 0)::bigint AS talk_seconds,
       count(*) FILTER (WHERE r.answered_here = 1) AS answered,
       count(*) FILTER (WHERE r.made = 1 AND r.answered) AS made_answered,
       ce.department
FROM roles r
LEFT JOIN {schema}.colleague_extensions ce ON ce.pbx = r.pbx AND ce.extension = r.extension
WHERE ce.extension IS NOT NULL OR {schema}.internal_shape(r.extension)
GROUP BY r.pbx, r.extension, ce.name, ce.department;

-- missed_calls: inbound calls nobody answered, with the first later call
-- between the same external number and the PBX, in either direction.
CREATE OR REPLACE VIEW {schema}.missed_calls AS
WITH ext AS (
  SELECT c.*,
         CASE c.direction WHEN 'inbound' THEN c.caller_number WHEN 'outbound' THEN c.callee_number END AS external_number
  FROM {schema}.calls c
),
nxt AS (
  SELECT e.*,
         lead(e.first_leg_id) OVER w AS next_call_id,
         lead(e.start_time) OVER w AS next_call_start,
         lead(e.direction) OVER w AS next_call_direction,
         lead(e.answered) OVER w AS next_call_answered
  FROM ext e
  WHERE e.external_number IS NOT NULL
  WINDOW w AS (PARTITION BY e.pbx, e.external_number, e.start_time IS NULL ORDER BY e.start_time, e.first_leg_id)
)
SELECT n.pbx,
       n.first_leg_id AS id,
       n.start_time,
       n.local_start,
       n.caller_number AS from_number,
       n.caller_name AS from_name,
       n.callee_number AS to_number,
       n.callee_name AS to_name,
       n.disposition,
       n.wait_seconds AS ring_seconds,
       ce.name AS colleague,
       n.legs,
       n.next_call_id,
       n.next_call_start,
       n.next_call_direction,
       n.next_call_answered,
       extract(epoch FROM n.next_call_start - n.start_time)::bigint AS next_call_after_seconds,
       n.type
FROM nxt n
LEFT JOIN {schema}.colleague_extensions ce ON ce.pbx = n.pbx AND ce.extension = n.callee_number
WHERE n.direction = 'inbound' AND NOT n.answered AND n.type IS DISTINCT FROM 'fax';

CREATE OR REPLACE VIEW {schema}.calls_hourly AS
SELECT pbx,
       extract(isodow FROM local_start)::integer AS weekday,
       extract(hour FROM local_start)::integer AS hour,
       count(*) AS calls,
       count(*) FILTER (WHERE answered) AS answered,
       count(*) FILTER (WHERE NOT answered) AS missed,
       count(*) FILTER (WHERE direction = 'inbound') AS inbound,
       count(*) FILTER (WHERE direction = 'inbound' AND NOT answered) AS inbound_missed,
       count(*) FILTER (WHERE direction = 'outbound') AS outbound,
       count(*) FILTER (WHERE direction = 'internal') AS internal,
       round(avg(wait_seconds) FILTER (WHERE direction = 'inbound'), 1) AS avg_inbound_wait_seconds,
       coalesce(sum(talk_seconds), 0)::bigint AS talk_seconds
FROM {schema}.calls
GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW {schema}.calls_by_department AS
SELECT pbx,
       department,
       count(*) AS extensions,
       sum(calls_made)::bigint AS calls_made,
       sum(calls_received)::bigint AS calls_received,
       sum(received_missed)::bigint AS received_missed,
       sum(answered)::bigint AS answered,
       sum(talk_seconds)::bigint AS talk_seconds
FROM {schema}.calls_by_extension
WHERE department IS NOT NULL
GROUP BY pbx, department;

-- data_quality: per PBX, the legs the views could only partly read.
CREATE OR REPLACE VIEW {schema}.data_quality AS
SELECT l.pbx,
       count(*) AS legs,
       count(*) FILTER (WHERE l.start_time IS NULL) AS start_missing,
       count(*) FILTER (WHERE l.end_time IS NULL) AS end_missing,
       count(*) FILTER (WHERE l.disposition = 'ANSWERED' AND l.answer_time IS NULL) AS answer_missing,
       count(*) FILTER (WHERE l.disposition_rank IS NULL) AS unknown_disposition,
       count(*) FILTER (WHERE l.type IS NULL OR l.type NOT IN ('call', 'fax')) AS unknown_type,
       count(*) FILTER (WHERE s.time_zone IS NULL AND {schema}.offset_minutes(l.tz_offset) IS NULL) AS local_time_as_utc,
       count(*) FILTER (WHERE l.billsec > l.duration OR l.billsec < 0 OR l.duration < 0) AS bad_durations,
       count(DISTINCT l.call_key) AS calls
FROM {schema}.call_legs l
LEFT JOIN {schema}.pbx_settings s ON s.pbx = l.pbx
GROUP BY l.pbx;
`

// reportingGroups is the migration for call groups and queues: the KPIs a
// contact-centre manager asks for. docs/reporting.md defines every column;
// docs/pbx-api.md ("Call groups", "How a call reaches a group") gives the
// evidence for the rule in group_legs.
//
//   - reporting_settings: the thresholds, a row per PBX or the '*' row.
//   - group_member_extensions, call_group_members: the members of each
//     group, whatever shape the PBX sent them in.
//   - group_legs: every leg of call_legs with the group it reached, THE
//     rule of how a call reaches a group.
//   - group_calls: one row per call offered to a group, with exactly one
//     outcome; group_intervals and agent_calls count them.
//
// data_quality gains the counts of groups that had to be guessed.
const reportingGroups = `
CREATE TABLE IF NOT EXISTS {schema}.reporting_settings (
  pbx                   text PRIMARY KEY, -- a PBX, or '*' for every PBX without a row
  service_level_seconds integer NOT NULL DEFAULT 20 CHECK (service_level_seconds >= 0),
  short_abandon_seconds integer NOT NULL DEFAULT 6 CHECK (short_abandon_seconds >= 0),
  updated_at            timestamptz NOT NULL DEFAULT now()
);
INSERT INTO {schema}.reporting_settings (pbx) VALUES ('*') ON CONFLICT (pbx) DO NOTHING;

-- member_extension reads an extension from a member as the PBX may send
-- it: "201", "SIP/201", "PJSIP/201-0000a1", "Local/201@queue".
CREATE OR REPLACE FUNCTION {schema}.member_extension(m text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT substring(btrim(m) from '^(?:[A-Za-z]+/)?([^-@/;,[:space:]]+)(?:[-@;].*)?$') $$;

-- group_member_extensions: the members of a group's members value, an
-- array, a PHP-style object, or a comma-separated string; extension NULL
-- when a member could not be read (counted by data_quality).
CREATE OR REPLACE FUNCTION {schema}.group_member_extensions(members jsonb)
RETURNS TABLE (pos bigint, extension text, member jsonb)
LANGUAGE sql IMMUTABLE AS $$
WITH e AS (
  SELECT a.pos, a.member FROM jsonb_array_elements(CASE jsonb_typeof(members) WHEN 'array' THEN members END) WITH ORDINALITY AS a(member, pos)
  UNION ALL
  SELECT o.pos, o.member FROM jsonb_each(CASE jsonb_typeof(members) WHEN 'object' THEN members END) WITH ORDINALITY AS o(k, member, pos)
  UNION ALL
  SELECT s.pos, to_jsonb(s.member) FROM regexp_split_to_table(CASE jsonb_typeof(members) WHEN 'string' THEN members #>> '{}' END, '\s*[,;]\s*') WITH ORDINALITY AS s(member, pos)
  UNION ALL
  SELECT 1, members WHERE jsonb_typeof(members) = 'number'
)
SELECT e.pos,
       CASE jsonb_typeof(e.member)
         WHEN 'string' THEN {schema}.member_extension(e.member #>> '{}')
         WHEN 'number' THEN e.member #>> '{}'
         WHEN 'object' THEN {schema}.member_extension(coalesce(e.member->>'extension', e.member->>'number',
                                                               e.member->>'stateInterface', e.member->>'interface'))
       END,
       e.member
FROM e $$;

CREATE OR REPLACE VIEW {schema}.call_group_members AS
SELECT DISTINCT ON (g.pbx, g.id, m.extension)
       g.pbx, g.id AS group_id,
       coalesce(nullif(btrim(g.title), ''), nullif(btrim(g.name), '')) AS group_name,
       m.extension, m.pos::integer AS position, m.member, g.deleted_at AS group_deleted_at
FROM {schema}.call_groups g
CROSS JOIN LATERAL {schema}.group_member_extensions(g.members) m
WHERE m.extension IS NOT NULL
ORDER BY g.pbx, g.id, m.extension, m.pos;

-- group_legs: every leg of call_legs, with the group it reached (NULL:
-- none). THE rule (docs/pbx-api.md, "How a call reaches a group"), in
-- order: the group id the PBX sent (dstgrp); the number dialled is a
-- group's number (a number field of call_groups); the number dialled is
-- not a colleague's and rang other extensions, the group being the one
-- whose members cover most of the extensions ever rung for that number
-- (a guess); the leg ran the Queue application (a guess, the queue named
-- by lastdata).
CREATE OR REPLACE VIEW {schema}.group_legs AS
WITH l AS MATERIALIZED (
  SELECT l.*,
         nullif(nullif(nullif(btrim(h.raw->>'dstgrp'), ''), '0'), '-1') AS dstgrp,
         lower(nullif(btrim(h.lastapp), '')) AS lastapp,
         nullif(btrim(split_part(h.lastdata, ',', 1)), '') AS queue_name,
         ce.extension IS NOT NULL AS callee_is_colleague,
         substring(h.dstchannel from '^[^/]+/([^-@/;]+)') AS dst_peer
  FROM {schema}.call_legs l
  JOIN {schema}.call_history h ON h.pbx = l.pbx AND h.id = l.id
  LEFT JOIN {schema}.colleague_extensions ce ON ce.pbx = l.pbx AND ce.extension = l.callee_number
),
groups AS (
  SELECT g.pbx, g.id, coalesce(nullif(btrim(g.title), ''), nullif(btrim(g.name), '')) AS name,
         nullif(btrim(coalesce(g.raw->>'number', g.raw->>'extension')), '') AS number
  FROM {schema}.call_groups g
),
-- A number rings members when it is not a colleague's and a leg to it
-- rang another extension.
by_members AS (
  SELECT DISTINCT l.pbx, l.callee_number AS number, l.member
  FROM l
  WHERE l.dstgrp IS NULL AND {schema}.internal_shape(l.callee_number) AND NOT l.callee_is_colleague
    AND l.member IS NOT NULL AND l.member = l.dst_peer AND l.member <> l.callee_number
),
overlap AS (
  SELECT b.pbx, b.number, m.group_id, count(*) AS covered,
         rank() OVER (PARTITION BY b.pbx, b.number ORDER BY count(*) DESC) AS rnk
  FROM by_members b
  JOIN {schema}.call_group_members m ON m.pbx = b.pbx AND m.extension = b.member
  GROUP BY b.pbx, b.number, m.group_id
),
number_group AS (
  SELECT n.pbx, n.number,
         CASE WHEN count(o.group_id) = 1 THEN min(o.group_id) END AS group_id -- a tie is no answer
  FROM (SELECT DISTINCT pbx, number FROM by_members) n
  LEFT JOIN overlap o ON o.pbx = n.pbx AND o.number = n.number AND o.rnk = 1
  GROUP BY n.pbx, n.number
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
  LEFT JOIN number_group ng ON ng.pbx = l.pbx AND ng.number = l.callee_number AND l.dstgrp IS NULL AND gn.id IS NULL
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
       r.lastapp
FROM ruled r
LEFT JOIN groups g ON g.pbx = r.pbx AND g.id = r.group_id;

-- group_calls: one row per call offered to a group (a call reaching two
-- groups is offered to each), with exactly one outcome.
CREATE OR REPLACE VIEW {schema}.group_calls AS
WITH gl AS MATERIALIZED (
  SELECT * FROM {schema}.group_legs
),
gc AS (
  SELECT g.pbx, g.call_key, g.group_key,
         max(g.group_id) AS group_id, max(g.group_number) AS group_number, max(g.group_name) AS group_name,
         (array_agg(g.group_source ORDER BY g.start_time NULLS LAST, g.id))[1] AS group_source,
         min(g.id) AS first_leg_id,
         min(g.start_time) AS offered_at,
         (array_agg(g.tz_offset ORDER BY g.start_time NULLS LAST, g.id))[1] AS tz_offset,
         (array_agg(g.caller_number ORDER BY g.start_time NULLS LAST, g.id))[1] AS caller_number,
         max(coalesce(g.end_time, g.start_time + make_interval(secs => greatest(g.duration, 0)))) AS left_at,
         coalesce(bool_or(g.disposition = 'ANSWERED'), false) AS answered,
         (array_agg(g.member ORDER BY g.answer_time NULLS LAST, g.id) FILTER (WHERE g.disposition = 'ANSWERED'))[1] AS answered_by_extension,
         min(coalesce(g.answer_time, g.start_time + make_interval(secs => greatest(g.duration - g.billsec, 0)))) FILTER (WHERE g.disposition = 'ANSWERED') AS answered_at,
         (array_agg(g.billsec ORDER BY g.answer_time NULLS LAST, g.id) FILTER (WHERE g.disposition = 'ANSWERED'))[1] AS talk_seconds,
         count(*) AS legs,
         count(DISTINCT g.member) AS members_rung
  FROM gl g
  WHERE g.group_key IS NOT NULL
  GROUP BY g.pbx, g.call_key, g.group_key
),
thresholds AS (
  SELECT p.pbx,
         coalesce(sp.service_level_seconds, sd.service_level_seconds, 20) AS service_level_seconds,
         coalesce(sp.short_abandon_seconds, sd.short_abandon_seconds, 6) AS short_abandon_seconds
  FROM (SELECT DISTINCT pbx FROM gc) p
  LEFT JOIN {schema}.reporting_settings sp ON sp.pbx = p.pbx
  LEFT JOIN {schema}.reporting_settings sd ON sd.pbx = '*'
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
  SELECT gc.*, lt.next_destination, th.service_level_seconds, th.short_abandon_seconds, s.time_zone,
         date_bin('15 minutes', gc.offered_at, timestamptz '2000-01-01 00:00:00+00') AS interval_start,
         {schema}.pbx_local(gc.offered_at, s.time_zone, gc.tz_offset) AS local_offered,
         CASE WHEN gc.answered THEN extract(epoch FROM gc.answered_at - gc.offered_at)
              ELSE extract(epoch FROM gc.left_at - gc.offered_at) END AS wait,
         CASE WHEN btrim(cg.settings->>'timeout') ~ '^[0-9]{1,6}$' THEN btrim(cg.settings->>'timeout')::integer END AS group_timeout
  FROM gc
  LEFT JOIN later lt ON lt.pbx = gc.pbx AND lt.call_key = gc.call_key AND lt.group_key = gc.group_key
  LEFT JOIN {schema}.pbx_settings s ON s.pbx = gc.pbx
  LEFT JOIN {schema}.call_groups cg ON cg.pbx = gc.pbx AND cg.id = gc.group_id
  LEFT JOIN thresholds th ON th.pbx = gc.pbx
),
outcome AS (
  SELECT t.*, greatest(round(t.wait), 0)::integer AS wait_seconds,
         CASE WHEN t.answered THEN 'answered'
              WHEN t.next_destination IS NOT NULL OR t.wait >= t.group_timeout THEN 'overflowed'
              ELSE 'abandoned' END AS outcome
  FROM timed t
)
SELECT o.pbx, o.group_key, o.group_id, o.group_number, o.group_name, o.call_key, o.first_leg_id,
       o.offered_at, o.local_offered, o.local_offered::date AS local_day,
       o.interval_start,
       {schema}.pbx_local(o.interval_start, o.time_zone, o.tz_offset) AS interval_local,
       o.caller_number, o.outcome,
       o.outcome = 'answered' AS answered,
       o.outcome = 'abandoned' AS abandoned,
       coalesce(o.outcome = 'abandoned' AND o.wait_seconds <= o.short_abandon_seconds, false) AS short_abandon,
       o.outcome = 'overflowed' AS overflowed,
       coalesce(o.outcome = 'answered' AND o.wait_seconds <= o.service_level_seconds, false) AS answered_in_service_level,
       o.answered_by_extension, ce.name AS answered_by_colleague,
       o.wait_seconds,
       CASE WHEN o.answered THEN coalesce(o.talk_seconds, 0) END AS talk_seconds,
       o.answered AND o.next_destination IS NOT NULL AS transferred_out,
       o.next_destination,
       o.legs::integer AS legs, o.members_rung::integer AS members_rung,
       o.group_source, o.service_level_seconds, o.short_abandon_seconds
FROM outcome o
LEFT JOIN {schema}.colleague_extensions ce ON ce.pbx = o.pbx AND ce.extension = o.answered_by_extension;

-- group_intervals: per group and 15-minute interval, keyed by its UTC
-- start and labelled in PBX-local time (with its offset, so the hour
-- repeated in autumn gives two rows with the same local label).
CREATE OR REPLACE VIEW {schema}.group_intervals AS
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
FROM {schema}.group_calls c
GROUP BY c.pbx, c.group_key, c.interval_start;

-- agent_calls: per group, member and PBX-local day, the group's calls
-- that rang the member.
CREATE OR REPLACE VIEW {schema}.agent_calls AS
WITH rung AS (
  SELECT DISTINCT l.pbx, l.call_key, l.group_key, l.member
  FROM {schema}.group_legs l
  WHERE l.group_key IS NOT NULL AND l.member IS NOT NULL
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

-- data_quality keeps its columns and appends the groups' guesses.
CREATE OR REPLACE VIEW {schema}.data_quality AS
WITH base AS (
  SELECT l.pbx,
         count(*) AS legs,
         count(*) FILTER (WHERE l.start_time IS NULL) AS start_missing,
         count(*) FILTER (WHERE l.end_time IS NULL) AS end_missing,
         count(*) FILTER (WHERE l.disposition = 'ANSWERED' AND l.answer_time IS NULL) AS answer_missing,
         count(*) FILTER (WHERE l.disposition_rank IS NULL) AS unknown_disposition,
         count(*) FILTER (WHERE l.type IS NULL OR l.type NOT IN ('call', 'fax')) AS unknown_type,
         count(*) FILTER (WHERE s.time_zone IS NULL AND {schema}.offset_minutes(l.tz_offset) IS NULL) AS local_time_as_utc,
         count(*) FILTER (WHERE l.billsec > l.duration OR l.billsec < 0 OR l.duration < 0) AS bad_durations,
         count(DISTINCT l.call_key) AS calls
  FROM {schema}.call_legs l
  LEFT JOIN {schema}.pbx_settings s ON s.pbx = l.pbx
  GROUP BY l.pbx
),
g AS (
  SELECT l.pbx,
         count(*) FILTER (WHERE l.group_key IS NOT NULL) AS group_legs,
         count(*) FILTER (WHERE l.group_source = 'members_rung') AS group_by_members_rung,
         count(*) FILTER (WHERE l.group_source = 'queue_app') AS group_by_queue_app,
         count(*) FILTER (WHERE l.group_key IS NOT NULL AND cg.id IS NULL) AS group_not_in_call_groups
  FROM {schema}.group_legs l
  LEFT JOIN {schema}.call_groups cg ON cg.pbx = l.pbx AND cg.id = l.group_id
  GROUP BY l.pbx
),
m AS (
  SELECT cg.pbx, count(*) AS unreadable
  FROM {schema}.call_groups cg
  CROSS JOIN LATERAL {schema}.group_member_extensions(cg.members) e
  WHERE cg.deleted_at IS NULL AND e.extension IS NULL
  GROUP BY cg.pbx
)
SELECT b.*,
       coalesce(g.group_legs, 0) AS group_legs,
       coalesce(g.group_by_members_rung, 0) AS group_by_members_rung,
       coalesce(g.group_by_queue_app, 0) AS group_by_queue_app,
       coalesce(g.group_not_in_call_groups, 0) AS group_not_in_call_groups,
       coalesce(m.unreadable, 0) AS group_members_unreadable
FROM base b
LEFT JOIN g ON g.pbx = b.pbx
LEFT JOIN m ON m.pbx = b.pbx;
`

// reportingGroupsWait is a migration replacing group_calls (same columns):
// a call offered with no readable start had its unknown wait shown as 0
// (greatest() skips NULLs) and counted as a short abandon; its wait is
// now NULL and it is never a short abandon.
const reportingGroupsWait = `
-- group_calls: one row per call offered to a group (a call reaching two
-- groups is offered to each), with exactly one outcome.
CREATE OR REPLACE VIEW {schema}.group_calls AS
WITH gl AS MATERIALIZED (
  SELECT * FROM {schema}.group_legs
),
gc AS (
  SELECT g.pbx, g.call_key, g.group_key,
         max(g.group_id) AS group_id, max(g.group_number) AS group_number, max(g.group_name) AS group_name,
         (array_agg(g.group_source ORDER BY g.start_time NULLS LAST, g.id))[1] AS group_source,
         min(g.id) AS first_leg_id,
         min(g.start_time) AS offered_at,
         (array_agg(g.tz_offset ORDER BY g.start_time NULLS LAST, g.id))[1] AS tz_offset,
         (array_agg(g.caller_number ORDER BY g.start_time NULLS LAST, g.id))[1] AS caller_number,
         max(coalesce(g.end_time, g.start_time + make_interval(secs => greatest(g.duration, 0)))) AS left_at,
         coalesce(bool_or(g.disposition = 'ANSWERED'), false) AS answered,
         (array_agg(g.member ORDER BY g.answer_time NULLS LAST, g.id) FILTER (WHERE g.disposition = 'ANSWERED'))[1] AS answered_by_extension,
         min(coalesce(g.answer_time, g.start_time + make_interval(secs => greatest(g.duration - g.billsec, 0)))) FILTER (WHERE g.disposition = 'ANSWERED') AS answered_at,
         (array_agg(g.billsec ORDER BY g.answer_time NULLS LAST, g.id) FILTER (WHERE g.disposition = 'ANSWERED'))[1] AS talk_seconds,
         count(*) AS legs,
         count(DISTINCT g.member) AS members_rung
  FROM gl g
  WHERE g.group_key IS NOT NULL
  GROUP BY g.pbx, g.call_key, g.group_key
),
thresholds AS (
  SELECT p.pbx,
         coalesce(sp.service_level_seconds, sd.service_level_seconds, 20) AS service_level_seconds,
         coalesce(sp.short_abandon_seconds, sd.short_abandon_seconds, 6) AS short_abandon_seconds
  FROM (SELECT DISTINCT pbx FROM gc) p
  LEFT JOIN {schema}.reporting_settings sp ON sp.pbx = p.pbx
  LEFT JOIN {schema}.reporting_settings sd ON sd.pbx = '*'
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
  SELECT gc.*, lt.next_destination, th.service_level_seconds, th.short_abandon_seconds, s.time_zone,
         date_bin('15 minutes', gc.offered_at, timestamptz '2000-01-01 00:00:00+00') AS interval_start,
         {schema}.pbx_local(gc.offered_at, s.time_zone, gc.tz_offset) AS local_offered,
         CASE WHEN gc.answered THEN extract(epoch FROM gc.answered_at - gc.offered_at)
              ELSE extract(epoch FROM gc.left_at - gc.offered_at) END AS wait,
         CASE WHEN btrim(cg.settings->>'timeout') ~ '^[0-9]{1,6}$' THEN btrim(cg.settings->>'timeout')::integer END AS group_timeout
  FROM gc
  LEFT JOIN later lt ON lt.pbx = gc.pbx AND lt.call_key = gc.call_key AND lt.group_key = gc.group_key
  LEFT JOIN {schema}.pbx_settings s ON s.pbx = gc.pbx
  LEFT JOIN {schema}.call_groups cg ON cg.pbx = gc.pbx AND cg.id = gc.group_id
  LEFT JOIN thresholds th ON th.pbx = gc.pbx
),
outcome AS (
  SELECT t.*, CASE WHEN t.wait IS NOT NULL THEN greatest(round(t.wait), 0)::integer END AS wait_seconds,
         CASE WHEN t.answered THEN 'answered'
              WHEN t.next_destination IS NOT NULL OR t.wait >= t.group_timeout THEN 'overflowed'
              ELSE 'abandoned' END AS outcome
  FROM timed t
)
SELECT o.pbx, o.group_key, o.group_id, o.group_number, o.group_name, o.call_key, o.first_leg_id,
       o.offered_at, o.local_offered, o.local_offered::date AS local_day,
       o.interval_start,
       {schema}.pbx_local(o.interval_start, o.time_zone, o.tz_offset) AS interval_local,
       o.caller_number, o.outcome,
       o.outcome = 'answered' AS answered,
       o.outcome = 'abandoned' AS abandoned,
       coalesce(o.outcome = 'abandoned' AND o.wait_seconds <= o.short_abandon_seconds, false) AS short_abandon,
       o.outcome = 'overflowed' AS overflowed,
       coalesce(o.outcome = 'answered' AND o.wait_seconds <= o.service_level_seconds, false) AS answered_in_service_level,
       o.answered_by_extension, ce.name AS answered_by_colleague,
       o.wait_seconds,
       CASE WHEN o.answered THEN coalesce(o.talk_seconds, 0) END AS talk_seconds,
       o.answered AND o.next_destination IS NOT NULL AS transferred_out,
       o.next_destination,
       o.legs::integer AS legs, o.members_rung::integer AS members_rung,
       o.group_source, o.service_level_seconds, o.short_abandon_seconds
FROM outcome o
LEFT JOIN {schema}.colleague_extensions ce ON ce.pbx = o.pbx AND ce.extension = o.answered_by_extension;
`

// reportingGroupsMemberAnswer is a migration replacing group_calls (same
// columns): a group leg the PBX answered with no extension rung, such as
// a queue's own leg answered to play music on hold (Asterisk's Queue after
// an Answer), made an abandoned call "answered" by nobody, and an answered
// one answered at the offer (wait 0, always within the service level,
// talk time including the wait). Only a member's answer answers a call now.
const reportingGroupsMemberAnswer = `
-- group_calls: one row per call offered to a group (a call reaching two
-- groups is offered to each), with exactly one outcome. A call is answered
-- when a member answered: a group leg answered with no extension rung (the
-- queue's own leg, answered to play music on hold) is no answer.
CREATE OR REPLACE VIEW {schema}.group_calls AS
WITH gl AS MATERIALIZED (
  SELECT * FROM {schema}.group_legs
),
gc AS (
  SELECT g.pbx, g.call_key, g.group_key,
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
         count(DISTINCT g.member) AS members_rung
  FROM gl g
  WHERE g.group_key IS NOT NULL
  GROUP BY g.pbx, g.call_key, g.group_key
),
thresholds AS (
  SELECT p.pbx,
         coalesce(sp.service_level_seconds, sd.service_level_seconds, 20) AS service_level_seconds,
         coalesce(sp.short_abandon_seconds, sd.short_abandon_seconds, 6) AS short_abandon_seconds
  FROM (SELECT DISTINCT pbx FROM gc) p
  LEFT JOIN {schema}.reporting_settings sp ON sp.pbx = p.pbx
  LEFT JOIN {schema}.reporting_settings sd ON sd.pbx = '*'
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
  SELECT gc.*, lt.next_destination, th.service_level_seconds, th.short_abandon_seconds, s.time_zone,
         date_bin('15 minutes', gc.offered_at, timestamptz '2000-01-01 00:00:00+00') AS interval_start,
         {schema}.pbx_local(gc.offered_at, s.time_zone, gc.tz_offset) AS local_offered,
         CASE WHEN gc.answered THEN extract(epoch FROM gc.answered_at - gc.offered_at)
              ELSE extract(epoch FROM gc.left_at - gc.offered_at) END AS wait,
         CASE WHEN btrim(cg.settings->>'timeout') ~ '^[0-9]{1,6}$' THEN btrim(cg.settings->>'timeout')::integer END AS group_timeout
  FROM gc
  LEFT JOIN later lt ON lt.pbx = gc.pbx AND lt.call_key = gc.call_key AND lt.group_key = gc.group_key
  LEFT JOIN {schema}.pbx_settings s ON s.pbx = gc.pbx
  LEFT JOIN {schema}.call_groups cg ON cg.pbx = gc.pbx AND cg.id = gc.group_id
  LEFT JOIN thresholds th ON th.pbx = gc.pbx
),
outcome AS (
  SELECT t.*, CASE WHEN t.wait IS NOT NULL THEN greatest(round(t.wait), 0)::integer END AS wait_seconds,
         CASE WHEN t.answered THEN 'answered'
              WHEN t.next_destination IS NOT NULL OR t.wait >= t.group_timeout THEN 'overflowed'
              ELSE 'abandoned' END AS outcome
  FROM timed t
)
SELECT o.pbx, o.group_key, o.group_id, o.group_number, o.group_name, o.call_key, o.first_leg_id,
       o.offered_at, o.local_offered, o.local_offered::date AS local_day,
       o.interval_start,
       {schema}.pbx_local(o.interval_start, o.time_zone, o.tz_offset) AS interval_local,
       o.caller_number, o.outcome,
       o.outcome = 'answered' AS answered,
       o.outcome = 'abandoned' AS abandoned,
       coalesce(o.outcome = 'abandoned' AND o.wait_seconds <= o.short_abandon_seconds, false) AS short_abandon,
       o.outcome = 'overflowed' AS overflowed,
       coalesce(o.outcome = 'answered' AND o.wait_seconds <= o.service_level_seconds, false) AS answered_in_service_level,
       o.answered_by_extension, ce.name AS answered_by_colleague,
       o.wait_seconds,
       CASE WHEN o.answered THEN coalesce(o.talk_seconds, 0) END AS talk_seconds,
       o.answered AND o.next_destination IS NOT NULL AS transferred_out,
       o.next_destination,
       o.legs::integer AS legs, o.members_rung::integer AS members_rung,
       o.group_source, o.service_level_seconds, o.short_abandon_seconds
FROM outcome o
LEFT JOIN {schema}.colleague_extensions ce ON ce.pbx = o.pbx AND ce.extension = o.answered_by_extension;
`

// reportingGroupsTimeout is a migration replacing group_calls (same
// columns): an unanswered call that waited the group's settings.timeout
// was counted overflowed, but that timeout is how long the strategy rings
// before a pause and another round (Wildix's admin guide, "Call
// distribution in Call groups"); the call leaves the group at the
// dialplan's timeout, the Queue application's fifth argument in lastdata.
// A caller who hung up after the strategy's timeout was an overflow
// instead of an abandon.
const reportingGroupsTimeout = `
-- group_calls: one row per call offered to a group (a call reaching two
-- groups is offered to each), with exactly one outcome. A call is answered
-- when a member answered; it overflowed when a later leg took it elsewhere
-- or it waited the dialplan's timeout for the group (the Queue
-- application's fifth argument), never the strategy's settings.timeout,
-- which is one round of ringing before the group rings again. A group leg
-- answered with no extension rung (the queue's own leg, answered to play
-- music on hold) is no member's answer.
CREATE OR REPLACE VIEW {schema}.group_calls AS
WITH gl AS MATERIALIZED (
  SELECT g.*,
         CASE WHEN g.lastapp = 'queue' AND btrim(split_part(h.lastdata, ',', 5)) ~ '^[0-9]{1,6}$'
              THEN btrim(split_part(h.lastdata, ',', 5))::integer END AS queue_timeout
  FROM {schema}.group_legs g
  LEFT JOIN {schema}.call_history h ON h.pbx = g.pbx AND h.id = g.id
),
gc AS (
  SELECT g.pbx, g.call_key, g.group_key,
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
         count(DISTINCT g.member) AS members_rung,
         max(g.queue_timeout) AS queue_timeout
  FROM gl g
  WHERE g.group_key IS NOT NULL
  GROUP BY g.pbx, g.call_key, g.group_key
),
thresholds AS (
  SELECT p.pbx,
         coalesce(sp.service_level_seconds, sd.service_level_seconds, 20) AS service_level_seconds,
         coalesce(sp.short_abandon_seconds, sd.short_abandon_seconds, 6) AS short_abandon_seconds
  FROM (SELECT DISTINCT pbx FROM gc) p
  LEFT JOIN {schema}.reporting_settings sp ON sp.pbx = p.pbx
  LEFT JOIN {schema}.reporting_settings sd ON sd.pbx = '*'
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
  SELECT gc.*, lt.next_destination, th.service_level_seconds, th.short_abandon_seconds, s.time_zone,
         date_bin('15 minutes', gc.offered_at, timestamptz '2000-01-01 00:00:00+00') AS interval_start,
         {schema}.pbx_local(gc.offered_at, s.time_zone, gc.tz_offset) AS local_offered,
         CASE WHEN gc.answered THEN extract(epoch FROM gc.answered_at - gc.offered_at)
              ELSE extract(epoch FROM gc.left_at - gc.offered_at) END AS wait
  FROM gc
  LEFT JOIN later lt ON lt.pbx = gc.pbx AND lt.call_key = gc.call_key AND lt.group_key = gc.group_key
  LEFT JOIN {schema}.pbx_settings s ON s.pbx = gc.pbx
  LEFT JOIN thresholds th ON th.pbx = gc.pbx
),
outcome AS (
  SELECT t.*, CASE WHEN t.wait IS NOT NULL THEN greatest(round(t.wait), 0)::integer END AS wait_seconds,
         CASE WHEN t.answered THEN 'answered'
              WHEN t.next_destination IS NOT NULL OR t.wait >= t.queue_timeout THEN 'overflowed'
              ELSE 'abandoned' END AS outcome
  FROM timed t
)
SELECT o.pbx, o.group_key, o.group_id, o.group_number, o.group_name, o.call_key, o.first_leg_id,
       o.offered_at, o.local_offered, o.local_offered::date AS local_day,
       o.interval_start,
       {schema}.pbx_local(o.interval_start, o.time_zone, o.tz_offset) AS interval_local,
       o.caller_number, o.outcome,
       o.outcome = 'answered' AS answered,
       o.outcome = 'abandoned' AS abandoned,
       coalesce(o.outcome = 'abandoned' AND o.wait_seconds <= o.short_abandon_seconds, false) AS short_abandon,
       o.outcome = 'overflowed' AS overflowed,
       coalesce(o.outcome = 'answered' AND o.wait_seconds <= o.service_level_seconds, false) AS answered_in_service_level,
       o.answered_by_extension, ce.name AS answered_by_colleague,
       o.wait_seconds,
       CASE WHEN o.answered THEN coalesce(o.talk_seconds, 0) END AS talk_seconds,
       o.answered AND o.next_destination IS NOT NULL AS transferred_out,
       o.next_destination,
       o.legs::integer AS legs, o.members_rung::integer AS members_rung,
       o.group_source, o.service_level_seconds, o.short_abandon_seconds
FROM outcome o
LEFT JOIN {schema}.colleague_extensions ce ON ce.pbx = o.pbx AND ce.extension = o.answered_by_extension;
`
