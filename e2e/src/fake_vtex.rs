//! A local server on 127.0.0.1 that speaks the parts of VTEX's REST API tenant
//! integrations call, the way VTEX documents them: `X-VTEX-API-AppKey` /
//! `X-VTEX-API-AppToken` checked on every call (401 unknown, 403 without the
//! permission), OMS order list (`page`, `per_page` up to 100, at most 30 pages,
//! `orderBy=creationDate,asc|desc`, `f_creationDate=creationDate:[a TO b]`, `paging`)
//! and order details, Master Data `CL` search (`REST-Range` / `REST-Content-Range`) and
//! scroll (`_size`, `_fields`, `X-VTEX-MD-TOKEN`, `_token`). Money is in cents.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// An app key VTEX knows, with its token and License Manager permissions.
#[derive(Debug, Clone)]
pub struct AppKey {
    /// `X-VTEX-API-AppKey`.
    pub key: String,
    /// `X-VTEX-API-AppToken`.
    pub token: String,
    /// OMS "List Orders" / "View order".
    pub orders: bool,
    /// Master Data `CL` read.
    pub customers: bool,
}

/// What the fake store holds.
#[derive(Debug, Default)]
pub struct Store {
    /// Known app keys.
    pub keys: Vec<AppKey>,
    /// `CL` documents.
    pub customers: Vec<Value>,
    /// Order details as `GET /api/oms/pvt/orders/{id}` returns them.
    pub orders: Vec<Value>,
    /// Every request served: `METHOD path`.
    pub requests: Vec<String>,
    /// Open scrolls by `X-VTEX-MD-TOKEN`: next offset, page size, `_fields`.
    pub scrolls: HashMap<String, (usize, usize, Option<String>)>,
}

/// The running fake.
pub struct FakeVtex {
    /// Base URL (`http://127.0.0.1:port`), for `MKT_INTEGRATIONS__VTEX_BASE_URL`.
    pub url: String,
    store: Arc<Mutex<Store>>,
    server: actix_web::dev::ServerHandle,
}

impl FakeVtex {
    /// Starts the fake with `store`.
    pub async fn start(store: Store) -> Self {
        let store = Arc::new(Mutex::new(store));
        let data = web::Data::new(store.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/api/oms/pvt/orders", web::get().to(list_orders))
                .route("/api/oms/pvt/orders/{id}", web::get().to(get_order))
                .route(
                    "/api/dataentities/CL/search",
                    web::get().to(search_customers),
                )
                .route(
                    "/api/dataentities/CL/scroll",
                    web::get().to(scroll_customers),
                )
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind fake vtex");
        let addr = *server.addrs().first().expect("address");
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://{addr}"),
            store,
            server: handle,
        }
    }

    /// The store, to change it between syncs or read the request log.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many requests started with `prefix` (`"GET /api/oms/pvt/orders/"`).
    pub fn requests(&self, prefix: &str) -> usize {
        self.store()
            .requests
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

/// A `CL` document.
pub fn customer(user_id: &str, email: &str, first: &str, last: &str) -> Value {
    json!({
        "id": format!("doc-{user_id}"), "userId": user_id, "email": email,
        "firstName": first, "lastName": last, "phone": "+55 11 99999-0000",
        "createdIn": "2023-01-15T10:00:00.1234567Z", "isNewsletterOptIn": true,
        "document": "12345678900",
    })
}

/// An order detail: `items` as `(sku, name, quantity, sellingPrice cents)`, plus
/// `shipping` cents; `value` is their sum.
pub fn order(
    order_id: &str,
    created: &str,
    status: &str,
    buyer: (&str, &str),
    items: &[(&str, &str, i64, i64)],
    shipping: i64,
) -> Value {
    let lines: Vec<Value> = items
        .iter()
        .map(|(sku, name, quantity, price)| {
            json!({"id": sku, "productId": format!("p{sku}"), "name": name, "quantity": quantity,
                   "price": price, "listPrice": price, "sellingPrice": price})
        })
        .collect();
    let items_total: i64 = items.iter().map(|(_, _, q, p)| q * p).sum();
    json!({
        "orderId": order_id, "sequence": order_id.trim_start_matches('v'),
        "status": status, "statusDescription": status, "creationDate": created,
        "lastChange": created, "value": items_total + shipping,
        "totals": [
            {"id": "Items", "name": "Items Total", "value": items_total},
            {"id": "Discounts", "name": "Discounts Total", "value": 0},
            {"id": "Shipping", "name": "Shipping Total", "value": shipping},
            {"id": "Tax", "name": "Tax Total", "value": 0}
        ],
        "items": lines,
        "clientProfileData": {"email": buyer.1, "firstName": "Buyer", "lastName": buyer.0,
                              "phone": "+5511999990000", "userProfileId": buyer.0},
        "storePreferencesData": {"countryCode": "BRA", "currencyCode": "BRL", "currencySymbol": "R$"},
        "marketingData": null,
    })
}

type Shared = web::Data<Arc<Mutex<Store>>>;

fn lock(store: &Shared) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({"error": {"code": "1", "message": "Unauthorized"}}))
}

/// VTEX's checks: both headers, a known key with its token, and the permission; the
/// refusal, if any.
fn refusal(req: &HttpRequest, store: &Store, customers: bool) -> Option<HttpResponse> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(key), Some(token)) = (header("X-VTEX-API-AppKey"), header("X-VTEX-API-AppToken"))
    else {
        return Some(unauthorized());
    };
    let Some(app) = store.keys.iter().find(|k| k.key == key && k.token == token) else {
        return Some(unauthorized());
    };
    if (customers && !app.customers) || (!customers && !app.orders) {
        return Some(
            HttpResponse::Forbidden()
                .json(json!({"error": {"code": "2", "message": "Access denied"}})),
        );
    }
    None
}

fn log(store: &mut Store, req: &HttpRequest) {
    store
        .requests
        .push(format!("{} {}", req.method(), req.path()));
}

fn parse_range(filter: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let inner = filter.strip_prefix("creationDate:[")?.strip_suffix(']')?;
    let (from, to) = inner.split_once(" TO ")?;
    let parse = |s: &str| {
        DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    Some((parse(from)?, parse(to)?))
}

fn created(order: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(order["creationDate"].as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

async fn list_orders(
    req: HttpRequest,
    store: Shared,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let mut store = lock(&store);
    log(&mut store, &req);
    if let Some(denied) = refusal(&req, &store, false) {
        return denied;
    }
    let number = |name: &str, default: i64| {
        query
            .get(name)
            .map(|v| v.parse::<i64>().unwrap_or(-1))
            .unwrap_or(default)
    };
    let (page, per_page) = (number("page", 1), number("per_page", 15));
    if !(1..=30).contains(&page) || !(1..=100).contains(&per_page) {
        return HttpResponse::BadRequest()
            .json(json!({"error": {"message": "Max page exceed error"}}));
    }
    let range = match query.get("f_creationDate") {
        None => None,
        Some(filter) => match parse_range(filter) {
            Some(range) => Some(range),
            None => {
                return HttpResponse::BadRequest()
                    .json(json!({"error": {"message": "bad filter"}}));
            }
        },
    };
    let mut orders: Vec<&Value> = store
        .orders
        .iter()
        .filter(|o| match (range, created(o)) {
            (Some((from, to)), Some(at)) => from <= at && at <= to,
            (None, _) => true,
            _ => false,
        })
        .collect();
    orders.sort_by_key(|o| (created(o), o["orderId"].as_str().map(str::to_owned)));
    if query.get("orderBy").is_some_and(|o| o.ends_with(",desc")) {
        orders.reverse();
    }
    let total = orders.len() as i64;
    let list: Vec<Value> = orders
        .iter()
        .skip(((page - 1) * per_page) as usize)
        .take(per_page as usize)
        .map(|o| {
            json!({
                "orderId": o["orderId"], "creationDate": o["creationDate"], "clientName": "Buyer",
                "items": null, "totalValue": o["value"], "paymentNames": "Pix",
                "status": o["status"], "statusDescription": o["status"], "sequence": o["sequence"],
                "salesChannel": "1", "origin": "Marketplace", "orderIsComplete": true,
                "totalItems": o["items"].as_array().map(Vec::len).unwrap_or(0),
                "currencyCode": o["storePreferencesData"]["currencyCode"],
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "list": list,
        "facets": [],
        "paging": {"total": total, "pages": (total + per_page - 1) / per_page, "currentPage": page, "perPage": per_page},
        "stats": {"stats": {}},
    }))
}

async fn get_order(req: HttpRequest, store: Shared, id: web::Path<String>) -> HttpResponse {
    let mut store = lock(&store);
    log(&mut store, &req);
    if let Some(denied) = refusal(&req, &store, false) {
        return denied;
    }
    match store.orders.iter().find(|o| o["orderId"] == id.as_str()) {
        Some(order) => HttpResponse::Ok().json(order),
        None => HttpResponse::NotFound().json(json!({"error": {"message": "Order not found"}})),
    }
}

fn project(document: &Value, fields: Option<&String>) -> Value {
    match fields {
        None => json!({"id": document["id"]}),
        Some(fields) if fields == "_all" => document.clone(),
        Some(fields) => Value::Object(
            fields
                .split(',')
                .map(|f| (f.trim().to_owned(), document[f.trim()].clone()))
                .collect(),
        ),
    }
}

async fn search_customers(
    req: HttpRequest,
    store: Shared,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let mut store = lock(&store);
    log(&mut store, &req);
    if let Some(denied) = refusal(&req, &store, true) {
        return denied;
    }
    let range = req
        .headers()
        .get("REST-Range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("resources="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .unwrap_or((0, 14));
    let total = store.customers.len();
    let page: Vec<Value> = store
        .customers
        .iter()
        .skip(range.0)
        .take(range.1.saturating_sub(range.0) + 1)
        .map(|d| project(d, query.get("_fields")))
        .collect();
    HttpResponse::Ok()
        .insert_header((
            "REST-Content-Range",
            format!("resources {}-{}/{total}", range.0, range.1),
        ))
        .json(page)
}

async fn scroll_customers(
    req: HttpRequest,
    store: Shared,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let mut store = lock(&store);
    log(&mut store, &req);
    if let Some(denied) = refusal(&req, &store, true) {
        return denied;
    }
    let (token, offset, size, fields) = match query.get("_token") {
        Some(token) => match store.scrolls.get(token) {
            Some((offset, size, fields)) => (token.clone(), *offset, *size, fields.clone()),
            None => {
                return HttpResponse::BadRequest()
                    .json(json!({"error": {"message": "token expired"}}));
            }
        },
        None => {
            let size = query
                .get("_size")
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(100);
            if !(1..=1000).contains(&size) {
                return HttpResponse::BadRequest()
                    .json(json!({"error": {"message": "_size must be at most 1000"}}));
            }
            (
                uuid::Uuid::new_v4().simple().to_string(),
                0,
                size,
                query.get("_fields").cloned(),
            )
        }
    };
    let page: Vec<Value> = store
        .customers
        .iter()
        .skip(offset)
        .take(size)
        .map(|d| project(d, fields.as_ref()))
        .collect();
    store
        .scrolls
        .insert(token.clone(), (offset + page.len(), size, fields));
    HttpResponse::Ok()
        .insert_header(("X-VTEX-MD-TOKEN", token))
        .json(page)
}
