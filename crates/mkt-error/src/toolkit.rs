//! What every service's `ApiError` shares, so no service writes it again: validation
//! details keyed by field path ([`FieldErrors`]), one description per variant
//! ([`DescribeError`]) from which [`api_error!`](crate::api_error) derives
//! `ResponseError` (status and code declared once), and the database and pool
//! conversions, with unique-constraint violations mapped to the service's conflicts.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::{ErrorInfo, internal, render};

/// Validation problems keyed by field path (`address.zipCode`, `items[2].price`), each
/// with its messages; sorted by path so answers are stable. Serialised as the envelope's
/// `details`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Adds `message` to the messages of `field`.
pub fn push_field_error(
    errors: &mut FieldErrors,
    field: impl Into<String>,
    message: impl Into<String>,
) {
    errors.entry(field.into()).or_default().push(message.into());
}

/// Errors of a single field.
pub fn field_error(field: impl Into<String>, message: impl Into<String>) -> FieldErrors {
    let mut errors = FieldErrors::new();
    push_field_error(&mut errors, field, message);
    errors
}

/// `errors` as the envelope's `details` value.
pub fn field_details(errors: &FieldErrors) -> serde_json::Value {
    serde_json::to_value(errors).unwrap_or_default()
}

/// How one error answers a client.
pub enum Described<'a> {
    /// A client-facing error: status, code, message, details.
    Client(ErrorInfo),
    /// An error that renders itself (authentication: it adds `WWW-Authenticate`).
    Delegated(&'a dyn ResponseError),
    /// Unexpected: the cause is logged, the client gets the generic 500.
    Internal(&'a anyhow::Error),
}

/// Implemented by each service's `ApiError`: the one place its variants get a status and
/// a code. [`api_error!`](crate::api_error) turns it into `ResponseError`.
pub trait DescribeError {
    /// This error's answer.
    fn describe(&self) -> Described<'_>;
}

/// The status `described` answers with.
pub fn status_of(described: Described<'_>) -> StatusCode {
    match described {
        Described::Client(info) => info.status,
        Described::Delegated(error) => error.status_code(),
        Described::Internal(cause) => match unstorable_text(cause) {
            Some(info) => info.status,
            None => StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

/// The response for `described`; an internal error's cause is logged (on the request's
/// span, which carries the request id) and never sent.
pub fn respond(described: Described<'_>) -> HttpResponse {
    match described {
        Described::Client(info) => render(info),
        Described::Delegated(error) => error.error_response(),
        Described::Internal(cause) if let Some(info) = unstorable_text(cause) => render(info),
        Described::Internal(cause) => {
            tracing::error!(error = %format!("{cause:#}"), "request failed");
            internal()
        }
    }
}

/// A client's text that PostgreSQL cannot store (a NUL character, `\u0000` in JSON:
/// SQLSTATE 22021 / "invalid byte sequence"): the input's fault, so a 400 for every
/// service rather than an internal error, whichever write it reached.
fn unstorable_text(cause: &anyhow::Error) -> Option<ErrorInfo> {
    let database = cause
        .chain()
        .find_map(|e| e.downcast_ref::<diesel::result::Error>())?;
    let diesel::result::Error::DatabaseError(_, info) = database else {
        return None;
    };
    let message = info.message();
    (message.contains("invalid byte sequence") || message.contains("0x00")).then(|| {
        ErrorInfo::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "Text fields may not contain NUL characters (\\u0000).",
        )
    })
}

/// The constraint a unique violation hit, when `error` is one; services map their own
/// constraints to conflicts (409) and everything else stays internal.
pub fn unique_violation(error: &diesel::result::Error) -> Option<&str> {
    match error {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            info,
        ) => info.constraint_name(),
        _ => None,
    }
}

/// Why a pooled connection could not be had (pool exhausted, database unreachable).
pub type PoolError = diesel_async::pooled_connection::deadpool::PoolError;

/// Derives, for a service error type implementing [`DescribeError`]: `ResponseError`,
/// `From<diesel::result::Error>` (unique violations of the listed constraints become the
/// given values, anything else the internal variant) and `From<PoolError>` (internal).
///
/// ```ignore
/// mkt_error::api_error!(ApiError, internal: ApiError::Internal, conflicts: {
///     "customers_tenant_email_key" => ApiError::Conflict("email_taken", "..."),
/// });
/// ```
#[macro_export]
macro_rules! api_error {
    ($ty:ident, internal: $internal:path $(, conflicts: { $($constraint:literal => $conflict:expr),* $(,)? })? $(,)?) => {
        impl $crate::__private::actix_web::ResponseError for $ty {
            fn status_code(&self) -> $crate::__private::actix_web::http::StatusCode {
                $crate::status_of($crate::DescribeError::describe(self))
            }
            fn error_response(&self) -> $crate::__private::actix_web::HttpResponse {
                $crate::respond($crate::DescribeError::describe(self))
            }
        }

        impl ::core::convert::From<$crate::__private::diesel::result::Error> for $ty {
            fn from(error: $crate::__private::diesel::result::Error) -> Self {
                #[allow(clippy::match_single_binding)]
                match $crate::unique_violation(&error) {
                    $($(Some($constraint) => $conflict,)*)?
                    _ => $internal(error.into()),
                }
            }
        }

        impl ::core::convert::From<$crate::PoolError> for $ty {
            fn from(error: $crate::PoolError) -> Self {
                $internal($crate::__private::anyhow::anyhow!("database pool: {error}"))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[derive(Debug, thiserror::Error)]
    enum SampleError {
        #[error("taken")]
        Taken,
        #[error("internal: {0}")]
        Internal(#[from] anyhow::Error),
    }

    impl DescribeError for SampleError {
        fn describe(&self) -> Described<'_> {
            match self {
                SampleError::Taken => Described::Client(ErrorInfo::new(
                    StatusCode::CONFLICT,
                    "name_taken",
                    "That name is taken.",
                )),
                SampleError::Internal(cause) => Described::Internal(cause),
            }
        }
    }

    crate::api_error!(SampleError, internal: SampleError::Internal, conflicts: {
        "things_name_key" => SampleError::Taken,
    });

    /// A database error's details: its message and the constraint it names.
    struct Info(&'static str, &'static str);
    impl diesel::result::DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.1
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            Some(self.0)
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn unique(constraint: &'static str) -> diesel::result::Error {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            Box::new(Info(constraint, "duplicate key")),
        )
    }

    #[test]
    fn listed_constraints_become_conflicts_and_the_rest_stays_internal() {
        let taken = SampleError::from(unique("things_name_key"));
        assert_eq!(taken.status_code(), StatusCode::CONFLICT);
        let other = SampleError::from(unique("something_else_key"));
        assert_eq!(other.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let missing = SampleError::from(diesel::result::Error::NotFound);
        assert_eq!(missing.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn an_internal_error_never_shows_its_cause() {
        let error = SampleError::Internal(anyhow::anyhow!("password=hunter2 in the DSN"));
        let body = error
            .error_response()
            .into_body()
            .try_into_bytes()
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("internal_error"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn text_postgres_cannot_store_is_the_clients_fault() {
        let error = SampleError::from(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new(Info(
                "",
                "invalid byte sequence for encoding \"UTF8\": 0x00",
            )),
        ));
        assert_eq!(error.status_code(), StatusCode::BAD_REQUEST);
        let body = error
            .error_response()
            .into_body()
            .try_into_bytes()
            .unwrap_or_default();
        assert!(String::from_utf8_lossy(&body).contains("validation_failed"));
    }

    #[test]
    fn field_errors_collect_messages_per_path() {
        let mut errors = field_error("email", "is required");
        push_field_error(&mut errors, "email", "must be an address");
        push_field_error(&mut errors, "address.zipCode", "is required");
        assert_eq!(
            field_details(&errors),
            serde_json::json!({
                "address.zipCode": ["is required"],
                "email": ["is required", "must be an address"],
            })
        );
    }
}
