-- Rate limits across nodes (src/rate-limit/, README "Rate limits across nodes"). One row per key and
-- clock-minute window holds how much of that window's budget the nodes sharing this database have
-- leased. A node leases a slice, spends it from shared memory without touching the database, and
-- leases again ahead of need; slices shrink as the window's remainder shrinks, so at the end of a
-- window no node sits on tokens another node could use. The budget itself (the tier's limit, or
-- KEYGEN_RATE_LIMIT_PER_MINUTE) is passed by each lease, so it is not stored.
--
-- Rows are written only by src/db/queries/lease-rate-windows.ts. Each lease statement also deletes up
-- to 16 rows of windows that ended more than a minute ago, so ended windows never pile up (every new
-- row comes with deletions); the previous window's row is kept because its `holders` sizes the next
-- window's first slices.

CREATE TABLE org_rate_windows (
  organization_id  uuid NOT NULL,
  window_start     timestamptz NOT NULL,
  -- Tokens handed to nodes in this window, less what they gave back (never more than the limit).
  leased           integer NOT NULL CHECK (leased >= 0),
  -- Nodes that leased in this window: a slice is the remainder divided by 4 × max(holders, holders_before).
  holders          integer NOT NULL CHECK (holders >= 0),
  -- The previous window's `holders` when this row was made (nodes that were spending a minute ago
  -- are likely to spend now, so the window's first slices are already sized for them), or the
  -- lease's cold guess (4) when the key was idle.
  holders_before   integer NOT NULL,
  -- What the latest lease statement handed out (read back by its RETURNING).
  last_grant       integer NOT NULL,
  PRIMARY KEY (organization_id, window_start)
);
CREATE INDEX org_rate_windows_window_start ON org_rate_windows (window_start);

-- The per-client-IP limit of POST /api/keys/generate. `ip_key` is the 31-bit FNV-1a hash of the
-- client address that also names the address's slot in each node's shared-memory table, so a node
-- never mixes the tokens of two rows in one slot (two addresses with the same hash share a budget).
CREATE TABLE ip_rate_windows (
  ip_key           integer NOT NULL,
  window_start     timestamptz NOT NULL,
  leased           integer NOT NULL CHECK (leased >= 0),
  holders          integer NOT NULL CHECK (holders >= 0),
  holders_before   integer NOT NULL,
  last_grant       integer NOT NULL,
  PRIMARY KEY (ip_key, window_start)
);
CREATE INDEX ip_rate_windows_window_start ON ip_rate_windows (window_start);

-- How many tokens one lease hands out (src/rate-limit/slice.ts `sliceGrant` is the same function for
-- the node's own arithmetic; test/integration/rate-limit-lease.test.ts checks that they agree):
-- nothing when fewer than `need` remain (all or nothing); otherwise `need` plus nothing more, or a
-- slice of remaining / (divisor × holders) when that is at least `min_slice`, whichever is larger.
CREATE FUNCTION rate_window_grant(remaining integer, holders integer, need integer, divisor integer, min_slice integer)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN remaining < need THEN 0
    WHEN remaining / (divisor * greatest(holders, 1)) >= min_slice THEN greatest(need, remaining / (divisor * greatest(holders, 1)))
    ELSE need
  END
$$;
