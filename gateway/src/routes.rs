//! The routing table: which service owns which public path. Read top to bottom; the
//! first matching rule wins, so specific rules come first. Who may call an operation is
//! not decided here but by the shared role policy (`mkt_auth::policy`), which the
//! services check too.

use actix_web::http::Method;
use mkt_auth::{Role, policy};

/// The services behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Customers, orders, events, imports, tenant integrations.
    Ingestion,
    /// Segments.
    Segmentation,
    /// Campaigns, promos, funnels, cart campaigns.
    Campaign,
    /// Webhooks in and out.
    Webhook,
    /// Processing, analytics, customer 360.
    CdpAnalytics,
}

/// One rule: a path pattern (`*` matches one segment) and its owner.
pub struct Rule {
    /// Segments of the pattern, e.g. `["api", "v2", "cdp", "customers", "*", "profile"]`;
    /// the rule matches any path that starts with these segments.
    pub pattern: &'static [&'static str],
    /// Owner.
    pub service: Service,
    /// Uploads that may take minutes (the upload deadline applies, not the usual one).
    pub long: bool,
}

/// The table.
pub const RULES: &[Rule] = &[
    // Customer 360 lives in analytics, although it sits under /customers.
    Rule {
        pattern: &["api", "v2", "cdp", "customers", "*", "profile"],
        service: Service::CdpAnalytics,
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "customers", "*", "timeline"],
        service: Service::CdpAnalytics,
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "customers"],
        service: Service::Ingestion,
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "orders"],
        service: Service::Ingestion,
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "events"],
        service: Service::Ingestion,
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "imports"],
        service: Service::Ingestion,
        long: true,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "segments"],
        service: Service::Segmentation,
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "process"],
        service: Service::CdpAnalytics,
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "analytics"],
        service: Service::CdpAnalytics,
        long: false,
    },
    // Store credentials and sync state (tenant settings, admin only in the policy).
    Rule {
        pattern: &["api", "v2", "cdp", "tenant-integrations"],
        service: Service::Ingestion,
        long: false,
    },
    Rule {
        pattern: &["api", "v1", "marketing", "segments"],
        service: Service::Segmentation,
        long: false,
    },
    Rule {
        pattern: &["api", "v1", "marketing", "campaigns"],
        service: Service::Campaign,
        long: false,
    },
    Rule {
        pattern: &["api", "v1", "marketing", "cart-campaigns"],
        service: Service::Campaign,
        long: false,
    },
    Rule {
        pattern: &["api", "v1", "marketing", "promos"],
        service: Service::Campaign,
        long: false,
    },
    Rule {
        pattern: &["api", "v1", "marketing", "funnels"],
        service: Service::Campaign,
        long: false,
    },
    Rule {
        pattern: &["api", "v1", "marketing", "webhooks"],
        service: Service::Webhook,
        long: false,
    },
];

/// Where a path goes: its owner, its deadline, and (per method) who may call it.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// Owner.
    pub service: Service,
    /// Uploads that may take minutes (the upload deadline applies, not the usual one).
    pub long: bool,
    path: &'a str,
}

/// The route for `path`, if any service owns it.
pub fn resolve(path: &str) -> Option<Route<'_>> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    RULES
        .iter()
        .find(|rule| {
            segments.len() >= rule.pattern.len()
                && rule
                    .pattern
                    .iter()
                    .zip(&segments)
                    .all(|(want, got)| *want == "*" || want == got)
        })
        .map(|rule| Route {
            service: rule.service,
            long: rule.long,
            path,
        })
}

impl Route<'_> {
    /// Roles that may call this path with `method`, from the shared policy. An
    /// operation the policy does not know is `admin` only: the gateway fails closed,
    /// and admin reaches the service's own 404/405.
    pub fn allowed(&self, method: &Method) -> &'static [Role] {
        policy::lookup(method.as_str(), self.path).map_or(policy::ADMINS, |op| op.allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_rules_win_and_unknown_paths_have_no_owner() {
        assert_eq!(
            resolve("/api/v2/cdp/customers/abc/profile").map(|r| r.service),
            Some(Service::CdpAnalytics)
        );
        assert_eq!(
            resolve("/api/v2/cdp/customers/abc").map(|r| r.service),
            Some(Service::Ingestion)
        );
        assert_eq!(
            resolve("/api/v2/cdp/customers").map(|r| r.service),
            Some(Service::Ingestion)
        );
        assert_eq!(
            resolve("/api/v1/marketing/segments/preview").map(|r| r.service),
            Some(Service::Segmentation)
        );
        assert!(resolve("/api/v2/cdp/customersx").is_none());
        assert!(resolve("/etc/passwd").is_none());
    }

    #[test]
    fn roles_come_from_the_shared_policy_and_unknown_operations_are_admin_only() {
        let allowed = |method: Method, path| resolve(path).map(|route| route.allowed(&method));
        assert_eq!(
            allowed(Method::POST, "/api/v1/marketing/segments/preview"),
            Some(policy::SEGMENTS_PREVIEW.allowed)
        );
        assert_eq!(
            allowed(Method::GET, "/api/v1/marketing/segments"),
            Some(policy::READERS)
        );
        assert_eq!(
            allowed(Method::GET, "/api/v2/cdp/customers/x/nothing"),
            Some(policy::ADMINS)
        );
    }

    #[test]
    fn every_policy_operation_has_an_owner() {
        for op in policy::OPERATIONS {
            assert!(
                resolve(op.path).is_some(),
                "{} has no owning service",
                op.path
            );
        }
    }
}
