//! The Redis Streams bus: conformance, consumer groups, acks, reclaim, dead
//! letters, de-duplication, reconnects. Each test uses its own key prefix.
//! Skipped (with a message) when `ORCHESTRATE_TEST_REDIS_URL` is unset.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use orchestrate_core::bus::{BusError, EventBus};
use orchestrate_store::redis::{RedisBus, RedisBusConfig};
use orchestrate_testing::bus_conformance::{events, BusSubject};

const VAR: &str = "ORCHESTRATE_TEST_REDIS_URL";

fn url() -> Option<String> {
    let url = std::env::var(VAR).ok();
    if url.is_none() {
        eprintln!("skipped: {VAR} is not set");
    }
    url
}

fn config() -> RedisBusConfig {
    RedisBusConfig {
        block: Duration::from_millis(200),
        ..RedisBusConfig::default().with_prefix(format!("test-{}", uuid::Uuid::new_v4()))
    }
}

/// Deletes the test's keys when dropped.
struct Cleanup(RedisBus);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let bus = self.0.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(bus.delete_all());
            }
        })
        .join();
    }
}

async fn bus_with(config: RedisBusConfig) -> (RedisBus, Cleanup) {
    let bus = RedisBus::connect_with(&std::env::var(VAR).unwrap(), config)
        .await
        .unwrap();
    (bus.clone(), Cleanup(bus))
}

orchestrate_testing::bus_conformance!(
    || async {
        let (bus, cleanup) = bus_with(config()).await;
        BusSubject::keeping(Arc::new(bus), cleanup)
    },
    requires_env = "ORCHESTRATE_TEST_REDIS_URL"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_shares_the_work_and_acks_are_explicit() {
    if url().is_none() {
        return;
    }
    // One message per read, so that the two consumers interleave.
    let (bus, _cleanup) = bus_with(RedisBusConfig {
        batch: 1,
        ..config()
    })
    .await;
    bus.publish("jobs", &events("e", 0, 10)).await.unwrap();
    let mut a = bus.consumer("jobs", "workers", "a").await.unwrap();
    let mut b = bus.consumer("jobs", "workers", "b").await.unwrap();
    let mut seen = Vec::new();
    for consumer in [&mut a, &mut b] {
        for _ in 0..5 {
            let d = consumer.next().await.unwrap().expect("a message");
            assert_eq!(d.deliveries, 1);
            consumer.ack(&d).await.unwrap();
            seen.push(d.event.seq);
        }
    }
    // Each message went to exactly one member of the group.
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert!(
        a.next().await.unwrap().is_none(),
        "everything was acknowledged"
    );
    assert!(b.next().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_are_reclaimed_then_dead_lettered() {
    if url().is_none() {
        return;
    }
    // Visibility 0: a message left unacknowledged is reclaimable at once.
    let (bus, _cleanup) = bus_with(RedisBusConfig {
        visibility_timeout: Duration::ZERO,
        max_deliveries: 2,
        ..config()
    })
    .await;
    bus.publish("jobs", &events("e", 0, 1)).await.unwrap();
    let mut a = bus.consumer("jobs", "g", "a").await.unwrap();
    let mut b = bus.consumer("jobs", "g", "b").await.unwrap();
    let first = a.next().await.unwrap().unwrap();
    assert_eq!(first.deliveries, 1);
    // `a` dies without acking; `b` reclaims the message.
    let second = b.next().await.unwrap().unwrap();
    assert_eq!(
        (second.message_id.as_str(), second.deliveries),
        (first.message_id.as_str(), 2)
    );
    // `b` dies too; the third delivery exceeds the limit: dead letter.
    let mut c = bus.consumer("jobs", "g", "c").await.unwrap();
    assert!(c.next().await.unwrap().is_none());
    let dead = bus.dead_letters("jobs", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].source_id, first.message_id);
    assert!(
        dead[0].reason.contains("delivered 3 times"),
        "{}",
        dead[0].reason
    );
    assert!(dead[0].event.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_goes_to_the_dead_letters_without_blocking() {
    if url().is_none() {
        return;
    }
    let (bus, _cleanup) = bus_with(config()).await;
    let bad = bus
        .publish_raw("t", &[("event", b"{not json")])
        .await
        .unwrap();
    bus.publish_raw("t", &[("something", b"else")])
        .await
        .unwrap();
    bus.publish("t", &events("e", 7, 1)).await.unwrap();
    let mut consumer = bus.consumer("t", "g", "c").await.unwrap();
    let good = consumer.next().await.unwrap().unwrap();
    assert_eq!(good.event.seq, 7);
    let dead = bus.dead_letters("t", 10).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].source_id, bad);
    assert!(dead[0].reason.contains("undecodable"), "{}", dead[0].reason);
    assert!(
        dead[1].reason.contains("no `event` field"),
        "{}",
        dead[1].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_of_an_acknowledged_event_are_dropped() {
    if url().is_none() {
        return;
    }
    let (bus, _cleanup) = bus_with(config()).await;
    let once = events("e", 3, 1);
    let mut consumer = bus.consumer("t", "g", "c").await.unwrap();
    bus.publish("t", &once).await.unwrap();
    let d = consumer.next().await.unwrap().unwrap();
    consumer.ack(&d).await.unwrap();
    // A retried publish sends it again, then something new follows.
    bus.publish("t", &once).await.unwrap();
    bus.publish("t", &events("e", 4, 1)).await.unwrap();
    let next = consumer.next().await.unwrap().unwrap();
    assert_eq!(next.event.seq, 4, "the duplicate was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_work_survives_a_dropped_connection() {
    let Some(url) = url() else { return };
    let (bus, _cleanup) = bus_with(config()).await;
    bus.publish("t", &events("e", 0, 1)).await.unwrap();
    let mut consumer = bus.consumer("t", "g", "c").await.unwrap();
    let taken = consumer.next().await.unwrap().unwrap();
    // Kill the consumer's connection (only it: other tests run alongside).
    let id = consumer.client_id().await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    // The consumer reconnects and is served its unacknowledged message again.
    let mut again = None;
    for _ in 0..5 {
        match consumer.next().await {
            Ok(Some(d)) => {
                again = Some(d);
                break;
            }
            Ok(None) => {}
            Err(BusError::Backend { .. }) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    let again = again.expect("the pending message after reconnecting");
    assert_eq!(again.message_id, taken.message_id);
    assert_eq!(again.deliveries, 2);
    assert_ne!(consumer.client_id().await.unwrap(), id, "a new connection");
    consumer.ack(&again).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_is_a_typed_error() {
    let err = RedisBus::connect("redis://127.0.0.1:1").await.unwrap_err();
    assert!(
        matches!(
            err,
            BusError::Unreachable {
                backend: "redis",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("127.0.0.1:1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_acknowledged_in_one_round_trip() {
    if url().is_none() {
        return;
    }
    let (bus, _cleanup) = bus_with(config()).await;
    bus.publish("t", &events("e", 0, 5)).await.unwrap();
    let mut consumer = bus.consumer("t", "g", "c").await.unwrap();
    let first = consumer.next().await.unwrap().unwrap();
    assert_eq!(consumer.buffered(), 4, "one read brought the batch");
    let mut batch = vec![first];
    while consumer.buffered() > 0 {
        batch.push(consumer.next().await.unwrap().unwrap());
    }
    consumer.ack_all(&batch).await.unwrap();
    assert!(consumer.next().await.unwrap().is_none(), "all acknowledged");
    // Acknowledged ids are remembered: a republished duplicate is dropped.
    bus.publish("t", &events("e", 4, 2)).await.unwrap();
    assert_eq!(consumer.next().await.unwrap().unwrap().event.seq, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_looks_for_messages_to_reclaim_once_per_interval() {
    if url().is_none() {
        return;
    }
    // Visibility 0: a message left unacknowledged is reclaimable at once,
    // so only the interval decides whether a read looks for it.
    for (interval, looks) in [(Duration::from_secs(3600), false), (Duration::ZERO, true)] {
        let (bus, _cleanup) = bus_with(RedisBusConfig {
            visibility_timeout: Duration::ZERO,
            reclaim_interval: interval,
            ..config()
        })
        .await;
        let mut b = bus.consumer("jobs", "g", "b").await.unwrap();
        // `b`'s first read looks (nothing to reclaim yet), then waits.
        assert!(b.next().await.unwrap().is_none());
        bus.publish("jobs", &events("e", 0, 1)).await.unwrap();
        let mut a = bus.consumer("jobs", "g", "a").await.unwrap();
        let left = a.next().await.unwrap().unwrap();
        // `a` dies without acking: `b` reclaims it only if it looks again.
        let reclaimed = b
            .next()
            .await
            .unwrap()
            .map(|d| (d.message_id, d.deliveries));
        assert_eq!(
            reclaimed,
            looks.then(|| (left.message_id.clone(), 2)),
            "reclaim interval {interval:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_that_fills_a_batch_looks_again_at_the_next_read() {
    if url().is_none() {
        return;
    }
    let (bus, _cleanup) = bus_with(RedisBusConfig {
        batch: 1,
        visibility_timeout: Duration::ZERO,
        reclaim_interval: Duration::from_secs(3600),
        ..config()
    })
    .await;
    bus.publish("jobs", &events("e", 0, 2)).await.unwrap();
    let mut a = bus.consumer("jobs", "g", "a").await.unwrap();
    let mut left = Vec::new();
    for _ in 0..2 {
        left.push(a.next().await.unwrap().unwrap().message_id);
    }
    // `a` dies without acking; `b`'s first look claims one message, a full
    // batch, so its next read looks again instead of waiting an hour.
    let mut b = bus.consumer("jobs", "g", "b").await.unwrap();
    let mut reclaimed = Vec::new();
    while let Some(d) = b.next().await.unwrap() {
        b.ack(&d).await.unwrap();
        reclaimed.push(d.message_id);
    }
    assert_eq!(reclaimed, left);
}
