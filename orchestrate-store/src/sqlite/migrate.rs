//! Versioned schema migrations, applied on open under the write lock so that
//! two processes opening one file at once apply each migration exactly once.

use orchestrate_core::store::StoreError;
use sqlx::{Row, SqlitePool};

use super::backend_error;

/// `(version, SQL)`, in order.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_journal.sql")),
    (2, include_str!("../../migrations/sqlite/0002_messages.sql")),
    (
        3,
        include_str!("../../migrations/sqlite/0003_events_from_journal.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_journal_keyed_by_number.sql"),
    ),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 4;

pub(crate) async fn migrate(pool: &SqlitePool, location: &str) -> Result<(), StoreError> {
    let err = |e: sqlx::Error| backend_error(e);
    // BEGIN IMMEDIATE takes the database's write lock first: a second process
    // waits (busy timeout), then sees the versions the first one recorded.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orchestrate_schema (
            version INTEGER PRIMARY KEY,
            applied_at_ms INTEGER NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM orchestrate_schema")
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?
        .try_get("v")
        .map_err(err)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            location: location.to_owned(),
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(err)?;
        sqlx::query("INSERT INTO orchestrate_schema (version, applied_at_ms) VALUES (?, strftime('%s','now') * 1000)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tracing::info!(%location, version, "applied schema migration");
    }
    tx.commit().await.map_err(err)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use orchestrate_core::journal::{Event, EventKind, ExecutionStart};
    use orchestrate_core::store::{ExecutionQuery, Store, StoreError};
    use orchestrate_core::ExecutionId;
    use serde_json::json;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::SqlitePool;

    use super::MIGRATIONS;
    use crate::codec::encode;
    use crate::sqlite::SqliteStore;

    fn event(id: &str, seq: u64, kind: EventKind) -> Event {
        Event {
            execution_id: id.into(),
            seq,
            at_us: seq,
            kind,
        }
    }

    fn journal(id: &str, steps: u64) -> Vec<Event> {
        let mut events = vec![event(
            id,
            0,
            EventKind::ExecutionStarted(Arc::new(ExecutionStart {
                workflow: "w".into(),
                version: "1".into(),
                correlation_id: id.into(),
                input: Arc::new(json!({"n": 1})),
                idempotency_key: None,
                started_at_ms: 1,
                steps: Arc::from(["a".into()]),
            })),
        )];
        events.extend((1..=steps).map(|seq| {
            event(
                id,
                seq,
                EventKind::StepSucceeded {
                    step: "a".into(),
                    output: Arc::new(json!({"seq": seq})),
                    attempts: 1,
                    fallback_from: None,
                },
            )
        }));
        events
    }

    /// A database as version 3 of the schema left it, holding `journals`.
    async fn version_3(path: &std::path::Path, journals: &[Vec<Event>]) {
        let pool = SqlitePool::connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal),
        )
        .await
        .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE orchestrate_schema (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 3) {
            sqlx::raw_sql(*sql).execute(&pool).await.unwrap();
            sqlx::query("INSERT INTO orchestrate_schema VALUES (?, 0)")
                .bind(version)
                .execute(&pool)
                .await
                .unwrap();
        }
        for events in journals {
            let id = events[0].execution_id.as_str();
            sqlx::query(
                "INSERT INTO orchestrate_executions (id, workflow, status, started_at_ms) VALUES (?, 'w', 'running', 1)",
            )
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
            for e in events {
                let row = encode(e).unwrap();
                sqlx::query("INSERT INTO orchestrate_journal VALUES (?, ?, ?, ?, ?, ?, 1)")
                    .bind(id)
                    .bind(row.seq)
                    .bind(row.kind)
                    .bind(row.step)
                    .bind(row.record)
                    .bind(row.checksum)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        }
        pool.close().await;
    }

    #[tokio::test]
    async fn journals_written_under_version_3_are_read_and_continued_after_migrating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        let (a, b) = (journal("exec-a", 3), journal("exec-b", 40));
        version_3(&path, &[a.clone(), b.clone()]).await;

        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.load(&"exec-a".into(), 0).await.unwrap(), a);
        assert_eq!(store.load(&"exec-b".into(), 0).await.unwrap(), b);
        assert_eq!(store.load(&"exec-b".into(), 38).await.unwrap(), b[38..]);
        let listed = store.list_executions(&ExecutionQuery::all()).await.unwrap();
        let count = |id: &str| listed.iter().find(|s| s.id.as_str() == id).unwrap().events;
        assert_eq!((count("exec-a"), count("exec-b")), (4, 41));

        // Each journal goes on where it stopped, and nowhere else.
        let next = journal("exec-a", 4).pop().unwrap();
        let a_id = ExecutionId::from("exec-a");
        store
            .append(&a_id, std::slice::from_ref(&next))
            .await
            .unwrap();
        assert!(matches!(
            store.append(&a_id, &[next]).await,
            Err(StoreError::Conflict {
                expected: 4,
                actual: 5,
                ..
            })
        ));
        assert_eq!(store.load(&a_id, 0).await.unwrap().len(), 5);
        assert_eq!(store.load(&"exec-b".into(), 0).await.unwrap(), b);
        let fresh = journal("exec-c", 2);
        store.append(&"exec-c".into(), &fresh).await.unwrap();
        assert_eq!(store.load(&"exec-c".into(), 0).await.unwrap(), fresh);
    }
}
