//! The fast engine in a running replica: one in-memory index per tenant, loaded on the
//! tenant's first preview, kept in step with the change feed, dropped when idle.
//!
//! Postgres stays the source of truth. A replica that has no index for a tenant yet (or
//! is still loading it) answers through the SQL path, so correctness never depends on
//! memory; the index only makes answers fast. Every replica follows the feed on its own
//! (`store::snapshot`), so all of them converge whichever consumed the event.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mkt_runtime::Infra;
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::domain::engine::TenantIndex;
use crate::domain::rules::Group;
use crate::store::snapshot;

/// How often each loaded index reads the change feed.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(200);
/// An index unused for this long is dropped (reloaded on the next preview).
pub const IDLE_SECONDS: i64 = 30 * 60;

enum State {
    Loading,
    Ready {
        index: Box<TenantIndex>,
        watermark: i64,
    },
}

struct TenantEngine {
    state: RwLock<State>,
    last_used: AtomicI64,
}

/// Every tenant's index in this replica.
#[derive(Default)]
pub struct Engines {
    tenants: RwLock<HashMap<String, Arc<TenantEngine>>>,
}

/// An audience computed in memory.
#[derive(Debug, Clone)]
pub struct Audience {
    /// Matching customers.
    pub count: usize,
    /// The first `n` of them in the index's stable order.
    pub sample: Vec<Uuid>,
}

impl Engines {
    /// The audience of `tree` from the tenant's index, or `None` while there is none
    /// yet (its load is then started in the background and the caller uses SQL).
    pub async fn audience(
        &self,
        infra: &Infra,
        tenant: &str,
        tree: &Group,
        now: DateTime<Utc>,
        sample: usize,
    ) -> Option<Audience> {
        let engine = self.tenants.read().await.get(tenant).cloned();
        let Some(engine) = engine else {
            self.start_loading(infra, tenant).await;
            return None;
        };
        engine
            .last_used
            .store(Utc::now().timestamp(), Ordering::Relaxed);
        let state = engine.state.read().await;
        match &*state {
            State::Loading => None,
            State::Ready { index, .. } => {
                let members = index.evaluate(tree, now);
                Some(Audience {
                    count: members.count(),
                    sample: members.sample(sample),
                })
            }
        }
    }

    async fn start_loading(&self, infra: &Infra, tenant: &str) {
        let engine = {
            let mut tenants = self.tenants.write().await;
            if tenants.contains_key(tenant) {
                return;
            }
            let engine = Arc::new(TenantEngine {
                state: RwLock::new(State::Loading),
                last_used: AtomicI64::new(Utc::now().timestamp()),
            });
            tenants.insert(tenant.to_owned(), engine.clone());
            engine
        };
        let infra = infra.clone();
        let tenant = tenant.to_owned();
        tokio::spawn(async move {
            let loaded = match infra.pool.get().await {
                Ok(mut conn) => snapshot::load_tenant(&mut conn, &tenant)
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(anyhow::anyhow!("database pool: {e}")),
            };
            match loaded {
                Ok((index, watermark)) => {
                    tracing::info!(
                        %tenant,
                        customers = index.len(),
                        bytes = index.memory_bytes(),
                        "segment engine loaded"
                    );
                    *engine.state.write().await = State::Ready {
                        index: Box::new(index),
                        watermark,
                    };
                }
                Err(error) => {
                    // Stay on SQL; the refresher drops the entry so a later preview
                    // tries again.
                    tracing::warn!(%tenant, error = %format!("{error:#}"), "segment engine load failed");
                    engine.last_used.store(0, Ordering::Relaxed);
                }
            }
        });
    }

    /// One pass of the refresher: every ready index reads its change feed; idle or
    /// failed ones are dropped.
    pub async fn refresh(&self, infra: &Infra) -> anyhow::Result<()> {
        let now = Utc::now().timestamp();
        let engines: Vec<(String, Arc<TenantEngine>)> = {
            let mut tenants = self.tenants.write().await;
            tenants.retain(|_, e| now - e.last_used.load(Ordering::Relaxed) < IDLE_SECONDS);
            tenants
                .iter()
                .map(|(t, e)| (t.clone(), e.clone()))
                .collect()
        };
        for (tenant, engine) in engines {
            let since = match &*engine.state.read().await {
                State::Ready { watermark, .. } => *watermark,
                State::Loading => continue,
            };
            let mut conn = infra.pool.get().await?;
            let (changes, next) = snapshot::load_changed(&mut conn, &tenant, since).await?;
            drop(conn);
            let mut state = engine.state.write().await;
            if let State::Ready { index, watermark } = &mut *state {
                for change in changes {
                    index.apply(change);
                }
                *watermark = next;
            }
        }
        Ok(())
    }
}

/// The refresher worker.
pub async fn run_refresher(infra: Infra, engines: Arc<Engines>) {
    let mut ticker = tokio::time::interval(REFRESH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(error) = engines.refresh(&infra).await {
            tracing::warn!(error = %format!("{error:#}"), "segment engine refresh failed");
        }
    }
}
