//! SQLite specifics: corruption, schema versions, unreachable files,
//! durability modes, group commit, and orchestrator runs that survive.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use orchestrate_core::journal::{Event, EventKind};
use orchestrate_core::store::{Store, StoreError};
use orchestrate_core::{agent_fn, ExecutionId, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_store::sqlite::{Durability, SqliteConfig, SqliteStore, SCHEMA_VERSION};
use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

fn scheduled(id: &str, seq: u64, step: &str) -> Event {
    Event {
        execution_id: id.into(),
        seq,
        at_us: 0,
        kind: EventKind::StepScheduled { step: step.into() },
    }
}

async fn raw(path: &std::path::Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tampered_record_is_reported_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let id = ExecutionId::from("x");
    store
        .append(
            &id,
            &[scheduled("x", 0, "fetch"), scheduled("x", 1, "parse")],
        )
        .await
        .unwrap();
    let mut conn = raw(&path).await;
    sqlx::query(
        "UPDATE orchestrate_journal SET record = replace(record, 'parse', 'pwned') \
         WHERE key & 4294967295 = 1",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    match store.load(&id, 0).await {
        Err(StoreError::Corrupt {
            execution,
            seq,
            step,
            reason,
        }) => {
            assert_eq!(
                (execution.as_str(), seq, step.as_deref()),
                ("x", 1, Some("parse"))
            );
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected a corrupt-record error, got {other:?}"),
    }
    // The record before it is intact.
    let first = store.load(&id, 0).await;
    assert!(
        first.is_err(),
        "a load that covers the bad record fails as a whole"
    );
    assert!(store.load(&id, 2).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    SqliteStore::open(&path).await.unwrap().close().await;
    let mut conn = raw(&path).await;
    sqlx::query("INSERT INTO orchestrate_schema (version, applied_at_ms) VALUES (99, 0)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    match SqliteStore::open(&path).await {
        Err(StoreError::SchemaTooNew {
            location,
            found,
            supported,
        }) => {
            assert!(location.ends_with("new.db"));
            assert_eq!((found, supported), (99, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_path_is_a_typed_error_naming_it() {
    let err = SqliteStore::open("/nonexistent-dir/sub/x.db")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Unreachable { backend: "sqlite", ref location, .. } if location.contains("nonexistent-dir"))
    );
    assert!(err.to_string().contains("/nonexistent-dir/sub/x.db"));
}

#[tokio::test]
async fn concurrent_opens_apply_each_migration_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.db");
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteStore::open(path).await })
        })
        .collect();
    for o in opens {
        o.await.unwrap().unwrap();
    }
    let mut conn = raw(&path).await;
    let rows: i64 = sqlx::query("SELECT COUNT(*) AS n FROM orchestrate_schema")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get("n");
    assert_eq!(rows, SCHEMA_VERSION);
}

#[tokio::test]
async fn durability_modes_set_the_synchronous_pragma_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    for (mode, expected) in [(Durability::Process, 1i64), (Durability::PowerLoss, 2)] {
        let path = dir.path().join(format!("{expected}.db"));
        let store = SqliteStore::open_with(&path, SqliteConfig::default().with_durability(mode))
            .await
            .unwrap();
        // Probe through the store's own connections: the pragma is per connection.
        let sync = store.pragma("synchronous").await.unwrap();
        let journal = store.pragma("journal_mode").await.unwrap();
        assert_eq!(
            (sync, journal.as_str()),
            (expected.to_string(), "wal"),
            "{mode:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("g.db")).await.unwrap());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("exec-{i}");
                store
                    .append(&id.as_str().into(), &[scheduled(&id, 0, "s")])
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let commits = store.commits();
    assert!(commits < 200, "200 appends took {commits} transactions");
    for i in [0, 199] {
        let id = format!("exec-{i}");
        assert_eq!(store.load(&id.as_str().into(), 0).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn an_orchestrator_run_is_journaled_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("a", "double").input(json!("${input.n}")))
        .step(
            StepDef::new("b", "double")
                .depends_on(["a"])
                .input(json!("${steps.a.output}")),
        )
        .build();
    let double = || {
        agent_fn("double", |n, _| async move {
            Ok(json!(n.as_i64().unwrap() * 2))
        })
    };
    let id = {
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let orch = Orchestrator::builder()
            .agent(double())
            .store(store)
            .build()
            .unwrap();
        let exec = orch
            .run(&orch.bind(&def).unwrap(), json!({"n": 5}))
            .await
            .unwrap();
        assert_eq!(exec.clone().await.unwrap().output("b"), Some(&json!(20)));
        exec.id().clone()
    };
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let orch = Orchestrator::builder()
        .agent(double())
        .store(store)
        .build()
        .unwrap();
    let view = orch.execution(&id).await.unwrap().wait().await.unwrap();
    assert_eq!(view.output("b"), Some(&json!(20)));
}

#[tokio::test]
async fn a_parked_execution_is_approved_after_the_process_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hitl.db");
    let def = WorkflowDef::builder("hitl")
        .step(StepDef::new("ask", "ask").input(json!("${input}")))
        .step(
            StepDef::new("after", "echo")
                .depends_on(["ask"])
                .input(json!("${steps.ask.output.answer}")),
        )
        .build();
    let build = |store: Arc<SqliteStore>| {
        Orchestrator::builder()
            .agent(agent_fn("ask", |q, _| async move {
                Err(orchestrate_core::AgentError::interrupt(
                    json!({"question": q}),
                ))
            }))
            .agent(agent_fn("echo", |v, _| async move { Ok(v) }))
            .store(store)
            .workflow(def.clone())
            .build()
            .unwrap()
    };
    let id = {
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let orch = build(store);
        let exec = orch
            .run(&orch.workflow("hitl").unwrap(), json!("deploy?"))
            .await
            .unwrap();
        assert_eq!(exec.wait().await.unwrap_err().code(), "parked");
        exec.id().clone()
    };
    let orch = build(Arc::new(SqliteStore::open(&path).await.unwrap()));
    let parked = orch.execution(&id).await.unwrap().view();
    assert_eq!(
        parked.step("ask").unwrap().interrupt.as_deref(),
        Some(&json!({"question": "deploy?"}))
    );
    let view = orch
        .approve(&id, "ask", json!({"answer": "yes"}))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(view.output("after"), Some(&json!("yes")));
}

/// WAL frames written so far, read from the WAL file's size and the page
/// size in its header.
fn wal_frames(db: &std::path::Path) -> u64 {
    let wal = db.with_extension("db-wal");
    let bytes = std::fs::read(&wal).unwrap_or_default();
    if bytes.len() < 32 {
        return 0;
    }
    let page = u64::from(u32::from_be_bytes([
        bytes[8], bytes[9], bytes[10], bytes[11],
    ]));
    (bytes.len() as u64 - 32) / (page + 24)
}

#[tokio::test]
async fn a_step_commit_appends_about_one_page_to_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let id = ExecutionId::from("0b6f3c1e-8a5a-4d1c-9b1e-2f1e5f6a7b8c");
    let record = |seq: u64| Event {
        execution_id: id.clone(),
        seq,
        at_us: seq,
        kind: EventKind::StepSucceeded {
            step: format!("step-{seq}").into(),
            output: Arc::new(json!({"count": seq, "text": "a step's output of some size"})),
            attempts: 1,
            fallback_from: None,
        },
    };
    store.append(&id, &[record(0), record(1)]).await.unwrap();
    let before = wal_frames(&path);
    let commits = 200;
    for c in 1..=commits {
        store
            .append(&id, &[record(2 * c), record(2 * c + 1)])
            .await
            .unwrap();
    }
    let per_commit = (wal_frames(&path) - before) as f64 / commits as f64;
    // An append at the end of a rowid table's run of keys adds a leaf
    // without rebalancing; the journal keyed by (execution_id, seq) WITHOUT
    // ROWID wrote about 2.4 frames per such commit.
    assert!(
        per_commit < 1.7,
        "{per_commit:.2} WAL frames per commit of two events"
    );
    assert_eq!(
        store.load(&id, 0).await.unwrap().len(),
        2 * commits as usize + 2
    );
}
