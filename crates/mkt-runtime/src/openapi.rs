//! The error responses every operation of every service can give, added to its OpenAPI
//! document in one place instead of on each of the ~50 `#[utoipa::path]` annotations.
//!
//! They come from what all services share, so they are true for every operation:
//! - 401: the `Principal` extractor refuses a missing, expired or forged token;
//! - 403: every handler checks the caller's roles (and the token's tenant);
//! - 400: the shared path, query and JSON extractor configs (`mkt_error::path_config`,
//!   `query_config`, `json_config`) turn a malformed parameter or body into a 400,
//!   so only operations that have parameters or a body get it;
//! - 413 / 415: the JSON body limit ([`crate::MAX_JSON_BODY`]) and content type, on
//!   operations that take a body (413 for any body, 415 for JSON ones);
//! - 500: an unexpected failure (database down...), with the generic envelope.
//!
//! A handler's own answer for a status (its specific description) wins: a response is
//! only added where the operation does not document that status yet. Statuses that
//! depend on the operation (404, 409, 422...) stay on the handler's annotation.

use utoipa::openapi::path::Operation;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};
use utoipa::{Modify, PartialSchema, ToSchema};

use mkt_error::ErrorEnvelope;

/// OpenAPI modifier adding the shared error responses (see the module documentation)
/// to every operation, and the `ErrorEnvelope` schema they refer to.
/// [`crate::spawn`] applies it to every service's document.
pub struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .entry(ErrorEnvelope::name().into_owned())
            .or_insert_with(ErrorEnvelope::schema);
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                add_common(operation);
            }
        }
    }
}

fn add_common(operation: &mut Operation) {
    let has_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let body = operation.request_body.as_ref();
    let json_body = body.is_some_and(|b| b.content.keys().any(|c| c.contains("json")));
    let mut wanted = vec![
        ("401", "Missing, expired or invalid bearer token"),
        ("403", "The token's roles or tenant may not do this"),
        (
            "500",
            "Unexpected failure (the cause is logged, not returned)",
        ),
    ];
    if has_params || body.is_some() {
        wanted.push(("400", "Malformed path, query, header or body"));
    }
    if body.is_some() {
        wanted.push(("413", "Request body too large"));
    }
    if json_body {
        wanted.push(("415", "Content-Type is not application/json"));
    }
    for (status, description) in wanted {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    }
}

/// A response whose body is the error envelope.
pub fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        Response::builder()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name(ErrorEnvelope::name()))),
            )
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi as _;

    #[utoipa::path(get, path = "/plain", responses((status = 200, description = "ok")))]
    #[allow(dead_code, reason = "only its OpenAPI description is used")]
    async fn plain() {}

    #[utoipa::path(
        post,
        path = "/things/{id}",
        params(("id" = String, Path, description = "id")),
        request_body = String,
        responses((status = 201, description = "made"), (status = 400, description = "bad thing")),
    )]
    #[allow(dead_code, reason = "only its OpenAPI description is used")]
    async fn with_body() {}

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(plain, with_body), modifiers(&CommonResponses))]
    struct Doc;

    fn statuses(doc: &OpenApi, path: &str) -> Vec<String> {
        let item = doc.paths.paths.get(path).expect("path");
        let op = item.get.as_ref().or(item.post.as_ref()).expect("operation");
        op.responses.responses.keys().cloned().collect()
    }

    #[test]
    fn every_operation_gets_the_shared_errors_and_only_the_ones_it_can_give() {
        let doc = Doc::openapi();
        assert_eq!(statuses(&doc, "/plain"), ["200", "401", "403", "500"]);
        assert_eq!(
            statuses(&doc, "/things/{id}"),
            ["201", "400", "401", "403", "413", "500"]
        );
        // The handler's own 400 description is kept.
        let json = serde_json::to_value(&doc).expect("json");
        assert_eq!(
            json.pointer("/paths/~1things~1{id}/post/responses/400/description"),
            Some(&serde_json::json!("bad thing"))
        );
        assert!(json.pointer("/components/schemas/ErrorEnvelope").is_some());
    }
}
