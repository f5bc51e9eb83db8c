//! `EncryptedStore`: conformance over two backends, nothing readable at rest,
//! wrong keys and tampering refused.
#![cfg(all(feature = "encryption", feature = "sqlite"))]

use std::sync::Arc;

use orchestrate_core::store::{MemoryStore, MemoryStoreConfig, Store, StoreError};
use orchestrate_core::{agent_fn, ExecutionId, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_store::encrypted::{EncryptedStore, EncryptionKey};
use orchestrate_store::sqlite::{SqliteConfig, SqliteStore};
use orchestrate_testing::store_conformance::Subject;
use serde_json::json;

fn key(byte: u8) -> EncryptionKey {
    EncryptionKey::from_bytes([byte; 32])
}

mod over_memory {
    use super::*;
    orchestrate_testing::store_conformance!(|clock| async move {
        let config = MemoryStoreConfig {
            clock: Arc::new(clock),
            ..MemoryStoreConfig::default()
        };
        Subject::new(Arc::new(EncryptedStore::new(
            MemoryStore::with_config(config),
            key(1),
        )))
    });
}

mod over_sqlite {
    use super::*;
    orchestrate_testing::store_conformance!(|clock| async move {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig::default().with_clock(Arc::new(clock));
        let inner = SqliteStore::open_with(dir.path().join("sealed.db"), config)
            .await
            .unwrap();
        Subject::keeping(Arc::new(EncryptedStore::new(inner, key(2))), dir)
    });
}

#[tokio::test]
async fn nothing_an_agent_sees_is_readable_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.db");
    let sealed = Arc::new(EncryptedStore::new(
        SqliteStore::open(&path).await.unwrap(),
        key(3),
    ));
    let orch = Orchestrator::builder()
        .agent(agent_fn("leak", |input, ctx| async move {
            ctx.emit("note", json!({"saw": input.clone()}))
                .await
                .unwrap();
            Ok(json!({"echo": input}))
        }))
        .store(sealed.clone())
        .build()
        .unwrap();
    let wf = orch
        .bind(
            &WorkflowDef::builder("w")
                .step(StepDef::new("s", "leak").input(json!("${input}")))
                .build(),
        )
        .unwrap();
    let done = orch
        .run(&wf, json!("TOP-SECRET-42"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(done.output("s"), Some(&json!({"echo": "TOP-SECRET-42"})));
    drop(orch);
    let raw = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.path().join("secret.db-wal")).unwrap_or_default();
    for bytes in [&raw, &wal] {
        assert!(
            !bytes.windows(13).any(|w| w == b"TOP-SECRET-42"),
            "plaintext found at rest"
        );
    }
    // Through the wrapper everything reads back.
    let events = sealed.load(done.id().unwrap(), 0).await.unwrap();
    assert!(events.iter().any(|e| e.kind.name() == "custom"));
}

#[tokio::test]
async fn a_wrong_key_tampering_or_plaintext_is_a_clear_error() {
    let inner = Arc::new(MemoryStore::new());
    let right = EncryptedStore::new(inner.clone(), key(4));
    right
        .kv_put("k", json!({"password": "p"}), None)
        .await
        .unwrap();
    let wrong = EncryptedStore::new(inner.clone(), key(5));
    match wrong.kv_get("k").await {
        Err(StoreError::Codec { what, reason }) => {
            assert_eq!(what, "key `k`");
            assert!(reason.contains("wrong key"), "{reason}");
        }
        other => panic!("expected a codec error, got {other:?}"),
    }
    // A sealed value moved to another key does not open there.
    let moved = inner.kv_get("k").await.unwrap().unwrap();
    inner.kv_put("other", moved, None).await.unwrap();
    assert!(right.kv_get("other").await.is_err());
    // Plaintext written behind the wrapper's back is refused, not returned.
    inner.kv_put("plain", json!("hello"), None).await.unwrap();
    let err = right.kv_get("plain").await.unwrap_err();
    assert!(err.to_string().contains("not sealed"), "{err}");
    // Journals: a wrong key names the execution and the field.
    let id = ExecutionId::from("e");
    let event = orchestrate_core::journal::Event {
        execution_id: id.clone(),
        seq: 0,
        at_us: 0,
        kind: orchestrate_core::journal::EventKind::Custom {
            step: "s".into(),
            name: "n".into(),
            payload: Box::new(json!(1)),
        },
    };
    right.append(&id, &[event]).await.unwrap();
    let err = wrong.load(&id, 0).await.unwrap_err();
    assert!(
        err.to_string().contains("execution `e`, seq 0, payload"),
        "{err}"
    );
}

#[test]
fn keys_come_from_base64_of_32_bytes() {
    assert!(EncryptionKey::from_base64("AAAA").is_err(), "3 bytes");
    let ok = EncryptionKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    assert_eq!(format!("{ok:?}"), "EncryptionKey(..)");
    assert!(EncryptionKey::from_base64("not base64!").is_err());
}

#[tokio::test]
async fn verify_reports_every_sealed_value_that_does_not_open() {
    let inner = Arc::new(MemoryStore::new());
    let sealed = EncryptedStore::new(inner.clone(), key(5));
    let journal = orchestrate_testing::store_conformance::journal_carrying(
        "sealed",
        &json!({"secret": [1, 2]}),
    );
    sealed.append(&"sealed".into(), &journal).await.unwrap();
    let report = sealed.verify().await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.executions, report.events), (1, 5));

    // The same records read with another key: every sealed field fails.
    let other = EncryptedStore::new(inner, key(6));
    let report = other.verify().await.unwrap();
    let seqs: Vec<u64> = report
        .problems
        .iter()
        .map(|p| match p {
            orchestrate_core::store::Problem::UnreadableRecord {
                execution,
                seq,
                reason,
            } => {
                assert_eq!(execution.as_str(), "sealed");
                assert!(reason.contains("cannot decrypt"), "{reason}");
                *seq
            }
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
}
