-- OpenTelemetry traces (docs/tracing.md): the W3C traceparent of the span that ingested the event,
-- so that each delivery attempt — on any node, after a restart, hours later on a retry — is a child
-- of it, and the webhook request carries a traceparent of the same trace. Written by the ingest
-- statement only while tracing is on (src/db/queries/insert-events.ts); NULL otherwise, and for every
-- event stored before this column existed. Adding a nullable column without a default rewrites
-- nothing: the ALTER takes its lock for a moment and returns.

ALTER TABLE events ADD COLUMN traceparent text;
