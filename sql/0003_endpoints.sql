-- Delivery v2: many endpoints per organization, one delivery per (event, endpoint).
--
--   organizations 1──* endpoints 1──* deliveries *──1 events
--
-- An endpoint is a webhook URL with its own signing secret(s), event-type filter, flow control and
-- status. A delivery is one (event, endpoint) pair with its own status machine, attempts and schedule;
-- ingest writes an event and its matching deliveries in one statement (src/db/queries/insert-events.ts).
-- The event keeps a summary of its deliveries (status, attempts, response_status, last_error) for the
-- inbox, written in the same statement as each delivery result (complete-deliveries.ts).
--
-- Every key leads with organization_id (the distribution column, docs/scaling.md). Ids are UUIDv7.
--
-- Upgrading a version-2 database: every organization's webhook_url becomes its default endpoint
-- (is_default, event_types ['*']) keeping its signing secret and a running 24-hour overlap, and every
-- event of such an organization gets a delivery to it carrying the event's delivery state (status,
-- attempts, retry-series position, schedule, last response): receivers see the same secret, the same
-- webhook-id and the same attempt numbers. Stop every node before migrating (an attempt leased by an
-- old node keeps its lease: it becomes due again when the lease expires).

-- UUIDv7 (RFC 9562) for rows made by SQL: 48-bit Unix milliseconds, version 7, variant, randomness.
-- The application makes its own ids (src/lib/uuid.ts); this is for the migration and SQL-side inserts.
CREATE FUNCTION triggers_uuidv7(ts timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT encode(set_bit(set_bit(
           overlay(uuid_send(gen_random_uuid())
                   PLACING substring(int8send(floor(extract(epoch FROM ts) * 1000)::bigint) FROM 3)
                   FROM 1 FOR 6),
           52, 1), 53, 1), 'hex')::uuid
$$;

-- Event-type matching (the contract, docs/api.md "The endpoint object"): "*" matches every type, an exact pattern its
-- type, and "<prefix>.*" every type that starts with "<prefix>." and is longer than it. Case-sensitive.
-- The same rule in TypeScript: src/webhooks/event-types.ts (both are tested against one table).
CREATE FUNCTION triggers_type_matches(patterns text[], event_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT EXISTS (
    SELECT 1 FROM unnest(patterns) AS p
     WHERE p = '*' OR p = event_type
        OR (right(p, 2) = '.*' AND length(event_type) > length(p) - 1
            AND left(event_type, length(p) - 1) = left(p, -1)))
$$;

CREATE TABLE endpoints (
  organization_id             uuid NOT NULL,
  id                          uuid NOT NULL,
  url                         text NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2048),
  description                 text CHECK (char_length(description) <= 255),
  event_types                 text[] NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 100),
  status                      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'disabled')),
  disabled_reason             text CHECK (disabled_reason IN ('manual', 'gone', 'failing')),
  disabled_at                 timestamptz,
  -- Token bucket of attempt starts: `rate_limit` per `rate_period_seconds` (both null: no limit).
  rate_limit                  integer CHECK (rate_limit BETWEEN 1 AND 10000),
  rate_period_seconds         integer CHECK (rate_period_seconds BETWEEN 1 AND 3600),
  max_concurrency             integer CHECK (max_concurrency BETWEEN 1 AND 100),
  metadata                    jsonb NOT NULL DEFAULT '{}',
  is_default                  boolean NOT NULL DEFAULT false,
  signing_secret              text NOT NULL,
  previous_signing_secret     text,
  previous_secret_expires_at  timestamptz,
  -- deliver_pending / webhook config: pending events ingested around this time are swept into
  -- deliveries for a while, closing the race with events committed just after the backfill.
  backfill_since              timestamptz,
  -- Flow state shared by every delivering node; written under this row's lock by claims
  -- (src/db/queries/claim-deliveries.ts) and by result writes (complete-deliveries.ts).
  rate_tat                    timestamptz,  -- GCRA theoretical arrival time of the next start
  throttled_until             timestamptz,  -- receiver backpressure (429/503 with Retry-After)
  breaker_until               timestamptz,  -- circuit breaker: no attempt before this
  consecutive_failures        integer NOT NULL DEFAULT 0,
  failing_since               timestamptz,  -- first failure after the last success
  last_success_at             timestamptz,
  last_failure_at             timestamptz,
  created_at                  timestamptz NOT NULL,
  updated_at                  timestamptz NOT NULL,
  PRIMARY KEY (organization_id, id),
  CHECK ((rate_limit IS NULL) = (rate_period_seconds IS NULL))
);

-- At most one default endpoint (the organization's webhook_url) per organization.
CREATE UNIQUE INDEX endpoints_default ON endpoints (organization_id) WHERE is_default;

CREATE TABLE deliveries (
  organization_id  uuid NOT NULL,
  event_id         uuid NOT NULL,
  endpoint_id      uuid NOT NULL,
  status           text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'failed', 'dead_letter', 'delivered', 'cancelled')),
  -- Attempts started (X-Delivery-Attempt of the latest); counts across retry series.
  attempts         integer NOT NULL DEFAULT 0,
  -- 1-based index of the current retry series' latest attempt (retry delays are counted from it).
  series_attempt   integer NOT NULL DEFAULT 0,
  -- What started the current series: the attempt log calls its first attempt by this name.
  trigger          text NOT NULL DEFAULT 'initial' CHECK (trigger IN ('initial', 'redeliver', 'replay')),
  -- When the next attempt is due. While an attempt is in flight it holds the lease expiry, so an attempt
  -- lost with its node becomes due again by itself. NULL: nothing scheduled (finished, or held because
  -- the endpoint is paused or disabled).
  next_attempt_at  timestamptz,
  -- Set while an attempt is in flight (the lease); counted for the endpoint's max_concurrency.
  leased_until     timestamptz,
  -- The delivery thread holding the lease (a random id per thread start): a claimer counts its own
  -- attempts in flight exactly in memory and only other threads' leases from here.
  leased_by        uuid,
  -- The endpoint's rate limit already granted this delivery a start slot (it was deferred to it).
  rate_reserved    boolean NOT NULL DEFAULT false,
  response_status  integer,
  last_error       text,
  last_attempt_at  timestamptz,
  -- The event's created_at: deliveries sort and replay by event time.
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  delivered_at     timestamptz,
  PRIMARY KEY (organization_id, event_id, endpoint_id)
);

-- Claims: the due work across organizations, oldest due first.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
-- max_concurrency across nodes: the live leases of one endpoint.
CREATE INDEX deliveries_leased ON deliveries (organization_id, endpoint_id) WHERE leased_until IS NOT NULL;
-- An endpoint's backlog: stats, replay, cancel on delete, the backlog metric. A delivered delivery
-- leaves it (one index entry less per delivered row).
CREATE INDEX deliveries_open ON deliveries (organization_id, endpoint_id, status, created_at)
  WHERE status IN ('pending', 'failed', 'dead_letter');
-- Retention purge (deliveries go with their events).
CREATE INDEX deliveries_created_at_brin ON deliveries USING brin (created_at);

-- The event's summary follows its deliveries (the contract, docs/api.md "Fan-out rules", 7): `delivered` if acknowledged
-- or if every non-cancelled delivery is delivered (and there is at least one); else `failed` if any is
-- failed; else `dead_letter` if any is; else `pending`. Its attempts, response_status and last_error
-- are those of the default endpoint's delivery, else of the most recently attempted one. Acknowledged
-- events are left alone (an ack wins). Rows whose summary is unchanged are not written. Called by every
-- statement family that changes deliveries outside ingest, after its change, in the same transaction.
-- PL/pgSQL so that its plan is cached per connection.
CREATE FUNCTION triggers_refresh_events(orgs uuid[], ids uuid[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  n integer;
BEGIN
  WITH t AS (
    SELECT DISTINCT organization_id, id FROM unnest(orgs, ids) AS t(organization_id, id)
  ), agg AS (
    SELECT d.organization_id, d.event_id,
           count(*) FILTER (WHERE d.status <> 'cancelled') AS live,
           count(*) FILTER (WHERE d.status = 'delivered') AS delivered,
           count(*) FILTER (WHERE d.status = 'failed') AS failed,
           count(*) FILTER (WHERE d.status = 'dead_letter') AS dead,
           max(d.delivered_at) AS delivered_at,
           (array_agg(d.attempts ORDER BY ep.is_default IS TRUE DESC, d.last_attempt_at DESC NULLS LAST))[1] AS attempts,
           (array_agg(d.response_status ORDER BY ep.is_default IS TRUE DESC, d.last_attempt_at DESC NULLS LAST))[1] AS response_status,
           (array_agg(d.last_error ORDER BY ep.is_default IS TRUE DESC, d.last_attempt_at DESC NULLS LAST))[1] AS last_error
      FROM t
      JOIN deliveries d ON d.organization_id = t.organization_id AND d.event_id = t.id
      LEFT JOIN endpoints ep ON ep.organization_id = d.organization_id AND ep.id = d.endpoint_id
     GROUP BY d.organization_id, d.event_id
  ), want AS (
    SELECT a.*, CASE WHEN a.live > 0 AND a.delivered = a.live THEN 'delivered'
                     WHEN a.failed > 0 THEN 'failed'
                     WHEN a.dead > 0 THEN 'dead_letter'
                     ELSE 'pending' END AS status
      FROM agg a
  )
  UPDATE events e
     SET status = w.status,
         attempts = w.attempts,
         response_status = w.response_status,
         last_error = w.last_error,
         delivered_at = CASE WHEN w.status = 'delivered' THEN w.delivered_at END,
         updated_at = now()
    FROM want w
   WHERE e.organization_id = w.organization_id AND e.id = w.event_id AND e.acknowledged_at IS NULL
     AND (e.status, e.attempts, e.response_status, e.last_error, e.delivered_at)
         IS DISTINCT FROM (w.status, w.attempts, w.response_status, w.last_error,
                           CASE WHEN w.status = 'delivered' THEN w.delivered_at END);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- ── upgrade a version-2 database ──────────────────────────────────────────────────────────────────

INSERT INTO endpoints (organization_id, id, url, event_types, status, is_default, signing_secret,
                       previous_signing_secret, previous_secret_expires_at, created_at, updated_at)
SELECT o.id, triggers_uuidv7(coalesce(o.webhook_updated_at, o.created_at)), o.webhook_url, ARRAY['*'], 'active', true,
       coalesce(o.signing_secret,
                'whsec_' || encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'base64')),
       o.previous_signing_secret, o.previous_secret_expires_at,
       coalesce(o.webhook_updated_at, o.created_at), now()
  FROM organizations o
 WHERE o.webhook_url IS NOT NULL;

INSERT INTO deliveries (organization_id, event_id, endpoint_id, status, attempts, series_attempt, trigger,
                        next_attempt_at, response_status, last_error, last_attempt_at, created_at,
                        updated_at, delivered_at)
SELECT e.organization_id, e.id, ep.id,
       -- An acknowledged event that was never delivered: the ack cancelled its delivery.
       CASE WHEN e.acknowledged_at IS NOT NULL AND e.delivered_at IS NULL THEN 'cancelled' ELSE e.status END,
       e.attempts, e.series_attempt, 'initial',
       -- A parked event (no schedule) of an organization that has a URL is due now.
       CASE WHEN e.status IN ('pending', 'failed') AND e.acknowledged_at IS NULL
            THEN coalesce(e.next_attempt_at, now()) END,
       e.response_status, e.last_error, CASE WHEN e.attempts > 0 THEN e.updated_at END,
       e.created_at, e.updated_at, e.delivered_at
  FROM events e
  JOIN endpoints ep ON ep.organization_id = e.organization_id AND ep.is_default;

-- The default endpoint now holds the webhook URL and the secrets. The organization's secret columns
-- stay for an organization without a default endpoint (a rotation before the first configuration, or
-- after the default endpoint was deleted): the next default endpoint takes them over.
UPDATE organizations o
   SET signing_secret = NULL, previous_signing_secret = NULL, previous_secret_expires_at = NULL
 WHERE o.webhook_url IS NOT NULL;

DROP INDEX organizations_webhook_updated_at;
ALTER TABLE organizations DROP COLUMN webhook_url, DROP COLUMN webhook_updated_at;

DROP INDEX events_due;
ALTER TABLE events DROP COLUMN next_attempt_at, DROP COLUMN series_attempt;
