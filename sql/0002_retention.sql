-- Retention purge support. A BRIN index on events.created_at costs almost nothing on insert (one
-- summary per block range; events arrive in time order) and lets the purge find old rows without a
-- full scan. dedup_keys already has a btree on expires_at.
CREATE INDEX events_created_at_brin ON events USING brin (created_at);

-- The delivery thread's safety sweep un-parks events of organizations whose webhook URL changed
-- recently; this keeps that sweep from scanning every organization.
CREATE INDEX organizations_webhook_updated_at ON organizations (webhook_updated_at) WHERE webhook_url IS NOT NULL;
