//! The route table of the segmentation service, and nothing else. Segment routes
//! (`/api/v1/marketing/segments`, `/api/v2/cdp/segments`) arrive with the
//! segmentation issue; until then only the shared health and OpenAPI routes exist.

use actix_web::web;
use mkt_runtime::BearerAuth;
use utoipa::OpenApi;

/// Registers every route.
pub fn routes(_cfg: &mut web::ServiceConfig) {}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(info(title = "Segmentation API", description = "Audience segments and live membership."), modifiers(&BearerAuth))]
pub struct ApiDoc;
