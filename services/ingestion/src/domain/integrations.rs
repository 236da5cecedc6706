//! Tenant integrations (seed 004): what a valid integration is, and how request bodies
//! become one. No I/O.
//!
//! Bodies are read field by field from a JSON object rather than through serde derive,
//! because serde's messages quote the offending value, and a credential sent in the
//! wrong shape must not come back in a 400. Credentials are [`SecretString`]s from the
//! moment they are read, so `Debug` and logs show `[REDACTED]`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Validation problems keyed by field name (the error envelope's `details`).
pub type FieldErrors = BTreeMap<String, Vec<String>>;

fn push(errors: &mut FieldErrors, field: &str, message: impl Into<String>) {
    errors
        .entry(field.to_owned())
        .or_default()
        .push(message.into());
}

/// The platforms we integrate with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrationType {
    /// VTEX (OMS orders and Master Data customers).
    Vtex,
}

impl IntegrationType {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationType::Vtex => "vtex",
        }
    }
}

/// A VTEX account name: the first label of `{account}.{environment}.com.br`, so only
/// lower-case letters, digits and inner hyphens (which also keeps the host we call
/// under VTEX's domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountName(String);

impl AccountName {
    /// Validates and lower-cases.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let name = raw.trim().to_ascii_lowercase();
        let valid = (1..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if valid {
            Ok(Self(name))
        } else {
            Err("must be 1-63 lower-case letters, digits or inner hyphens (the VTEX account name)")
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// VTEX environments we may call: an allowlist, because the value becomes part of a
/// host name.
pub const ENVIRONMENTS: [&str; 2] = ["vtexcommercestable", "vtexcommercebeta"];

/// A VTEX environment from [`ENVIRONMENTS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment(&'static str);

impl Environment {
    /// The default environment of VTEX stores.
    pub const STABLE: Environment = Environment("vtexcommercestable");

    /// Validates against the allowlist.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let raw = raw.trim();
        ENVIRONMENTS
            .iter()
            .find(|e| e.eq_ignore_ascii_case(raw))
            .map(|e| Environment(e))
            .ok_or("must be vtexcommercestable or vtexcommercebeta")
    }

    /// The name.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

/// A VTEX app key and app token. They travel as HTTP header values, so both must be
/// visible ASCII (no CR/LF smuggling into the request we send).
#[derive(Debug, Clone)]
pub struct VtexCredentials {
    /// `X-VTEX-API-AppKey`.
    pub app_key: SecretString,
    /// `X-VTEX-API-AppToken`.
    pub app_token: SecretString,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CredentialsPlain<'a> {
    app_key: std::borrow::Cow<'a, str>,
    app_token: std::borrow::Cow<'a, str>,
}

impl VtexCredentials {
    /// The plaintext that gets sealed (JSON), wiped from memory when dropped.
    pub fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        let plain = CredentialsPlain {
            app_key: self.app_key.expose_secret().into(),
            app_token: self.app_token.expose_secret().into(),
        };
        // Serialising two strings cannot fail.
        Zeroizing::new(serde_json::to_vec(&plain).unwrap_or_default())
    }

    /// Reads back what [`Self::to_plaintext`] wrote.
    pub fn from_plaintext(bytes: &[u8]) -> Option<Self> {
        let plain: CredentialsPlain<'_> = serde_json::from_slice(bytes).ok()?;
        Some(Self {
            app_key: SecretString::from(plain.app_key.into_owned()),
            app_token: SecretString::from(plain.app_token.into_owned()),
        })
    }

    /// What responses may show of the key: its last four characters, and only when
    /// the key is long enough for that to give nothing useful away.
    pub fn app_key_last4(&self) -> String {
        let key = self.app_key.expose_secret();
        let chars: Vec<char> = key.chars().collect();
        if chars.len() >= 12 {
            chars[chars.len() - 4..].iter().collect()
        } else {
            String::new()
        }
    }
}

/// The associated data that binds a sealed credential to its row: a ciphertext copied
/// to another integration or tenant fails to open.
pub fn credentials_aad(tenant: &str, integration_id: Uuid) -> Vec<u8> {
    format!("tenant-integrations/credentials/v1\0{tenant}\0{integration_id}").into_bytes()
}

fn header_safe(value: &str) -> bool {
    value.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// A JSON object read field by field; problems are collected, never echoing values.
struct Fields {
    map: Map<String, Value>,
    errors: FieldErrors,
}

impl Fields {
    fn new(body: Value) -> Result<Self, FieldErrors> {
        match body {
            Value::Object(map) => Ok(Self {
                map,
                errors: FieldErrors::new(),
            }),
            _ => {
                let mut errors = FieldErrors::new();
                push(&mut errors, "body", "must be a JSON object");
                Err(errors)
            }
        }
    }

    fn string(&mut self, field: &str) -> Option<String> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                push(&mut self.errors, field, "must be a string");
                None
            }
        }
    }

    fn bool(&mut self, field: &str) -> Option<bool> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => {
                push(&mut self.errors, field, "must be true or false");
                None
            }
        }
    }

    /// Seed 004 sends numeric tenant ids; ours are strings. Either is accepted here and
    /// compared with the token's tenant by the caller.
    fn tenant(&mut self) -> Option<String> {
        match self.map.remove("tenant_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                push(
                    &mut self.errors,
                    "tenant_id",
                    "must be a string or a number",
                );
                None
            }
        }
    }

    fn secret(&mut self, field: &str, max: usize) -> Option<SecretString> {
        let value = self.string(field)?;
        let value = value.trim();
        if value.is_empty() || value.len() > max || !header_safe(value) {
            push(
                &mut self.errors,
                field,
                format!("must be 1-{max} visible ASCII characters"),
            );
            return None;
        }
        Some(SecretString::from(value.to_owned()))
    }

    fn account(&mut self) -> Option<AccountName> {
        let raw = self.string("account_name")?;
        AccountName::parse(&raw)
            .map_err(|m| push(&mut self.errors, "account_name", m))
            .ok()
    }

    fn environment(&mut self) -> Option<Environment> {
        let raw = self.string("environment")?;
        Environment::parse(&raw)
            .map_err(|m| push(&mut self.errors, "environment", m))
            .ok()
    }

    fn integration_type(&mut self) -> Option<IntegrationType> {
        let raw = self.string("integration_type")?;
        if raw.trim().eq_ignore_ascii_case("vtex") {
            Some(IntegrationType::Vtex)
        } else {
            push(&mut self.errors, "integration_type", "must be vtex");
            None
        }
    }

    fn finish(mut self) -> Result<(), FieldErrors> {
        for field in self.map.keys() {
            push(&mut self.errors, field, "is not a known field");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

const MAX_APP_KEY: usize = 256;
const MAX_APP_TOKEN: usize = 4096;

/// A valid `POST /tenant-integrations` body.
#[derive(Debug)]
pub struct NewIntegration {
    /// The tenant the body names, if any (must be the token's).
    pub tenant_id: Option<String>,
    /// Platform.
    pub integration_type: IntegrationType,
    /// Store account.
    pub account_name: AccountName,
    /// VTEX environment.
    pub environment: Environment,
    /// Credentials (sealed before they are stored).
    pub credentials: VtexCredentials,
    /// Whether syncs may run.
    pub is_active: bool,
}

impl NewIntegration {
    /// Validates seed 004's create body.
    pub fn parse(body: Value) -> Result<Self, FieldErrors> {
        let mut fields = Fields::new(body)?;
        let tenant_id = fields.tenant();
        // Only VTEX exists so far, so the type may be left out.
        let integration_type = fields.integration_type().unwrap_or(IntegrationType::Vtex);
        let account_name = fields.account();
        let environment = fields.environment();
        let app_key = fields.secret("app_key", MAX_APP_KEY);
        let app_token = fields.secret("app_token", MAX_APP_TOKEN);
        let is_active = fields.bool("is_active");
        let missing = |fields: &mut Fields, field: &str, present: bool| {
            if !present && !fields.errors.contains_key(field) {
                push(&mut fields.errors, field, "is required");
            }
        };
        missing(&mut fields, "account_name", account_name.is_some());
        missing(&mut fields, "app_key", app_key.is_some());
        missing(&mut fields, "app_token", app_token.is_some());
        fields.finish()?;
        match (account_name, app_key, app_token) {
            (Some(account_name), Some(app_key), Some(app_token)) => Ok(Self {
                tenant_id,
                integration_type,
                account_name,
                environment: environment.unwrap_or(Environment::STABLE),
                credentials: VtexCredentials { app_key, app_token },
                is_active: is_active.unwrap_or(true),
            }),
            // Unreachable: every missing field was reported above.
            _ => Err(FieldErrors::new()),
        }
    }
}

/// A valid `PUT /tenant-integrations/{id}` body: every field optional.
#[derive(Debug, Default)]
pub struct IntegrationPatch {
    /// The tenant the body names, if any (must be the token's).
    pub tenant_id: Option<String>,
    /// New account (then new credentials are required too).
    pub account_name: Option<AccountName>,
    /// New environment.
    pub environment: Option<Environment>,
    /// New app key (then a new token is required too).
    pub app_key: Option<SecretString>,
    /// New app token (VTEX lets a key's token be regenerated alone).
    pub app_token: Option<SecretString>,
    /// Enable or disable syncs.
    pub is_active: Option<bool>,
}

impl IntegrationPatch {
    /// Validates seed 004's update body.
    pub fn parse(body: Value) -> Result<Self, FieldErrors> {
        let mut fields = Fields::new(body)?;
        let tenant_id = fields.tenant();
        // The type cannot change; naming the current one is allowed.
        fields.integration_type();
        let account_name = fields.account();
        let environment = fields.environment();
        let app_key = fields.secret("app_key", MAX_APP_KEY);
        let app_token = fields.secret("app_token", MAX_APP_TOKEN);
        let is_active = fields.bool("is_active");
        if app_key.is_some() && app_token.is_none() && !fields.errors.contains_key("app_token") {
            push(
                &mut fields.errors,
                "app_token",
                "is required when app_key changes",
            );
        }
        if account_name.is_some()
            && (app_key.is_none() || app_token.is_none())
            && !fields.errors.contains_key("app_key")
        {
            push(
                &mut fields.errors,
                "app_key",
                "app_key and app_token are required when account_name changes",
            );
        }
        fields.finish()?;
        Ok(Self {
            tenant_id,
            account_name,
            environment,
            app_key,
            app_token,
            is_active,
        })
    }
}

/// A valid `POST /tenant-integrations/validate/vtex` body.
#[derive(Debug)]
pub struct ValidateRequest {
    /// Store account.
    pub account_name: AccountName,
    /// VTEX environment.
    pub environment: Environment,
    /// Credentials to try.
    pub credentials: VtexCredentials,
}

impl ValidateRequest {
    /// Validates seed 004's validate body (a `tenant_id` is accepted and checked).
    pub fn parse(body: Value) -> Result<(Option<String>, Self), FieldErrors> {
        let mut fields = Fields::new(body)?;
        let tenant_id = fields.tenant();
        fields.integration_type();
        let account_name = fields.account();
        let environment = fields.environment();
        let app_key = fields.secret("app_key", MAX_APP_KEY);
        let app_token = fields.secret("app_token", MAX_APP_TOKEN);
        for (field, present) in [
            ("account_name", account_name.is_some()),
            ("app_key", app_key.is_some()),
            ("app_token", app_token.is_some()),
        ] {
            if !present && !fields.errors.contains_key(field) {
                push(&mut fields.errors, field, "is required");
            }
        }
        fields.finish()?;
        match (account_name, app_key, app_token) {
            (Some(account_name), Some(app_key), Some(app_token)) => Ok((
                tenant_id,
                Self {
                    account_name,
                    environment: environment.unwrap_or(Environment::STABLE),
                    credentials: VtexCredentials { app_key, app_token },
                },
            )),
            _ => Err(FieldErrors::new()),
        }
    }
}

/// How far back VTEX's order list reaches (its documented two years).
pub const MAX_ORDER_HISTORY_DAYS: i64 = 730;

/// A valid `POST /tenant-integrations/{id}/sync` body (all optional).
#[derive(Debug, Clone, Copy)]
pub struct SyncRequest {
    /// Import orders created at or after this instant (default: as far back as VTEX
    /// lists, two years).
    pub since: DateTime<Utc>,
    /// Orders created up to this instant (the request time).
    pub until: DateTime<Utc>,
}

impl SyncRequest {
    /// Validates the optional body; `now` is the request time.
    pub fn parse(body: Option<Value>, now: DateTime<Utc>) -> Result<Self, FieldErrors> {
        let earliest = now - chrono::Duration::days(MAX_ORDER_HISTORY_DAYS);
        let Some(body) = body else {
            return Ok(Self {
                since: earliest,
                until: now,
            });
        };
        let mut fields = Fields::new(body)?;
        let since = fields.string("since");
        let since = match since {
            None => earliest,
            Some(raw) => match DateTime::parse_from_rfc3339(raw.trim()) {
                Ok(at) if at.with_timezone(&Utc) < now => at.with_timezone(&Utc).max(earliest),
                Ok(_) => {
                    push(&mut fields.errors, "since", "must be in the past");
                    earliest
                }
                Err(_) => {
                    push(&mut fields.errors, "since", "must be an RFC 3339 date-time");
                    earliest
                }
            },
        };
        fields.finish()?;
        Ok(Self { since, until: now })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_body_is_validated_and_errors_never_echo_credentials() {
        let ok = NewIntegration::parse(json!({
            "tenant_id": 56, "integration_type": "vtex", "account_name": "ChelseaIO",
            "environment": "vtexcommercestable", "app_key": "vtexappkey-chelseaio-ABCDE",
            "app_token": "TOKEN_HERE"
        }))
        .expect("valid");
        assert_eq!(ok.tenant_id.as_deref(), Some("56"));
        assert_eq!(ok.account_name.as_str(), "chelseaio");
        assert!(ok.is_active);
        assert_eq!(ok.credentials.app_key_last4(), "BCDE");
        assert!(!format!("{ok:?}").contains("TOKEN_HERE"));

        let errors = NewIntegration::parse(json!({
            "integration_type": "shopify", "account_name": "evil.com/x",
            "environment": "attacker", "app_key": 12345, "app_token": "line\r\nbreak",
            "extra": "SECRET-IN-EXTRA"
        }))
        .expect_err("invalid");
        for field in [
            "integration_type",
            "account_name",
            "environment",
            "app_key",
            "app_token",
            "extra",
        ] {
            assert!(errors.contains_key(field), "{field}: {errors:?}");
        }
        let rendered = serde_json::to_string(&errors).expect("json");
        assert!(!rendered.contains("12345") && !rendered.contains("break"));
        assert!(!rendered.contains("SECRET-IN-EXTRA"));

        let missing = NewIntegration::parse(json!({})).expect_err("missing");
        assert_eq!(missing.len(), 3, "{missing:?}");
        assert!(NewIntegration::parse(json!([1])).is_err());
    }

    #[test]
    fn patch_rules() {
        let patch = IntegrationPatch::parse(json!({"is_active": false})).expect("valid");
        assert_eq!(patch.is_active, Some(false));
        assert!(IntegrationPatch::parse(json!({"app_token": "new"})).is_ok());
        assert!(IntegrationPatch::parse(json!({"app_key": "k"})).is_err());
        assert!(IntegrationPatch::parse(json!({"account_name": "other"})).is_err());
        assert!(IntegrationPatch::parse(json!({"is_active": "no"})).is_err());
    }

    #[test]
    fn credentials_survive_the_plaintext_round_trip() {
        let credentials = VtexCredentials {
            app_key: SecretString::from("key"),
            app_token: SecretString::from("tok\"en"),
        };
        let back = VtexCredentials::from_plaintext(&credentials.to_plaintext()).expect("back");
        assert_eq!(back.app_key.expose_secret(), "key");
        assert_eq!(back.app_token.expose_secret(), "tok\"en");
        assert_eq!(credentials.app_key_last4(), "");
        assert_ne!(
            credentials_aad("a", Uuid::nil()),
            credentials_aad("b", Uuid::nil())
        );
    }

    #[test]
    fn sync_window() {
        let now = Utc::now();
        let default = SyncRequest::parse(None, now).expect("default");
        assert_eq!(default.until, now);
        assert_eq!((now - default.since).num_days(), MAX_ORDER_HISTORY_DAYS);
        let since = SyncRequest::parse(Some(json!({"since": "2020-01-01T00:00:00Z"})), now)
            .expect("clamped");
        assert_eq!(since.since, default.since);
        assert!(SyncRequest::parse(Some(json!({"since": "yesterday"})), now).is_err());
        assert!(SyncRequest::parse(Some(json!({"since": "2999-01-01T00:00:00Z"})), now).is_err());
    }
}
