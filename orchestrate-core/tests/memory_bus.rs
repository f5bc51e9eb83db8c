//! The in-process bus: bounded queues, overflow policies, drop counts.

use std::sync::Arc;
use std::time::Duration;

use orchestrate_core::bus::{BusError, EventBus, MemoryBus, MemoryBusConfig, Overflow};
use orchestrate_core::journal::{Event, EventKind};

fn events(range: std::ops::Range<u64>) -> Vec<Arc<Event>> {
    range
        .map(|seq| {
            Arc::new(Event {
                execution_id: "x".into(),
                seq,
                at_us: 0,
                kind: EventKind::CancelRequested,
            })
        })
        .collect()
}

fn bus(capacity: usize, overflow: Overflow) -> MemoryBus {
    MemoryBus::with_config(MemoryBusConfig { capacity, overflow })
}

async fn drain(sub: &mut orchestrate_core::bus::Subscription, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(sub.recv().await.unwrap().seq);
    }
    out
}

#[tokio::test]
async fn default_is_1000_per_subscriber_dropping_the_oldest() {
    let bus = MemoryBus::new();
    let mut sub = bus.subscribe("t").await.unwrap();
    bus.publish("t", &events(0..1005)).await.unwrap();
    assert_eq!(bus.dropped(), 5);
    assert_eq!(sub.dropped(), 5);
    assert_eq!(sub.recv().await.unwrap().seq, 5);
}

#[tokio::test]
async fn drop_newest_keeps_the_queue_and_counts() {
    let bus = bus(3, Overflow::DropNewest);
    let mut sub = bus.subscribe("t").await.unwrap();
    bus.publish("t", &events(0..5)).await.unwrap();
    assert_eq!(drain(&mut sub, 3).await, [0, 1, 2]);
    assert_eq!(bus.dropped(), 2);
}

#[tokio::test]
async fn error_policy_rejects_with_a_typed_error() {
    let bus = bus(2, Overflow::Error);
    let _sub = bus.subscribe("t").await.unwrap();
    let err = bus.publish("t", &events(0..3)).await.unwrap_err();
    assert!(matches!(err, BusError::Full { ref topic, capacity: 2 } if topic == "t"));
    assert_eq!(bus.dropped(), 1);
}

#[tokio::test(start_paused = true)]
async fn block_policy_waits_for_the_subscriber() {
    let bus = Arc::new(bus(2, Overflow::Block));
    let mut sub = bus.subscribe("t").await.unwrap();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish("t", &events(0..6)).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!publisher.is_finished(), "publisher must wait for room");
    assert_eq!(drain(&mut sub, 6).await, [0, 1, 2, 3, 4, 5]);
    publisher.await.unwrap().unwrap();
    assert_eq!(bus.dropped(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_subscriber_releases_a_blocked_publisher() {
    let bus = Arc::new(bus(1, Overflow::Block));
    let sub = bus.subscribe("t").await.unwrap();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish("t", &events(0..3)).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(sub);
    publisher.await.unwrap().unwrap();
    assert_eq!(bus.subscriber_count("t"), 0);
}

#[tokio::test(start_paused = true)]
async fn topics_are_isolated_and_fan_out_to_every_subscriber() {
    let bus = MemoryBus::new();
    let mut a = bus.subscribe("t").await.unwrap();
    let mut b = bus.subscribe("t").await.unwrap();
    let mut other = bus.subscribe("u").await.unwrap();
    bus.publish("t", &events(0..2)).await.unwrap();
    bus.publish("nobody", &events(0..2)).await.unwrap();
    assert_eq!(drain(&mut a, 2).await, [0, 1]);
    assert_eq!(drain(&mut b, 2).await, [0, 1]);
    assert!(tokio::time::timeout(Duration::from_millis(5), other.recv())
        .await
        .is_err());
}

#[tokio::test]
async fn has_subscribers_follows_live_subscriptions() {
    let bus = MemoryBus::new();
    assert!(!bus.has_subscribers("t"));
    let sub = bus.subscribe("t").await.unwrap();
    assert!(bus.has_subscribers("t"));
    assert!(!bus.has_subscribers("other"));
    drop(sub);
    assert!(!bus.has_subscribers("t"));
    // A new subscriber after the last one left is heard again.
    let _again = bus.subscribe("t").await.unwrap();
    assert!(bus.has_subscribers("t"));
}
