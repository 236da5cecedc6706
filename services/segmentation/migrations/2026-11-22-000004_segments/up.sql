-- Saved segments. Dynamic ones keep their canonical rule tree; static ones an explicit
-- list of customer ids. `cached_count` is the audience size when last computed.
CREATE TABLE segments (
    tenant_id       TEXT        NOT NULL,
    id              UUID        NOT NULL,
    name            TEXT        NOT NULL,
    description     TEXT,
    kind            TEXT        NOT NULL CHECK (kind IN ('dynamic', 'static', 'imported')),
    rules           JSONB,
    member_ids      UUID[]      NOT NULL DEFAULT '{}',
    is_active       BOOLEAN     NOT NULL DEFAULT TRUE,
    cached_count    BIGINT      NOT NULL DEFAULT 0,
    count_cached_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX segments_tenant_created_idx ON segments (tenant_id, created_at DESC);
