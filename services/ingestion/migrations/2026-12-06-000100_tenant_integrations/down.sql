DROP TABLE integration_sync_runs;
DROP TABLE tenant_integrations;
