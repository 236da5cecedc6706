//! The route table of the webhook service, and nothing else. Its resource routes arrive
//! with their issue; until then only the shared health and OpenAPI routes exist.

use actix_web::web;
use mkt_runtime::BearerAuth;
use utoipa::OpenApi;

/// Registers every route.
pub fn routes(_cfg: &mut web::ServiceConfig) {}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(info(title = "Webhook API", description = "Provider delivery webhooks in, tenant webhooks out."), modifiers(&BearerAuth))]
pub struct ApiDoc;
