//! Batches of 1,000 rows per kind (customers, orders, events), produced lazily.

use std::collections::{BTreeMap, VecDeque};

use super::customers::CustomerPlan;
use super::rng::fnv1a;
use super::summary::Profile;
use super::{BATCH, Options};
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Customers,
    Orders,
    Events,
}

impl Kind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Customers => "customers",
            Kind::Orders => "orders",
            Kind::Events => "events",
        }
    }

    pub(super) fn path(self) -> &'static str {
        match self {
            Kind::Customers => "/api/v2/cdp/customers/batch",
            Kind::Orders => "/api/v2/cdp/orders/batch",
            Kind::Events => "/api/v2/cdp/events/batch",
        }
    }

    /// What names one row in a failure report.
    pub(super) fn identity(self, row: &Value) -> String {
        let field = |key: &str| {
            row.get(key)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned()
        };
        match self {
            Kind::Customers => field("email"),
            Kind::Orders => field("externalId"),
            Kind::Events => format!(
                "{} of {} at {}",
                field("event_type"),
                field("customer_external_id"),
                field("timestamp")
            ),
        }
    }
}

pub(super) struct Batch {
    pub(super) kind: Kind,
    pub(super) index: usize,
    pub(super) rows: Vec<Value>,
    pub(super) body: Vec<u8>,
    pub(super) key: String,
    /// Customers generated up to and including this batch (for progress).
    pub(super) customers_through: usize,
}

/// Produces one kind's batches lazily, customer by customer, so memory stays bounded
/// whatever `--customers` is.
pub(super) struct Batcher {
    pub(super) kind: Kind,
    pub(super) seed: u64,
    pub(super) as_of: DateTime<Utc>,
    pub(super) customers: usize,
    pub(super) next_customer: usize,
    pub(super) pending: VecDeque<Value>,
    pub(super) next_index: usize,
    pub(super) profile: Option<Profile>,
}

impl Batcher {
    pub(super) fn new(kind: Kind, options: &Options) -> Self {
        Self {
            kind,
            seed: options.seed,
            as_of: options.as_of,
            customers: options.customers,
            next_customer: 0,
            pending: VecDeque::new(),
            next_index: 0,
            profile: (kind == Kind::Orders).then(Profile::default),
        }
    }

    pub(super) fn next_batch(&mut self) -> Result<Option<Batch>> {
        while self.pending.len() < BATCH && self.next_customer < self.customers {
            let plan = CustomerPlan::new(self.seed, self.as_of, self.next_customer);
            self.next_customer += 1;
            if let Some(profile) = &mut self.profile {
                profile.add(&plan);
            }
            match self.kind {
                Kind::Customers => self.pending.push_back(plan.customer_json()),
                Kind::Orders => self
                    .pending
                    .extend(plan.orders.iter().map(|o| plan.order_json(o))),
                Kind::Events => self.pending.extend(plan.events_json(self.seed, self.as_of)),
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let take = self.pending.len().min(BATCH);
        let rows: Vec<Value> = self.pending.drain(..take).collect();
        let body = serde_json::to_vec(&BTreeMap::from([(self.kind.name(), &rows)]))?;
        let index = self.next_index;
        self.next_index += 1;
        // Same seed, kind, position and content: same key, so a re-run replays. Any
        // other content gets another key instead of a 422 for a reused one.
        let key = format!(
            "demo-{}-{}-{index:05}-{:016x}",
            self.seed,
            self.kind.name(),
            fnv1a(&body)
        );
        // Rows still pending belong to the last customer generated, who is not done yet.
        let customers_through = if self.pending.is_empty() {
            self.next_customer
        } else {
            self.next_customer - 1
        };
        Ok(Some(Batch {
            kind: self.kind,
            index,
            rows,
            body,
            key,
            customers_through,
        }))
    }
}
