//! Request checks every service shares, before any extractor runs.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use mkt_error::{ErrorInfo, InfoError};

/// Middleware: a path or query string carrying a NUL byte (`%00`) is a 400
/// (`invalid_path` / `invalid_query`). PostgreSQL text cannot hold NUL, so such a value
/// (a search term, an email filter, an external id) used to reach a query and come back
/// as a 500; schemathesis found it. No parameter of ours has a use for it.
pub async fn refuse_nul_bytes(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let has_nul = |s: &str| {
        s.as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"%00"))
    };
    let refused = if has_nul(req.path()) {
        Some((
            "invalid_path",
            "NUL bytes (%00) are not allowed in the path",
        ))
    } else if has_nul(req.query_string()) {
        Some((
            "invalid_query",
            "NUL bytes (%00) are not allowed in query parameters",
        ))
    } else {
        None
    };
    if let Some((code, message)) = refused {
        let error = InfoError(ErrorInfo::new(StatusCode::BAD_REQUEST, code, message));
        return Ok(req.error_response(error));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use actix_web::middleware::from_fn;
    use actix_web::{App, HttpResponse, test, web};

    #[actix_web::test]
    async fn nul_bytes_in_the_path_or_query_are_a_400_envelope_and_the_rest_passes() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(mkt_error::envelope_errors))
                .wrap(from_fn(super::refuse_nul_bytes))
                .route("/{id}", web::get().to(HttpResponse::Ok)),
        )
        .await;
        for (uri, code) in [("/a%00b", "invalid_path"), ("/a?q=x%00", "invalid_query")] {
            let response =
                test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
            assert_eq!(response.status(), 400, "{uri}");
            let body: serde_json::Value = test::read_body_json(response).await;
            assert_eq!(body["code"], code, "{uri}");
        }
        let ok = test::call_service(&app, test::TestRequest::get().uri("/a?q=%0a").to_request());
        assert_eq!(ok.await.status(), 200);
    }
}
