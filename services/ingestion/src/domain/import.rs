//! CSV imports: which columns each kind accepts, and how a row becomes a customer or an
//! order line. Rows are validated with the same rules as the JSON API.

use std::collections::BTreeMap;

use super::FieldErrors;
use super::customer::{AddressInput, ConsentInput, CustomerInput, ValidCustomer};
use super::order::{OrderInput, OrderItemInput, ValidOrder};

/// What an import creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    /// One customer per row.
    Customers,
    /// One order line per row; consecutive rows with the same `order_external_id` form
    /// one order.
    Orders,
}

impl ImportKind {
    /// Parses `customers` or `orders`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "customers" => Some(ImportKind::Customers),
            "orders" => Some(ImportKind::Orders),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Customers => "customers",
            ImportKind::Orders => "orders",
        }
    }

    /// Columns a file may have.
    pub fn allowed_columns(self) -> &'static [&'static str] {
        match self {
            ImportKind::Customers => &[
                "name",
                "email",
                "phone",
                "street",
                "city",
                "state",
                "zip_code",
                "country",
                "first_name",
                "last_name",
                "external_id",
                "created_at",
                "loyalty_tier",
                "consent_email",
                "consent_sms",
                "consent_push",
            ],
            ImportKind::Orders => &[
                "order_external_id",
                "customer_id",
                "customer_email",
                "customer_external_id",
                "ordered_at",
                "currency",
                "status",
                "promo_code",
                "product_id",
                "name",
                "price",
                "quantity",
            ],
        }
    }

    /// Columns a file must have.
    pub fn required_columns(self) -> &'static [&'static str] {
        match self {
            ImportKind::Customers => &["name", "email"],
            ImportKind::Orders => &[
                "order_external_id",
                "currency",
                "product_id",
                "name",
                "price",
                "quantity",
            ],
        }
    }
}

/// Most columns a file may have, and longest field, in bytes.
pub const MAX_COLUMNS: usize = 64;
/// Longest accepted field.
pub const MAX_FIELD_BYTES: usize = 10 * 1024;
/// Largest upload (1 GiB: ten million rows of about 100 bytes); a larger one is a 413.
/// Records are capped too ([`mkt_csv::MAX_RECORD_BYTES`]).
pub const MAX_UPLOAD_BYTES: u64 = 1024 * 1024 * 1024;

/// Checks a header row: known columns only (nothing is mass-assigned), no duplicates,
/// the required ones present. `zipCode` is accepted as `zip_code`.
pub fn validate_header(kind: ImportKind, raw: &[String]) -> Result<Vec<String>, FieldErrors> {
    let mut errors = FieldErrors::new();
    let header: Vec<String> = raw
        .iter()
        .map(|c| {
            let c = c.trim().trim_start_matches('\u{feff}');
            if c == "zipCode" {
                "zip_code".to_owned()
            } else {
                c.to_owned()
            }
        })
        .collect();
    if header.len() > MAX_COLUMNS {
        super::push(
            &mut errors,
            "header",
            format!("at most {MAX_COLUMNS} columns"),
        );
    }
    for (index, column) in header.iter().enumerate() {
        if !kind.allowed_columns().contains(&column.as_str()) {
            super::push(&mut errors, "header", format!("unknown column {column:?}"));
        } else if header[..index].contains(column) {
            super::push(
                &mut errors,
                "header",
                format!("duplicate column {column:?}"),
            );
        }
    }
    for required in kind.required_columns() {
        if !header.iter().any(|c| c == required) {
            super::push(
                &mut errors,
                "header",
                format!("missing required column {required:?}"),
            );
        }
    }
    if kind == ImportKind::Orders
        && !["customer_id", "customer_email", "customer_external_id"]
            .iter()
            .any(|c| header.iter().any(|h| h == c))
    {
        super::push(
            &mut errors,
            "header",
            "needs one of customer_id, customer_email, customer_external_id",
        );
    }
    if errors.is_empty() {
        Ok(header)
    } else {
        Err(errors)
    }
}

/// A row as column -> value (blank values are absent).
fn row_map<'a>(header: &'a [String], fields: &'a [String]) -> BTreeMap<&'a str, &'a str> {
    header
        .iter()
        .map(String::as_str)
        .zip(fields.iter().map(|f| f.trim()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// Flattens field errors into one line for the rejection report.
pub fn describe(errors: &FieldErrors) -> String {
    errors
        .iter()
        .map(|(field, problems)| format!("{field}: {}", problems.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn boolean(value: Option<&&str>, column: &str, errors: &mut FieldErrors) -> bool {
    match value.map(|v| v.to_ascii_lowercase()) {
        None => false,
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "y") => true,
        Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "n") => false,
        Some(_) => {
            super::push(errors, column, "must be true or false");
            false
        }
    }
}

/// A customers-file row as a validated customer.
pub fn customer_row(header: &[String], fields: &[String]) -> Result<ValidCustomer, String> {
    let map = row_map(header, fields);
    let mut errors = FieldErrors::new();
    let text = |c: &str| map.get(c).map(|v| (*v).to_owned());
    let created_at = match map.get("created_at") {
        None => None,
        Some(raw) => match chrono::DateTime::parse_from_rfc3339(raw) {
            Ok(at) => Some(at.with_timezone(&chrono::Utc)),
            Err(_) => {
                super::push(&mut errors, "created_at", "must be an RFC 3339 instant");
                None
            }
        },
    };
    let has_address = ["street", "city", "state", "zip_code", "country"]
        .iter()
        .any(|c| map.contains_key(c));
    let consent = ConsentInput {
        email: boolean(map.get("consent_email"), "consent_email", &mut errors),
        sms: boolean(map.get("consent_sms"), "consent_sms", &mut errors),
        push: boolean(map.get("consent_push"), "consent_push", &mut errors),
    };
    let input = CustomerInput {
        name: text("name"),
        email: text("email"),
        phone: text("phone"),
        address: has_address.then(|| AddressInput {
            street: text("street"),
            city: text("city"),
            state: text("state"),
            zip_code: text("zip_code"),
            country: text("country"),
        }),
        first_name: text("first_name"),
        last_name: text("last_name"),
        external_id: text("external_id"),
        created_at,
        loyalty_tier: text("loyalty_tier"),
        attributes: None,
        consent: Some(consent),
    };
    match input.validate() {
        Ok(valid) if errors.is_empty() => Ok(valid),
        Ok(_) => Err(describe(&errors)),
        Err(mut more) => {
            more.append(&mut errors);
            Err(describe(&more))
        }
    }
}

/// The grouping key of an orders-file row.
pub fn order_key(header: &[String], fields: &[String]) -> String {
    header
        .iter()
        .position(|c| c == "order_external_id")
        .and_then(|i| fields.get(i))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// Rows of one order (same `order_external_id`) as a validated order.
pub fn order_rows(header: &[String], rows: &[&[String]]) -> Result<ValidOrder, String> {
    let Some(first) = rows.first() else {
        return Err("no rows".into());
    };
    let head = row_map(header, first);
    let mut errors = FieldErrors::new();
    let number = |value: Option<&&str>, column: &str, errors: &mut FieldErrors| -> Option<i64> {
        value.and_then(|v| {
            v.parse::<i64>()
                .map_err(|_| super::push(errors, column, "must be a whole number"))
                .ok()
        })
    };
    let mut items = Vec::new();
    let mut total = 0i64;
    for row in rows {
        let map = row_map(header, row);
        let price = number(map.get("price"), "price", &mut errors);
        let quantity = number(map.get("quantity"), "quantity", &mut errors)
            .and_then(|q| i32::try_from(q).ok());
        let line = price
            .zip(quantity)
            .and_then(|(p, q)| p.checked_mul(i64::from(q)));
        total = total.saturating_add(line.unwrap_or(0));
        items.push(OrderItemInput {
            product_id: map.get("product_id").map(|v| (*v).to_owned()),
            name: map.get("name").map(|v| (*v).to_owned()),
            price,
            quantity,
            total: line,
        });
    }
    let ordered_at = match head.get("ordered_at") {
        None => None,
        Some(raw) => chrono::DateTime::parse_from_rfc3339(raw)
            .map(|at| at.with_timezone(&chrono::Utc))
            .map_err(|_| super::push(&mut errors, "ordered_at", "must be an RFC 3339 instant"))
            .ok(),
    };
    let input = OrderInput {
        customer_id: head.get("customer_id").map(|v| (*v).to_owned()),
        customer_email: head.get("customer_email").map(|v| (*v).to_owned()),
        customer_external_id: head.get("customer_external_id").map(|v| (*v).to_owned()),
        external_id: head.get("order_external_id").map(|v| (*v).to_owned()),
        items: Some(items),
        total_amount: Some(total),
        currency: head.get("currency").map(|v| (*v).to_owned()),
        status: head.get("status").map(|v| (*v).to_owned()),
        ordered_at,
        promo_code: head.get("promo_code").map(|v| (*v).to_owned()),
    };
    match input.validate() {
        Ok(valid) if errors.is_empty() => Ok(valid),
        Ok(_) => Err(describe(&errors)),
        Err(mut more) => {
            more.append(&mut errors);
            Err(describe(&more))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn headers_refuse_unknown_and_missing_columns() {
        assert!(
            validate_header(
                ImportKind::Customers,
                &strings(&["email", "name", "zipCode"])
            )
            .is_ok()
        );
        let errors = validate_header(ImportKind::Customers, &strings(&["email", "is_admin"]))
            .expect_err("bad header");
        let problems = errors["header"].join(" | ");
        assert!(
            problems.contains("unknown column \"is_admin\"")
                && problems.contains("missing required column \"name\"")
        );
    }

    #[test]
    fn rows_are_validated_like_the_api() {
        let header = strings(&["name", "email", "consent_email"]);
        assert!(
            customer_row(&header, &strings(&["Ann", "ann@example.com", "yes"]))
                .expect("valid")
                .consent
                .email
        );
        let reason =
            customer_row(&header, &strings(&["Ann", "nope", "maybe"])).expect_err("invalid");
        assert!(
            reason.contains("email: Invalid email format") && reason.contains("consent_email"),
            "{reason}"
        );
        let header = strings(&[
            "order_external_id",
            "customer_email",
            "currency",
            "product_id",
            "name",
            "price",
            "quantity",
        ]);
        let a = strings(&["o-1", "ann@example.com", "EUR", "p1", "Cup", "250", "2"]);
        let b = strings(&["o-1", "ann@example.com", "EUR", "p2", "Pot", "1000", "1"]);
        let order = order_rows(&header, &[&a, &b]).expect("valid");
        assert_eq!((order.total_amount, order.items.len()), (1500, 2));
    }
}
