//! The route table of the segmentation service, and nothing else. Segment CRUD,
//! members and exports arrive with the rest of the segmentation issue.

use actix_web::web;
use mkt_runtime::BearerAuth;
use utoipa::OpenApi;

pub mod segments;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/marketing/segments")
            .route("/preview", web::post().to(segments::preview))
            .route("/fields", web::get().to(segments::fields)),
    );
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(
    info(title = "Segmentation API", description = "Audience segments and live membership."),
    paths(segments::preview, segments::fields),
    components(schemas(segments::PreviewInput, mkt_error::ErrorEnvelope)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;
