//! The role policy: for every public operation (method and path template), the roles
//! that may call it. Declared once here; the gateway authorises with [`lookup`] before
//! it forwards, and each handler calls [`Principal::require`] with its operation's
//! constant, so the two can no longer disagree. `admin` passes every check.
//!
//! Services also run [`enforce`] in front of their routes: it refuses a caller the
//! policy refuses before any extractor reads the body or the query, so a refused caller
//! gets 401/403, never a 400 that reveals what the input should look like.
//!
//! Role groups ([`READERS`], [`STORE`], ...) carry the meaning; an entry names a group,
//! so adding a role (for instance another product's role names) is an edit of the
//! groups, not of every entry. `docs/roles.md` shows the resulting matrix, and the e2e
//! test `roles.rs` walks the merged OpenAPI document and fails on any operation without
//! an entry here, or whose gateway or service decision differs from this table.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::{AuthError, Principal, Role, RoleSet, Verifier};

/// An HTTP method an operation can have (`HEAD` is looked up as `GET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET` (and `HEAD`).
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// The upper-case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// Parses a method name (any case); `HEAD` is `GET`, since it reads the same thing.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "GET" | "HEAD" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => return None,
        })
    }
}

/// One operation and who may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The method.
    pub method: Method,
    /// The path template as the OpenAPI document spells it (`{name}` is one segment).
    pub path: &'static str,
    /// Roles any one of which allows the call; `admin` always may.
    pub allowed: &'static [Role],
}

impl Operation {
    /// True when `roles` may call this operation.
    pub fn allows(&self, roles: &RoleSet) -> bool {
        roles.allows_any(self.allowed)
    }

    /// True when `path` (no query string) is an instance of this operation's template.
    pub fn matches_path(&self, path: &str) -> bool {
        let mut want = segments(self.path);
        let mut got = segments(path);
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some(w), Some(g)) if is_param(w) && !g.is_empty() => {}
                (Some(w), Some(g)) if w == g => {}
                _ => return false,
            }
        }
    }

    /// How specific the template is: its literal segments. `/segments/fields` beats
    /// `/segments/{id}` for `GET /segments/fields`.
    fn literal_segments(&self) -> usize {
        segments(self.path).filter(|s| !is_param(s)).count()
    }
}

fn segments(path: &str) -> std::str::Split<'_, char> {
    path.trim_matches('/').split('/')
}

fn is_param(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

impl Principal {
    /// Succeeds when the caller's roles allow `operation` (403 otherwise).
    pub fn require(&self, operation: &Operation) -> Result<(), AuthError> {
        self.require_any(operation.allowed)
    }
}

/// The operation `method path` is, if the policy knows it; the most specific template
/// wins. `None` means no entry: the gateway then lets only `admin` through.
pub fn lookup(method: &str, path: &str) -> Option<&'static Operation> {
    let method = Method::parse(method)?;
    OPERATIONS
        .iter()
        .filter(|op| op.method == method && op.matches_path(path))
        .max_by_key(|op| op.literal_segments())
}

/// Service middleware (`from_fn(policy::enforce)`): a request for an operation in the
/// policy is authenticated and authorised here, before routing and extraction; other
/// requests (health, the OpenAPI document, unknown paths) pass untouched.
pub async fn enforce<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    if let Some(operation) = lookup(req.method().as_str(), req.path())
        && let Err(refused) = authorise(&req, operation).await
    {
        return Ok(req.error_response(refused).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

async fn authorise(req: &ServiceRequest, operation: &Operation) -> Result<(), AuthError> {
    let verifier = req
        .app_data::<web::Data<Verifier>>()
        .ok_or_else(|| AuthError::KeysUnavailable("no verifier registered".into()))?;
    verifier
        .verify_request(req.request())
        .await?
        .require(operation)
}

// Role groups. Change who may do what here; the entries below only name a group.

/// People who read marketing data: customers' 360 view, segments, analytics.
pub const READERS: &[Role] = &[Role::Reader, Role::Marketer, Role::Analyst];
/// Readers plus the store backend (`ingest`), for the data the store writes: customers,
/// orders and import results, which it reads back to reconcile.
pub const STORE_READERS: &[Role] = &[Role::Reader, Role::Marketer, Role::Analyst, Role::Ingest];
/// The store backend that writes customers, orders and events.
pub const STORE: &[Role] = &[Role::Ingest];
/// Who manages segments (and, as they land, campaigns, promos and webhooks).
pub const MARKETERS: &[Role] = &[Role::Marketer];
/// Who runs analytics processing and changes its settings.
pub const ANALYSTS: &[Role] = &[Role::Analyst];
/// Tenant settings (store credentials, syncs): `admin` only.
pub const ADMINS: &[Role] = &[Role::Admin];

/// Declares each operation as a named constant and lists them all in [`OPERATIONS`],
/// so an operation cannot have a constant without being in the table.
macro_rules! operations {
    ($( $(#[$doc:meta])* $name:ident = $method:ident $path:literal => $roles:ident; )*) => {
        $(
            $(#[$doc])*
            pub const $name: Operation = Operation {
                method: Method::$method,
                path: $path,
                allowed: $roles,
            };
        )*
        /// Every operation of the public API, in declaration order.
        pub const OPERATIONS: &[Operation] = &[$($name),*];
    };
}

operations! {
    // ingestion: customers
    /// Create or update a customer by email.
    CUSTOMERS_UPSERT = Post "/api/v2/cdp/customers" => STORE;
    /// Create or update customers in one call.
    CUSTOMERS_UPSERT_BATCH = Post "/api/v2/cdp/customers/batch" => STORE;
    /// List customers.
    CUSTOMERS_LIST = Get "/api/v2/cdp/customers" => STORE_READERS;
    /// Read one customer.
    CUSTOMERS_GET = Get "/api/v2/cdp/customers/{id}" => STORE_READERS;
    /// Change some of a customer's fields.
    CUSTOMERS_PATCH = Patch "/api/v2/cdp/customers/{id}" => STORE;
    /// Erase a customer (right to erasure).
    CUSTOMERS_ERASE = Delete "/api/v2/cdp/customers/{id}" => STORE;
    // ingestion: orders
    /// Place an order.
    ORDERS_PLACE = Post "/api/v2/cdp/orders" => STORE;
    /// Place orders in one call.
    ORDERS_PLACE_BATCH = Post "/api/v2/cdp/orders/batch" => STORE;
    /// List orders.
    ORDERS_LIST = Get "/api/v2/cdp/orders" => STORE_READERS;
    /// Read one order.
    ORDERS_GET = Get "/api/v2/cdp/orders/{id}" => STORE_READERS;
    /// Change an order's status.
    ORDERS_SET_STATUS = Patch "/api/v2/cdp/orders/{id}" => STORE;
    // ingestion: events
    /// Track one behavioural event.
    EVENTS_TRACK = Post "/api/v2/cdp/events" => STORE;
    /// Track events in one call.
    EVENTS_TRACK_BATCH = Post "/api/v2/cdp/events/batch" => STORE;
    // ingestion: CSV imports
    /// Upload a CSV import.
    IMPORTS_UPLOAD = Post "/api/v2/cdp/imports" => STORE;
    /// An import's state and counts.
    IMPORTS_GET = Get "/api/v2/cdp/imports/{id}" => STORE_READERS;
    /// An import's progress events.
    IMPORTS_EVENTS = Get "/api/v2/cdp/imports/{id}/events" => STORE_READERS;
    /// An import's rejected rows.
    IMPORTS_REJECTIONS = Get "/api/v2/cdp/imports/{id}/rejections" => STORE_READERS;
    // cdp-analytics: customer 360
    /// A customer's profile with scores.
    CUSTOMER_PROFILE = Get "/api/v2/cdp/customers/{id}/profile" => READERS;
    /// A customer's timeline.
    CUSTOMER_TIMELINE = Get "/api/v2/cdp/customers/{id}/timeline" => READERS;
    // cdp-analytics: processing and results
    /// Start an analytics processing run.
    PROCESS_RUN = Post "/api/v2/cdp/process/{tenant_id}" => ANALYSTS;
    /// The latest processing run.
    PROCESS_STATUS = Get "/api/v2/cdp/process/status/{tenant_id}" => READERS;
    /// RFM results.
    ANALYTICS_RFM = Get "/api/v2/cdp/analytics/rfm" => READERS;
    /// CLV results.
    ANALYTICS_CLV = Get "/api/v2/cdp/analytics/clv" => READERS;
    /// Churn results.
    ANALYTICS_CHURN = Get "/api/v2/cdp/analytics/churn" => READERS;
    /// The RFM score-to-segment mapping.
    ANALYTICS_RFM_MAPPING = Get "/api/v2/cdp/analytics/rfm/mapping" => READERS;
    /// Replace the RFM mapping.
    ANALYTICS_RFM_MAPPING_SET = Put "/api/v2/cdp/analytics/rfm/mapping" => ANALYSTS;
    /// The processing schedule.
    ANALYTICS_SCHEDULE = Get "/api/v2/cdp/analytics/schedule" => READERS;
    /// Replace the processing schedule.
    ANALYTICS_SCHEDULE_SET = Put "/api/v2/cdp/analytics/schedule" => ANALYSTS;
    // store integrations (tenant settings: credentials and syncs)
    /// List integrations.
    INTEGRATIONS_LIST = Get "/api/v2/cdp/tenant-integrations" => ADMINS;
    /// Create an integration.
    INTEGRATIONS_CREATE = Post "/api/v2/cdp/tenant-integrations" => ADMINS;
    /// Check VTEX credentials without saving them.
    INTEGRATIONS_VALIDATE_VTEX = Post "/api/v2/cdp/tenant-integrations/validate/vtex" => ADMINS;
    /// Read one integration.
    INTEGRATIONS_GET = Get "/api/v2/cdp/tenant-integrations/{id}" => ADMINS;
    /// Change an integration.
    INTEGRATIONS_UPDATE = Put "/api/v2/cdp/tenant-integrations/{id}" => ADMINS;
    /// Delete an integration.
    INTEGRATIONS_DELETE = Delete "/api/v2/cdp/tenant-integrations/{id}" => ADMINS;
    /// Start a sync.
    INTEGRATIONS_SYNC_START = Post "/api/v2/cdp/tenant-integrations/{id}/sync" => ADMINS;
    /// The latest sync.
    INTEGRATIONS_SYNC_LATEST = Get "/api/v2/cdp/tenant-integrations/{id}/sync" => ADMINS;
    /// An integration's syncs.
    INTEGRATIONS_SYNCS_LIST = Get "/api/v2/cdp/tenant-integrations/{id}/syncs" => ADMINS;
    /// One sync.
    INTEGRATIONS_SYNC_GET = Get "/api/v2/cdp/tenant-integrations/{id}/sync/{run_id}" => ADMINS;
    // segmentation: segments (seed 001)
    /// Create a segment.
    SEGMENTS_CREATE = Post "/api/v1/marketing/segments" => MARKETERS;
    /// List segments.
    SEGMENTS_LIST = Get "/api/v1/marketing/segments" => READERS;
    /// Count and sample a rule's audience without saving it: a read.
    SEGMENTS_PREVIEW = Post "/api/v1/marketing/segments/preview" => READERS;
    /// The fields rules can use.
    SEGMENTS_FIELDS = Get "/api/v1/marketing/segments/fields" => READERS;
    /// Create a static segment from a CSV of customers.
    SEGMENTS_IMPORT = Post "/api/v1/marketing/segments/import" => MARKETERS;
    /// Read one segment.
    SEGMENTS_GET = Get "/api/v1/marketing/segments/{id}" => READERS;
    /// Replace a segment.
    SEGMENTS_REPLACE = Put "/api/v1/marketing/segments/{id}" => MARKETERS;
    /// Delete a segment.
    SEGMENTS_DELETE = Delete "/api/v1/marketing/segments/{id}" => MARKETERS;
    /// A segment's customers, a page at a time.
    SEGMENTS_CUSTOMERS = Get "/api/v1/marketing/segments/{id}/customers" => READERS;
    /// Export a segment's customers (CSV or XLSX).
    SEGMENTS_EXPORT = Get "/api/v1/marketing/segments/{id}/export" => READERS;
    // segmentation: segments (seed 004)
    /// List segments with their sizes.
    CDP_SEGMENTS_LIST = Get "/api/v2/cdp/segments" => READERS;
    /// A segment's members.
    CDP_SEGMENT_MEMBERS = Get "/api/v2/cdp/segments/{id}/members" => READERS;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_declared_once() {
        let mut seen = std::collections::HashSet::new();
        for op in OPERATIONS {
            assert!(
                seen.insert((op.method, op.path)),
                "{} {} is declared twice",
                op.method.as_str(),
                op.path
            );
            assert!(!op.allowed.is_empty(), "{} has no roles", op.path);
        }
    }

    #[test]
    fn the_most_specific_template_wins_and_unknown_operations_have_no_entry() {
        let lookup_path = |method, path| lookup(method, path).map(|op| op.path);
        assert_eq!(
            lookup_path("GET", "/api/v1/marketing/segments/fields"),
            Some("/api/v1/marketing/segments/fields")
        );
        assert_eq!(
            lookup_path("GET", "/api/v1/marketing/segments/3f1c"),
            Some("/api/v1/marketing/segments/{id}")
        );
        assert_eq!(
            lookup_path("HEAD", "/api/v2/cdp/customers/x/profile"),
            Some("/api/v2/cdp/customers/{id}/profile")
        );
        assert_eq!(
            lookup_path("GET", "/api/v2/cdp/tenant-integrations/a/sync/b"),
            Some("/api/v2/cdp/tenant-integrations/{id}/sync/{run_id}")
        );
        assert_eq!(lookup_path("POST", "/api/v2/cdp/customers/x"), None);
        assert_eq!(lookup_path("GET", "/api/v2/cdp/customers//profile"), None);
        assert_eq!(
            lookup_path("GET", "/api/v2/cdp/customers/x/profile/y"),
            None
        );
        assert_eq!(lookup_path("OPTIONS", "/api/v2/cdp/customers"), None);
    }

    #[test]
    fn the_two_disagreements_of_the_old_tables_are_settled() {
        let ingest = RoleSet::from_names(&["ingest"]);
        let reader = RoleSet::from_names(&["reader"]);
        let admin = RoleSet::from_names(&["admin"]);
        // The store backend does not read segments; readers may preview them.
        assert!(!SEGMENTS_LIST.allows(&ingest));
        assert!(SEGMENTS_PREVIEW.allows(&reader));
        assert!(!SEGMENTS_CREATE.allows(&reader));
        // Admin may do everything, including admin-only tenant settings.
        assert!(OPERATIONS.iter().all(|op| op.allows(&admin)));
        assert!(!INTEGRATIONS_LIST.allows(&RoleSet::from_names(&[
            "marketer", "analyst", "reader", "ingest"
        ])));
    }
}
