//! `ingestion [serve|migrate|migrate-integrations]`: the shared startup sequence, with
//! this service's own settings (`mkt_runtime::main` knows only the shared ones).

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let config: ingestion::config::Config = mkt_config::load()?;
    let spec = &ingestion::SPEC;
    let _telemetry = mkt_telemetry::init(spec.name, &config.service.telemetry)?;
    match std::env::args().nth(1).as_deref() {
        Some("migrate") => {
            let applied = mkt_runtime::migrate(spec, &config.service.database).await?;
            tracing::info!(?applied, "migrations applied");
            Ok(())
        }
        // One-off, after `migrate`: copies the tenant integrations cdp-analytics owned
        // (docs/integrations.md, "Moving from cdp-analytics").
        Some("migrate-integrations") => {
            // `run` logs its report.
            ingestion::service::integrations::migrate::run(&config).await?;
            Ok(())
        }
        None | Some("serve") => {
            let running = ingestion::spawn(config).await?;
            let result = running.server_task.await;
            for task in running.background {
                task.abort();
            }
            result??;
            Ok(())
        }
        Some(other) => anyhow::bail!(
            "unknown command {other:?}; use `serve` (default), `migrate` or `migrate-integrations`"
        ),
    }
}
