//! The single writer: group commit of every write that is ready together.
//!
//! SQLite has one writer at a time anyway; funnelling writes through one task
//! turns that into an advantage: the writes queued while a transaction
//! commits go into the next transaction together, so many executions share
//! one fsync, and no write waits for anything but the commit before it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orchestrate_core::store::StoreError;
use orchestrate_core::ExecutionId;
use serde_json::Value;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::backend_error;
use crate::codec::{status_text, Encoded, ProjectionChange, RECORD_VERSION};

/// Writes one transaction may carry.
const MAX_BATCH: usize = 512;
/// Key-value writes between two sweeps of expired keys.
const SWEEP_EVERY: u64 = 1024;

pub(super) struct Append {
    pub(super) execution: ExecutionId,
    pub(super) rows: Vec<Encoded>,
    pub(super) started: Option<(String, Option<String>, i64)>,
    pub(super) finished: Option<&'static str>,
    pub(super) events: i64,
}

impl Append {
    pub(super) fn new(
        execution: ExecutionId,
        rows: Vec<Encoded>,
        change: ProjectionChange<'_>,
    ) -> Self {
        Self {
            execution,
            rows,
            started: change
                .started
                .map(|(w, k, at)| (w.to_owned(), k.map(str::to_owned), at)),
            finished: change.finished.map(status_text),
            events: change.events,
        }
    }
}

pub(super) enum WriteOp {
    Append(Append, oneshot::Sender<Result<(), StoreError>>),
    KvPut {
        key: String,
        value: String,
        expires_at_ms: Option<i64>,
        now_ms: i64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    KvPutIfAbsent {
        key: String,
        value: String,
        expires_at_ms: Option<i64>,
        now_ms: i64,
        reply: oneshot::Sender<Result<Option<Value>, StoreError>>,
    },
    KvDelete {
        key: String,
        now_ms: i64,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
}

/// An operation's result, held until its transaction commits.
enum Done {
    Unit(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    Found(
        oneshot::Sender<Result<Option<Value>, StoreError>>,
        Result<Option<Value>, StoreError>,
    ),
    Deleted(
        oneshot::Sender<Result<bool, StoreError>>,
        Result<bool, StoreError>,
    ),
}

impl Done {
    fn is_ok(&self) -> bool {
        match self {
            Done::Unit(_, r) => r.is_ok(),
            Done::Found(_, r) => r.is_ok(),
            Done::Deleted(_, r) => r.is_ok(),
        }
    }

    /// Replaces a success with `error` (the transaction did not commit).
    fn fail(self, error: &StoreError) -> Self {
        match self {
            Done::Unit(tx, _) => Done::Unit(tx, Err(error.clone())),
            Done::Found(tx, _) => Done::Found(tx, Err(error.clone())),
            Done::Deleted(tx, _) => Done::Deleted(tx, Err(error.clone())),
        }
    }

    fn send(self) {
        // A caller that went away no longer needs the answer.
        match self {
            Done::Unit(tx, r) => drop(tx.send(r)),
            Done::Found(tx, r) => drop(tx.send(r)),
            Done::Deleted(tx, r) => drop(tx.send(r)),
        }
    }
}

pub(super) async fn run(
    pool: SqlitePool,
    mut rx: mpsc::Receiver<WriteOp>,
    commits: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut kv_writes = 0u64;
    while let Some(op) = rx.recv().await {
        batch.push(op);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if commit(&pool, &mut batch, &mut kv_writes).await {
            commits.fetch_add(1, Ordering::Relaxed);
        }
    }
    pool.close().await;
}

/// Runs `batch` in one transaction; whether it committed.
async fn commit(pool: &SqlitePool, batch: &mut Vec<WriteOp>, kv_writes: &mut u64) -> bool {
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => {
            let error = backend_error(e);
            for op in batch.drain(..) {
                pending(op).fail(&error).send();
            }
            return false;
        }
    };
    let mut done = Vec::with_capacity(batch.len());
    let mut sweep_before = None;
    for op in batch.drain(..) {
        if !matches!(op, WriteOp::Append(..)) {
            *kv_writes += 1;
            if kv_writes.is_multiple_of(SWEEP_EVERY) {
                sweep_before = Some(now_of(&op));
            }
        }
        // Each write in its own savepoint: one failing leaves the others.
        let result = match sqlx::query("SAVEPOINT op").execute(&mut *tx).await {
            Ok(_) => apply(&mut tx, op).await,
            Err(e) => pending(op).fail(&backend_error(e)),
        };
        let undo = if result.is_ok() {
            "RELEASE op"
        } else {
            "ROLLBACK TO op"
        };
        let closed = sqlx::query(undo).execute(&mut *tx).await;
        // A savepoint that cannot be closed fails its write; the commit
        // below then tells the others.
        done.push(match closed {
            Ok(_) => result,
            Err(e) => result.fail(&backend_error(e)),
        });
    }
    if let Some(now) = sweep_before {
        let swept = sqlx::query(
            "DELETE FROM orchestrate_kv WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?",
        )
        .bind(now)
        .execute(&mut *tx)
        .await;
        if let Err(e) = swept {
            tracing::warn!(error = %e, "sweeping expired keys failed");
        }
    }
    let committed = tx.commit().await.map_err(backend_error);
    let ok = committed.is_ok();
    for d in done {
        match &committed {
            Ok(()) => d.send(),
            Err(error) => d.fail(error).send(),
        }
    }
    ok
}

fn now_of(op: &WriteOp) -> i64 {
    match op {
        WriteOp::KvPut { now_ms, .. }
        | WriteOp::KvPutIfAbsent { now_ms, .. }
        | WriteOp::KvDelete { now_ms, .. } => *now_ms,
        WriteOp::Append(..) => 0,
    }
}

/// The reply slot of an operation, before it ran.
fn pending(op: WriteOp) -> Done {
    match op {
        WriteOp::Append(_, reply) | WriteOp::KvPut { reply, .. } => Done::Unit(reply, Ok(())),
        WriteOp::KvPutIfAbsent { reply, .. } => Done::Found(reply, Ok(None)),
        WriteOp::KvDelete { reply, .. } => Done::Deleted(reply, Ok(false)),
    }
}

async fn apply(tx: &mut Transaction<'static, Sqlite>, op: WriteOp) -> Done {
    match op {
        WriteOp::Append(append, reply) => Done::Unit(reply, append_events(tx, append).await),
        WriteOp::KvPut {
            key,
            value,
            expires_at_ms,
            reply,
            ..
        } => Done::Unit(reply, upsert(tx, &key, &value, expires_at_ms).await),
        WriteOp::KvPutIfAbsent {
            key,
            value,
            expires_at_ms,
            now_ms,
            reply,
        } => {
            let result = async {
                if let Some(existing) = live_value(tx, &key, now_ms).await? {
                    return Ok(Some(existing));
                }
                upsert(tx, &key, &value, expires_at_ms).await?;
                Ok(None)
            }
            .await;
            Done::Found(reply, result)
        }
        WriteOp::KvDelete { key, now_ms, reply } => {
            let result = async {
                let live = live_value(tx, &key, now_ms).await?.is_some();
                sqlx::query("DELETE FROM orchestrate_kv WHERE key = ?")
                    .bind(&key)
                    .execute(&mut **tx)
                    .await
                    .map_err(backend_error)?;
                Ok(live)
            }
            .await;
            Done::Deleted(reply, result)
        }
    }
}

async fn append_events(
    tx: &mut Transaction<'static, Sqlite>,
    append: Append,
) -> Result<(), StoreError> {
    let Some(first) = append.rows.first() else {
        return Ok(());
    };
    let id = append.execution.as_str();
    let next: i64 = sqlx::query(
        "SELECT COALESCE(MAX(seq) + 1, 0) AS next FROM orchestrate_journal WHERE execution_id = ?",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .and_then(|row| row.try_get("next"))
    .map_err(backend_error)?;
    if first.seq != next {
        return Err(StoreError::Conflict {
            execution: append.execution.clone(),
            expected: u64::try_from(first.seq).unwrap_or(0),
            actual: u64::try_from(next).unwrap_or(0),
        });
    }
    for row in &append.rows {
        sqlx::query(
            "INSERT INTO orchestrate_journal (execution_id, seq, kind, step, record, checksum, record_version)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(row.seq)
        .bind(row.kind)
        .bind(row.step.as_deref())
        .bind(&row.record)
        .bind(row.checksum)
        .bind(RECORD_VERSION)
        .execute(&mut **tx)
        .await
        .map_err(backend_error)?;
    }
    if let Some((workflow, key, started_at_ms)) = &append.started {
        sqlx::query(
            "INSERT INTO orchestrate_executions (id, workflow, status, idempotency_key, started_at_ms, events)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET events = excluded.events",
        )
        .bind(id)
        .bind(workflow)
        .bind(append.finished.unwrap_or("running"))
        .bind(key.as_deref())
        .bind(started_at_ms)
        .bind(append.events)
        .execute(&mut **tx)
        .await
        .map_err(backend_error)?;
    } else {
        sqlx::query(
            "UPDATE orchestrate_executions SET events = ?, status = COALESCE(?, 'running') WHERE id = ?",
        )
        .bind(append.events)
        .bind(append.finished)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(backend_error)?;
    }
    Ok(())
}

async fn upsert(
    tx: &mut Transaction<'static, Sqlite>,
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
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(backend_error)
}

async fn live_value(
    tx: &mut Transaction<'static, Sqlite>,
    key: &str,
    now_ms: i64,
) -> Result<Option<Value>, StoreError> {
    let row = sqlx::query("SELECT value FROM orchestrate_kv WHERE key = ? AND (expires_at_ms IS NULL OR expires_at_ms > ?)")
        .bind(key)
        .bind(now_ms)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend_error)?;
    row.map(|r| {
        let text: String = r.try_get("value").map_err(backend_error)?;
        super::parse_kv(key, &text)
    })
    .transpose()
}
