-- Per-tenant analytics settings: the RFM segment mapping (NULL: the documented default)
-- and the nightly processing schedule. A tenant without a row has the defaults.
CREATE TABLE tenant_settings (
    tenant_id         TEXT        PRIMARY KEY,
    rfm_rules         JSONB,
    schedule_enabled  BOOLEAN     NOT NULL DEFAULT TRUE,
    schedule_hour_utc INTEGER     NOT NULL DEFAULT 2 CHECK (schedule_hour_utc BETWEEN 0 AND 23),
    updated_at        TIMESTAMPTZ NOT NULL
);
