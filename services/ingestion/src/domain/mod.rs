//! Ingestion's rules: what a valid customer, order and behaviour event are; tenant
//! integrations' settings, sealed credentials and VTEX's payloads. No I/O here.

pub mod crypto;
pub mod customer;
pub mod event;
pub mod import;
pub mod integrations;
pub mod order;
pub mod vtex;

pub use mkt_error::FieldErrors;
/// Records a problem with the field at `path`.
pub use mkt_error::push_field_error as push;

/// Trims `value`, treats blank as absent, and checks presence and length.
pub fn text(
    errors: &mut FieldErrors,
    path: &str,
    value: Option<String>,
    required: bool,
    max: usize,
) -> Option<String> {
    let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    match &value {
        None if required => push(errors, path, "is required"),
        Some(v) if v.chars().count() > max => {
            push(errors, path, format!("must be at most {max} characters"))
        }
        _ => {}
    }
    value
}

/// Deserialises a field that distinguishes "absent" (`None`) from "null" (`Some(None)`),
/// which PATCH bodies need to clear a value.
pub fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Some(Option::<T>::deserialize(deserializer)?))
}

/// Accepts a JSON string or number as text (stores send numeric ids).
pub fn string_or_number<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(
        Option::<Raw>::deserialize(deserializer)?.map(|raw| match raw {
            Raw::Text(text) => text,
            Raw::Number(number) => number.to_string(),
        }),
    )
}

/// How a request names a customer: our id, the store's id, or the email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerRef {
    /// Our UUID.
    Id(uuid::Uuid),
    /// The store's `external_id`.
    External(String),
    /// The (normalised) email.
    Email(String),
}

impl CustomerRef {
    /// A path or body id: a UUID is ours, anything else the store's external id.
    pub fn from_id_or_external(raw: &str) -> Self {
        match uuid::Uuid::parse_str(raw) {
            Ok(id) => CustomerRef::Id(id),
            Err(_) => CustomerRef::External(raw.to_owned()),
        }
    }
}

impl std::fmt::Display for CustomerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CustomerRef::Id(id) => write!(f, "{id}"),
            CustomerRef::External(id) => f.write_str(id),
            CustomerRef::Email(email) => f.write_str(email),
        }
    }
}
