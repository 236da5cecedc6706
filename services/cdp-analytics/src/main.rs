//! `cdp-analytics [serve|migrate]`.

use utoipa::OpenApi;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    mkt_runtime::main(&cdp_analytics::SPEC, cdp_analytics::api::routes, cdp_analytics::api::ApiDoc::openapi(), Vec::new()).await
}
