//! The route table of the ingestion service, and nothing else.

use actix_web::web;
use mkt_runtime::BearerAuth;
use utoipa::OpenApi;

pub mod common;
pub mod customers;
pub mod events;
pub mod imports;
pub mod integrations;
pub mod orders;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v2/cdp/customers")
            .route("", web::post().to(customers::upsert))
            .route("", web::get().to(customers::list))
            .route("/batch", web::post().to(customers::upsert_batch))
            .route("/{id}", web::get().to(customers::get))
            .route("/{id}", web::patch().to(customers::patch))
            .route("/{id}", web::delete().to(customers::erase)),
    )
    .service(
        web::scope("/api/v2/cdp/orders")
            .route("", web::post().to(orders::place))
            .route("", web::get().to(orders::list))
            .route("/batch", web::post().to(orders::place_batch))
            .route("/{id}", web::get().to(orders::get))
            .route("/{id}", web::patch().to(orders::set_status)),
    )
    .service(
        web::scope("/api/v2/cdp/events")
            .route("", web::post().to(events::track))
            .route("/batch", web::post().to(events::track_batch)),
    )
    .service(
        web::scope("/api/v2/cdp/imports")
            .route("", web::post().to(imports::upload))
            .route("/{id}", web::get().to(imports::get))
            .route("/{id}/events", web::get().to(imports::events))
            .route("/{id}/rejections", web::get().to(imports::rejections)),
    )
    .service(
        web::scope("/api/v2/cdp/tenant-integrations")
            .route("", web::get().to(integrations::list))
            .route("", web::post().to(integrations::create))
            .route(
                "/validate/vtex",
                web::post().to(integrations::validate_vtex),
            )
            .route("/{id}/sync", web::post().to(integrations::start_sync))
            .route("/{id}/sync", web::get().to(integrations::latest_sync))
            .route("/{id}/syncs", web::get().to(integrations::list_syncs))
            .route("/{id}/sync/{run_id}", web::get().to(integrations::get_sync))
            .route("/{id}", web::get().to(integrations::get))
            .route("/{id}", web::put().to(integrations::update))
            .route("/{id}", web::delete().to(integrations::delete)),
    );
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(
    info(title = "Ingestion API", description = "Customers, orders and behaviour events; CSV imports and tenant integrations."),
    paths(
        customers::upsert,
        customers::upsert_batch,
        customers::list,
        customers::get,
        customers::patch,
        customers::erase,
        orders::place,
        orders::place_batch,
        orders::list,
        orders::get,
        orders::set_status,
        events::track,
        events::track_batch,
        imports::upload,
        imports::get,
        imports::events,
        imports::rejections,
        integrations::list,
        integrations::create,
        integrations::get,
        integrations::update,
        integrations::delete,
        integrations::validate_vtex,
        integrations::start_sync,
        integrations::latest_sync,
        integrations::list_syncs,
        integrations::get_sync,
    ),
    components(schemas(
        crate::domain::customer::CustomerInput,
        crate::domain::customer::AddressInput,
        crate::domain::customer::ConsentInput,
        crate::domain::customer::CustomerPatch,
        crate::domain::customer::ConsentPatch,
        crate::domain::order::OrderInput,
        crate::domain::order::OrderItemInput,
        crate::domain::order::OrderStatusPatch,
        crate::domain::event::EventInput,
        crate::views::CustomerData,
        crate::views::AddressData,
        crate::views::CustomerEnvelope,
        crate::views::OrderData,
        crate::views::OrderItemData,
        crate::views::OrderEnvelope,
        crate::views::EventData,
        customers::CustomersBatch,
        orders::OrdersBatch,
        events::EventsBatch,
        imports::ImportData,
        integrations::IntegrationInput,
        integrations::IntegrationUpdate,
        integrations::ValidateInput,
        integrations::SyncInput,
        integrations::IntegrationData,
        integrations::SyncRunData,
        mkt_error::ErrorEnvelope,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;
