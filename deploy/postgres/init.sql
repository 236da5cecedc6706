-- Database provisioning for the marketing platform.
--
-- Creates the `marketing` database, one LOGIN role per service and one schema per
-- service owned by that role. Every role is confined to its own schema: no rights
-- on the other services' schemas, no CREATE on `public`, search_path = its schema
-- (diesel's `__diesel_schema_migrations` table therefore lands in that schema too).
-- Tables themselves are created later by each service's `<bin> migrate`.
--
-- Idempotent: safe to run again (it then only re-applies passwords and grants).
--
-- Run it as a superuser / the managed service's admin role with psql (it uses psql
-- meta-commands: \if, \set, \gexec, \connect):
--
--   psql "postgres://admin@db-host:5432/postgres" -v ON_ERROR_STOP=1 \
--        -v require_real_passwords=1 \
--        -v ingestion_password="$INGESTION_PW" \
--        -v segmentation_password="$SEGMENTATION_PW" \
--        -v campaign_password="$CAMPAIGN_PW" \
--        -v webhook_password="$WEBHOOK_PW" \
--        -v cdp_analytics_password="$CDP_ANALYTICS_PW" \
--        -f deploy/postgres/init.sql
--
-- docker-compose mounts this file into postgres' /docker-entrypoint-initdb.d, which
-- cannot pass psql variables: every password that is not given falls back to a
-- DEV-ONLY default (`<role>-dev`, below). Never rely on those defaults outside a
-- local docker-compose stack; `-v require_real_passwords=1` makes a missing one fatal.

\set ON_ERROR_STOP on

-- ---------------------------------------------------------------------------
-- Passwords: psql variables, or DEV-ONLY defaults.
-- ---------------------------------------------------------------------------
\if :{?require_real_passwords}
  \if :{?ingestion_password}
  \else
    DO $$ BEGIN RAISE EXCEPTION 'init.sql: require_real_passwords is set but ingestion_password is missing'; END $$;
  \endif
  \if :{?segmentation_password}
  \else
    DO $$ BEGIN RAISE EXCEPTION 'init.sql: require_real_passwords is set but segmentation_password is missing'; END $$;
  \endif
  \if :{?campaign_password}
  \else
    DO $$ BEGIN RAISE EXCEPTION 'init.sql: require_real_passwords is set but campaign_password is missing'; END $$;
  \endif
  \if :{?webhook_password}
  \else
    DO $$ BEGIN RAISE EXCEPTION 'init.sql: require_real_passwords is set but webhook_password is missing'; END $$;
  \endif
  \if :{?cdp_analytics_password}
  \else
    DO $$ BEGIN RAISE EXCEPTION 'init.sql: require_real_passwords is set but cdp_analytics_password is missing'; END $$;
  \endif
\endif

-- DEV-ONLY default passwords (docker-compose). Production passes -v <role>_password=...
\if :{?ingestion_password}
\else
  \set ingestion_password 'ingestion-dev'
\endif
\if :{?segmentation_password}
\else
  \set segmentation_password 'segmentation-dev'
\endif
\if :{?campaign_password}
\else
  \set campaign_password 'campaign-dev'
\endif
\if :{?webhook_password}
\else
  \set webhook_password 'webhook-dev'
\endif
\if :{?cdp_analytics_password}
\else
  \set cdp_analytics_password 'cdp_analytics-dev'
\endif

-- ---------------------------------------------------------------------------
-- Database
-- ---------------------------------------------------------------------------
SELECT 'CREATE DATABASE marketing'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'marketing')
\gexec

\connect marketing

-- ---------------------------------------------------------------------------
-- Roles: LOGIN, nothing else. Passwords are (re)applied on every run so that
-- re-running with new -v values rotates them.
-- ---------------------------------------------------------------------------
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', r)
FROM unnest(ARRAY['ingestion', 'segmentation', 'campaign', 'webhook', 'cdp_analytics']) AS r
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
\gexec

ALTER ROLE ingestion     LOGIN PASSWORD :'ingestion_password';
ALTER ROLE segmentation  LOGIN PASSWORD :'segmentation_password';
ALTER ROLE campaign      LOGIN PASSWORD :'campaign_password';
ALTER ROLE webhook       LOGIN PASSWORD :'webhook_password';
ALTER ROLE cdp_analytics LOGIN PASSWORD :'cdp_analytics_password';

-- On managed services the admin role is often not a superuser: it then has to be a
-- member of a role to create a schema owned by it (CREATE SCHEMA ... AUTHORIZATION).
SELECT format('GRANT %I TO %I', r, current_user)
FROM unnest(ARRAY['ingestion', 'segmentation', 'campaign', 'webhook', 'cdp_analytics']) AS r
WHERE NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
  AND NOT pg_has_role(current_user, r, 'MEMBER')
\gexec

-- Each role resolves unqualified names in its own schema only.
ALTER ROLE ingestion     SET search_path = ingestion;
ALTER ROLE segmentation  SET search_path = segmentation;
ALTER ROLE campaign      SET search_path = campaign;
ALTER ROLE webhook       SET search_path = webhook;
ALTER ROLE cdp_analytics SET search_path = cdp_analytics;

-- ---------------------------------------------------------------------------
-- Database-level rights: connect (and temp tables) for the service roles only.
-- No CREATE on the database: a service cannot create further schemas.
-- ---------------------------------------------------------------------------
REVOKE ALL ON DATABASE marketing FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE marketing
    TO ingestion, segmentation, campaign, webhook, cdp_analytics;

-- Nobody but the owner may create objects in `public` (already the default on
-- PostgreSQL 15+, explicit for older servers and managed services).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Schemas: one per service, owned by its role, closed to everybody else.
-- ---------------------------------------------------------------------------
CREATE SCHEMA IF NOT EXISTS ingestion     AUTHORIZATION ingestion;
CREATE SCHEMA IF NOT EXISTS segmentation  AUTHORIZATION segmentation;
CREATE SCHEMA IF NOT EXISTS campaign      AUTHORIZATION campaign;
CREATE SCHEMA IF NOT EXISTS webhook       AUTHORIZATION webhook;
CREATE SCHEMA IF NOT EXISTS cdp_analytics AUTHORIZATION cdp_analytics;

-- Re-assert ownership if the schema pre-existed under another owner.
ALTER SCHEMA ingestion     OWNER TO ingestion;
ALTER SCHEMA segmentation  OWNER TO segmentation;
ALTER SCHEMA campaign      OWNER TO campaign;
ALTER SCHEMA webhook       OWNER TO webhook;
ALTER SCHEMA cdp_analytics OWNER TO cdp_analytics;

REVOKE ALL ON SCHEMA ingestion, segmentation, campaign, webhook, cdp_analytics FROM PUBLIC;
