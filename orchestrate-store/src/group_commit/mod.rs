//! The single writer of a SQL store: group commit of every write that is
//! ready together.
//!
//! Writes are queued to one task; it takes whatever is queued, runs it in one
//! transaction (each write in its own savepoint, so one refused write leaves
//! the others), commits, and answers. Many executions thus share one commit
//! (one fsync), and no write waits for anything but the commit before it.
//! The SQL of each backend lives behind [`WriteTxn`]; stores hold a
//! [`Writer`].

mod writer;

pub(crate) use writer::Writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use orchestrate_core::store::{Message, NewMessage, StoreError};
use orchestrate_core::ExecutionId;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::audit::ProjectionRow;
use crate::codec::{status_text, Encoded, ProjectionChange};

/// Writes one transaction may carry.
const MAX_BATCH: usize = 512;
/// Journal rows one insert statement carries (far below SQLite's limit of
/// bound parameters).
pub(crate) const ROWS_PER_STATEMENT: usize = 256;
/// Key-value writes between two sweeps of expired keys.
const SWEEP_EVERY: u64 = 1024;

/// One open write transaction of a backend.
#[async_trait]
pub(crate) trait WriteTxn: Send {
    async fn savepoint(&mut self) -> Result<(), StoreError>;
    async fn release(&mut self) -> Result<(), StoreError>;
    async fn rollback_to(&mut self) -> Result<(), StoreError>;
    /// The journal's next sequence number.
    async fn next_seq(&mut self, execution: &str) -> Result<i64, StoreError>;
    /// Inserts `rows` (consecutive sequence numbers) in one statement if the
    /// journal's next sequence number is the first row's; whether it was. A
    /// duplicate `(execution, seq)` committed meanwhile by another process is
    /// a conflict.
    async fn insert_events(
        &mut self,
        execution: &ExecutionId,
        rows: &[Encoded],
    ) -> Result<bool, StoreError>;
    async fn start_execution(&mut self, execution: &str, append: &Append)
        -> Result<(), StoreError>;
    async fn update_execution(
        &mut self,
        execution: &str,
        append: &Append,
    ) -> Result<(), StoreError>;
    /// The live (unexpired) value of `key`, as stored text.
    async fn kv_live(&mut self, key: &str, now_ms: i64) -> Result<Option<String>, StoreError>;
    async fn kv_upsert(
        &mut self,
        key: &str,
        value: &str,
        expires_at_ms: Option<i64>,
    ) -> Result<(), StoreError>;
    async fn kv_remove(&mut self, key: &str) -> Result<(), StoreError>;
    /// Writes `key` unless a live value exists, returning that value. The
    /// default reads then writes, which is atomic for backends whose write
    /// transactions exclude each other (SQLite's `BEGIN IMMEDIATE`).
    async fn kv_insert_if_absent(
        &mut self,
        key: &str,
        value: &str,
        expires_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        match self.kv_live(key, now_ms).await? {
            Some(existing) => Ok(Some(existing)),
            None => self
                .kv_upsert(key, value, expires_at_ms)
                .await
                .map(|()| None),
        }
    }
    async fn kv_sweep(&mut self, now_ms: i64) -> Result<(), StoreError>;
    /// Inserts a message (payload as JSON text); returns its id.
    async fn message_insert(
        &mut self,
        message: &NewMessage,
        payload: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError>;
    /// Claims up to `limit` due messages of `recipient` (see
    /// [`Store::fetch_messages`](orchestrate_core::store::Store::fetch_messages)).
    async fn message_claim(&mut self, claim: &Claim) -> Result<Vec<Message>, StoreError>;
    /// Acknowledges (`ack`) or releases a message.
    async fn message_settle(&mut self, id: i64, ack: bool) -> Result<(), StoreError>;
    /// Writes `row` over its execution's projection row if the journal's
    /// next sequence number is still `row.events` (the journal it was
    /// derived from has not grown since); whether it was written.
    async fn put_projection(&mut self, row: &ProjectionRow) -> Result<bool, StoreError>;
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A backend that can open write transactions.
#[async_trait]
pub(crate) trait WriteBackend: Send + Sync + 'static {
    async fn begin(&self) -> Result<Box<dyn WriteTxn>, StoreError>;
    /// Commits `append` (at most [`ROWS_PER_STATEMENT`] rows) as a
    /// transaction of its own in one round trip: whether its rows were
    /// stored. `false` means the journal's next sequence number was not the
    /// first row's and nothing was written.
    async fn append_alone(&self, append: &Append) -> Result<bool, StoreError>;
    async fn close(&self);
}

/// An append, encoded and ready for the writer.
pub(crate) struct Append {
    pub(crate) execution: ExecutionId,
    pub(crate) rows: Vec<Encoded>,
    pub(crate) started: Option<(String, Option<String>, i64)>,
    pub(crate) finished: Option<&'static str>,
}

impl Append {
    pub(crate) fn new(
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
        }
    }
}

/// What a fetch claims.
pub(crate) struct Claim {
    pub(crate) recipient: String,
    pub(crate) now_ms: i64,
    /// Delivered messages delivered at or before this are due again.
    pub(crate) cutoff_ms: i64,
    pub(crate) limit: i64,
    pub(crate) max_deliveries: i64,
}

pub(crate) enum WriteOp {
    SendMessage {
        message: NewMessage,
        payload: String,
        now_ms: i64,
        reply: oneshot::Sender<Result<i64, StoreError>>,
    },
    FetchMessages(Claim, oneshot::Sender<Result<Vec<Message>, StoreError>>),
    SettleMessage {
        id: i64,
        ack: bool,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
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
        reply: oneshot::Sender<Result<Option<String>, StoreError>>,
    },
    KvDelete {
        key: String,
        now_ms: i64,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    PutProjection(ProjectionRow, oneshot::Sender<Result<bool, StoreError>>),
}

/// An operation's result, held until its transaction commits.
enum Done {
    Id(
        oneshot::Sender<Result<i64, StoreError>>,
        Result<i64, StoreError>,
    ),
    Messages(
        oneshot::Sender<Result<Vec<Message>, StoreError>>,
        Result<Vec<Message>, StoreError>,
    ),
    Unit(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    Found(
        oneshot::Sender<Result<Option<String>, StoreError>>,
        Result<Option<String>, StoreError>,
    ),
    Bool(
        oneshot::Sender<Result<bool, StoreError>>,
        Result<bool, StoreError>,
    ),
}

impl Done {
    fn is_ok(&self) -> bool {
        match self {
            Done::Id(_, r) => r.is_ok(),
            Done::Messages(_, r) => r.is_ok(),
            Done::Unit(_, r) => r.is_ok(),
            Done::Found(_, r) => r.is_ok(),
            Done::Bool(_, r) => r.is_ok(),
        }
    }

    /// Replaces the result with `error` (the write did not commit).
    fn fail(self, error: &StoreError) -> Self {
        match self {
            Done::Id(tx, _) => Done::Id(tx, Err(error.clone())),
            Done::Messages(tx, _) => Done::Messages(tx, Err(error.clone())),
            Done::Unit(tx, _) => Done::Unit(tx, Err(error.clone())),
            Done::Found(tx, _) => Done::Found(tx, Err(error.clone())),
            Done::Bool(tx, _) => Done::Bool(tx, Err(error.clone())),
        }
    }

    fn send(self) {
        // A caller that went away no longer needs the answer.
        match self {
            Done::Id(tx, r) => drop(tx.send(r)),
            Done::Messages(tx, r) => drop(tx.send(r)),
            Done::Unit(tx, r) => drop(tx.send(r)),
            Done::Found(tx, r) => drop(tx.send(r)),
            Done::Bool(tx, r) => drop(tx.send(r)),
        }
    }
}

/// The writer task: runs until every sender is dropped.
pub(crate) async fn run<B: WriteBackend>(
    backend: B,
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
        if commit(&backend, &mut batch, &mut kv_writes).await {
            commits.fetch_add(1, Ordering::Relaxed);
        }
    }
    backend.close().await;
}

/// Runs `batch` in one transaction; whether it committed.
async fn commit<B: WriteBackend>(
    backend: &B,
    batch: &mut Vec<WriteOp>,
    kv_writes: &mut u64,
) -> bool {
    if let Some(done) = commit_append_alone(backend, batch).await {
        return done;
    }
    let mut tx = match backend.begin().await {
        Ok(tx) => tx,
        Err(error) => {
            for op in batch.drain(..) {
                pending(op).fail(&error).send();
            }
            return false;
        }
    };
    let mut done = Vec::with_capacity(batch.len());
    let mut sweep_before = None;
    // A write alone in its transaction needs no savepoint: if it fails, the
    // whole transaction is rolled back. That saves two statements (two round
    // trips) on the common path of one execution checkpointing one step.
    let alone = batch.len() == 1;
    for op in batch.drain(..) {
        if let Some(now) = kv_now(&op) {
            *kv_writes += 1;
            if kv_writes.is_multiple_of(SWEEP_EVERY) {
                sweep_before = Some(now);
            }
        }
        if alone {
            let result = apply(tx.as_mut(), op).await;
            if !result.is_ok() {
                // Dropping the transaction rolls it back.
                drop(tx);
                result.send();
                return false;
            }
            done.push(result);
            continue;
        }
        let result = match tx.savepoint().await {
            Ok(()) => apply(tx.as_mut(), op).await,
            Err(e) => pending(op).fail(&e),
        };
        let closed = if result.is_ok() {
            tx.release().await
        } else {
            tx.rollback_to().await
        };
        // A savepoint that cannot be closed fails its write; the commit then
        // tells the others.
        done.push(match closed {
            Ok(()) => result,
            Err(e) => result.fail(&e),
        });
    }
    if let Some(now) = sweep_before {
        if let Err(e) = tx.kv_sweep(now).await {
            tracing::warn!(error = %e, "sweeping expired keys failed");
        }
    }
    let committed = tx.commit().await;
    let ok = committed.is_ok();
    for d in done {
        match &committed {
            Ok(()) => d.send(),
            Err(error) => d.fail(error).send(),
        }
    }
    ok
}

/// The common batch, one execution checkpointing one step, in one round
/// trip instead of a transaction's three or more. `None` when `batch` is not
/// a single short append, or its sequence check failed: the transaction path
/// then runs it and reports the conflict with the journal's actual length.
async fn commit_append_alone<B: WriteBackend>(
    backend: &B,
    batch: &mut Vec<WriteOp>,
) -> Option<bool> {
    let [WriteOp::Append(append, _)] = batch.as_slice() else {
        return None;
    };
    if append.rows.len() > ROWS_PER_STATEMENT {
        return None;
    }
    let result = backend.append_alone(append).await;
    if matches!(result, Ok(false)) {
        return None;
    }
    let Some(WriteOp::Append(_, reply)) = batch.pop() else {
        return None;
    };
    let committed = result.is_ok();
    Done::Unit(reply, result.map(|_| ())).send();
    Some(committed)
}

fn kv_now(op: &WriteOp) -> Option<i64> {
    match op {
        WriteOp::KvPut { now_ms, .. }
        | WriteOp::KvPutIfAbsent { now_ms, .. }
        | WriteOp::KvDelete { now_ms, .. } => Some(*now_ms),
        _ => None,
    }
}

/// The reply slot of an operation, before it ran.
fn pending(op: WriteOp) -> Done {
    match op {
        WriteOp::SendMessage { reply, .. } => Done::Id(reply, Ok(0)),
        WriteOp::FetchMessages(_, reply) => Done::Messages(reply, Ok(Vec::new())),
        WriteOp::SettleMessage { reply, .. } => Done::Unit(reply, Ok(())),
        WriteOp::Append(_, reply) | WriteOp::KvPut { reply, .. } => Done::Unit(reply, Ok(())),
        WriteOp::KvPutIfAbsent { reply, .. } => Done::Found(reply, Ok(None)),
        WriteOp::KvDelete { reply, .. } | WriteOp::PutProjection(_, reply) => {
            Done::Bool(reply, Ok(false))
        }
    }
}

async fn apply(tx: &mut dyn WriteTxn, op: WriteOp) -> Done {
    match op {
        WriteOp::SendMessage {
            message,
            payload,
            now_ms,
            reply,
        } => Done::Id(reply, tx.message_insert(&message, &payload, now_ms).await),
        WriteOp::FetchMessages(claim, reply) => {
            Done::Messages(reply, tx.message_claim(&claim).await)
        }
        WriteOp::SettleMessage { id, ack, reply } => {
            Done::Unit(reply, tx.message_settle(id, ack).await)
        }
        WriteOp::Append(append, reply) => Done::Unit(reply, append_events(tx, &append).await),
        WriteOp::KvPut {
            key,
            value,
            expires_at_ms,
            reply,
            ..
        } => Done::Unit(reply, tx.kv_upsert(&key, &value, expires_at_ms).await),
        WriteOp::KvPutIfAbsent {
            key,
            value,
            expires_at_ms,
            now_ms,
            reply,
        } => Done::Found(
            reply,
            tx.kv_insert_if_absent(&key, &value, expires_at_ms, now_ms)
                .await,
        ),
        WriteOp::KvDelete { key, now_ms, reply } => {
            let result = match tx.kv_live(&key, now_ms).await {
                Ok(live) => tx.kv_remove(&key).await.map(|()| live.is_some()),
                Err(e) => Err(e),
            };
            Done::Bool(reply, result)
        }
        WriteOp::PutProjection(row, reply) => Done::Bool(reply, tx.put_projection(&row).await),
    }
}

async fn append_events(tx: &mut dyn WriteTxn, append: &Append) -> Result<(), StoreError> {
    if append.rows.is_empty() {
        return Ok(());
    }
    let id = append.execution.as_str();
    for chunk in append.rows.chunks(ROWS_PER_STATEMENT) {
        if !tx.insert_events(&append.execution, chunk).await? {
            let actual = tx.next_seq(id).await?;
            return Err(StoreError::Conflict {
                execution: append.execution.clone(),
                expected: chunk
                    .first()
                    .map_or(0, |r| u64::try_from(r.seq).unwrap_or(0)),
                actual: u64::try_from(actual).unwrap_or(0),
            });
        }
    }
    if append.started.is_some() {
        tx.start_execution(id, append).await
    } else if append.finished.is_some() {
        tx.update_execution(id, append).await
    } else {
        Ok(())
    }
}

/// Parses a stored key-value text.
pub(crate) fn parse_kv(key: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Codec {
        what: format!("key `{key}`"),
        reason: e.to_string(),
    })
}
