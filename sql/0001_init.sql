-- Triggers API schema, version 1.
--
-- Every table carries organization_id and leads its keys with it, so the schema can later be
-- distributed by organization (Citus: events and dedup_keys distributed on organization_id,
-- organizations a reference table). Event ids are UUIDv7 (time-ordered): inserts stay at the right
-- edge of the primary-key index.
--
-- events has no foreign key to organizations on purpose: a foreign key check takes a FOR KEY SHARE
-- lock on the organization row for every inserted event, which turns one busy tenant into a hot row
-- under batched ingest. Organizations are never deleted through the API, and the writer only inserts
-- for an organization it has just authenticated.

CREATE TABLE organizations (
  id                          uuid PRIMARY KEY,
  -- A small stable number for the node-local shared rate-limit table (no UUID hashing on the hot path).
  org_no                      integer GENERATED ALWAYS AS IDENTITY UNIQUE,
  name                        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
  tier                        text NOT NULL CHECK (tier IN ('free', 'pro', 'business', 'enterprise')),
  -- The non-secret lookup part of the API key; the secret part is only ever stored as Argon2id.
  key_lookup                  text NOT NULL UNIQUE,
  key_hash                    text NOT NULL,
  key_rotated_at              timestamptz,
  webhook_url                 text,
  webhook_updated_at          timestamptz,
  signing_secret              text,
  previous_signing_secret     text,
  previous_secret_expires_at  timestamptz,
  created_at                  timestamptz NOT NULL DEFAULT now(),
  updated_at                  timestamptz NOT NULL DEFAULT now()
);

-- Polled once a second by every node to evict rotated keys from its caches.
CREATE INDEX organizations_key_rotated_at ON organizations (key_rotated_at) WHERE key_rotated_at IS NOT NULL;

CREATE TABLE events (
  organization_id   uuid NOT NULL,
  id                uuid NOT NULL,
  type              text NOT NULL,
  -- json, not jsonb: stored exactly as the compact text the API measured and will return.
  payload           json NOT NULL,
  dedup_id          text,
  status            text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'failed', 'dead_letter', 'delivered')),
  attempts          integer NOT NULL DEFAULT 0,
  response_status   integer,
  last_error        text,
  -- When the next delivery attempt is due. NULL means nothing is scheduled: delivered, dead_letter,
  -- or parked because the organization has no webhook URL. While an attempt is in flight it holds
  -- the lease expiry, so an attempt lost with its node becomes due again by itself.
  next_attempt_at   timestamptz,
  -- The 1-based index of the current retry series' attempt (retry delays are counted from it).
  series_attempt    integer NOT NULL DEFAULT 0,
  created_at        timestamptz NOT NULL,
  updated_at        timestamptz NOT NULL,
  acknowledged_at   timestamptz,
  delivered_at      timestamptz,
  PRIMARY KEY (organization_id, id)
);

-- The inbox, newest first, keyset-paged on (created_at, id). Two partial indexes instead of one on
-- (organization_id, status, …): a new event enters only events_inbox_open, and the delivered index
-- is written when an event leaves the open set — one btree insert less per ingested event.
-- Open view (pending, failed, dead_letter; the default, and any of those statuses as a filter):
CREATE INDEX events_inbox_open ON events (organization_id, created_at DESC, id DESC) WHERE status <> 'delivered';
-- status=delivered:
CREATE INDEX events_inbox_delivered ON events (organization_id, created_at DESC, id DESC) WHERE status = 'delivered';
-- Delivery claims: the due work across organizations, oldest due first.
CREATE INDEX events_due ON events (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

CREATE TABLE dedup_keys (
  organization_id  uuid NOT NULL,
  dedup_id         text NOT NULL,
  event_id         uuid NOT NULL,
  expires_at       timestamptz NOT NULL,
  PRIMARY KEY (organization_id, dedup_id)
);

-- Retention purge of expired records; BRIN because records arrive in expiry order (cheap on insert).
CREATE INDEX dedup_keys_expires_at ON dedup_keys USING brin (expires_at);
