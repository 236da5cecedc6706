//! `webhook [serve|migrate]`.

use utoipa::OpenApi;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    mkt_runtime::main(&webhook::SPEC, webhook::api::routes, webhook::api::ApiDoc::openapi(), Vec::new()).await
}
