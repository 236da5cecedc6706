//! Dev JWTs: HS256, signed with the stack's secret.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::stack::{AUDIENCE, ISSUER, secret_path};

/// `cargo xtask token --tenant T --roles r1,r2 [--ttl 1h]`
pub fn command(args: &[String]) -> Result<ExitCode> {
    let mut tenant = None;
    let mut roles = None;
    let mut ttl = Duration::from_secs(3600);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| anyhow!("{flag} needs a value"))
        };
        match flag {
            "--tenant" => tenant = Some(value()?),
            "--roles" => roles = Some(value()?),
            "--ttl" => ttl = parse_ttl(&value()?)?,
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask token --tenant T --roles r1,r2 [--ttl 1h]"
            ),
        }
    }
    let tenant = tenant
        .filter(|t| !t.is_empty())
        .context("--tenant is required")?;
    let roles: Vec<String> = roles
        .context("--roles is required (comma-separated)")?
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    let secret = read_secret(&secret_path(&crate::workspace_root()))?;
    println!("{}", mint(&secret, &tenant, &roles, ttl)?);
    Ok(ExitCode::SUCCESS)
}

fn read_secret(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(secret) => Ok(secret.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "no dev secret at {}: run cargo xtask up first",
                path.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// A token for `tenant` with `roles`, valid from now for `ttl`.
pub fn mint(secret: &str, tenant: &str, roles: &[String], ttl: Duration) -> Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "sub": "dev-user",
        "tenant_id": tenant,
        "roles": roles,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl.as_secs(),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// `30s`, `15m`, `1h`, `30d`.
pub fn parse_ttl(text: &str) -> Result<Duration> {
    let bad = || anyhow!("bad ttl {text:?}: use a number with s, m, h or d, e.g. 15m");
    let unit = text.chars().last().ok_or_else(bad)?;
    let amount: u64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| bad())?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    if amount == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(
        amount.checked_mul(seconds).ok_or_else(bad)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn ttls_parse_with_each_unit_and_reject_garbage() -> Result<()> {
        assert_eq!(parse_ttl("30s")?, Duration::from_secs(30));
        assert_eq!(parse_ttl("15m")?, Duration::from_secs(900));
        assert_eq!(parse_ttl("1h")?, Duration::from_secs(3600));
        assert_eq!(parse_ttl("30d")?, Duration::from_secs(30 * 86_400));
        for bad in [
            "",
            "h",
            "10",
            "1w",
            "-1h",
            "0m",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} should be rejected");
        }
        Ok(())
    }

    #[test]
    fn minted_token_verifies_with_the_secret_and_carries_the_claims() -> Result<()> {
        let roles = vec!["admin".to_owned(), "reader".to_owned()];
        let token = mint("s3cret", "demo", &roles, Duration::from_secs(600))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b"s3cret"),
            &validation,
        )?
        .claims;
        assert_eq!(claims["sub"], "dev-user");
        assert_eq!(claims["tenant_id"], "demo");
        assert_eq!(claims["roles"], serde_json::json!(["admin", "reader"]));
        let (iat, exp) = (
            claims["iat"].as_u64().context("iat")?,
            claims["exp"].as_u64().context("exp")?,
        );
        assert_eq!(exp - iat, 600);
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().context("jti")?).is_ok());

        let wrong = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b"other"),
            &validation,
        );
        assert!(wrong.is_err(), "a different secret must not verify");
        Ok(())
    }
}
