//! Customer input, validated into [`ValidCustomer`] on construction.

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
    /// The store's loyalty tier label: free text (at most 64 characters), no fixed list.
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
    /// City (required in a complete address).
    pub city: Option<String>,
    /// State or region.
    pub state: Option<String>,
    /// Postal code.
    #[serde(rename = "zipCode", alias = "zip_code")]
    pub zip_code: Option<String>,
    /// Country: free text up to 100 characters, not checked against ISO 3166.
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
    /// Street and number (required in a complete address).
    pub street: String,
    /// City (required in a complete address).
    pub city: String,
    /// State or region (required in a complete address).
    pub state: String,
    /// Postal code.
    pub zip_code: String,
    /// Country: free text up to 100 characters, not checked against ISO 3166.
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
    /// Phone number as given: digits, spaces and `+ - ( ) .` only, at most 32 characters (not
    /// normalised to E.164).
    pub phone: Option<String>,
    /// Postal address; `None` unless all five parts were given.
    pub address: Option<Address>,
    /// Store's id.
    pub external_id: Option<String>,
    /// Historical sign-up time.
    pub created_at: Option<DateTime<Utc>>,
    /// The store's loyalty tier label: free text (at most 64 characters), no fixed list.
    pub loyalty_tier: Option<String>,
    /// Custom traits (always an object).
    pub attributes: serde_json::Value,
    /// Per-channel marketing consent; a channel not sent is `false` (no consent).
    pub consent: ConsentInput,
}

pub use super::FieldErrors;
use super::text;

impl CustomerInput {
    /// Validates every field, collecting all problems rather than stopping at the first.
    pub fn validate(self) -> Result<ValidCustomer, FieldErrors> {
        let mut errors = FieldErrors::new();
        let email = match self.email.as_deref() {
            None => {
                super::push(&mut errors, "email", "is required");
                None
            }
            Some(raw) => Email::parse(raw)
                .map_err(|e| super::push(&mut errors, "email", e))
                .ok(),
        };
        let name = text(&mut errors, "name", self.name, true, 200);
        let phone = phone(&mut errors, self.phone);
        let address = self.address.map(|a| a.validate(&mut errors));
        let first_name = text(&mut errors, "first_name", self.first_name, false, 100);
        let last_name = text(&mut errors, "last_name", self.last_name, false, 100);
        let external_id = text(&mut errors, "external_id", self.external_id, false, 128);
        let loyalty_tier = text(&mut errors, "loyalty_tier", self.loyalty_tier, false, 64);
        let attributes = attributes(
            &mut errors,
            self.attributes.unwrap_or_else(|| serde_json::json!({})),
        );
        not_in_future(&mut errors, "created_at", self.created_at);
        if !errors.is_empty() {
            return Err(errors);
        }
        let address = address.flatten();
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

impl AddressInput {
    /// All five parts are required once an address is given.
    fn validate(self, errors: &mut FieldErrors) -> Option<Address> {
        let street = text(errors, "address.street", self.street, true, 200);
        let city = text(errors, "address.city", self.city, true, 100);
        let state = text(errors, "address.state", self.state, true, 100);
        let zip_code = text(errors, "address.zipCode", self.zip_code, true, 20);
        let country = text(errors, "address.country", self.country, true, 100);
        Some(Address {
            street: street?,
            city: city?,
            state: state?,
            zip_code: zip_code?,
            country: country?,
        })
    }
}

fn phone(errors: &mut FieldErrors, value: Option<String>) -> Option<String> {
    let phone = text(errors, "phone", value, false, 32);
    if let Some(p) = &phone
        && !p
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        super::push(
            errors,
            "phone",
            "may contain only digits, spaces and + - ( ) .",
        );
    }
    phone
}

/// Custom traits must be a JSON object of at most 16 KiB.
fn attributes(errors: &mut FieldErrors, value: serde_json::Value) -> serde_json::Value {
    if !value.is_object() {
        super::push(errors, "attributes", "must be a JSON object");
    } else if value.to_string().len() > 16 * 1024 {
        super::push(errors, "attributes", "must be at most 16 KiB");
    }
    value
}

/// Rejects instants more than five minutes ahead (clock skew allowance).
pub fn not_in_future(errors: &mut FieldErrors, path: &str, at: Option<DateTime<Utc>>) {
    if at.is_some_and(|at| at > Utc::now() + chrono::Duration::minutes(5)) {
        super::push(errors, path, "must not be in the future");
    }
}

/// A PATCH of single customer fields. Absent fields are left alone; `null` clears an
/// optional field. Attributes are merged key by key (`null` removes a key).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    /// New full name.
    pub name: Option<String>,
    /// New email (must stay unique in the tenant).
    pub email: Option<String>,
    /// New phone, or null to clear.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// New address (all five parts), or null to clear.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<AddressInput>)]
    pub address: Option<Option<AddressInput>>,
    /// Given name, or null.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    pub first_name: Option<Option<String>>,
    /// Family name, or null.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    pub last_name: Option<Option<String>>,
    /// The store's id, or null.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    /// Loyalty tier, or null.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    pub loyalty_tier: Option<Option<String>>,
    /// Traits to merge; a `null` value removes the key.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
    /// Consent flags to change.
    pub consent: Option<ConsentPatch>,
}

/// Consent flags to change; absent flags are kept.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentPatch {
    /// `Some(b)` sets email marketing consent to `b`; `None` leaves it as stored.
    pub email: Option<bool>,
    /// `Some(b)` sets SMS marketing consent to `b`; `None` leaves it as stored.
    pub sms: Option<bool>,
    /// `Some(b)` sets push consent to `b`; `None` leaves it as stored.
    pub push: Option<bool>,
}

/// A validated PATCH.
#[derive(Debug, Clone, Default)]
pub struct ValidPatch {
    /// New name.
    pub name: Option<String>,
    /// New email.
    pub email: Option<Email>,
    /// `Some(None)` clears the phone, `Some(Some(_))` replaces it, `None` leaves it.
    pub phone: Option<Option<String>>,
    /// `Some(None)` clears the address, `Some(Some(_))` replaces it whole, `None` leaves it.
    pub address: Option<Option<Address>>,
    /// Given name change.
    pub first_name: Option<Option<String>>,
    /// Family name change.
    pub last_name: Option<Option<String>>,
    /// `Some(None)` clears the store's id, `Some(Some(_))` replaces it, `None` leaves it.
    pub external_id: Option<Option<String>>,
    /// `Some(None)` clears the tier, `Some(Some(_))` replaces it (at most 64 characters), `None`
    /// leaves it.
    pub loyalty_tier: Option<Option<String>>,
    /// Attribute merges.
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
    /// Only the channels sent change; the others keep their stored consent.
    pub consent: ConsentPatch,
}

impl CustomerPatch {
    /// Validates the fields that are present.
    pub fn validate(self) -> Result<ValidPatch, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut patch = ValidPatch {
            name: self
                .name
                .and_then(|n| text(&mut errors, "name", Some(n), true, 200)),
            email: self.email.and_then(|e| {
                Email::parse(&e)
                    .map_err(|m| super::push(&mut errors, "email", m))
                    .ok()
            }),
            ..ValidPatch::default()
        };
        patch.phone = self.phone.map(|p| phone(&mut errors, p));
        patch.address = self
            .address
            .map(|a| a.and_then(|a| a.validate(&mut errors)));
        patch.first_name = self
            .first_name
            .map(|v| text(&mut errors, "first_name", v, false, 100));
        patch.last_name = self
            .last_name
            .map(|v| text(&mut errors, "last_name", v, false, 100));
        patch.external_id = self
            .external_id
            .map(|v| text(&mut errors, "external_id", v, false, 128));
        patch.loyalty_tier = self
            .loyalty_tier
            .map(|v| text(&mut errors, "loyalty_tier", v, false, 64));
        if let Some(map) = &self.attributes
            && serde_json::Value::Object(map.clone()).to_string().len() > 16 * 1024
        {
            super::push(&mut errors, "attributes", "must be at most 16 KiB");
        }
        patch.attributes = self.attributes;
        patch.consent = self.consent.unwrap_or_default();
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(errors)
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
        let parsed = serde_json::from_value::<CustomerInput>(
            serde_json::json!({"email": "a@b.co", "tenant_id": "x"}),
        );
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
