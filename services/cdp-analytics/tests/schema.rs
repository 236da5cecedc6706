//! `src/store/schema.rs` matches what the migrations create (the CI check that it is
//! regenerated whenever a migration changes).

use mkt_test_support as support;

#[tokio::test]
async fn schema_rs_matches_the_migrated_database() {
    let url = support::database_for(&cdp_analytics::SPEC).await;
    support::assert_schema_rs_matches(
        &url,
        cdp_analytics::SPEC.schema,
        include_str!("../src/store/schema.rs"),
        &["outbox_messages", "inbox_messages", "jobs"],
    )
    .await;
}
