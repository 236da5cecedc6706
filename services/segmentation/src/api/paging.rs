//! The caps on list paging, in one place: a page or offset past them is a 400
//! `invalid_query` (before, `page=9223372036854775807` overflowed `(page - 1) * limit`
//! and panicked the worker). Listed in docs/errors.md.

use crate::error::ApiError;

/// Highest 1-based `page` a list accepts (with at most 200 per page: 20 million rows).
pub const MAX_PAGE: i64 = 100_000;
/// Highest `offset` a list accepts.
pub const MAX_OFFSET: i64 = 10_000_000;

/// The row offset of a 1-based `page` of `limit` rows, refusing pages past [`MAX_PAGE`].
pub fn page_offset(page: i64, limit: i64) -> Result<i64, ApiError> {
    if page > MAX_PAGE {
        return Err(ApiError::InvalidQuery(format!(
            "page must be at most {MAX_PAGE}"
        )));
    }
    (page.max(1) - 1)
        .checked_mul(limit)
        .ok_or_else(|| ApiError::InvalidQuery("page is out of range".into()))
}

/// An explicit `offset`, refusing one past [`MAX_OFFSET`].
pub fn offset(offset: i64) -> Result<i64, ApiError> {
    if offset > MAX_OFFSET {
        return Err(ApiError::InvalidQuery(format!(
            "offset must be at most {MAX_OFFSET}"
        )));
    }
    Ok(offset.max(0))
}
