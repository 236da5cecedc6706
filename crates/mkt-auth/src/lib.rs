//! Authentication and authorisation: JWT verification, the tenant, and roles.
//!
//! Owns: which algorithms we accept (pinned: HS256 for the dev stack, RS256/ES256 from
//! a JWKS URL), which claims are required (`exp`, `iss`, `aud`, `tenant_id`), the role
//! vocabulary, and the actix extractor [`Principal`]. The gateway and every service
//! verify tokens with this crate: a service never trusts identity headers from the
//! network.
//!
//! Must never: accept `alg: none` or an algorithm outside the configured key's family,
//! take the tenant from anywhere but a verified token, or log a token.

mod jwks;
pub mod policy;
mod roles;
mod tenant;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
#[cfg(any(test, feature = "dev-signer"))]
use jsonwebtoken::{EncodingKey, Header};
use mkt_error::{ErrorInfo, render};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use jwks::JwksCache;
pub use policy::Operation;
pub use roles::{Role, RoleSet};
pub use tenant::{InvalidTenantId, TenantId};

/// Token verification settings (`MKT_AUTH__*`).
#[derive(Debug, Clone, Deserialize)]
pub struct AuthConfig {
    /// Shared secret for HS256 tokens (dev stack and tests). Mutually exclusive with
    /// `jwks_url`; when both are set the JWKS wins and HS256 is refused.
    #[serde(default)]
    pub hs256_secret: Option<SecretString>,
    /// URL of a JSON Web Key Set (RS256/ES256) published by the identity provider.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Required `iss` claim.
    pub issuer: String,
    /// Required `aud` claim.
    pub audience: String,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_leeway() -> u64 {
    30
}

/// The claims we issue and require.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Who (user or API client id).
    pub sub: String,
    /// The tenant every request is scoped to.
    pub tenant_id: String,
    /// Role names; unknown names are ignored so new roles can roll out gradually.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Issuer; must equal the configured issuer (`AuthConfig`), checked on every verification.
    pub iss: String,
    /// Audience; must equal the configured audience, checked on every verification.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    #[serde(default)]
    pub iat: Option<i64>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// A verified caller: what handlers authorise against.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The tenant, from the verified `tenant_id` claim.
    pub tenant: TenantId,
    /// The `sub` claim.
    pub subject: String,
    /// Granted roles.
    pub roles: RoleSet,
}

impl Principal {
    /// Succeeds when the caller has any of `allowed` (admin has every role).
    pub fn require_any(&self, allowed: &[Role]) -> Result<(), AuthError> {
        if self.roles.allows_any(allowed) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                needed: allowed.to_vec(),
            })
        }
    }
}

/// Why a request was not authenticated or authorised.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// Signature, algorithm, claims or expiry rejected.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Verified, but the roles do not allow this call.
    #[error("forbidden")]
    Forbidden {
        /// Roles any one of which would have allowed the call.
        needed: Vec<Role>,
    },
    /// The key set could not be fetched (the identity provider is down).
    #[error("key set unavailable: {0}")]
    KeysUnavailable(String),
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Missing | Self::Invalid(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let info = match self {
            Self::Missing => ErrorInfo::new(StatusCode::UNAUTHORIZED, "unauthorized", "A bearer token is required"),
            // The reason is useful to the caller (expired vs bad audience) and reveals
            // nothing about our keys.
            Self::Invalid(reason) => {
                ErrorInfo::new(StatusCode::UNAUTHORIZED, "invalid_token", format!("Invalid token: {reason}"))
            }
            Self::Forbidden { needed } => ErrorInfo::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Your roles do not allow this operation",
            )
            .with_details(serde_json::json!({ "required_any_of": needed.iter().map(|r| r.as_str()).collect::<Vec<_>>() })),
            Self::KeysUnavailable(_) => {
                tracing::error!(error = %self, "cannot verify tokens");
                ErrorInfo::new(StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable", "Token verification is unavailable")
            }
        };
        let mut response = render(info);
        if matches!(self, Self::Missing | Self::Invalid(_)) {
            response.headers_mut().insert(
                actix_web::http::header::WWW_AUTHENTICATE,
                actix_web::http::header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Shortest HS256 secret accepted: the hash's size, 256 bits (RFC 7518 section 3.2). A
/// shorter or empty one is refused when the verifier is built, so at start-up.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Refuses an HS256 secret under [`MIN_HS256_SECRET_BYTES`].
pub fn check_hs256_secret(secret: &str) -> Result<(), AuthError> {
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(AuthError::KeysUnavailable(format!(
            "MKT_AUTH__HS256_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes (it has {})",
            secret.len()
        )));
    }
    Ok(())
}

enum Keys {
    Hs256(DecodingKey),
    Jwks(JwksCache),
}

/// Verifies bearer tokens. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<Keys>,
    issuer: String,
    audience: String,
    leeway: u64,
}

impl Verifier {
    /// Builds a verifier; fails when neither a secret nor a JWKS URL is configured.
    pub fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        // Refused even beside a JWKS URL: a configured secret may be used to sign.
        if let Some(secret) = &config.hs256_secret {
            check_hs256_secret(secret.expose_secret())?;
        }
        let keys = match (&config.jwks_url, &config.hs256_secret) {
            (Some(url), _) => Keys::Jwks(JwksCache::new(url.clone())),
            (None, Some(secret)) => {
                Keys::Hs256(DecodingKey::from_secret(secret.expose_secret().as_bytes()))
            }
            (None, None) => {
                return Err(AuthError::KeysUnavailable(
                    "set MKT_AUTH__HS256_SECRET or MKT_AUTH__JWKS_URL".into(),
                ));
            }
        };
        Ok(Self {
            keys: Arc::new(keys),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_secs,
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        // A token with `nbf` is not valid before it (give or take the leeway).
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        validation
    }

    /// Verifies a compact JWS and returns the caller.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let data = match self.keys.as_ref() {
            Keys::Hs256(key) => {
                if header.alg != Algorithm::HS256 {
                    return Err(AuthError::Invalid("algorithm not accepted".into()));
                }
                jsonwebtoken::decode::<Claims>(token, key, &self.validation(Algorithm::HS256))
            }
            Keys::Jwks(cache) => {
                if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
                    return Err(AuthError::Invalid("algorithm not accepted".into()));
                }
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| AuthError::Invalid("token has no kid".into()))?;
                let key = cache.key(kid, header.alg).await?;
                jsonwebtoken::decode::<Claims>(token, &key, &self.validation(header.alg))
            }
        }
        .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claims = data.claims;
        let tenant =
            TenantId::parse(&claims.tenant_id).map_err(|e| AuthError::Invalid(e.to_string()))?;
        Ok(Principal {
            tenant,
            subject: claims.sub,
            roles: RoleSet::from_names(&claims.roles),
        })
    }

    /// Verifies the `Authorization: Bearer` header of a request.
    pub async fn verify_request(&self, req: &HttpRequest) -> Result<Principal, AuthError> {
        let token = bearer_token(req).ok_or(AuthError::Missing)?;
        self.verify(token).await
    }
}

/// Extracts the token from `Authorization: Bearer <token>`.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

impl FromRequest for Principal {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let verifier = req
                .app_data::<web::Data<Verifier>>()
                .ok_or_else(|| AuthError::KeysUnavailable("no verifier registered".into()))?
                .clone();
            verifier.verify_request(&req).await
        })
    }
}

/// Signs HS256 tokens for tests (`mkt-test-support` turns on the `dev-signer` feature).
/// Not compiled into services: no production code mints its own tokens.
#[cfg(any(test, feature = "dev-signer"))]
pub struct DevTokenSigner {
    key: EncodingKey,
    issuer: String,
    audience: String,
}

#[cfg(any(test, feature = "dev-signer"))]
impl DevTokenSigner {
    /// A signer for the given secret, issuer and audience.
    pub fn new(secret: &str, issuer: &str, audience: &str) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.as_bytes()),
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }

    /// Signs a token for `tenant` with `roles`, valid for `ttl_secs` (negative: expired).
    pub fn sign(&self, tenant: &str, roles: &[&str], ttl_secs: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: "dev-user".into(),
            tenant_id: tenant.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl_secs,
            iat: Some(now),
            jti: Some(uuid::Uuid::new_v4().to_string()),
        };
        self.sign_claims(&claims)
    }

    /// Signs any JSON claims (tests use it for claims [`Claims`] does not carry, `nbf`).
    pub fn sign_json(&self, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key).unwrap_or_default()
    }

    /// Signs arbitrary claims (tests use it to forge wrong `aud`/`iss`).
    pub fn sign_claims(&self, claims: &Claims) -> String {
        // HS256 signing of a serialisable struct cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            hs256_secret: Some(SecretString::from("s3cret-s3cret-s3cret-s3cret-s3cret")),
            jwks_url: None,
            issuer: "iss".into(),
            audience: "aud".into(),
            leeway_secs: 0,
        }
    }

    #[tokio::test]
    async fn accepts_valid_and_rejects_expired_wrong_audience_and_tampered() {
        let verifier = Verifier::new(&config()).expect("verifier");
        let signer = DevTokenSigner::new("s3cret-s3cret-s3cret-s3cret-s3cret", "iss", "aud");
        let good = signer.sign("demo", &["reader"], 60);
        let principal = verifier.verify(&good).await.expect("valid");
        assert_eq!(principal.tenant.as_str(), "demo");
        assert!(principal.require_any(&[Role::Reader]).is_ok());
        assert!(principal.require_any(&[Role::Ingest]).is_err());

        assert!(matches!(
            verifier.verify(&signer.sign("demo", &[], -120)).await,
            Err(AuthError::Invalid(_))
        ));
        let wrong_aud = DevTokenSigner::new("s3cret-s3cret-s3cret-s3cret-s3cret", "iss", "other");
        assert!(
            verifier
                .verify(&wrong_aud.sign("demo", &[], 60))
                .await
                .is_err()
        );
        let wrong_key = DevTokenSigner::new("another-secret-another-secret-xx", "iss", "aud");
        assert!(
            verifier
                .verify(&wrong_key.sign("demo", &[], 60))
                .await
                .is_err()
        );
        let mut tampered = good.clone();
        tampered.insert(tampered.len() - 3, 'x');
        assert!(verifier.verify(&tampered).await.is_err());
        assert!(
            verifier
                .verify(&signer.sign("bad tenant!", &[], 60))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_token_not_yet_valid_is_refused_with_401() {
        let verifier = Verifier::new(&config()).expect("verifier");
        let signer = DevTokenSigner::new("s3cret-s3cret-s3cret-s3cret-s3cret", "iss", "aud");
        let now = chrono::Utc::now().timestamp();
        let claims = |nbf: i64| {
            serde_json::json!({"sub": "u", "tenant_id": "demo", "roles": [], "iss": "iss",
                "aud": "aud", "exp": now + 600, "nbf": nbf})
        };
        let early = verifier.verify(&signer.sign_json(&claims(now + 300))).await;
        let Err(error) = early else {
            panic!("a token with nbf in the future was accepted");
        };
        assert_eq!(error.status_code(), StatusCode::UNAUTHORIZED);
        assert!(
            verifier
                .verify(&signer.sign_json(&claims(now - 5)))
                .await
                .is_ok()
        );
    }

    #[test]
    fn short_or_empty_hs256_secrets_are_refused_at_start_up() {
        for secret in ["", "short", &"x".repeat(MIN_HS256_SECRET_BYTES - 1)] {
            let config = AuthConfig {
                hs256_secret: Some(SecretString::from(secret.to_owned())),
                ..config()
            };
            assert!(Verifier::new(&config).is_err(), "{secret:?}");
            let beside_jwks = AuthConfig {
                jwks_url: Some("http://127.0.0.1:9/jwks".into()),
                ..config
            };
            assert!(Verifier::new(&beside_jwks).is_err(), "{secret:?}");
        }
        let config = AuthConfig {
            hs256_secret: Some(SecretString::from("x".repeat(MIN_HS256_SECRET_BYTES))),
            ..config()
        };
        assert!(Verifier::new(&config).is_ok());
    }
}
