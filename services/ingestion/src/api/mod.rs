//! The route table of the ingestion service, and nothing else.

use actix_web::web;
use mkt_runtime::BearerAuth;
use utoipa::OpenApi;

pub mod customers;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v2/cdp/customers")
            .route("", web::post().to(customers::upsert))
            .route("/{id}", web::get().to(customers::get)),
    );
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(
    info(title = "Ingestion API", description = "Customers, orders and behaviour events."),
    paths(customers::upsert, customers::get),
    components(schemas(
        crate::domain::customer::CustomerInput,
        crate::domain::customer::AddressInput,
        crate::domain::customer::ConsentInput,
        customers::CustomerData,
        customers::AddressData,
        customers::CustomerEnvelope,
        mkt_error::ErrorEnvelope,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;
