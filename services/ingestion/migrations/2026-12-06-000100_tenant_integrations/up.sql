-- Tenant integrations (seed 004), moved here from cdp-analytics: a sync is an import
-- source beside CSV and writes through this service's own use cases. The shapes are
-- cdp-analytics' (2026-11-22-000100) without `integration_orders`: orders are
-- deduplicated by `orders_tenant_external_id_key` now. `ingestion migrate-integrations`
-- copies the existing rows over (docs/integrations.md, "Moving from cdp-analytics").
--
-- The credentials are one AES-256-GCM ciphertext (see src/domain/crypto.rs): the
-- nonce and the id of the key that sealed it sit beside it, and the associated data
-- binds it to (tenant_id, id), so a ciphertext copied to another row does not open
-- (and one copied with its ids, as the migration does, still does).
CREATE TABLE tenant_integrations (
    tenant_id              TEXT        NOT NULL,
    id                     UUID        NOT NULL,
    integration_type       TEXT        NOT NULL CHECK (integration_type IN ('vtex')),
    account_name           TEXT        NOT NULL,
    environment            TEXT        NOT NULL,
    is_active              BOOLEAN     NOT NULL,
    credentials_key_id     TEXT        NOT NULL,
    credentials_nonce      BYTEA       NOT NULL,
    credentials_ciphertext BYTEA       NOT NULL,
    -- The last four characters of the app key, so an admin can tell keys apart.
    app_key_last4          TEXT        NOT NULL,
    -- When the last successful sync finished (seed 004's `last_sync`).
    last_sync_at           TIMESTAMPTZ,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- One integration per store account and tenant: two would import the same orders.
CREATE UNIQUE INDEX tenant_integrations_account_key
    ON tenant_integrations (tenant_id, integration_type, account_name);

-- Sync runs: a leased job queue, so an accepted sync survives a restart (a worker whose
-- lease expired is taken over, and the orders cursor says where to resume).
CREATE TABLE integration_sync_runs (
    tenant_id      TEXT        NOT NULL,
    id             UUID        NOT NULL,
    integration_id UUID        NOT NULL,
    status         TEXT        NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    -- customers | orders | done
    phase          TEXT        NOT NULL,
    -- The window of VTEX order creation dates this run imports.
    orders_since   TIMESTAMPTZ NOT NULL,
    orders_until   TIMESTAMPTZ NOT NULL,
    -- Orders created before this instant are done (resume point after a takeover).
    orders_cursor  TIMESTAMPTZ,
    -- Counters per kind: {"customers": {"created": 3, ...}, "orders": {...}}.
    counts         JSONB       NOT NULL,
    -- The first failed items with the reason ingestion gave (never credentials).
    item_errors    JSONB       NOT NULL,
    error          TEXT,
    attempts       INTEGER     NOT NULL,
    lease_until    TIMESTAMPTZ,
    requested_at   TIMESTAMPTZ NOT NULL,
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, integration_id) REFERENCES tenant_integrations (tenant_id, id) ON DELETE CASCADE
);

-- At most one queued or running sync per integration.
CREATE UNIQUE INDEX integration_sync_runs_active_key
    ON integration_sync_runs (tenant_id, integration_id) WHERE status IN ('queued', 'running');
CREATE INDEX integration_sync_runs_integration_idx
    ON integration_sync_runs (tenant_id, integration_id, requested_at DESC);
-- What the workers poll.
CREATE INDEX integration_sync_runs_claim_idx
    ON integration_sync_runs (requested_at) WHERE status IN ('queued', 'running');
