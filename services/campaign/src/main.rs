//! `campaign [serve|migrate]`.

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    mkt_runtime::main(&campaign::SPEC, campaign::parts).await
}
