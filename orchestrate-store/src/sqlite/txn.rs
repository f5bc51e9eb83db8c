//! The SQLite statements of the group-committing writer.

use async_trait::async_trait;
use orchestrate_core::store::StoreError;
use orchestrate_core::ExecutionId;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use super::backend_error;
use crate::codec::{Encoded, RECORD_VERSION};
use crate::group_commit::{Append, WriteBackend, WriteTxn};

pub(super) struct SqliteWriter(pub(super) SqlitePool);

#[async_trait]
impl WriteBackend for SqliteWriter {
    async fn begin(&self) -> Result<Box<dyn WriteTxn>, StoreError> {
        // IMMEDIATE takes the write lock now: the sequence check and the
        // insert that follows cannot interleave with another process.
        let tx = self
            .0
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend_error)?;
        Ok(Box::new(SqliteTxn(tx)))
    }

    async fn close(&self) {
        self.0.close().await;
    }
}

struct SqliteTxn(Transaction<'static, Sqlite>);

impl SqliteTxn {
    async fn exec(&mut self, sql: &'static str) -> Result<(), StoreError> {
        sqlx::query(sql)
            .execute(&mut *self.0)
            .await
            .map(|_| ())
            .map_err(backend_error)
    }
}

#[async_trait]
impl WriteTxn for SqliteTxn {
    async fn savepoint(&mut self) -> Result<(), StoreError> {
        self.exec("SAVEPOINT op").await
    }

    async fn release(&mut self) -> Result<(), StoreError> {
        self.exec("RELEASE op").await
    }

    async fn rollback_to(&mut self) -> Result<(), StoreError> {
        self.exec("ROLLBACK TO op").await
    }

    async fn next_seq(&mut self, execution: &str) -> Result<i64, StoreError> {
        sqlx::query("SELECT COALESCE(MAX(seq) + 1, 0) AS next FROM orchestrate_journal WHERE execution_id = ?")
            .bind(execution)
            .fetch_one(&mut *self.0)
            .await
            .and_then(|row| row.try_get("next"))
            .map_err(backend_error)
    }

    async fn insert_event(
        &mut self,
        execution: &ExecutionId,
        row: &Encoded,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO orchestrate_journal (execution_id, seq, kind, step, record, checksum, record_version)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(execution.as_str())
        .bind(row.seq)
        .bind(row.kind)
        .bind(row.step.as_deref())
        .bind(&row.record)
        .bind(row.checksum)
        .bind(RECORD_VERSION)
        .execute(&mut *self.0)
        .await
        .map(|_| ())
        .map_err(backend_error)
    }

    async fn start_execution(
        &mut self,
        execution: &str,
        append: &Append,
    ) -> Result<(), StoreError> {
        let Some((workflow, key, started_at_ms)) = &append.started else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO orchestrate_executions (id, workflow, status, idempotency_key, started_at_ms, events)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET events = excluded.events",
        )
        .bind(execution)
        .bind(workflow)
        .bind(append.finished.unwrap_or("running"))
        .bind(key.as_deref())
        .bind(started_at_ms)
        .bind(append.events)
        .execute(&mut *self.0)
        .await
        .map(|_| ())
        .map_err(backend_error)
    }

    async fn update_execution(
        &mut self,
        execution: &str,
        append: &Append,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE orchestrate_executions SET events = ?, status = COALESCE(?, status) WHERE id = ?")
            .bind(append.events)
            .bind(append.finished)
            .bind(execution)
            .execute(&mut *self.0)
            .await
            .map(|_| ())
            .map_err(backend_error)
    }

    async fn kv_live(&mut self, key: &str, now_ms: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT value FROM orchestrate_kv WHERE key = ? AND (expires_at_ms IS NULL OR expires_at_ms > ?)",
        )
        .bind(key)
        .bind(now_ms)
        .fetch_optional(&mut *self.0)
        .await
        .map_err(backend_error)?;
        row.map(|r| r.try_get("value").map_err(backend_error))
            .transpose()
    }

    async fn kv_upsert(
        &mut self,
        key: &str,
        value: &str,
        expires_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO orchestrate_kv (key, value, expires_at_ms) VALUES (?, ?, ?)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms",
        )
        .bind(key)
        .bind(value)
        .bind(expires_at_ms)
        .execute(&mut *self.0)
        .await
        .map(|_| ())
        .map_err(backend_error)
    }

    async fn kv_remove(&mut self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM orchestrate_kv WHERE key = ?")
            .bind(key)
            .execute(&mut *self.0)
            .await
            .map(|_| ())
            .map_err(backend_error)
    }

    async fn kv_sweep(&mut self, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM orchestrate_kv WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?",
        )
        .bind(now_ms)
        .execute(&mut *self.0)
        .await
        .map(|_| ())
        .map_err(backend_error)
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.0.commit().await.map_err(backend_error)
    }
}
