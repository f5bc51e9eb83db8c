//! An `n`-step chain made durable step by step on SQLite or PostgreSQL.

use std::sync::Arc;

use orchestrate_core::store::Store;
use orchestrate_core::{agent_fn, Orchestrator};
use orchestrate_store::postgres::{PostgresConfig, PostgresStore};
use orchestrate_store::sqlite::{Durability, SqliteConfig, SqliteStore};
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{compare_interleaved, Report};
use crate::chain_workflow;

fn orchestrator(store: Arc<dyn Store>) -> Orchestrator {
    Orchestrator::builder()
        .agent(agent_fn("inc", |input: Value, _| async move {
            Ok(json!({"count": input["count"].as_i64().unwrap_or(0) + 1}))
        }))
        .store(store)
        .build()
        .expect("orchestrator")
}

/// Both durability modes. Floor: `n` sequential single-row insert
/// transactions through sqlx on the same settings.
pub(super) async fn checkpoint_sqlite(n: usize, reps: usize) -> Result<Vec<Report>, String> {
    let mut reports = Vec::new();
    for (name, durability, sync) in [
        (
            "checkpoint_sqlite",
            Durability::Process,
            SqliteSynchronous::Normal,
        ),
        (
            "checkpoint_sqlite_full",
            Durability::PowerLoss,
            SqliteSynchronous::Full,
        ),
    ] {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let store = SqliteStore::open_with(
            dir.path().join("bench.db"),
            SqliteConfig::default().with_durability(durability),
        )
        .await
        .map_err(|e| e.to_string())?;
        let orch = orchestrator(Arc::new(store));
        let wf = orch
            .bind(&chain_workflow(n, "inc"))
            .map_err(|e| e.to_string())?;
        // The same pool settings as the store's (no ping per acquire).
        let floor_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(dir.path().join("floor.db"))
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(sync),
            )
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query("CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .execute(&floor_pool)
            .await
            .map_err(|e| e.to_string())?;
        let report = compare_interleaved(
            name,
            n,
            reps,
            || async {
                orch.run(&wf, json!({"count": 0}))
                    .await
                    .expect("started")
                    .await
                    .expect("finished");
            },
            || async {
                for i in 0..n {
                    let mut tx = floor_pool.begin().await.expect("begin");
                    sqlx::query("INSERT INTO rows (body) VALUES (?)")
                        .bind(format!("{{\"count\":{i}}}"))
                        .execute(&mut *tx)
                        .await
                        .expect("insert");
                    tx.commit().await.expect("commit");
                }
            },
        )
        .await;
        reports.push(report);
    }
    Ok(reports)
}

/// Floor: `n` sequential single-row insert transactions.
pub(super) async fn checkpoint_postgres(n: usize, reps: usize) -> Result<Option<Report>, String> {
    let Ok(url) = std::env::var("ORCHESTRATE_TEST_POSTGRES_URL") else {
        eprintln!("checkpoint_postgres: skipped, ORCHESTRATE_TEST_POSTGRES_URL is not set");
        return Ok(None);
    };
    let schema = format!("bench_{}", std::process::id());
    let store = PostgresStore::connect_with(&url, PostgresConfig::default().with_schema(&schema))
        .await
        .map_err(|e| e.to_string())?;
    let orch = orchestrator(Arc::new(store));
    let wf = orch
        .bind(&chain_workflow(n, "inc"))
        .map_err(|e| e.to_string())?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .map_err(|e| e.to_string())?;
    let table = format!("\"{schema}\".floor_rows");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, body JSONB NOT NULL)"
    )))
    .execute(&pool)
    .await
    .map_err(|e| e.to_string())?;
    let insert = format!("INSERT INTO {table} (body) VALUES ($1::jsonb)");
    let report = compare_interleaved(
        "checkpoint_postgres",
        n,
        reps,
        || async {
            orch.run(&wf, json!({"count": 0}))
                .await
                .expect("started")
                .await
                .expect("finished");
        },
        || async {
            for i in 0..n {
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                    .bind(format!("{{\"count\":{i}}}"))
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
                tx.commit().await.expect("commit");
            }
        },
    )
    .await;
    PostgresStore::drop_schema(&url, &schema)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(report))
}
