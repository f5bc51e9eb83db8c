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
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 3;

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
