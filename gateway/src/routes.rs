//! The routing table: which service owns which public path, and which roles may call
//! it. Read top to bottom; the first matching rule wins, so specific rules come first.

use actix_web::http::Method;
use mkt_auth::Role;

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

/// One rule: a path pattern (`*` matches one segment), its owner, and roles.
pub struct Rule {
    /// Segments of the pattern, e.g. `["api", "v2", "cdp", "customers", "*", "profile"]`;
    /// the rule matches any path that starts with these segments.
    pub pattern: &'static [&'static str],
    /// Owner.
    pub service: Service,
    /// Roles allowed to read (GET, HEAD, OPTIONS); admin always may.
    pub read: &'static [Role],
    /// Roles allowed to write (everything else); admin always may.
    pub write: &'static [Role],
    /// Uploads that may take minutes (the upload deadline applies, not the usual one).
    pub long: bool,
}

const READERS: &[Role] = &[Role::Reader, Role::Marketer, Role::Analyst, Role::Ingest];
const MARKETERS: &[Role] = &[Role::Marketer];

/// The table.
pub const RULES: &[Rule] = &[
    // Customer 360 lives in analytics, although it sits under /customers.
    Rule {
        pattern: &["api", "v2", "cdp", "customers", "*", "profile"],
        service: Service::CdpAnalytics,
        read: READERS,
        write: &[],
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "customers", "*", "timeline"],
        service: Service::CdpAnalytics,
        read: READERS,
        write: &[],
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "customers"],
        service: Service::Ingestion,
        read: READERS,
        write: &[Role::Ingest],
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "orders"],
        service: Service::Ingestion,
        read: READERS,
        write: &[Role::Ingest],
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "events"],
        service: Service::Ingestion,
        read: READERS,
        write: &[Role::Ingest],
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "imports"],
        service: Service::Ingestion,
        read: READERS,
        write: &[Role::Ingest],
        long: true,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "segments"],
        service: Service::Segmentation,
        read: READERS,
        write: MARKETERS,
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "process"],
        service: Service::CdpAnalytics,
        read: READERS,
        write: &[Role::Analyst],
        long: false,
    },
    Rule {
        pattern: &["api", "v2", "cdp", "analytics"],
        service: Service::CdpAnalytics,
        read: READERS,
        write: &[Role::Analyst],
        long: false,
    },
    // Store credentials and sync state are tenant settings: admin only, reads included.
    Rule {
        pattern: &["api", "v2", "cdp", "tenant-integrations"],
        service: Service::Ingestion,
        read: &[],
        write: &[],
        long: false,
    },
    Rule {
        pattern: &["api", "v1", "marketing", "segments"],
        service: Service::Segmentation,
        read: READERS,
        write: MARKETERS,
        long: false,
    },
    Rule {
        pattern: &["api", "v1", "marketing", "campaigns"],
        service: Service::Campaign,
        read: READERS,
        write: MARKETERS,
        long: false,
    },
    Rule {
        pattern: &["api", "v1", "marketing", "cart-campaigns"],
        service: Service::Campaign,
        read: READERS,
        write: MARKETERS,
        long: false,
    },
    Rule {
        pattern: &["api", "v1", "marketing", "promos"],
        service: Service::Campaign,
        read: READERS,
        write: MARKETERS,
        long: false,
    },
    Rule {
        pattern: &["api", "v1", "marketing", "funnels"],
        service: Service::Campaign,
        read: READERS,
        write: MARKETERS,
        long: false,
    },
    Rule {
        pattern: &["api", "v1", "marketing", "webhooks"],
        service: Service::Webhook,
        read: READERS,
        write: MARKETERS,
        long: false,
    },
];

/// The rule for `path`, if any service owns it.
pub fn resolve(path: &str) -> Option<&'static Rule> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    RULES.iter().find(|rule| {
        segments.len() >= rule.pattern.len()
            && rule
                .pattern
                .iter()
                .zip(&segments)
                .all(|(want, got)| *want == "*" || want == got)
    })
}

impl Rule {
    /// Roles that may call this rule with `method`.
    pub fn allowed(&self, method: &Method) -> &'static [Role] {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            self.read
        } else {
            self.write
        }
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
}
