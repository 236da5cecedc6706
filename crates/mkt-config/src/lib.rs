//! Layered configuration for every binary: compiled-in defaults, then the environment.
//!
//! Owns: the loading order and the `MKT_` naming rule (`MKT_DATABASE__URL` sets
//! `database.url`). Must never: log or `Debug`-print a secret (secrets are
//! [`secrecy::SecretString`], which redacts itself), or know about any service's fields.

use serde::de::DeserializeOwned;

pub use secrecy::{ExposeSecret, SecretString};

/// Prefix of every environment variable we read.
pub const ENV_PREFIX: &str = "MKT";

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

/// Loads `T` from its serde defaults overlaid with `MKT_*` environment variables.
///
/// Nested fields use a double underscore: `MKT_BUS__URL` sets `bus.url`. Values are
/// parsed into the field's type (numbers, booleans); comma lists are not split, so a
/// field that needs a list parses it itself.
pub fn load<T: DeserializeOwned>() -> Result<T, ConfigError> {
    load_from(std::env::vars())
}

/// Like [`load`], but from an explicit set of variables (tests use this to avoid
/// mutating the process environment).
pub fn load_from<T, I>(vars: I) -> Result<T, ConfigError>
where
    T: DeserializeOwned,
    I: IntoIterator<Item = (String, String)>,
{
    let source: config::Map<String, String> = vars
        .into_iter()
        .filter(|(key, _)| key.starts_with(ENV_PREFIX))
        .collect();
    let settings = config::Config::builder()
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(source)),
        )
        .build()?;
    Ok(settings.try_deserialize()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Db {
        url: SecretString,
        #[serde(default = "default_pool")]
        pool_size: u32,
    }
    fn default_pool() -> u32 {
        16
    }
    #[derive(Debug, Deserialize)]
    struct Settings {
        database: Db,
    }

    #[test]
    fn environment_overrides_defaults_and_secrets_stay_redacted() {
        let vars = [
            (
                "MKT_DATABASE__URL".to_owned(),
                "postgres://u:hunter2@h/db".to_owned(),
            ),
            ("OTHER".to_owned(), "ignored".to_owned()),
        ];
        let settings: Settings = load_from(vars).expect("loads");
        assert_eq!(settings.database.pool_size, 16);
        assert_eq!(
            settings.database.url.expose_secret(),
            "postgres://u:hunter2@h/db"
        );
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn numbers_are_parsed_and_missing_required_fields_are_errors() {
        let vars = [
            ("MKT_DATABASE__URL".to_owned(), "x".to_owned()),
            ("MKT_DATABASE__POOL_SIZE".to_owned(), "4".to_owned()),
        ];
        let settings: Settings = load_from(vars).expect("loads");
        assert_eq!(settings.database.pool_size, 4);
        let missing = load_from::<Settings, _>(Vec::new());
        assert!(missing.is_err());
    }
}
