//! PostgreSQL specifics: several stores (processes) on one schema,
//! concurrent migrations, newer schemas, unreachable servers, corruption.
//! Skipped (with a message) when `ORCHESTRATE_TEST_POSTGRES_URL` is unset.
#![cfg(feature = "postgres")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orchestrate_core::journal::{Event, EventKind};
use orchestrate_core::store::{Store, StoreError};
use orchestrate_core::ExecutionId;
use orchestrate_store::postgres::{PostgresConfig, PostgresStore, SCHEMA_VERSION};
use sqlx::postgres::PgPoolOptions;
use sqlx::Row;

fn url() -> Option<String> {
    let url = std::env::var("ORCHESTRATE_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        eprintln!("skipped: ORCHESTRATE_TEST_POSTGRES_URL is not set");
    }
    url
}

fn schema(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn open(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::connect_with(url, PostgresConfig::default().with_schema(schema))
        .await
        .unwrap()
}

async fn sql(url: &str, statement: String) -> Vec<sqlx::postgres::PgRow> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(statement))
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

fn event(id: &str, seq: u64, step: &str) -> Event {
    Event {
        execution_id: id.into(),
        seq,
        at_us: 0,
        kind: EventKind::StepScheduled { step: step.into() },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_both_append_one_sequence_number() {
    let Some(url) = url() else { return };
    let name = schema("race");
    let stores = [
        Arc::new(open(&url, &name).await),
        Arc::new(open(&url, &name).await),
    ];
    let id = ExecutionId::from("shared");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, id) = (stores[i % 2].clone(), id.clone());
            tokio::spawn(async move {
                let mut won = 0u64;
                for _ in 0..20 {
                    let next = store
                        .load(&id, 0)
                        .await
                        .map(|j| j.len() as u64)
                        .unwrap_or(0);
                    match store.append(&id, &[event("shared", next, "s")]).await {
                        Ok(()) => won += 1,
                        Err(StoreError::Conflict { .. }) => {}
                        Err(other) => panic!("unexpected {other}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += t.await.unwrap();
    }
    let journal = stores[0].load(&id, 0).await.unwrap();
    assert_eq!(journal.len() as u64, won);
    assert!(journal.iter().enumerate().all(|(i, e)| e.seq == i as u64));
    PostgresStore::drop_schema(&url, &name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_migrate_once_and_newer_schemas_are_refused() {
    let Some(url) = url() else { return };
    let name = schema("migrate");
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let (url, name) = (url.clone(), name.clone());
            tokio::spawn(async move { open(&url, &name).await })
        })
        .collect();
    for o in opens {
        o.await.unwrap();
    }
    let rows = sql(
        &url,
        format!("SELECT COUNT(*) AS n FROM \"{name}\".orchestrate_schema"),
    )
    .await;
    assert_eq!(rows[0].get::<i64, _>("n"), SCHEMA_VERSION);

    sql(
        &url,
        format!("INSERT INTO \"{name}\".orchestrate_schema (version) VALUES (42)"),
    )
    .await;
    match PostgresStore::connect_with(&url, PostgresConfig::default().with_schema(&name)).await {
        Err(StoreError::SchemaTooNew {
            found,
            supported,
            location,
        }) => {
            assert_eq!((found, supported), (42, SCHEMA_VERSION));
            assert!(location.contains(&name));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    PostgresStore::drop_schema(&url, &name).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_is_named_without_its_password() {
    let config = PostgresConfig {
        connect_timeout: std::time::Duration::from_millis(500),
        ..PostgresConfig::default()
    };
    let err = PostgresStore::connect_with("postgres://user:hunter2@127.0.0.1:1/db", config)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            StoreError::Unreachable {
                backend: "postgres",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        text.contains("127.0.0.1:1") && !text.contains("hunter2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_tampered_record_is_reported_never_returned() {
    let Some(url) = url() else { return };
    let name = schema("corrupt");
    let store = open(&url, &name).await;
    let id = ExecutionId::from("x");
    store
        .append(&id, &[event("x", 0, "fetch"), event("x", 1, "parse")])
        .await
        .unwrap();
    sql(
        &url,
        format!(
            "UPDATE \"{name}\".orchestrate_journal SET record = jsonb_set(record::jsonb, '{{step}}', '\"pwned\"')::json WHERE seq = 1"
        ),
    )
    .await;
    match store.load(&id, 0).await {
        Err(StoreError::Corrupt {
            seq, step, reason, ..
        }) => {
            assert_eq!((seq, step.as_deref()), (1, Some("parse")));
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected a corrupt-record error, got {other:?}"),
    }
    PostgresStore::drop_schema(&url, &name).await.unwrap();
}
