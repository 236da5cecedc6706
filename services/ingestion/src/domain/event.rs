//! Behaviour events (seed 004's event tracking), validated into [`ValidEvent`].

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::customer::{Email, not_in_future};
use super::{CustomerRef, FieldErrors, push};

/// The event types seed 004 names; any other snake_case name is a custom type.
pub const KNOWN_TYPES: [&str; 7] = [
    "page_view",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "email_opened",
    "email_clicked",
    "campaign_converted",
];

/// A tracked event. `tenant_id` is accepted for seed compatibility but the tenant is
/// always the token's: a different value is refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// Must equal the token's tenant when sent.
    #[serde(default, deserialize_with = "super::string_or_number")]
    #[schema(value_type = Option<String>)]
    pub tenant_id: Option<String>,
    /// Our customer id (UUID) or the store's customer id.
    #[serde(default, deserialize_with = "super::string_or_number")]
    #[schema(value_type = Option<String>)]
    pub customer_id: Option<String>,
    /// The store's customer id, instead of `customer_id`.
    pub customer_external_id: Option<String>,
    /// The customer's email, instead of `customer_id`.
    pub customer_email: Option<String>,
    /// page_view, add_to_cart, ... or a custom snake_case name.
    #[schema(example = "page_view")]
    pub event_type: Option<String>,
    /// Free-form properties (a JSON object, at most 32 KiB).
    #[schema(value_type = Option<Object>)]
    pub properties: Option<serde_json::Value>,
    /// When it happened (RFC 3339); default now.
    pub timestamp: Option<DateTime<Utc>>,
}

/// A validated event.
#[derive(Debug, Clone)]
pub struct ValidEvent {
    /// Whose event.
    pub customer: CustomerRef,
    /// Type name.
    pub event_type: String,
    /// The event's properties: always a JSON object (`{}` when none were sent).
    pub properties: serde_json::Value,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

/// Why an event was refused.
#[derive(Debug)]
pub enum EventRejection {
    /// Field problems.
    Invalid(FieldErrors),
    /// The body names another tenant.
    TenantMismatch,
}

fn valid_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl EventInput {
    /// Validates against the caller's tenant.
    pub fn validate(self, tenant: &str) -> Result<ValidEvent, EventRejection> {
        if self.tenant_id.as_deref().is_some_and(|t| t != tenant) {
            return Err(EventRejection::TenantMismatch);
        }
        let mut errors = FieldErrors::new();
        let customer = match (
            self.customer_id,
            self.customer_external_id,
            self.customer_email,
        ) {
            (Some(id), None, None) if !id.trim().is_empty() => {
                Some(CustomerRef::from_id_or_external(id.trim()))
            }
            (None, Some(external), None) if !external.trim().is_empty() => {
                Some(CustomerRef::External(external.trim().to_owned()))
            }
            (None, None, Some(email)) => Email::parse(&email)
                .map(|e| CustomerRef::Email(e.as_str().to_owned()))
                .map_err(|m| push(&mut errors, "customer_email", m))
                .ok(),
            (None, None, None) => {
                push(
                    &mut errors,
                    "customer_id",
                    "is required (or customer_external_id, or customer_email)",
                );
                None
            }
            _ => {
                push(
                    &mut errors,
                    "customer_id",
                    "give exactly one of customer_id, customer_external_id, customer_email",
                );
                None
            }
        };
        let event_type = match self.event_type.map(|t| t.trim().to_owned()) {
            None => {
                push(&mut errors, "event_type", "is required");
                String::new()
            }
            Some(t) if !valid_type_name(&t) => {
                push(
                    &mut errors,
                    "event_type",
                    "must be a known type or a snake_case name (a-z, 0-9, _; at most 64)",
                );
                t
            }
            Some(t) => t,
        };
        let properties = self.properties.unwrap_or_else(|| serde_json::json!({}));
        if !properties.is_object() {
            push(&mut errors, "properties", "must be a JSON object");
        } else if properties.to_string().len() > 32 * 1024 {
            push(&mut errors, "properties", "must be at most 32 KiB");
        }
        not_in_future(&mut errors, "timestamp", self.timestamp);
        match customer {
            Some(customer) if errors.is_empty() => Ok(ValidEvent {
                customer,
                event_type,
                properties,
                occurred_at: self.timestamp.unwrap_or_else(Utc::now),
            }),
            _ => Err(EventRejection::Invalid(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_types_are_validated_and_foreign_tenants_refused() {
        let input = |json| serde_json::from_value::<EventInput>(json).expect("shape");
        let ok = input(serde_json::json!({"customer_id": 12345, "event_type": "wishlist_add"}))
            .validate("acme")
            .expect("valid");
        assert_eq!(ok.customer, CustomerRef::External("12345".into()));
        assert!(KNOWN_TYPES.iter().all(|t| valid_type_name(t)));
        assert!(matches!(
            input(serde_json::json!({"customer_id": "x", "event_type": "Bad Type!"}))
                .validate("acme"),
            Err(EventRejection::Invalid(_))
        ));
        assert!(matches!(
            input(
                serde_json::json!({"tenant_id": 56, "customer_id": "x", "event_type": "page_view"})
            )
            .validate("acme"),
            Err(EventRejection::TenantMismatch)
        ));
    }
}
