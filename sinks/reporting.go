package sinks

// reportingV4 is migration 4: the reporting layer counts calls, not CDR
// legs. docs/pbx-api.md ("Calls and their legs") gives the evidence for
// how legs are grouped; the README's reporting section lists every view.
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
