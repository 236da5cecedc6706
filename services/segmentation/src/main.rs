//! `segmentation [serve|migrate]`.

use utoipa::OpenApi;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    mkt_runtime::main(
        &segmentation::SPEC,
        segmentation::api::routes,
        segmentation::api::ApiDoc::openapi(),
        segmentation::events::consume::subscriptions(),
    )
    .await
}
