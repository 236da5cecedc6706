//! What every CSV the platform reads or writes shares.
//!
//! - **Writing**: every cell that a spreadsheet would read as a formula (starting with
//!   `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed with a single quote
//!   (OWASP's "CSV injection" rule), so an exported `=HYPERLINK(...)` stays text.
//! - **Reading**: an upload is relayed from the request payload to the CSV reader with a
//!   byte cap ([`relay`]); a record over [`MAX_RECORD_BYTES`] is refused as a row, and
//!   what is kept of its fields is cut to [`KEPT_FIELD_BYTES`] ([`truncate`]).
//!
//! The per-upload caps are the services' own (what one file may hold differs); they
//! are listed with these in docs/errors.md.

use std::borrow::Cow;
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

/// Largest CSV record (a row, all its fields and separators) an import accepts; a
/// larger one is rejected as a row, not stored whole.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// What is kept of an over-long field in a rejection report (then `…`).
pub const KEPT_FIELD_BYTES: usize = 256;

/// The first characters that make a spreadsheet evaluate a cell.
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// A cell safe to open in a spreadsheet: one starting with `=`, `+`, `-`, `@`, a tab
/// or a carriage return gets a leading `'`; any other is returned as it is.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// One CSV record, quoted as needed and with every cell [`neutralise`]d (records may
/// differ in length).
pub async fn record<S: AsRef<str>>(cells: &[S]) -> Vec<u8> {
    let mut writer = csv_async::AsyncWriterBuilder::new()
        .flexible(true)
        .create_writer(Vec::new());
    let cells: Vec<Cow<'_, str>> = cells.iter().map(|c| neutralise(c.as_ref())).collect();
    // Writing to a Vec cannot fail.
    let _ = writer
        .write_record(cells.iter().map(|c| c.as_bytes()))
        .await;
    writer.into_inner().await.unwrap_or_default()
}

/// `field` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn truncate(field: &str, max: usize) -> String {
    if field.len() <= max {
        return field.to_owned();
    }
    let mut end = max;
    while !field.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &field[..end])
}

/// Whether a declared `Content-Length` is already over `max_bytes`.
pub fn declared_over(content_length: Option<&str>, max_bytes: u64) -> bool {
    content_length
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > max_bytes)
}

/// Set when a relayed upload went over its cap.
#[derive(Debug, Clone, Default)]
pub struct Overflow(Arc<AtomicBool>);

impl Overflow {
    /// Whether more bytes than the cap arrived (the reader saw an error there).
    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A request body handed from a payload that must stay on its thread (actix's) to a
/// `Send` stream the CSV reader can own, with back-pressure, stopping with an error once
/// more than `max_bytes` have arrived. Drive the returned pump and read the stream
/// concurrently (`join!`); [`Overflow::happened`] then says whether the cap cut it.
pub fn relay<S, E>(
    payload: S,
    max_bytes: u64,
) -> (
    impl Future<Output = ()>,
    BoxStream<'static, Result<Bytes, std::io::Error>>,
    Overflow,
)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    })
    .boxed();
    let overflow = Overflow::default();
    let flag = overflow.clone();
    let pump = async move {
        let mut payload = payload;
        let mut seen: u64 = 0;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|chunk| {
                    seen = seen.saturating_add(chunk.len() as u64);
                    if seen > max_bytes {
                        flag.0.store(true, Ordering::Relaxed);
                        Err(std::io::Error::other(format!(
                            "the upload is larger than {max_bytes} bytes"
                        )))
                    } else {
                        Ok(chunk)
                    }
                });
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    };
    (pump, body, overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_quoted_and_others_left_alone() {
        for cell in [
            "=HYPERLINK(\"http://evil\",\"x\")",
            "@SUM(A1:A2)",
            "+1+2",
            "-1+2",
            "\tx",
            "\rx",
        ] {
            assert_eq!(neutralise(cell), format!("'{cell}"));
        }
        for cell in ["", "ann@example.com", "1+2", "a=b", " =x", "'=x"] {
            assert_eq!(neutralise(cell), cell);
        }
    }

    #[tokio::test]
    async fn records_are_quoted_and_neutralised() {
        let line = record(&["=1+2", "a,b", "plain", "@x"]).await;
        assert_eq!(
            String::from_utf8(line).expect("utf-8"),
            "'=1+2,\"a,b\",plain,'@x\n"
        );
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc…");
        assert_eq!(truncate("ééé", 3), "é…");
        assert!(declared_over(Some("11"), 10));
        assert!(!declared_over(Some("10"), 10));
        assert!(!declared_over(None, 10));
    }

    #[tokio::test]
    async fn a_relay_stops_past_its_cap() {
        let chunks = futures_util::stream::iter(
            ["abc", "def", "ghi"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        );
        let (pump, body, overflow) = relay(chunks, 7);
        let (_, got) = futures_util::join!(pump, body.collect::<Vec<_>>());
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok() && got[1].is_ok() && got[2].is_err());
        assert!(overflow.happened());

        let chunks = futures_util::stream::iter(
            ["abc", "def"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        );
        let (pump, body, overflow) = relay(chunks, 6);
        let (_, got) = futures_util::join!(pump, body.collect::<Vec<_>>());
        assert!(got.iter().all(Result::is_ok));
        assert!(!overflow.happened());
    }
}
