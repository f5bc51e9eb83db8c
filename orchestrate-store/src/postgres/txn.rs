//! The PostgreSQL statements of the group-committing writer.

use async_trait::async_trait;
use orchestrate_core::store::{Message, NewMessage, StoreError};
use orchestrate_core::ExecutionId;
use sqlx::{AssertSqlSafe, PgPool, Postgres, Row, Transaction};

use super::{backend_error, message_from_row};
use crate::audit::ProjectionRow;
use crate::codec::{journal_insert_sql, status_text, Encoded};
use crate::group_commit::{Append, Claim, WriteBackend, WriteTxn};

pub(super) struct PgWriter(pub(super) PgPool);

#[async_trait]
impl WriteBackend for PgWriter {
    async fn begin(&self) -> Result<Box<dyn WriteTxn>, StoreError> {
        let tx = self.0.begin().await.map_err(backend_error)?;
        Ok(Box::new(PgTxn(tx)))
    }

    async fn append_alone(&self, append: &Append) -> Result<bool, StoreError> {
        let Some(first) = append.rows.first() else {
            return Ok(true);
        };
        // One statement outside a transaction block is a transaction of its
        // own: the sequence check, the rows and the projection commit
        // together in one round trip. The projection runs only when the
        // journal insert returned rows.
        let base = 3 + append.rows.len() * 5;
        let projection = if append.started.is_some() {
            format!(
                ", p AS (INSERT INTO orchestrate_executions (id, workflow, status, idempotency_key, started_at_ms)
                   SELECT $1, ${}, ${}, ${}, ${} WHERE EXISTS (SELECT 1 FROM j)
                   ON CONFLICT (id) DO NOTHING)",
                base,
                base + 1,
                base + 2,
                base + 3
            )
        } else if append.finished.is_some() {
            format!(
                ", p AS (UPDATE orchestrate_executions SET status = ${base}
                   WHERE id = $1 AND EXISTS (SELECT 1 FROM j))"
            )
        } else {
            String::new()
        };
        let sql = format!(
            "WITH j AS ({} RETURNING 1){projection} SELECT count(*) AS inserted FROM j",
            journal_insert_sql(append.rows.len(), '$', "::json")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(append.execution.as_str())
            .bind(first.seq);
        for row in &append.rows {
            query = query
                .bind(row.seq)
                .bind(row.kind)
                .bind(row.step.as_deref())
                .bind(utf8(&row.record)?)
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
        match query.fetch_one(&self.0).await {
            Ok(row) => row
                .try_get::<i64, _>("inserted")
                .map(|inserted| inserted > 0)
                .map_err(backend_error),
            // Another process's transaction held one of these sequence
            // numbers when this one checked; the transaction path reports
            // the conflict with the journal's length.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => Ok(false),
            Err(e) => Err(backend_error(e)),
        }
    }

    async fn close(&self) {
        self.0.close().await;
    }
}

struct PgTxn(Transaction<'static, Postgres>);

impl PgTxn {
    async fn exec(&mut self, sql: &'static str) -> Result<(), StoreError> {
        sqlx::query(sql)
            .execute(&mut *self.0)
            .await
            .map(|_| ())
            .map_err(backend_error)
    }
}

fn utf8(record: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(record).map_err(|e| StoreError::Codec {
        what: "journal record".into(),
        reason: e.to_string(),
    })
}

#[async_trait]
impl WriteTxn for PgTxn {
    async fn savepoint(&mut self) -> Result<(), StoreError> {
        self.exec("SAVEPOINT op").await
    }

    async fn release(&mut self) -> Result<(), StoreError> {
        self.exec("RELEASE SAVEPOINT op").await
    }

    async fn rollback_to(&mut self) -> Result<(), StoreError> {
        self.exec("ROLLBACK TO SAVEPOINT op").await
    }

    async fn next_seq(&mut self, execution: &str) -> Result<i64, StoreError> {
        sqlx::query("SELECT COALESCE(MAX(seq) + 1, 0) AS next FROM orchestrate_journal WHERE execution_id = $1")
            .bind(execution)
            .fetch_one(&mut *self.0)
            .await
            .and_then(|row| row.try_get("next"))
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
        let sql = journal_insert_sql(rows.len(), '$', "::json");
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(execution.as_str())
            .bind(first.seq);
        for row in rows {
            query = query
                .bind(row.seq)
                .bind(row.kind)
                .bind(row.step.as_deref())
                .bind(utf8(&row.record)?)
                .bind(row.checksum);
        }
        match query.execute(&mut *self.0).await {
            Ok(done) => Ok(done.rows_affected() > 0),
            // Another process committed one of these sequence numbers first
            // (its transaction was still open when this one checked).
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
                Err(StoreError::Conflict {
                    execution: execution.clone(),
                    expected: u64::try_from(first.seq).unwrap_or(0),
                    actual: u64::try_from(first.seq).unwrap_or(0) + 1,
                })
            }
            Err(e) => Err(backend_error(e)),
        }
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
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO NOTHING",
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
        sqlx::query("UPDATE orchestrate_executions SET status = COALESCE($1, status) WHERE id = $2")
            .bind(append.finished)
            .bind(execution)
            .execute(&mut *self.0)
            .await
            .map(|_| ())
            .map_err(backend_error)
    }

    async fn kv_live(&mut self, key: &str, now_ms: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT value::text AS value FROM orchestrate_kv
             WHERE key = $1 AND (expires_at_ms IS NULL OR expires_at_ms > $2) FOR UPDATE",
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
            "INSERT INTO orchestrate_kv (key, value, expires_at_ms) VALUES ($1, $2::json, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms",
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
        sqlx::query("DELETE FROM orchestrate_kv WHERE key = $1")
            .bind(key)
            .execute(&mut *self.0)
            .await
            .map(|_| ())
            .map_err(backend_error)
    }

    async fn kv_insert_if_absent(
        &mut self,
        key: &str,
        value: &str,
        expires_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        // One statement, atomic across processes: it inserts, replaces an
        // expired value, or (returning nothing) leaves a live one locked.
        let won = sqlx::query(
            "INSERT INTO orchestrate_kv (key, value, expires_at_ms) VALUES ($1, $2::json, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms
             WHERE orchestrate_kv.expires_at_ms IS NOT NULL AND orchestrate_kv.expires_at_ms <= $4
             RETURNING key",
        )
        .bind(key)
        .bind(value)
        .bind(expires_at_ms)
        .bind(now_ms)
        .fetch_optional(&mut *self.0)
        .await
        .map_err(backend_error)?;
        if won.is_some() {
            return Ok(None);
        }
        self.kv_live(key, now_ms).await
    }

    async fn kv_sweep(&mut self, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM orchestrate_kv WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= $1",
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
             VALUES ($1, $2, $3, $4, $5::json, 'pending', 0, $6) RETURNING id",
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
        // Rows another process is claiming are skipped, not waited for.
        let rows = sqlx::query(
            "SELECT id, recipient, sender, thread, priority, payload::text AS payload, status, deliveries, created_at_ms
             FROM orchestrate_messages
             WHERE recipient = $1 AND (status = 'pending' OR (status = 'delivered' AND delivered_at_ms <= $2))
             ORDER BY priority DESC, id LIMIT $3
             FOR UPDATE SKIP LOCKED",
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
                sqlx::query("UPDATE orchestrate_messages SET status = 'dead' WHERE id = $1")
                    .bind(message.id)
                    .execute(&mut *self.0)
                    .await
                    .map_err(backend_error)?;
                continue;
            }
            sqlx::query(
                "UPDATE orchestrate_messages SET status = 'delivered', deliveries = deliveries + 1, delivered_at_ms = $1
                 WHERE id = $2",
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
            "UPDATE orchestrate_messages SET status = 'processed' WHERE id = $1"
        } else {
            "UPDATE orchestrate_messages SET status = 'pending', delivered_at_ms = NULL
             WHERE id = $1 AND status = 'delivered'"
        };
        sqlx::query(sql)
            .bind(id)
            .execute(&mut *self.0)
            .await
            .map_err(backend_error)?;
        let exists = sqlx::query("SELECT 1 FROM orchestrate_messages WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await
            .map_err(backend_error)?;
        exists.map(|_| ()).ok_or(StoreError::MessageNotFound { id })
    }

    async fn put_projection(&mut self, row: &ProjectionRow) -> Result<bool, StoreError> {
        // Another process's append that changes the row holds its lock
        // until it commits: wait for it, so that the journal's length read
        // next (a statement of its own, so a fresh snapshot) includes what
        // it appended, and the guard below sees it.
        sqlx::query("SELECT 1 FROM orchestrate_executions WHERE id = $1 FOR UPDATE")
            .bind(row.id.as_str())
            .fetch_optional(&mut *self.0)
            .await
            .map_err(backend_error)?;
        sqlx::query(
            "INSERT INTO orchestrate_executions (id, workflow, status, idempotency_key, started_at_ms)
             SELECT $1, $2, $3, $4, $5
             WHERE (SELECT COALESCE(MAX(seq) + 1, 0) FROM orchestrate_journal WHERE execution_id = $1) = $6
             ON CONFLICT (id) DO UPDATE SET workflow = EXCLUDED.workflow, status = EXCLUDED.status,
                 idempotency_key = EXCLUDED.idempotency_key, started_at_ms = EXCLUDED.started_at_ms",
        )
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
