//! `cdp-analytics [serve|migrate]`.

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    mkt_runtime::main(&cdp_analytics::SPEC, cdp_analytics::parts).await
}
