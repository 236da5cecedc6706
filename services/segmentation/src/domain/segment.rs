//! A segment as a marketer writes it: validated on construction, so the use cases only
//! ever see a well-formed draft.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::rules::{Group, RuleError, dialects};

/// The three kinds of segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Rules, kept true as data arrives.
    Dynamic,
    /// An explicit list of customer ids.
    Static,
    /// Customers matched from an uploaded CSV of emails or external ids.
    Imported,
}

impl Kind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dynamic => "dynamic",
            Kind::Static => "static",
            Kind::Imported => "imported",
        }
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Option<Kind> {
        match raw {
            "dynamic" => Some(Kind::Dynamic),
            "static" => Some(Kind::Static),
            "imported" => Some(Kind::Imported),
            _ => None,
        }
    }
}

/// Why a draft was refused.
#[derive(Debug)]
pub enum DraftError {
    /// The rules are invalid (paths of the bad nodes).
    Rules(Vec<RuleError>),
    /// Other fields, keyed by field name.
    Fields(Value),
}

/// What defines a segment's audience.
#[derive(Debug, Clone)]
pub enum Audience {
    /// A canonical rule tree.
    Rules(Group),
    /// Explicit customer ids.
    Members(Vec<Uuid>),
}

/// A validated segment to create or to replace an existing one with.
#[derive(Debug, Clone)]
pub struct Draft {
    /// 1-200 characters, trimmed.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Dynamic (rules), static (ids) or imported (CSV); decides which of `rules` or the ids defines
    /// the members.
    pub kind: Kind,
    /// Rules or members.
    pub audience: Audience,
    /// Whether campaigns may use it.
    pub is_active: bool,
}

/// The raw fields of a create or replace request.
#[derive(Debug, Default)]
pub struct RawDraft {
    /// Display name as sent; trimmed and required (1 to 200 characters) when the draft is
    /// validated.
    pub name: Option<String>,
    /// Free text for people; `None` or absent leaves no description.
    pub description: Option<String>,
    /// `type`.
    pub kind: Option<String>,
    /// Seed 003 / 000 rules.
    pub rules: Option<Value>,
    /// Seed 001 criteria.
    pub criteria: Option<Value>,
    /// Static members.
    pub customer_ids: Option<Vec<Uuid>>,
    /// Active flag.
    pub is_active: Option<bool>,
}

/// At most this many explicit ids in one JSON request (larger lists: import a CSV).
pub const MAX_STATIC_IDS: usize = 100_000;

/// Checks a segment name; the error lists what is wrong.
pub fn name(raw: Option<String>) -> Result<String, Value> {
    raw.map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty() && n.chars().count() <= 200)
        .ok_or_else(|| json!(["is required (at most 200 characters)"]))
}

impl Draft {
    /// Validates `raw`. `current` is the kind and active flag of the segment being
    /// replaced (its kind is kept unless `type` says otherwise); an imported segment's
    /// members can only come from a CSV upload, so JSON can create dynamic and static
    /// segments, and replace an imported one's name, description and flag.
    pub fn parse(
        raw: RawDraft,
        current: Option<(Kind, bool, &[Uuid])>,
    ) -> Result<Draft, DraftError> {
        let mut problems = Map::new();
        let name = name(raw.name)
            .map_err(|e| problems.insert("name".into(), e))
            .ok();
        let kind = match raw.kind.as_deref() {
            None => current.map_or(Kind::Dynamic, |c| c.0),
            Some(k) => {
                match Kind::parse(k) {
                    Some(Kind::Imported) if current.is_none_or(|c| c.0 != Kind::Imported) => {
                        problems.insert(
                        "type".into(),
                        json!(["imported segments are created by uploading a CSV to /segments/import"]),
                    );
                        Kind::Imported
                    }
                    Some(kind) => kind,
                    None => {
                        problems.insert("type".into(), json!(["must be dynamic or static"]));
                        Kind::Dynamic
                    }
                }
            }
        };
        let audience = match kind {
            // A bad `type` is reported alone: the rules' meaning depends on it.
            _ if problems.contains_key("type") => Audience::Members(Vec::new()),
            Kind::Dynamic => {
                let (tree, _) = dialects::normalise(raw.rules.as_ref(), raw.criteria.as_ref())
                    .map_err(DraftError::Rules)?;
                Audience::Rules(tree)
            }
            Kind::Static => {
                let ids = raw.customer_ids.unwrap_or_default();
                if ids.len() > MAX_STATIC_IDS {
                    problems.insert(
                        "customer_ids".into(),
                        json!([format!(
                            "at most {MAX_STATIC_IDS} ids; import a CSV for more"
                        )]),
                    );
                }
                Audience::Members(ids)
            }
            Kind::Imported => {
                if raw.customer_ids.is_some() || raw.rules.is_some() || raw.criteria.is_some() {
                    problems.insert(
                        "customer_ids".into(),
                        json!(["an imported segment's members come from its CSV"]),
                    );
                }
                Audience::Members(current.map(|c| c.2.to_vec()).unwrap_or_default())
            }
        };
        match name {
            Some(name) if problems.is_empty() => Ok(Draft {
                name,
                description: raw.description,
                kind,
                audience,
                is_active: raw.is_active.unwrap_or_else(|| current.is_none_or(|c| c.1)),
            }),
            _ => Err(DraftError::Fields(Value::Object(problems))),
        }
    }
}

/// Which column of an uploaded CSV identifies customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKey {
    /// `email` (matched case-insensitively).
    Email,
    /// `external_id` (the store's own id).
    ExternalId,
    /// `customer_id` (our UUID).
    CustomerId,
}

impl ImportKey {
    /// Picks the key column from a header row: the first of `email`, `external_id`,
    /// `customer_id` (any case, surrounding spaces ignored) and its index.
    pub fn from_header<'a>(
        header: impl IntoIterator<Item = &'a str>,
    ) -> Option<(ImportKey, usize)> {
        let names: Vec<String> = header
            .into_iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_lowercase())
            .collect();
        [
            ("email", ImportKey::Email),
            ("external_id", ImportKey::ExternalId),
            ("customer_id", ImportKey::CustomerId),
        ]
        .into_iter()
        .find_map(|(wanted, key)| names.iter().position(|n| n == wanted).map(|i| (key, i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_picks_the_first_known_key_column() {
        assert_eq!(
            ImportKey::from_header(["Name", " Email "]),
            Some((ImportKey::Email, 1))
        );
        assert_eq!(
            ImportKey::from_header(["\u{feff}external_id", "x"]),
            Some((ImportKey::ExternalId, 0))
        );
        assert_eq!(ImportKey::from_header(["phone"]), None);
    }

    #[test]
    fn a_draft_needs_a_name_and_known_type() {
        let raw = RawDraft {
            kind: Some("weird".into()),
            ..Default::default()
        };
        let Err(DraftError::Fields(problems)) = Draft::parse(raw, None) else {
            panic!("expected field errors");
        };
        assert!(problems.get("name").is_some() && problems.get("type").is_some());
    }
}
