//! Event delivery: the in-process bus and the Redis Streams bus.

use std::sync::Arc;

use orchestrate_core::bus::{EventBus, MemoryBus, MemoryBusConfig, Overflow};
use orchestrate_core::journal::{Event, EventKind};
use orchestrate_store::redis::{RedisBus, RedisBusConfig};
use redis::Value as RedisValue;

use super::{compare, compare_interleaved, Report};

fn small_event(seq: u64) -> Arc<Event> {
    Arc::new(Event {
        execution_id: "bench".into(),
        seq,
        at_us: 0,
        kind: EventKind::StepScheduled { step: "s".into() },
    })
}

/// `n` events published one by one to one subscriber, every one delivered
/// (the bus blocks when full). Floor: a bounded(1024) tokio mpsc channel.
pub(super) async fn events(n: usize, reps: usize) -> Report {
    let event = small_event(0);
    compare(
        "events",
        n,
        reps,
        || {
            let event = event.clone();
            async move {
                let bus = Arc::new(MemoryBus::with_config(MemoryBusConfig {
                    capacity: 1024,
                    overflow: Overflow::Block,
                }));
                let mut sub = bus.subscribe("t").await.expect("subscribed");
                let consumer = tokio::spawn(async move {
                    for _ in 0..n {
                        sub.recv().await.expect("delivered");
                    }
                });
                for _ in 0..n {
                    bus.publish("t", std::slice::from_ref(&event))
                        .await
                        .expect("published");
                }
                consumer.await.expect("consumer finished");
            }
        },
        || {
            let event = event.clone();
            async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<Event>>(1024);
                let consumer = tokio::spawn(async move {
                    for _ in 0..n {
                        rx.recv().await.expect("delivered");
                    }
                });
                for _ in 0..n {
                    tx.send(event.clone()).await.expect("sent");
                }
                consumer.await.expect("consumer finished");
            }
        },
    )
    .await
}

const BATCH: usize = 1_000;

/// `n` events through Redis Streams with consumer-group acks: published in
/// pipelined batches of 1,000, then read 128 at a time and acknowledged one
/// `XACK` per batch. Floor: the same XADD / XREADGROUP / XACK loop written
/// with the `redis` crate.
pub(super) async fn redis_bus(n: usize, reps: usize) -> Result<Option<Report>, String> {
    let Ok(url) = std::env::var("ORCHESTRATE_TEST_REDIS_URL") else {
        eprintln!("redis_bus: skipped, ORCHESTRATE_TEST_REDIS_URL is not set");
        return Ok(None);
    };
    let events: Vec<Arc<Event>> = (0..n as u64).map(small_event).collect();
    let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
    let mut run = 0u64;
    let mut floor_run = 0u64;
    let report = compare_interleaved(
        "redis_bus",
        n,
        reps,
        || {
            run += 1;
            let (url, events) = (url.clone(), events.clone());
            async move {
                let config = RedisBusConfig::default()
                    .with_prefix(format!("bench-{}-{run}", std::process::id()));
                let bus = RedisBus::connect_with(&url, config)
                    .await
                    .expect("connected");
                let mut consumer = bus.consumer("t", "g", "c").await.expect("consumer");
                for chunk in events.chunks(BATCH) {
                    bus.publish("t", chunk).await.expect("published");
                }
                // Acknowledge each batch read in one round trip.
                let mut got = 0;
                let mut batch = Vec::new();
                while got < n {
                    batch.push(consumer.next().await.expect("read").expect("a message"));
                    got += 1;
                    if consumer.buffered() == 0 {
                        consumer.ack_all(&batch).await.expect("acked");
                        batch.clear();
                    }
                }
                consumer.ack_all(&batch).await.expect("acked");
                bus.delete_all().await.expect("cleaned up");
            }
        },
        || {
            floor_run += 1;
            let client = client.clone();
            async move {
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("connected");
                let key = format!("bench-floor-{}-{floor_run}", std::process::id());
                let _: RedisValue = redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&key)
                    .arg("g")
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async(&mut conn)
                    .await
                    .expect("group");
                let payload = serde_json::to_vec(&*small_event(0)).expect("json");
                for start in (0..n).step_by(BATCH) {
                    let mut pipe = redis::pipe();
                    for i in start..(start + BATCH).min(n) {
                        pipe.cmd("XADD")
                            .arg(&key)
                            .arg("MAXLEN")
                            .arg("~")
                            .arg(100_000)
                            .arg("*")
                            .arg("id")
                            .arg(i)
                            .arg("event")
                            .arg(&payload)
                            .ignore();
                    }
                    pipe.query_async::<()>(&mut conn).await.expect("published");
                }
                let mut got = 0;
                while got < n {
                    let reply: RedisValue = redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg("g")
                        .arg("c")
                        .arg("COUNT")
                        .arg(128)
                        .arg("STREAMS")
                        .arg(&key)
                        .arg(">")
                        .query_async(&mut conn)
                        .await
                        .expect("read");
                    let ids = entry_ids(&reply);
                    if ids.is_empty() {
                        continue;
                    }
                    got += ids.len();
                    let _: i64 = redis::cmd("XACK")
                        .arg(&key)
                        .arg("g")
                        .arg(&ids)
                        .query_async(&mut conn)
                        .await
                        .expect("acked");
                }
                let _: i64 = redis::cmd("DEL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .expect("deleted");
            }
        },
    )
    .await;
    Ok(Some(report))
}

/// The entry ids of an `XREADGROUP` reply (RESP2 or RESP3), borrowed.
fn entry_ids(reply: &RedisValue) -> Vec<&[u8]> {
    fn items(v: &RedisValue) -> &[RedisValue] {
        match v {
            RedisValue::Array(a) => a,
            _ => &[],
        }
    }
    // RESP3: a map of stream name to entries; RESP2: `[[name, entries], ...]`.
    let per_stream: Vec<&[RedisValue]> = match reply {
        RedisValue::Map(m) => m.iter().map(|(_, entries)| items(entries)).collect(),
        other => items(other)
            .iter()
            .map(|stream| items(items(stream).get(1).unwrap_or(&RedisValue::Nil)))
            .collect(),
    };
    let mut ids = Vec::new();
    for entries in per_stream {
        for entry in entries {
            if let Some(RedisValue::BulkString(id)) = items(entry).first() {
                ids.push(id.as_slice());
            }
        }
    }
    ids
}
