//! A cached JSON Web Key Set, refreshed when a token names a key id we have not seen
//! (key rotation) but at most once per [`MIN_REFRESH`], so a flood of forged `kid`s
//! cannot hammer the identity provider.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

use crate::AuthError;

/// Shortest interval between two fetches of the key set.
const MIN_REFRESH: Duration = Duration::from_secs(30);

struct State {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    fetched_at: Option<Instant>,
}

/// Keys fetched from a JWKS URL, by `kid`.
pub struct JwksCache {
    url: String,
    http: reqwest::Client,
    state: Mutex<State>,
}

impl JwksCache {
    /// A cache that fetches lazily on first use.
    pub fn new(url: String) -> Self {
        Self {
            url,
            http: mkt_http_client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            state: Mutex::new(State {
                keys: HashMap::new(),
                fetched_at: None,
            }),
        }
    }

    /// The key for `kid`, which must be published for `alg`.
    pub async fn key(&self, kid: &str, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        let mut state = self.state.lock().await;
        if !state.keys.contains_key(kid)
            && state
                .fetched_at
                .is_none_or(|at| at.elapsed() >= MIN_REFRESH)
        {
            let set: JwkSet = self
                .http
                .get(&self.url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?
                .json()
                .await
                .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?;
            state.keys = set
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
                .collect();
            state.fetched_at = Some(Instant::now());
        }
        match state.keys.get(kid) {
            Some((key_alg, key)) if *key_alg == alg => Ok(key.clone()),
            Some(_) => Err(AuthError::Invalid(
                "algorithm does not match the key".into(),
            )),
            None => Err(AuthError::Invalid("unknown key id".into())),
        }
    }
}
