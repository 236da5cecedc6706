//! The route table of the segmentation service, and nothing else.

use actix_web::web;
use mkt_runtime::BearerAuth;
use utoipa::OpenApi;

pub mod members;
pub mod paging;
pub mod segments;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/marketing/segments")
            .route("", web::post().to(segments::create))
            .route("", web::get().to(segments::list))
            .route("/preview", web::post().to(segments::preview))
            .route("/fields", web::get().to(segments::fields))
            // A CSV of up to a million emails, streamed (its caps are the service's).
            .route("/import", web::post().to(segments::import))
            .route("/{id}/customers", web::get().to(members::customers))
            .route("/{id}/export", web::get().to(members::export))
            .route("/{id}", web::get().to(segments::get))
            .route("/{id}", web::put().to(segments::replace))
            .route("/{id}", web::delete().to(segments::delete)),
    )
    .service(
        web::scope("/api/v2/cdp/segments")
            .route("", web::get().to(members::cdp_list))
            .route("/{id}/members", web::get().to(members::cdp_members)),
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
        segments::import,
        members::customers,
        members::export,
        members::cdp_list,
        members::cdp_members,
    ),
    components(schemas(segments::PreviewInput, segments::SegmentInput, mkt_error::ErrorEnvelope)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;
