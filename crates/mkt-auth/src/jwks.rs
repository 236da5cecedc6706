//! A cached JSON Web Key Set, refreshed when a token names a key id we have not seen
//! (key rotation) but at most once per [`MIN_REFRESH`], so a flood of forged `kid`s
//! cannot hammer the identity provider.
//!
//! The HTTP fetch never happens under the lock verifications read: a token whose key is
//! cached is verified at once while a refresh is in flight, so an identity provider
//! outage only affects tokens with new key ids. Refreshes are single-flight (callers
//! that need one while one runs wait for it and share its result), and after a failed
//! fetch the next is held back, doubling from [`FAILURE_BACKOFF`] up to
//! [`MAX_FAILURE_BACKOFF`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::AuthError;

/// Shortest interval between two fetches of the key set.
pub const MIN_REFRESH: Duration = Duration::from_secs(30);
/// Wait after a first failed fetch before the next (then doubled per failure).
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between fetches while the identity provider keeps failing.
pub const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(60);

type Keys = HashMap<String, (Algorithm, DecodingKey)>;

#[derive(Default)]
struct State {
    keys: Arc<Keys>,
    /// When the last fetch (successful or not) finished.
    attempted_at: Option<Instant>,
    /// Fetches attempted so far: a waiter that sees it move knows a fetch ran for it.
    attempts: u64,
    /// Consecutive failures, and the last one's reason.
    failures: u32,
    last_error: Option<String>,
}

impl State {
    /// Whether a new fetch may start now.
    fn may_fetch(&self, min_refresh: Duration, backoff: (Duration, Duration)) -> bool {
        let Some(at) = self.attempted_at else {
            return true;
        };
        let wait = if self.failures == 0 {
            min_refresh
        } else {
            let doublings = (self.failures - 1).min(16);
            backoff.0.saturating_mul(1 << doublings).min(backoff.1)
        };
        at.elapsed() >= wait
    }
}

/// Keys fetched from a JWKS URL, by `kid`.
pub struct JwksCache {
    url: String,
    http: reqwest::Client,
    /// Read by every verification; held only to copy or swap the keys, never across I/O.
    state: RwLock<State>,
    /// The single flight: held by the one caller fetching, awaited by the others.
    fetch: tokio::sync::Mutex<()>,
    min_refresh: Duration,
    backoff: (Duration, Duration),
}

impl JwksCache {
    /// A cache that fetches lazily on first use.
    pub fn new(url: String) -> Self {
        Self::with_timing(url, MIN_REFRESH, FAILURE_BACKOFF, MAX_FAILURE_BACKOFF)
    }

    /// [`JwksCache::new`] with other refresh intervals (tests shorten them).
    pub fn with_timing(
        url: String,
        min_refresh: Duration,
        failure_backoff: Duration,
        max_failure_backoff: Duration,
    ) -> Self {
        Self {
            url,
            http: mkt_http_client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            state: RwLock::new(State::default()),
            fetch: tokio::sync::Mutex::new(()),
            min_refresh,
            backoff: (failure_backoff, max_failure_backoff),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        // A poisoned lock only means a panic elsewhere while swapping an Arc: the state
        // is still whole.
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&state)
    }

    fn write(&self, f: impl FnOnce(&mut State)) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        f(&mut state);
    }

    /// The key for `kid`, which must be published for `alg`.
    pub async fn key(&self, kid: &str, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        let (keys, attempts, may_fetch) = self.read(|s| {
            (
                s.keys.clone(),
                s.attempts,
                s.may_fetch(self.min_refresh, self.backoff),
            )
        });
        if keys.contains_key(kid) || !may_fetch {
            return self.pick(&keys, kid, alg);
        }
        let keys = {
            let _flight = self.fetch.lock().await;
            let ran_meanwhile = self.read(|s| s.attempts != attempts);
            if !ran_meanwhile {
                // Fetched with no lock held but the flight's: verifications go on.
                let fetched = self.fetch_keys().await;
                self.write(|s| {
                    s.attempts += 1;
                    s.attempted_at = Some(Instant::now());
                    match fetched {
                        Ok(keys) => {
                            s.keys = Arc::new(keys);
                            s.failures = 0;
                            s.last_error = None;
                        }
                        Err(error) => {
                            tracing::warn!(url = %self.url, %error, "JWKS fetch failed");
                            s.failures = s.failures.saturating_add(1);
                            s.last_error = Some(error);
                        }
                    }
                });
            }
            self.read(|s| s.keys.clone())
        };
        self.pick(&keys, kid, alg)
    }

    fn pick(&self, keys: &Keys, kid: &str, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        match keys.get(kid) {
            Some((key_alg, key)) if *key_alg == alg => Ok(key.clone()),
            Some(_) => Err(AuthError::Invalid(
                "algorithm does not match the key".into(),
            )),
            // Never fetched successfully: the provider is down, not the token wrong.
            None => match self.read(|s| s.last_error.clone().filter(|_| s.keys.is_empty())) {
                Some(error) => Err(AuthError::KeysUnavailable(error)),
                None => Err(AuthError::Invalid("unknown key id".into())),
            },
        }
    }

    async fn fetch_keys(&self) -> Result<Keys, String> {
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok(set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let alg = match jwk.common.key_algorithm? {
                    jsonwebtoken::jwk::KeyAlgorithm::RS256 => Algorithm::RS256,
                    jsonwebtoken::jwk::KeyAlgorithm::ES256 => Algorithm::ES256,
                    _ => return None,
                };
                Some((kid, (alg, DecodingKey::from_jwk(jwk).ok()?)))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A test RSA public key (n, e) published as `k1`.
    const N: &str = "sZVc88OIFdAh4f43LggdJjhIFpjcw8HoSa49xukV_5lS-PNoTu0PlIJXmMn26TwmmtoOJgs2xkYtozw1UmYHHrV54rbqQzKPu8KCeNytpLMAAArYf4dQSBvU7tNirVnfw7VR0zLiNuSx4TxjuOOeP2km56G8phQGqRTU00RRjd3ZxJgQoO3zzPbjHYJsxooa-VFdsNuCRaoAI7fJLTNLaD_Hz26wIGFyAjDRti_WvUc99Dw5Ckvuxlqwjpig7rbe718VHn09uvhFxaPEqz0DWQOTvLimvv2bWHDU3C1lymkkabVuiX6Ldq0kBvRzO0DUZdgZrcA1VL4U_CgBEdbthw";
    const E: &str = "AQAB";

    fn jwks_body() -> String {
        format!(
            r#"{{"keys":[{{"kty":"RSA","use":"sig","alg":"RS256","kid":"k1","n":"{N}","e":"{E}"}}]}}"#
        )
    }

    /// How the local identity provider behaves.
    #[derive(Default)]
    struct Provider {
        fetches: AtomicU64,
        /// Milliseconds each answer is held back.
        delay_ms: AtomicU64,
        /// 0: serve the keys; otherwise answer with this status.
        fail_status: AtomicU32,
    }

    /// A JWKS endpoint on 127.0.0.1 that counts fetches and can be slow or failing.
    async fn provider() -> (String, Arc<Provider>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
        let provider = Arc::new(Provider::default());
        let shared = provider.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let provider = shared.clone();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = socket.read(&mut buffer).await;
                    provider.fetches.fetch_add(1, Ordering::SeqCst);
                    let delay = provider.delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let status = provider.fail_status.load(Ordering::SeqCst);
                    let response = if status == 0 {
                        let body = jwks_body();
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        format!(
                            "HTTP/1.1 {status} Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                    };
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        (url, provider)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_refreshes_share_one_fetch() {
        let (url, provider) = provider().await;
        provider.delay_ms.store(300, Ordering::SeqCst);
        let cache = Arc::new(JwksCache::new(url));
        let lookups: Vec<_> = (0..20)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.key("k1", Algorithm::RS256).await })
            })
            .collect();
        for lookup in lookups {
            assert!(lookup.await.expect("task").is_ok());
        }
        assert_eq!(provider.fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cached_keys_verify_while_a_slow_refresh_is_in_flight() {
        let (url, provider) = provider().await;
        let cache = Arc::new(JwksCache::with_timing(
            url,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
        ));
        cache
            .key("k1", Algorithm::RS256)
            .await
            .expect("first fetch");
        // The provider hangs; an unknown kid starts a refresh that will take 3 s.
        provider.delay_ms.store(3_000, Ordering::SeqCst);
        let refresh = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.key("rotated", Algorithm::RS256).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            provider.fetches.load(Ordering::SeqCst),
            2,
            "refresh started"
        );
        let started = Instant::now();
        for _ in 0..50 {
            cache.key("k1", Algorithm::RS256).await.expect("cached key");
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "cached lookups waited {:?} for the refresh",
            started.elapsed()
        );
        assert!(!refresh.is_finished(), "the refresh is still in flight");
        refresh.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_back_off_before_the_next_fetch() {
        let (url, provider) = provider().await;
        provider.fail_status.store(503, Ordering::SeqCst);
        let cache = JwksCache::with_timing(
            url,
            Duration::ZERO,
            Duration::from_millis(400),
            Duration::from_secs(10),
        );
        assert!(matches!(
            cache.key("k1", Algorithm::RS256).await,
            Err(AuthError::KeysUnavailable(_))
        ));
        // Within the backoff: answered from what is known, no new fetch.
        for _ in 0..10 {
            assert!(matches!(
                cache.key("k1", Algorithm::RS256).await,
                Err(AuthError::KeysUnavailable(_))
            ));
        }
        assert_eq!(provider.fetches.load(Ordering::SeqCst), 1);
        // The provider is back; after the backoff the next lookup fetches.
        provider.fail_status.store(0, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(450)).await;
        cache.key("k1", Algorithm::RS256).await.expect("recovered");
        assert_eq!(provider.fetches.load(Ordering::SeqCst), 2);
        // Failures double the wait: two failures in a row wait 800 ms, not 400.
        provider.fail_status.store(500, Ordering::SeqCst);
        let fresh = JwksCache::with_timing(
            cache.url.clone(),
            Duration::ZERO,
            Duration::from_millis(400),
            Duration::from_secs(10),
        );
        let _ = fresh.key("k1", Algorithm::RS256).await;
        tokio::time::sleep(Duration::from_millis(450)).await;
        let _ = fresh.key("k1", Algorithm::RS256).await;
        assert_eq!(provider.fetches.load(Ordering::SeqCst), 4);
        tokio::time::sleep(Duration::from_millis(450)).await;
        let _ = fresh.key("k1", Algorithm::RS256).await;
        assert_eq!(
            provider.fetches.load(Ordering::SeqCst),
            4,
            "second backoff is 800 ms"
        );
    }
}
