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
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 3;

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
