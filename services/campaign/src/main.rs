//! `campaign [serve|migrate]`.

use utoipa::OpenApi;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    mkt_runtime::main(&campaign::SPEC, campaign::api::routes, campaign::api::ApiDoc::openapi(), Vec::new()).await
}
