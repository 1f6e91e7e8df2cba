package sinks

// reportingNumbers (migration 16, issue 30): one number is one caller
// whatever form the PBX wrote it in. missed_calls found the call back of
// a missed call by the number as written, so "+39 333 1234567" called
// back as "00393331234567" was no call back, while, pseudonymised, both
// forms are one pseudonym and it was: the views counted differently with
// and without pseudonymisation. number_key is pseudonym.Canonical in SQL
// (a leading + or 00 dropped, spaces, dashes, dots, slashes and brackets
// ignored; anything else, a pseudonym included, as it is), and
// missed_calls partitions by it.
const reportingNumbers = `
-- number_key: a phone number's one form, as the exporter's pseudonyms
-- take it (pseudonym.Canonical): its digits, without a leading + or 00;
-- a value that is not a number alone (a pseudonym, a name) as it is.
CREATE OR REPLACE FUNCTION {schema}.number_key(n text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT CASE
  WHEN n ~ '^\s*\+?[0-9 ./()\u00a0-]*[0-9][0-9 ./()\u00a0-]*\s*$'
    THEN coalesce(nullif(regexp_replace(regexp_replace(n, '[^0-9]', '', 'g'), '^00', ''), ''), n)
  ELSE n
END $$;

-- missed_calls: inbound calls nobody answered, with the first later call
-- between the same external number (in any of its forms) and the PBX, in
-- either direction.
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
  WINDOW w AS (PARTITION BY e.pbx, {schema}.number_key(e.external_number), e.start_time IS NULL ORDER BY e.start_time, e.first_leg_id)
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
`

// reportingNumbersErased (migration 17, issue 30): number_key gives NULL
// for a value that is neither a number nor a number's pseudonym
// ("erased", which forget and the suppression list write for every
// forgotten number; "anonymous"; a caller id; a name's pseudonym), and
// missed_calls finds no call back for a NULL key: before, every erased
// party was one caller, so a missed call of one forgotten number was
// "called back" by a call with another. A window partitions NULLs
// together, hence the CASE around each lead rather than the key alone.
const reportingNumbersErased = `
-- number_key: a phone number's one form, as the exporter's pseudonyms
-- take it (pseudonym.Canonical): its digits, without a leading + or 00;
-- a number's pseudonym (p: and 16 letters and digits) as it is; NULL for
-- anything else ("erased", "anonymous", a name), which is no one's number.
CREATE OR REPLACE FUNCTION {schema}.number_key(n text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT CASE
  WHEN n ~ '^\s*\+?[0-9 ./()\u00a0-]*[0-9][0-9 ./()\u00a0-]*\s*$'
    THEN nullif(regexp_replace(regexp_replace(n, '[^0-9]', '', 'g'), '^00', ''), '')
  WHEN n ~ '^p:[a-z2-7]{16}$' THEN n
END $$;

-- missed_calls: inbound calls nobody answered, with the first later call
-- between the same external number (in any of its forms) and the PBX, in
-- either direction; none for a party without a number_key.
CREATE OR REPLACE VIEW {schema}.missed_calls AS
WITH ext AS (
  SELECT c.*,
         CASE c.direction WHEN 'inbound' THEN c.caller_number WHEN 'outbound' THEN c.callee_number END AS external_number
  FROM {schema}.calls c
),
keyed AS (
  SELECT e.*, {schema}.number_key(e.external_number) AS party_key
  FROM ext e
  WHERE e.external_number IS NOT NULL
),
nxt AS (
  SELECT k.*,
         CASE WHEN k.party_key IS NOT NULL THEN lead(k.first_leg_id) OVER w END AS next_call_id,
         CASE WHEN k.party_key IS NOT NULL THEN lead(k.start_time) OVER w END AS next_call_start,
         CASE WHEN k.party_key IS NOT NULL THEN lead(k.direction) OVER w END AS next_call_direction,
         CASE WHEN k.party_key IS NOT NULL THEN lead(k.answered) OVER w END AS next_call_answered
  FROM keyed k
  WINDOW w AS (PARTITION BY k.pbx, k.party_key, k.start_time IS NULL ORDER BY k.start_time, k.first_leg_id)
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
`

// reportingNumbersParties (migration 18, issue 30, review 30 MEDIUM-2):
// migration 17 made number_key NULL for every value that is not a number
// alone, SIP URIs and caller ids included, so a user without a privacy
// rule lost the call back of a caller the PBX wrote as "Mario"
// <+39 352…> or sip:alice@host. number_key is now NULL only for a
// party without a number: an empty value, "erased" (forget, the
// suppression list), the words for a hidden caller (anonymous, as
// SIP's anonymous@anonymous.invalid of RFC 3323 and Asterisk write it;
// restricted, private, withheld, unavailable, unknown, as carriers show
// it; docs/pbx-api.md and the simulator know of no form, and a word
// more costs only a call back between two callers using it), p:-redacted-
// (pseudonym.Merged) and a name's pseudonym (n:),
// alone or as a caller id's or URI's user part ("Anonymous"
// <sip:anonymous@anonymous.invalid>, sip:erased@trunk as forget leaves
// it). The number of a caller id or URI keys as that number
// (pseudonym.Canonical of the user part), its pseudonym as itself, so a
// caller id links to the bare number in clear and pseudonymised alike;
// another URI keys as its user@host lower-cased, without the display
// name (which pseudonymising names rewrites) or parameters; any other
// text as itself, as before migration 17. White space at the ends is
// Go's (strings.TrimSpace: Unicode's, U+00A0 included). The first two
// WHENs are the common cases, so that a number or a pseudonym costs
// what it did; the rest is what the CSV recipe's macros in
// docs/reporting.md do, step for step.
const reportingNumbersParties = `
-- number_trim: s without the white space at its ends that Go's
-- strings.TrimSpace removes (Unicode's, the no-break space included).
CREATE OR REPLACE FUNCTION {schema}.number_trim(s text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT regexp_replace(s, '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$', '', 'g') $$;

-- number_address: the address a number column's value holds: the inside
-- of the <...> it ends with (a caller id, "Mario" <sip:+39...@pbx>), else
-- the value, trimmed and without a sip:, sips: or tel: scheme.
CREATE OR REPLACE FUNCTION {schema}.number_address(n text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT regexp_replace({schema}.number_trim(CASE WHEN n ~ '<[^<]*>[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$'
  THEN substring(n from '<([^<]*)>[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$') ELSE n END), '^(sips?|tel):', '', 'i') $$;

-- number_user: the address's user part (before an @, ; or ?), trimmed:
-- the number of "Mario" <+39 352...> and of sip:+39352...@pbx.
CREATE OR REPLACE FUNCTION {schema}.number_user(n text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT {schema}.number_trim(substring({schema}.number_address(n) from '^[^@;?]*')) $$;

-- number_key: the one form of a party's number, as the exporter's
-- pseudonyms take it (pseudonym.Canonical): its digits, without a leading
-- + or 00, also inside a caller id or a SIP URI; a number's pseudonym (p:
-- and 16 letters and digits) as it is; another URI's user@host
-- lower-cased; NULL for a party without a number (empty, erased, a hidden
-- caller, p:-redacted-, a name's pseudonym); any other text as it is.
CREATE OR REPLACE FUNCTION {schema}.number_key(n text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT CASE
  WHEN n ~ '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*\+?[0-9 \t./()\u00a0-]*[0-9][0-9 \t./()\u00a0-]*[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$'
    THEN nullif(regexp_replace(regexp_replace(n, '[^0-9]', '', 'g'), '^00', ''), '')
  WHEN n ~ '^p:[a-z2-7]{16}$' THEN n
  WHEN lower({schema}.number_user(n)) IN ('', 'erased', 'anonymous', 'restricted', 'private', 'withheld', 'unavailable', 'unknown', 'p:-redacted-')
       OR {schema}.number_user(n) ~ '^n:' THEN NULL
  WHEN {schema}.number_user(n) ~ '^\+?[0-9 \t./()\u00a0-]*$'
    THEN nullif(regexp_replace(regexp_replace({schema}.number_user(n), '[^0-9]', '', 'g'), '^00', ''), '')
  WHEN {schema}.number_user(n) ~ '^p:[a-z2-7]{16}$' THEN {schema}.number_user(n)
  WHEN n ~ '<[^<]*>[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$'
       OR n ~* '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*(sips?|tel):' OR n ~ '@'
    THEN lower(substring({schema}.number_address(n) from '^[^;?]*'))
  ELSE n
END $$;
`
