//! Versioned schema migrations, serialised across processes by an advisory
//! lock held for the migrating transaction.

use orchestrate_core::store::StoreError;
use sqlx::{PgPool, Row};

use super::backend_error;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_journal.sql"),
    ),
    (
        2,
        include_str!("../../migrations/postgres/0002_messages.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_events_from_journal.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_exact_json.sql"),
    ),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 4;

pub(crate) async fn migrate(pool: &PgPool, location: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(backend_error)?;
    // One lock per schema: concurrent openers wait, then find the work done.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('orchestrate_schema:' || current_schema()))",
    )
    .execute(&mut *tx)
    .await
    .map_err(backend_error)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orchestrate_schema (
            version BIGINT PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .execute(&mut *tx)
    .await
    .map_err(backend_error)?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM orchestrate_schema")
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get("v"))
        .map_err(backend_error)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            location: location.to_owned(),
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
        sqlx::query("INSERT INTO orchestrate_schema (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
        tracing::info!(%location, version, "applied schema migration");
    }
    tx.commit().await.map_err(backend_error)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::Arc;

    use orchestrate_core::journal::{Event, EventKind, ExecutionStart};
    use orchestrate_core::store::{MessageQuery, Store};
    use serde_json::json;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use super::MIGRATIONS;
    use crate::codec::canonical_checksum;
    use crate::postgres::{PostgresConfig, PostgresStore};

    fn event(seq: u64, kind: EventKind) -> Event {
        Event {
            execution_id: "old".into(),
            seq,
            at_us: seq,
            kind,
        }
    }

    /// Records, key-value values and messages written as JSONB by schema
    /// version 3 are read after the move to JSON, and their journals go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jsonb_records_of_version_3_are_read_and_continued_after_migrating() {
        let Ok(url) = std::env::var("ORCHESTRATE_TEST_POSTGRES_URL") else {
            eprintln!("skipped: ORCHESTRATE_TEST_POSTGRES_URL is not set");
            return;
        };
        let schema = format!("v3_{}", std::process::id());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&admin)
            .await
            .unwrap();
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE orchestrate_schema (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            .execute(&pool)
            .await
            .unwrap();
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 3) {
            sqlx::raw_sql(*sql).execute(&pool).await.unwrap();
            sqlx::query("INSERT INTO orchestrate_schema (version) VALUES ($1)")
                .bind(version)
                .execute(&pool)
                .await
                .unwrap();
        }
        let events = vec![
            event(
                0,
                EventKind::ExecutionStarted(Arc::new(ExecutionStart {
                    workflow: "w".into(),
                    version: "1".into(),
                    correlation_id: "old".into(),
                    input: Arc::new(json!({"b": [1, 2.5], "a": "x"})),
                    idempotency_key: None,
                    started_at_ms: 1,
                    steps: Arc::from(["s".into()]),
                })),
            ),
            event(
                1,
                EventKind::StepSucceeded {
                    step: "s".into(),
                    output: Arc::new(json!({"z": {"y": [true, null]}, "a": 0.5})),
                    attempts: 1,
                    fallback_from: None,
                },
            ),
        ];
        for e in &events {
            // As version 3 wrote them: JSONB, the checksum over the
            // canonical form, record version 1.
            sqlx::query(
                "INSERT INTO orchestrate_journal VALUES ($1, $2, $3, $4, $5::jsonb, $6, 1)",
            )
            .bind("old")
            .bind(i64::try_from(e.seq).unwrap())
            .bind(e.kind.name())
            .bind(e.kind.step().map(|s| s.to_string()))
            .bind(serde_json::to_string(e).unwrap())
            .bind(canonical_checksum(e).unwrap())
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::raw_sql(
            "INSERT INTO orchestrate_executions VALUES ('old', 'w', 'running', NULL, 1);
             INSERT INTO orchestrate_kv VALUES ('k', '{\"b\": 1, \"a\": [2]}'::jsonb, NULL);
             INSERT INTO orchestrate_messages (recipient, priority, payload, status, created_at_ms)
                 VALUES ('box', 0, '{\"hello\": \"world\"}'::jsonb, 'pending', 1);",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store =
            PostgresStore::connect_with(&url, PostgresConfig::default().with_schema(&schema))
                .await
                .unwrap();
        assert_eq!(store.load(&"old".into(), 0).await.unwrap(), events);
        assert_eq!(
            store.kv_get("k").await.unwrap(),
            Some(json!({"a": [2], "b": 1}))
        );
        let messages = store.list_messages(&MessageQuery::default()).await.unwrap();
        assert_eq!(messages[0].payload, json!({"hello": "world"}));
        // The journal goes on in the new form, beside the old records.
        let next = event(
            2,
            EventKind::StepSucceeded {
                step: "s".into(),
                output: Arc::new(json!({"neg_zero": -0.0, "big": 1e15, "nul": "\u{0}"})),
                attempts: 1,
                fallback_from: None,
            },
        );
        store
            .append(&"old".into(), std::slice::from_ref(&next))
            .await
            .unwrap();
        let loaded = store.load(&"old".into(), 0).await.unwrap();
        assert_eq!(loaded.len(), 3);
        assert_eq!(loaded[2], next);
        let report = store.verify().await.unwrap();
        assert!(report.is_clean(), "{report}");
        store.close().await;
        PostgresStore::drop_schema(&url, &schema).await.unwrap();
        admin.close().await;
    }
}
