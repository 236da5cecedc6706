//! `ingestion [serve|migrate]`.

use utoipa::OpenApi;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    mkt_runtime::main(&ingestion::SPEC, ingestion::api::routes, ingestion::api::ApiDoc::openapi(), Vec::new()).await
}
