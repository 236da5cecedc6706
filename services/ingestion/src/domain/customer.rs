//! Customer input, validated into [`ValidCustomer`] on construction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

/// The mini-CRM customer payload (seed 000) plus the CDP's optional fields.
/// Unknown fields are rejected: nothing is mass-assigned.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// Full name.
    #[schema(example = "John Doe")]
    pub name: Option<String>,
    /// Email; unique per tenant (case-insensitive).
    #[schema(example = "john.doe@example.com")]
    pub email: Option<String>,
    /// Contact number.
    #[schema(example = "123-456-7890")]
    pub phone: Option<String>,
    /// Postal address; when present all five parts are required.
    pub address: Option<AddressInput>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// The store's own id for this customer.
    pub external_id: Option<String>,
    /// Historical sign-up time (RFC 3339), for backfills.
    pub created_at: Option<DateTime<Utc>>,
    /// Loyalty tier label.
    pub loyalty_tier: Option<String>,
    /// Custom traits (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Value>,
    /// Per-channel marketing consent.
    pub consent: Option<ConsentInput>,
}

/// Address as seed 000 spells it (`zipCode`; `zip_code` is accepted too).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    /// Street and number.
    pub street: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State or region.
    pub state: Option<String>,
    /// Postal code.
    #[serde(rename = "zipCode", alias = "zip_code")]
    pub zip_code: Option<String>,
    /// Country.
    pub country: Option<String>,
}

/// Consent flags; missing means no consent.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    /// Email marketing allowed.
    #[serde(default)]
    pub email: bool,
    /// SMS marketing allowed.
    #[serde(default)]
    pub sms: bool,
    /// Push allowed.
    #[serde(default)]
    pub push: bool,
}

/// A syntactically valid, lower-cased email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses and normalises (trim, lower-case).
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let normalised = raw.trim().to_lowercase();
        if normalised.len() > 254 || !email_address::EmailAddress::is_valid(&normalised) {
            return Err("Invalid email format");
        }
        Ok(Self(normalised))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A complete address.
#[derive(Debug, Clone)]
pub struct Address {
    /// Street.
    pub street: String,
    /// City.
    pub city: String,
    /// State.
    pub state: String,
    /// Postal code.
    pub zip_code: String,
    /// Country.
    pub country: String,
}

/// A customer that passed validation.
#[derive(Debug, Clone)]
pub struct ValidCustomer {
    /// Email (the upsert key).
    pub email: Email,
    /// Full name.
    pub name: String,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Address.
    pub address: Option<Address>,
    /// Store's id.
    pub external_id: Option<String>,
    /// Historical sign-up time.
    pub created_at: Option<DateTime<Utc>>,
    /// Loyalty tier.
    pub loyalty_tier: Option<String>,
    /// Custom traits (always an object).
    pub attributes: serde_json::Value,
    /// Consent.
    pub consent: ConsentInput,
}

/// Validation failures keyed by field path, as the error envelope's `details`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

fn text(errors: &mut FieldErrors, path: &str, value: Option<String>, required: bool, max: usize) -> Option<String> {
    let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    match &value {
        None if required => errors.entry(path.into()).or_default().push("is required".into()),
        Some(v) if v.chars().count() > max => {
            errors.entry(path.into()).or_default().push(format!("must be at most {max} characters"))
        }
        _ => {}
    }
    value
}

impl CustomerInput {
    /// Validates every field, collecting all problems rather than stopping at the first.
    pub fn validate(self) -> Result<ValidCustomer, FieldErrors> {
        let mut errors = FieldErrors::new();
        let email = match self.email.as_deref() {
            None => {
                errors.entry("email".into()).or_default().push("is required".into());
                None
            }
            Some(raw) => Email::parse(raw).map_err(|e| errors.entry("email".into()).or_default().push(e.into())).ok(),
        };
        let name = text(&mut errors, "name", self.name, true, 200);
        let phone = text(&mut errors, "phone", self.phone, false, 32);
        if let Some(p) = &phone
            && !p.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            errors.entry("phone".into()).or_default().push("may contain only digits, spaces and + - ( ) .".into());
        }
        let address = self.address.map(|a| {
            let street = text(&mut errors, "address.street", a.street, true, 200);
            let city = text(&mut errors, "address.city", a.city, true, 100);
            let state = text(&mut errors, "address.state", a.state, true, 100);
            let zip_code = text(&mut errors, "address.zipCode", a.zip_code, true, 20);
            let country = text(&mut errors, "address.country", a.country, true, 100);
            (street, city, state, zip_code, country)
        });
        let first_name = text(&mut errors, "first_name", self.first_name, false, 100);
        let last_name = text(&mut errors, "last_name", self.last_name, false, 100);
        let external_id = text(&mut errors, "external_id", self.external_id, false, 128);
        let loyalty_tier = text(&mut errors, "loyalty_tier", self.loyalty_tier, false, 64);
        let attributes = match self.attributes {
            None => serde_json::json!({}),
            Some(value @ serde_json::Value::Object(_)) => value,
            Some(_) => {
                errors.entry("attributes".into()).or_default().push("must be a JSON object".into());
                serde_json::Value::Null
            }
        };
        if let Some(at) = self.created_at
            && at > Utc::now() + chrono::Duration::minutes(5)
        {
            errors.entry("created_at".into()).or_default().push("must not be in the future".into());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let address = match address {
            Some((Some(street), Some(city), Some(state), Some(zip_code), Some(country))) => {
                Some(Address { street, city, state, zip_code, country })
            }
            _ => None,
        };
        match (email, name) {
            (Some(email), Some(name)) => Ok(ValidCustomer {
                email,
                name,
                first_name,
                last_name,
                phone,
                address,
                external_id,
                created_at: self.created_at,
                loyalty_tier,
                attributes,
                consent: self.consent.unwrap_or_default(),
            }),
            // Unreachable in practice: a missing email or name was recorded above.
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> CustomerInput {
        serde_json::from_value(json).expect("shape")
    }

    #[test]
    fn collects_every_field_error_with_its_path() {
        let errors = input(serde_json::json!({
            "name": " ", "email": "not-an-email",
            "address": {"street": "1 Main", "city": "X", "state": "CA", "country": "USA"}
        }))
        .validate()
        .expect_err("invalid");
        assert_eq!(errors["email"], vec!["Invalid email format"]);
        assert_eq!(errors["name"], vec!["is required"]);
        assert_eq!(errors["address.zipCode"], vec!["is required"]);
    }

    #[test]
    fn normalises_email_and_accepts_seed_payload() {
        let valid = input(serde_json::json!({
            "name": "John Doe", "email": " John.Doe@Example.com ", "phone": "123-456-7890",
            "address": {"street": "123 Main St", "city": "Anytown", "state": "CA", "zipCode": "90210", "country": "USA"}
        }))
        .validate()
        .expect("valid");
        assert_eq!(valid.email.as_str(), "john.doe@example.com");
        assert_eq!(valid.address.expect("address").zip_code, "90210");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let parsed = serde_json::from_value::<CustomerInput>(serde_json::json!({"email": "a@b.co", "tenant_id": "x"}));
        assert!(parsed.is_err());
    }
}

/// Consent flags as returned.
#[derive(Debug, Clone, Copy, serde::Serialize, ToSchema)]
pub struct ConsentOutput {
    /// Email marketing allowed.
    pub email: bool,
    /// SMS marketing allowed.
    pub sms: bool,
    /// Push allowed.
    pub push: bool,
}
