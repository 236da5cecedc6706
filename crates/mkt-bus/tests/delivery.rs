//! The bus's delivery guarantees against a real broker and database: every committed
//! event is consumed exactly once in effect, in order per aggregate, through a relay
//! crash and a broker restart; redeliveries have no second effect; poison messages end
//! in the dead-letter queue.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use lapin::BasicProperties;
use lapin::options::{BasicGetOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use mkt_bus::consumer::{HandlerError, Incoming, Subscription};
use mkt_bus::outbox::{OutgoingEvent, enqueue, enqueue_encoded};
use mkt_bus::relay::{Relay, RelayWaker};
use mkt_bus::{BusConfig, topology};
use mkt_db::{DbConfig, Migrations, Pool};
use mkt_test_support as support;

const SCHEMA: &str = "bus_test";
const ROUTING_KEY: &str = "thing.happened.v1";

async fn database() -> (String, Pool) {
    let url = support::empty_database().await;
    let config = DbConfig::new(&url, SCHEMA);
    mkt_db::run_migrations(&config.url, SCHEMA, Migrations(vec![&mkt_bus::MIGRATIONS]))
        .await
        .expect("migrate");
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    conn.batch_execute(&format!(
        "CREATE TABLE {SCHEMA}.effects (id BIGSERIAL PRIMARY KEY, aggregate TEXT NOT NULL, seq INT NOT NULL)"
    ))
    .await
    .expect("effects table");
    (url, mkt_db::connect(&config, SCHEMA).expect("pool"))
}

/// Records one effect per message: `aggregate:seq`. The table has no unique key, so a
/// second effect of a redelivered message would show up as a duplicate row.
fn subscription() -> Subscription {
    Subscription {
        service: "bustest".into(),
        routing_key: ROUTING_KEY.into(),
        handler: Arc::new(|conn, incoming: &Incoming| {
            Box::pin(async move {
                let text = String::from_utf8(incoming.payload.clone())
                    .map_err(|e| HandlerError::Permanent(e.to_string()))?;
                let (aggregate, seq) = text
                    .split_once(':')
                    .ok_or_else(|| HandlerError::Permanent(format!("poison: {text}")))?;
                let seq: i32 = seq
                    .parse()
                    .map_err(|_| HandlerError::Permanent(format!("poison: {text}")))?;
                diesel::sql_query("INSERT INTO effects (aggregate, seq) VALUES ($1, $2)")
                    .bind::<diesel::sql_types::Text, _>(aggregate)
                    .bind::<diesel::sql_types::Integer, _>(seq)
                    .execute(conn)
                    .await?;
                Ok(())
            })
        }),
    }
}

fn relay(pool: &Pool, config: &BusConfig, waker: &RelayWaker) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        Relay {
            pool: pool.clone(),
            config: config.clone(),
            schema: SCHEMA.into(),
            name: "test-relay".into(),
            waker: waker.clone(),
        }
        .run(),
    )
}

async fn produce(pool: &Pool, waker: &RelayWaker, aggregate: &str, seq: i32) {
    let mut conn = pool.get().await.expect("conn");
    let event = OutgoingEvent::raw(
        ROUTING_KEY,
        "t1",
        aggregate,
        format!("{aggregate}:{seq}").into_bytes(),
    );
    conn.transaction(async |conn| enqueue_encoded(conn, &event).await.map(|_| ()))
        .await
        .expect("commit");
    waker.wake();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_event_is_consumed_once_in_order_through_a_relay_crash_and_a_broker_restart()
 {
    let broker_dir =
        std::env::temp_dir().join(format!("mkt-bus-test-{}", uuid::Uuid::new_v4().simple()));
    let broker_dir_clone = broker_dir.clone();
    let mut broker = tokio::task::spawn_blocking(move || {
        mkt_devservers::RabbitServer::start(&broker_dir_clone, 0, 0)
    })
    .await
    .expect("join")
    .expect("start rabbitmq");
    let mut config = BusConfig::new(broker.amqp_url());
    config.poll_interval_ms = 50;
    let (url, pool) = database().await;
    let waker = RelayWaker::default();
    let consumer = tokio::spawn(mkt_bus::consumer::run(
        pool.clone(),
        config.clone(),
        subscription(),
    ));
    let mut relay_task = relay(&pool, &config, &waker);

    const AGGREGATES: i32 = 10;
    const PER_AGGREGATE: i32 = 60;
    let mut committed = 0;
    for seq in 0..PER_AGGREGATE {
        for aggregate in 0..AGGREGATES {
            produce(&pool, &waker, &format!("agg-{aggregate}"), seq).await;
            committed += 1;
        }
        if seq == 20 {
            // Crash the relay mid-stream (no cleanup runs: its lock connection just dies).
            relay_task.abort();
        }
        if seq == 25 {
            // Restart the broker while events keep being committed and nothing relays them.
            broker = tokio::task::spawn_blocking(move || {
                broker.restart().expect("restart rabbitmq");
                broker
            })
            .await
            .expect("join");
            relay_task = relay(&pool, &config, &waker);
        }
        if seq == 40 {
            // And crash the new relay too, while the consumer is catching up.
            relay_task.abort();
            relay_task = relay(&pool, &config, &waker);
        }
    }

    support::eventually(
        Duration::from_secs(90),
        "every committed event to take effect",
        || async {
            (support::scalar_i64(&url, &format!("SELECT count(*) FROM {SCHEMA}.effects")).await
                >= i64::from(committed))
            .then_some(())
        },
    )
    .await;
    // Let any straggling redelivery land before counting duplicates.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let effects =
        support::scalar_i64(&url, &format!("SELECT count(*) FROM {SCHEMA}.effects")).await;
    let distinct = support::scalar_i64(
        &url,
        &format!("SELECT count(DISTINCT (aggregate, seq)) FROM {SCHEMA}.effects"),
    )
    .await;
    assert_eq!(
        (effects, distinct),
        (i64::from(committed), i64::from(committed)),
        "exactly once in effect"
    );
    let out_of_order = support::scalar_i64(
        &url,
        &format!(
            "SELECT count(*) FROM (SELECT seq, lag(seq) OVER (PARTITION BY aggregate ORDER BY id) AS prev FROM {SCHEMA}.effects) t \
             WHERE prev IS NOT NULL AND seq <> prev + 1"
        ),
    )
    .await;
    assert_eq!(out_of_order, 0, "per-aggregate order kept");
    let pending = support::scalar_i64(
        &url,
        &format!("SELECT count(*) FROM {SCHEMA}.outbox_messages WHERE published_at IS NULL"),
    )
    .await;
    assert_eq!(pending, 0);

    relay_task.abort();
    consumer.abort();
    tokio::task::spawn_blocking(move || {
        let _ = broker.stop();
        let _ = std::fs::remove_dir_all(broker_dir);
    })
    .await
    .expect("join");
}

async fn publish_raw(config: &BusConfig, message_id: &str, payload: &[u8]) {
    let connection = mkt_bus::connect(config, "raw-publisher")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from(mkt_bus::relay::TENANT_HEADER),
        AMQPValue::LongString(LongString::from("t1")),
    );
    channel
        .basic_publish(
            config.exchange.as_str().into(),
            ROUTING_KEY.into(),
            BasicPublishOptions::default(),
            payload,
            BasicProperties::default()
                .with_message_id(message_id.into())
                .with_headers(headers)
                .with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliveries_have_no_second_effect_and_poison_goes_to_the_dead_letter_queue() {
    let mut config = BusConfig::new(support::vhost().await);
    config.delivery_limit = 3;
    let (url, pool) = database().await;
    let consumer = tokio::spawn(mkt_bus::consumer::run(
        pool.clone(),
        config.clone(),
        subscription(),
    ));
    let queue = topology::queue_name("bustest", ROUTING_KEY);
    let probe = mkt_bus::connect(&config, "probe").await.expect("connect");
    // A failed passive declare closes its channel, so each probe uses a fresh one.
    support::eventually(Duration::from_secs(10), "the consumer queue", || async {
        let channel = probe.create_channel().await.ok()?;
        channel
            .queue_declare(
                queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let channel = probe.create_channel().await.expect("channel");

    let id = uuid::Uuid::new_v4().to_string();
    publish_raw(&config, &id, b"agg-x:1").await;
    publish_raw(&config, &id, b"agg-x:1").await;
    publish_raw(&config, &uuid::Uuid::new_v4().to_string(), b"agg-x:2").await;
    support::eventually(
        Duration::from_secs(10),
        "the second distinct message",
        || async {
            (support::scalar_i64(
                &url,
                &format!("SELECT count(*) FROM {SCHEMA}.effects WHERE seq = 2"),
            )
            .await
                == 1)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        support::scalar_i64(&url, &format!("SELECT count(*) FROM {SCHEMA}.effects")).await,
        2
    );
    assert_eq!(
        support::scalar_i64(
            &url,
            &format!("SELECT count(*) FROM {SCHEMA}.inbox_messages")
        )
        .await,
        2
    );

    publish_raw(
        &config,
        &uuid::Uuid::new_v4().to_string(),
        b"this is not an event",
    )
    .await;
    publish_raw(&config, "not-a-uuid", b"agg-y:1").await;
    let dlq = topology::dead_letter_queue(&queue);
    let mut dead = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dead.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "dead-lettered so far: {dead:?}"
        );
        match channel
            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic_get")
        {
            Some(message) => {
                dead.push(String::from_utf8_lossy(&message.delivery.data).into_owned())
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    dead.sort();
    assert_eq!(
        dead,
        vec!["agg-y:1".to_owned(), "this is not an event".to_owned()]
    );
    assert_eq!(
        support::scalar_i64(&url, &format!("SELECT count(*) FROM {SCHEMA}.effects")).await,
        2,
        "poison had no effect"
    );
    consumer.abort();
}

#[tokio::test]
async fn schema_rs_matches_the_bus_migration() {
    let (url, _pool) = database().await;
    support::assert_schema_rs_matches(&url, SCHEMA, include_str!("../src/schema.rs"), &["effects"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_event_is_parked_not_marked_sent_and_does_not_block_others() {
    let config = BusConfig::new(support::vhost().await);
    let (url, pool) = database().await;
    let waker = RelayWaker::default();
    let consumer = tokio::spawn(mkt_bus::consumer::run(
        pool.clone(),
        config.clone(),
        subscription(),
    ));
    let relay_task = relay(&pool, &config, &waker);

    // Nobody consumes `orphan.happened.v1` yet.
    let mut conn = pool.get().await.expect("conn");
    let orphan = OutgoingEvent::raw("orphan.happened.v1", "t1", "agg-o", b"orphan".to_vec());
    conn.transaction(async |conn| enqueue_encoded(conn, &orphan).await.map(|_| ()))
        .await
        .expect("commit");
    drop(conn);
    // Wait for the consumer's queue so the routable events are not parked too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for seq in 1..=3 {
        produce(&pool, &waker, "agg-r", seq).await;
    }
    support::eventually(
        Duration::from_secs(15),
        "routable events despite the orphan",
        || async {
            (support::scalar_i64(&url, &format!("SELECT count(*) FROM {SCHEMA}.effects")).await
                == 3)
                .then_some(())
        },
    )
    .await;
    let orphan_state = format!(
        "SELECT count(*) FROM {SCHEMA}.outbox_messages WHERE routing_key = 'orphan.happened.v1' \
         AND published_at IS NULL AND attempts >= 1 AND last_error LIKE 'unroutable%'"
    );
    assert_eq!(
        support::scalar_i64(&url, &orphan_state).await,
        1,
        "parked, not marked sent"
    );

    // Once a queue is bound, the parked event goes out on its next attempt.
    let connection = mkt_bus::connect(&config, "late-consumer")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    topology::declare_consumer_queue(
        &channel,
        &config,
        "late.orphan.happened.v1",
        "orphan.happened.v1",
    )
    .await
    .expect("declare");
    support::eventually(Duration::from_secs(15), "the parked event to be published", || async {
        (support::scalar_i64(
            &url,
            &format!("SELECT count(*) FROM {SCHEMA}.outbox_messages WHERE routing_key = 'orphan.happened.v1' AND published_at IS NOT NULL"),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    let message = channel
        .basic_get(
            "late.orphan.happened.v1".into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic_get")
        .expect("the parked event was delivered");
    assert_eq!(message.delivery.data, b"orphan");
    relay_task.abort();
    consumer.abort();
}

/// A typed subscription: the handler sees decoded events of its tenant only; a payload
/// naming another tenant than its header, or one that does not decode, is dead-lettered
/// without reaching it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_subscriptions_get_decoded_events_and_dead_letter_a_foreign_tenant() {
    use mkt_contracts::v1::CustomerErased;
    let mut config = BusConfig::new(support::vhost().await);
    config.delivery_limit = 2;
    let (url, pool) = database().await;
    let waker = RelayWaker::default();
    let typed = Subscription::on("typedtest", |conn, event: CustomerErased| {
        Box::pin(async move {
            diesel::sql_query("INSERT INTO effects (aggregate, seq) VALUES ($1, 0)")
                .bind::<diesel::sql_types::Text, _>(format!(
                    "{}/{}",
                    event.tenant_id, event.customer_id
                ))
                .execute(conn)
                .await?;
            Ok(())
        })
    });
    assert_eq!(typed.routing_key, "customer.erased.v1");
    mkt_bus::consumer::declare_queues(&config, std::slice::from_ref(&typed))
        .await
        .expect("declare");
    let consumer = tokio::spawn(mkt_bus::consumer::run(pool.clone(), config.clone(), typed));
    let relay_task = relay(&pool, &config, &waker);

    let erased = CustomerErased {
        tenant_id: "t1".into(),
        customer_id: "c-1".into(),
        erased_at: None,
    };
    // The same payload sent under another tenant's header, and a payload that is not one.
    let foreign = OutgoingEvent::raw(
        "customer.erased.v1",
        "t2",
        "c-1",
        mkt_contracts::Message::encode_to_vec(&erased),
    );
    let garbage = OutgoingEvent::raw("customer.erased.v1", "t1", "c-2", vec![0xff; 7]);
    let mut conn = pool.get().await.expect("conn");
    conn.transaction(async |conn| {
        enqueue_encoded(conn, &foreign).await?;
        enqueue_encoded(conn, &garbage).await?;
        enqueue(conn, &erased).await.map(|_| ())
    })
    .await
    .expect("commit");
    drop(conn);
    waker.wake();

    let queue = topology::queue_name("typedtest", "customer.erased.v1");
    let dlq = topology::dead_letter_queue(&queue);
    let probe = mkt_bus::connect(&config, "probe").await.expect("connect");
    let channel = probe.create_channel().await.expect("channel");
    let mut dead = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while dead < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "dead-lettered: {dead}"
        );
        match channel
            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic_get")
        {
            Some(_) => dead += 1,
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    support::eventually(Duration::from_secs(10), "the decoded event", || async {
        (support::scalar_i64(&url, &format!("SELECT count(*) FROM {SCHEMA}.effects")).await == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        support::scalar_i64(
            &url,
            &format!("SELECT count(*) FROM {SCHEMA}.effects WHERE aggregate = 't1/c-1'")
        )
        .await,
        1,
        "only the tenant's own event reached the handler"
    );
    relay_task.abort();
    consumer.abort();
}
