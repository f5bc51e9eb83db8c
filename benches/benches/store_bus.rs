//! Per-concern benches: journal append, bus publish/consume, and key-value
//! put/get per store backend (PostgreSQL when `ORCHESTRATE_TEST_POSTGRES_URL`
//! is set).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use orchestrate_core::bus::{EventBus, MemoryBus};
use orchestrate_core::journal::{Event, EventKind};
use orchestrate_core::store::{MemoryStore, Store};
use orchestrate_core::ExecutionId;
use orchestrate_store::postgres::{PostgresConfig, PostgresStore};
use orchestrate_store::sqlite::SqliteStore;
use serde_json::json;

fn event(id: &ExecutionId, seq: u64) -> Event {
    Event {
        execution_id: id.clone(),
        seq,
        at_us: seq,
        kind: EventKind::StepScheduled { step: "s".into() },
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Appends one event at a time to a growing journal.
fn journal_append(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite: Arc<dyn Store> = Arc::new(
        rt.block_on(SqliteStore::open(dir.path().join("b.db")))
            .expect("open"),
    );
    let stores: Vec<(&str, Arc<dyn Store>)> =
        vec![("memory", Arc::new(MemoryStore::new())), ("sqlite", sqlite)];
    let mut group = c.benchmark_group("journal_append");
    for (name, store) in stores {
        let id = ExecutionId::new();
        let next = AtomicU64::new(0);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                let (store, id) = (store.clone(), id.clone());
                async move {
                    store
                        .append(&id, &[event(&id, seq)])
                        .await
                        .expect("appended")
                }
            })
        });
    }
    group.finish();
}

/// Publishes one event and receives it.
fn bus_publish_consume(c: &mut Criterion) {
    let rt = runtime();
    let bus = MemoryBus::new();
    let mut sub = rt.block_on(bus.subscribe("t")).expect("subscribed");
    let e = Arc::new(event(&ExecutionId::from("b"), 0));
    c.bench_function("bus_publish_consume/memory", |b| {
        b.iter(|| {
            rt.block_on(async {
                bus.publish("t", std::slice::from_ref(&e))
                    .await
                    .expect("published");
                black_box(sub.recv().await.expect("received"));
            })
        })
    });
}

/// A key-value put then get, per backend.
fn store_put_get(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut stores: Vec<(&str, Arc<dyn Store>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "sqlite",
            Arc::new(
                rt.block_on(SqliteStore::open(dir.path().join("kv.db")))
                    .expect("open"),
            ),
        ),
    ];
    let schema = format!("bench_kv_{}", std::process::id());
    let url = std::env::var("ORCHESTRATE_TEST_POSTGRES_URL").ok();
    if let Some(url) = &url {
        let config = PostgresConfig::default().with_schema(&schema);
        let pg = rt
            .block_on(PostgresStore::connect_with(url, config))
            .expect("connect");
        stores.push(("postgres", Arc::new(pg)));
    }
    let mut group = c.benchmark_group("store_put_get");
    for (name, store) in stores {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let store = store.clone();
                async move {
                    store.kv_put("k", json!({"v": 1}), None).await.expect("put");
                    black_box(store.kv_get("k").await.expect("get"));
                }
            })
        });
    }
    group.finish();
    if let Some(url) = url {
        let _ = rt.block_on(PostgresStore::drop_schema(&url, &schema));
    }
}

criterion_group!(benches, journal_append, bus_publish_consume, store_put_get);
criterion_main!(benches);
