//! The SQLite statements of the group-committing writer.

use async_trait::async_trait;
use orchestrate_core::store::{Message, NewMessage, StoreError};
use orchestrate_core::ExecutionId;
use sqlx::{AssertSqlSafe, Row, Sqlite, SqlitePool, Transaction};

use super::journal::{insert_sql, NEXT_SEQ_SQL, NUMBER_SQL, PUT_PROJECTION_SQL};
use super::{backend_error, message_from_row};
use crate::audit::ProjectionRow;
use crate::codec::{status_text, Encoded};
use crate::group_commit::{Append, Claim, WriteBackend, WriteTxn};

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

    async fn append_alone(&self, append: &Append) -> Result<bool, StoreError> {
        let Some(first) = append.rows.first() else {
            return Ok(true);
        };
        // One worker round trip for the whole transaction, in as few
        // statements as it takes (the worker answers each one): the journal
        // gets its number only when it starts, and the insert returns its
        // rows instead of a statement asking how many there were.
        // `changes()` still counts the journal insert when the projection
        // statement runs, so the projection is written only with the
        // journal rows.
        let base = 3 + append.rows.len() * 5;
        let projection = if append.started.is_some() {
            format!(
                "INSERT INTO orchestrate_executions (id, workflow, status, idempotency_key, started_at_ms)
                 SELECT ?1, ?{}, ?{}, ?{}, ?{} WHERE changes() > 0 ON CONFLICT(id) DO NOTHING;",
                base,
                base + 1,
                base + 2,
                base + 3
            )
        } else if append.finished.is_some() {
            format!(
                "UPDATE orchestrate_executions SET status = ?{base} WHERE id = ?1 AND changes() > 0;"
            )
        } else {
            String::new()
        };
        let number = if first.seq == 0 {
            format!("{NUMBER_SQL};")
        } else {
            String::new()
        };
        let sql = format!(
            "BEGIN IMMEDIATE; {number} {} RETURNING key; {projection} COMMIT;",
            insert_sql(append.rows.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(append.execution.as_str())
            .bind(first.seq);
        for row in &append.rows {
            query = query
                .bind(row.seq)
                .bind(row.kind)
                .bind(row.step.as_deref())
                .bind(row.record.as_slice())
                .bind(row.checksum);
        }
        if let Some((workflow, key, started_at_ms)) = &append.started {
            query = query
                .bind(workflow)
                .bind(append.finished.unwrap_or("running"))
                .bind(key.as_deref())
                .bind(started_at_ms);
        } else if let Some(status) = append.finished {
            query = query.bind(status);
        }
        let mut conn = self.0.acquire().await.map_err(backend_error)?;
        match query.fetch_all(&mut *conn).await {
            // Only the insert returns rows: one per event it stored.
            Ok(rows) => Ok(!rows.is_empty()),
            Err(e) => {
                // A statement failed inside the transaction: end it, or
                // drop the connection rather than hand it on mid-transaction.
                match sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(db))
                        if db.message().contains("no transaction is active") => {}
                    Err(_) => conn.close_on_drop(),
                }
                Err(backend_error(e))
            }
        }
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
        let row = sqlx::query(NEXT_SEQ_SQL)
            .bind(execution)
            .fetch_optional(&mut *self.0)
            .await
            .map_err(backend_error)?;
        row.map_or(Ok(0), |row| row.try_get("next"))
            .map_err(backend_error)
    }

    async fn insert_events(
        &mut self,
        execution: &ExecutionId,
        rows: &[Encoded],
    ) -> Result<bool, StoreError> {
        let Some(first) = rows.first() else {
            return Ok(true);
        };
        sqlx::query(NUMBER_SQL)
            .bind(execution.as_str())
            .bind(first.seq)
            .execute(&mut *self.0)
            .await
            .map_err(backend_error)?;
        let mut query = sqlx::query(AssertSqlSafe(insert_sql(rows.len())))
            .bind(execution.as_str())
            .bind(first.seq);
        for row in rows {
            query = query
                .bind(row.seq)
                .bind(row.kind)
                .bind(row.step.as_deref())
                .bind(row.record.as_slice())
                .bind(row.checksum);
        }
        query
            .execute(&mut *self.0)
            .await
            .map(|done| done.rows_affected() > 0)
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
            "INSERT INTO orchestrate_executions (id, workflow, status, idempotency_key, started_at_ms)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT(id) DO NOTHING",
        )
        .bind(execution)
        .bind(workflow)
        .bind(append.finished.unwrap_or("running"))
        .bind(key.as_deref())
        .bind(started_at_ms)
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
        sqlx::query("UPDATE orchestrate_executions SET status = COALESCE(?, status) WHERE id = ?")
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

    async fn message_insert(
        &mut self,
        message: &NewMessage,
        payload: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        sqlx::query(
            "INSERT INTO orchestrate_messages (recipient, sender, thread, priority, payload, status, deliveries, created_at_ms)
             VALUES (?, ?, ?, ?, ?, 'pending', 0, ?) RETURNING id",
        )
        .bind(&message.recipient)
        .bind(message.sender.as_deref())
        .bind(message.thread.as_deref())
        .bind(message.priority)
        .bind(payload)
        .bind(now_ms)
        .fetch_one(&mut *self.0)
        .await
        .and_then(|row| row.try_get("id"))
        .map_err(backend_error)
    }

    async fn message_claim(&mut self, claim: &Claim) -> Result<Vec<Message>, StoreError> {
        // The write lock is held (BEGIN IMMEDIATE): nobody claims in between.
        let rows = sqlx::query(
            "SELECT id, recipient, sender, thread, priority, payload, status, deliveries, created_at_ms
             FROM orchestrate_messages
             WHERE recipient = ? AND (status = 'pending' OR (status = 'delivered' AND delivered_at_ms <= ?))
             ORDER BY priority DESC, id LIMIT ?",
        )
        .bind(&claim.recipient)
        .bind(claim.cutoff_ms)
        .bind(claim.limit)
        .fetch_all(&mut *self.0)
        .await
        .map_err(backend_error)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut message = message_from_row(row)?;
            if i64::from(message.deliveries) >= claim.max_deliveries {
                sqlx::query("UPDATE orchestrate_messages SET status = 'dead' WHERE id = ?")
                    .bind(message.id)
                    .execute(&mut *self.0)
                    .await
                    .map_err(backend_error)?;
                continue;
            }
            sqlx::query(
                "UPDATE orchestrate_messages SET status = 'delivered', deliveries = deliveries + 1, delivered_at_ms = ?
                 WHERE id = ?",
            )
            .bind(claim.now_ms)
            .bind(message.id)
            .execute(&mut *self.0)
            .await
            .map_err(backend_error)?;
            message.deliveries += 1;
            message.status = orchestrate_core::store::MessageStatus::Delivered;
            claimed.push(message);
        }
        Ok(claimed)
    }

    async fn message_settle(&mut self, id: i64, ack: bool) -> Result<(), StoreError> {
        let sql = if ack {
            "UPDATE orchestrate_messages SET status = 'processed' WHERE id = ?"
        } else {
            "UPDATE orchestrate_messages SET status = 'pending', delivered_at_ms = NULL
             WHERE id = ? AND status = 'delivered'"
        };
        sqlx::query(sql)
            .bind(id)
            .execute(&mut *self.0)
            .await
            .map_err(backend_error)?;
        let exists = sqlx::query("SELECT 1 FROM orchestrate_messages WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await
            .map_err(backend_error)?;
        exists.map(|_| ()).ok_or(StoreError::MessageNotFound { id })
    }

    async fn put_projection(&mut self, row: &ProjectionRow) -> Result<bool, StoreError> {
        sqlx::query(PUT_PROJECTION_SQL)
            .bind(row.id.as_str())
            .bind(&row.workflow)
            .bind(status_text(row.status))
            .bind(row.idempotency_key.as_deref())
            .bind(row.started_at_ms)
            .bind(i64::try_from(row.events).unwrap_or(i64::MAX))
            .execute(&mut *self.0)
            .await
            .map(|done| done.rows_affected() > 0)
            .map_err(backend_error)
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.0.commit().await.map_err(backend_error)
    }
}
