//! `gateway`: config -> telemetry -> HTTP server.

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let config: gateway::config::Config = mkt_config::load()?;
    let _telemetry = mkt_telemetry::init("gateway", &config.telemetry)?;
    let running = gateway::spawn(config).await?;
    running.task.await??;
    Ok(())
}
