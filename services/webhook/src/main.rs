//! `webhook [serve|migrate]`.

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    mkt_runtime::main(&webhook::SPEC, webhook::parts).await
}
