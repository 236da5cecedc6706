//! `segmentation [serve|migrate]`.

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    mkt_runtime::main(&segmentation::SPEC, segmentation::parts).await
}
