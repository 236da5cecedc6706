//! The route table of the cdp-analytics service, and nothing else. Its resource routes arrive
//! with their issue; until then only the shared health and OpenAPI routes exist.

use actix_web::web;
use mkt_runtime::BearerAuth;
use utoipa::OpenApi;

/// Registers every route.
pub fn routes(_cfg: &mut web::ServiceConfig) {}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(info(title = "CDP analytics API", description = "RFM, CLV and churn scores; the customer 360; tenant integrations."), modifiers(&BearerAuth))]
pub struct ApiDoc;
