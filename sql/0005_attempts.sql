-- The delivery attempt log (the contract, docs/api.md "Delivery attempts"): one row per HTTP attempt, written by the
-- delivering thread in the transaction that writes the delivery's new state
-- (src/db/queries/complete-deliveries.ts), never on the ingest path.
--
-- Partitioned by started_at with PostgreSQL's own declarative partitioning, one partition per UTC day
-- (delivery_attempts_pYYYYMMDD). Partitions are created a week ahead and dropped whole when they pass
-- ATTEMPT_RETENTION_DAYS (src/db/queries/attempt-partitions.ts): retention never deletes rows one by
-- one and never locks the partitions being written. Response excerpts and headers read as expired
-- (null, response_body_expired) once older than ATTEMPT_BODY_RETENTION_DAYS, and are cleared for good
-- a whole partition at a time, in small batches, once the partition's day is past that age (it is no
-- longer written to); attempt_partitions_cleared remembers which partitions are done.
--
-- Attempt ids are UUIDv7 made at the attempt's start, so an id alone locates its partition
-- (find-attempts.ts reads started_at from it).

CREATE TABLE delivery_attempts (
  organization_id          uuid NOT NULL,
  id                       uuid NOT NULL,
  event_id                 uuid NOT NULL,
  endpoint_id              uuid NOT NULL,
  attempt_number           integer NOT NULL,
  trigger                  text NOT NULL CHECK (trigger IN ('initial', 'retry', 'redeliver', 'replay')),
  url                      text NOT NULL,
  -- The event's type, for the event_type filter of an endpoint's attempt list.
  event_type               text NOT NULL,
  started_at               timestamptz NOT NULL,
  duration_ms              integer NOT NULL,
  outcome                  text NOT NULL CHECK (outcome IN ('success', 'http_error', 'timeout', 'network_error', 'blocked')),
  response_status          integer,
  response_headers         jsonb,
  response_body            text,
  response_body_truncated  boolean NOT NULL DEFAULT false,
  error                    text,
  next_attempt_at          timestamptz,
  PRIMARY KEY (organization_id, id, started_at)
) PARTITION BY RANGE (started_at);

-- GET /api/events/:id/attempts (oldest first) and GET /api/endpoints/:id/attempts (newest first) and its stats.
CREATE INDEX delivery_attempts_event ON delivery_attempts (organization_id, event_id, started_at, id);
CREATE INDEX delivery_attempts_endpoint ON delivery_attempts (organization_id, endpoint_id, started_at DESC, id DESC);

-- Creates the daily partitions from yesterday to `days_ahead` days ahead (idempotent). Returns how many
-- it created.
CREATE FUNCTION triggers_ensure_attempt_partitions(days_ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  d date;
  made integer := 0;
  name text;
BEGIN
  FOR d IN SELECT generate_series((now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + days_ahead, interval '1 day')::date LOOP
    name := 'delivery_attempts_p' || to_char(d, 'YYYYMMDD');
    IF to_regclass(name) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF delivery_attempts FOR VALUES FROM (%L) TO (%L)',
                     name, (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
      made := made + 1;
    END IF;
  END LOOP;
  RETURN made;
END
$$;

CREATE TABLE attempt_partitions_cleared (
  name        text PRIMARY KEY,
  cleared_at  timestamptz NOT NULL DEFAULT now()
);

SELECT triggers_ensure_attempt_partitions(7);
