//! The route table of the segmentation service, and nothing else. Members, exports
//! and the `/api/v2/cdp/segments` routes arrive with the rest of the segmentation issue.

use actix_web::web;
use mkt_runtime::BearerAuth;
use utoipa::OpenApi;

pub mod segments;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/marketing/segments")
            .route("", web::post().to(segments::create))
            .route("", web::get().to(segments::list))
            .route("/preview", web::post().to(segments::preview))
            .route("/fields", web::get().to(segments::fields))
            .route("/{id}", web::get().to(segments::get))
            .route("/{id}", web::put().to(segments::replace))
            .route("/{id}", web::delete().to(segments::delete)),
    );
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(
    info(title = "Segmentation API", description = "Audience segments and live membership."),
    paths(
        segments::create,
        segments::list,
        segments::preview,
        segments::fields,
        segments::get,
        segments::replace,
        segments::delete,
    ),
    components(schemas(segments::PreviewInput, segments::SegmentInput, mkt_error::ErrorEnvelope)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;
