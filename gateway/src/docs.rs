//! `/openapi.json` (the services' documents merged) and `/docs` (interactive).

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::proxy::Proxy;

/// Fetches every service's `/openapi.json` and merges paths and schemas into one
/// document. A service that is down is listed in `x-unavailable` rather than failing
/// the whole document.
pub async fn openapi(proxy: web::Data<Proxy>) -> HttpResponse {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut tags = Vec::new();
    let mut unavailable = Vec::new();
    let fetches = proxy.upstreams.all().map(|(name, base)| {
        let client = proxy.client.clone();
        let url = format!("{}/openapi.json", base.trim_end_matches('/'));
        async move {
            let doc = async {
                client
                    .get(&url)
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<Value>()
                    .await
            }
            .await;
            (name, doc)
        }
    });
    for (name, doc) in futures_util::future::join_all(fetches).await {
        match doc {
            Ok(doc) => {
                if let Some(p) = doc.get("paths").and_then(Value::as_object) {
                    let mut p = p.clone();
                    add_gateway_responses(&mut p);
                    paths.extend(p);
                }
                if let Some(s) = doc
                    .pointer("/components/schemas")
                    .and_then(Value::as_object)
                {
                    schemas.extend(s.clone());
                }
                tags.push(json!({"name": name, "description": doc.pointer("/info/description").cloned().unwrap_or(Value::Null)}));
            }
            Err(e) => {
                tracing::warn!(service = name, error = %e, "openapi document unavailable");
                unavailable.push(name);
            }
        }
    }
    HttpResponse::Ok().json(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Marketing platform API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Customers, segments, analytics and campaigns behind one gateway. Every route needs a bearer JWT.",
        },
        "servers": [{"url": "/"}],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
        "x-unavailable": unavailable,
    }))
}

/// What the gateway itself may answer on any route, whichever service owns it: its own
/// token and role checks (401, 403; the services document them too), and an upstream
/// that is down (502) or too slow (504). Added where the service did not document the
/// status already, with the error envelope every service document carries.
const GATEWAY_RESPONSES: &[(&str, &str)] = &[
    ("401", "Missing, expired or invalid bearer token"),
    ("403", "The token's roles may not call this route"),
    ("502", "The owning service is unreachable"),
    ("504", "The owning service did not answer in time"),
];

fn add_gateway_responses(paths: &mut Map<String, Value>) {
    let operations = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(Value::as_object_mut)
        .filter(|op| op.contains_key("responses"));
    for operation in operations {
        let Some(responses) = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (status, description) in GATEWAY_RESPONSES {
            responses.entry(*status).or_insert_with(|| {
                json!({
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
                })
            });
        }
    }
}

/// Interactive documentation (Swagger UI from its CDN, pointed at `/openapi.json`).
pub async fn docs() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(
        r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Marketing platform API</title>
  <link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js" crossorigin></script>
  <script>
    window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", persistAuthorization: true });
  </script>
</body>
</html>"##,
    )
}
