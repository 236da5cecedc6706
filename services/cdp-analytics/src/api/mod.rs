//! The route table of the cdp-analytics service, and nothing else.

use actix_web::web;
use mkt_runtime::BearerAuth;
use utoipa::OpenApi;

pub mod analytics;
pub mod customers;
pub mod process;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(process::routes)
        .configure(analytics::routes)
        .configure(customers::routes);
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(
    info(title = "CDP analytics API", description = "RFM, CLV and churn scores; the customer 360."),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The whole document: the shared info plus each resource's paths.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(process::Doc::openapi());
    doc.merge(analytics::Doc::openapi());
    doc.merge(customers::Doc::openapi());
    doc
}
