//! The in-memory store: journal concurrency, key-value TTL, retention.

use std::sync::Arc;
use std::time::Duration;

use orchestrate_core::journal::{Event, EventKind, ExecutionStatus};
use orchestrate_core::store::{MemoryStore, MemoryStoreConfig, Store, StoreError};
use orchestrate_core::ExecutionId;
use serde_json::json;

fn event(id: &str, seq: u64, kind: EventKind) -> Event {
    Event {
        execution_id: id.into(),
        seq,
        at_us: 0,
        kind,
    }
}

fn finished(id: &str, seq: u64) -> Event {
    event(
        id,
        seq,
        EventKind::ExecutionFinished {
            status: ExecutionStatus::Succeeded,
            error: None,
        },
    )
}

#[tokio::test]
async fn appends_use_optimistic_concurrency_on_the_sequence() {
    let store = MemoryStore::new();
    let id = ExecutionId::from("e");
    store
        .append(
            &id,
            &[
                event("e", 0, EventKind::CancelRequested),
                event("e", 1, EventKind::CancelRequested),
            ],
        )
        .await
        .unwrap();
    let err = store
        .append(&id, &[event("e", 1, EventKind::CancelRequested)])
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict {
            expected: 1,
            actual: 2,
            ..
        }
    ));
    let err = store
        .append(
            &id,
            &[
                event("e", 2, EventKind::CancelRequested),
                event("e", 4, EventKind::CancelRequested),
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err}");
    let err = store
        .append(&id, &[event("other", 2, EventKind::CancelRequested)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidBatch { .. }));
    assert_eq!(store.load(&id, 1).await.unwrap().len(), 1);
    assert!(matches!(
        store.load(&ExecutionId::from("missing"), 0).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_never_both_append_the_same_sequence() {
    let store = Arc::new(MemoryStore::new());
    let id = ExecutionId::from("race");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move {
                let mut wins = 0;
                for _ in 0..200 {
                    let next = store
                        .load(&id, 0)
                        .await
                        .map(|j| j.len() as u64)
                        .unwrap_or(0);
                    if store
                        .append(&id, &[event("race", next, EventKind::CancelRequested)])
                        .await
                        .is_ok()
                    {
                        wins += 1;
                    }
                }
                wins
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let journal = store.load(&id, 0).await.unwrap();
    assert_eq!(journal.len(), total);
    assert!(journal.iter().enumerate().all(|(i, e)| e.seq == i as u64));
}

#[tokio::test(start_paused = true)]
async fn kv_entries_expire_after_their_ttl() {
    let store = MemoryStore::new();
    store
        .kv_put("a", json!(1), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    store.kv_put("forever", json!(2), None).await.unwrap();
    assert_eq!(
        store.kv_put_if_absent("a", json!(9), None).await.unwrap(),
        Some(json!(1))
    );
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(store.kv_get("a").await.unwrap(), None);
    assert_eq!(
        store.kv_put_if_absent("a", json!(3), None).await.unwrap(),
        None
    );
    assert_eq!(store.kv_get("a").await.unwrap(), Some(json!(3)));
    assert_eq!(store.kv_get("forever").await.unwrap(), Some(json!(2)));
    assert!(store.kv_delete("forever").await.unwrap());
    assert!(!store.kv_delete("forever").await.unwrap());
}

#[tokio::test]
async fn finished_journals_are_retained_up_to_the_limit() {
    let store = MemoryStore::with_config(MemoryStoreConfig {
        max_finished_executions: 3,
        ..MemoryStoreConfig::default()
    });
    for i in 0..5 {
        let id = format!("e{i}");
        store
            .append(&id.as_str().into(), &[finished(&id, 0)])
            .await
            .unwrap();
    }
    // A running execution (no finished event) is never dropped.
    store
        .append(
            &"running".into(),
            &[event("running", 0, EventKind::CancelRequested)],
        )
        .await
        .unwrap();
    assert_eq!(store.execution_count(), 4);
    assert!(store.load(&"e0".into(), 0).await.is_err());
    assert!(store.load(&"e4".into(), 0).await.is_ok());
    assert!(store.load(&"running".into(), 0).await.is_ok());
}
