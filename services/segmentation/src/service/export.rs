//! Segment exports: every member with contact info, order stats and RFM analytics, as
//! CSV or XLSX, for segments of any size.
//!
//! Members are read in keyset pages, so memory stays flat however large the segment.
//! CSV streams page by page as it is read. XLSX cannot be sent before it is complete (a
//! zip's directory comes last), so rows go to a constant-memory worksheet on disk and
//! the finished file is streamed from there; a sheet holds at most 1,048,576 rows, and
//! bigger segments continue on the next sheet.

use bytes::Bytes;
use futures_util::Stream;
use mkt_runtime::Infra;
use rust_xlsxwriter::{Workbook, Worksheet};
use uuid::Uuid;

use crate::error::ApiError;
use crate::store::customer_records::{self, MemberRow};
use crate::store::members;

/// The columns of an export. Money is in minor units (cents), as everywhere in the API.
pub const COLUMNS: &[&str] = &[
    "customer_id",
    "external_id",
    "name",
    "email",
    "phone",
    "city",
    "state",
    "country",
    "orders_count",
    "total_spent_minor",
    "last_order_at",
    "rfm_segment",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "clv_minor",
    "clv_tier",
    "churn_risk",
];

const PAGE: i64 = 1_000;
/// Excel's row limit per sheet, header included.
const SHEET_ROWS: u32 = 1_048_576;

/// A cell: text or a number (numbers stay numbers in XLSX).
enum Cell {
    Text(String),
    Number(f64),
    Empty,
}

fn cells(row: &MemberRow) -> Vec<Cell> {
    let text = |v: &Option<String>| v.clone().map_or(Cell::Empty, Cell::Text);
    let int = |v: Option<i64>| v.map_or(Cell::Empty, |n| Cell::Number(n as f64));
    vec![
        Cell::Text(row.customer_id.to_string()),
        text(&row.external_id),
        text(&row.name),
        text(&row.email),
        text(&row.phone),
        text(&row.city),
        text(&row.state),
        text(&row.country),
        int(Some(row.orders_count)),
        int(Some(row.total_spent)),
        row.last_order_at
            .map_or(Cell::Empty, |t| Cell::Text(t.to_rfc3339())),
        text(&row.rfm_segment),
        int(row.recency_score.map(i64::from)),
        int(row.frequency_score.map(i64::from)),
        int(row.monetary_score.map(i64::from)),
        int(row.clv),
        text(&row.clv_tier),
        text(&row.churn_risk),
    ]
}

/// The next page of members after `after`, with their display rows.
async fn page(
    infra: &Infra,
    tenant: &str,
    segment: Uuid,
    after: Option<Uuid>,
) -> Result<(Vec<MemberRow>, Option<Uuid>), ApiError> {
    let mut conn = infra.pool.get().await?;
    let ids = members::after(&mut conn, tenant, segment, after, PAGE).await?;
    let last = ids.last().copied();
    let rows = customer_records::member_rows(&mut conn, tenant, &ids).await?;
    Ok((rows, last))
}

struct CsvState {
    infra: Infra,
    tenant: String,
    segment: Uuid,
    after: Option<Uuid>,
    started: bool,
    done: bool,
}

/// CSV lines, every cell neutralised against formula injection (`mkt_csv::record`): a
/// customer's name or city is theirs to choose, and must stay text in a spreadsheet.
async fn csv_bytes(records: Vec<Vec<String>>) -> Result<Bytes, ApiError> {
    let mut buffer = Vec::new();
    for record in records {
        buffer.extend(mkt_csv::record(&record).await);
    }
    Ok(Bytes::from(buffer))
}

/// The segment's members as a CSV stream (header first, then a chunk per page).
pub fn csv(
    infra: Infra,
    tenant: String,
    segment: Uuid,
) -> impl Stream<Item = Result<Bytes, ApiError>> {
    let state = CsvState {
        infra,
        tenant,
        segment,
        after: None,
        started: false,
        done: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        if !state.started {
            state.started = true;
            let header = vec![COLUMNS.iter().map(|c| (*c).to_owned()).collect()];
            return Some((csv_bytes(header).await, state));
        }
        let chunk = match page(&state.infra, &state.tenant, state.segment, state.after).await {
            Ok((rows, last)) => {
                state.after = last;
                state.done = last.is_none();
                let records = rows
                    .iter()
                    .map(|row| {
                        cells(row)
                            .into_iter()
                            .map(|c| match c {
                                Cell::Text(s) => s,
                                Cell::Number(n) => format!("{n}"),
                                Cell::Empty => String::new(),
                            })
                            .collect()
                    })
                    .collect();
                csv_bytes(records).await
            }
            Err(error) => {
                // The status line is gone by now: end the body early, and log why.
                state.done = true;
                Err(error)
            }
        };
        Some((chunk, state))
    })
}

fn xlsx_error(error: rust_xlsxwriter::XlsxError) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("xlsx: {error}"))
}

fn header(sheet: &mut Worksheet) -> Result<(), ApiError> {
    for (col, name) in COLUMNS.iter().enumerate() {
        sheet
            .write_string(0, col as u16, *name)
            .map_err(xlsx_error)?;
    }
    Ok(())
}

/// Writes the segment's members to an XLSX file on disk and returns it (deleted when
/// dropped).
pub async fn xlsx(
    infra: &Infra,
    tenant: &str,
    segment: Uuid,
) -> Result<tempfile::NamedTempFile, ApiError> {
    let mut workbook = Workbook::new();
    let mut sheet_index = 0;
    header(
        workbook
            .add_worksheet_with_constant_memory()
            .map_err(xlsx_error)?,
    )?;
    let mut row_number: u32 = 1;
    let mut after = None;
    loop {
        let (rows, last) = page(infra, tenant, segment, after).await?;
        for row in &rows {
            if row_number == SHEET_ROWS {
                header(
                    workbook
                        .add_worksheet_with_constant_memory()
                        .map_err(xlsx_error)?,
                )?;
                sheet_index += 1;
                row_number = 1;
            }
            let sheet = workbook
                .worksheet_from_index(sheet_index)
                .map_err(xlsx_error)?;
            for (col, cell) in cells(row).into_iter().enumerate() {
                match cell {
                    Cell::Text(s) => sheet.write_string(row_number, col as u16, s),
                    Cell::Number(n) => sheet.write_number(row_number, col as u16, n),
                    Cell::Empty => continue,
                }
                .map_err(xlsx_error)?;
            }
            row_number += 1;
        }
        after = last;
        if after.is_none() {
            break;
        }
    }
    // Compressing the sheets is CPU work: keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let file = tempfile::NamedTempFile::new().map_err(|e| ApiError::Internal(e.into()))?;
        workbook.save(file.path()).map_err(xlsx_error)?;
        Ok(file)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
}
