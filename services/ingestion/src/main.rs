//! `ingestion [serve|migrate]`.

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    mkt_runtime::main(&ingestion::SPEC, ingestion::parts).await
}
