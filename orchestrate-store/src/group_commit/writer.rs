//! [`Writer`]: a store's handle on its group-committing writer task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orchestrate_core::journal::Event;
use orchestrate_core::store::{
    check_batch, check_value, expiry_ms, Clock, FetchOptions, Message, NewMessage, StoreError,
};
use orchestrate_core::ExecutionId;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{parse_kv, run, Append, Claim, WriteBackend, WriteOp};
use crate::audit::ProjectionRow;
use crate::codec::{projection_change, Encoded};

/// The handle a store keeps on its writer task: every write of the `Store`
/// trait, queued for group commit.
pub(crate) struct Writer {
    ops: mpsc::Sender<WriteOp>,
    task: tokio::task::JoinHandle<()>,
    commits: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
    backend: &'static str,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("backend", &self.backend)
            .field("commits", &self.commits())
            .finish_non_exhaustive()
    }
}

/// A value as the text a row keeps, refusing one nested deeper than the
/// store could read back.
fn text_of(what: &str, value: &Value) -> Result<String, StoreError> {
    check_value(|| what.to_owned(), value)?;
    serde_json::to_string(value).map_err(|e| StoreError::Codec {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

impl Writer {
    /// Starts the writer task of `backend`.
    pub(crate) fn spawn<B: WriteBackend>(
        backend: B,
        name: &'static str,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let (ops, rx) = mpsc::channel(4096);
        let commits = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(backend, rx, commits.clone()));
        Self {
            ops,
            task,
            commits,
            clock,
            backend: name,
        }
    }

    /// Write transactions committed so far.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Now on the store's clock, in milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        i64::try_from(self.clock.now_ms()).unwrap_or(i64::MAX)
    }

    /// Finishes the queued writes.
    pub(crate) async fn close(self) {
        drop(self.ops);
        if let Err(e) = self.task.await {
            tracing::error!(backend = self.backend, error = %e, "writer task failed");
        }
    }

    async fn submit<T>(
        &self,
        op: WriteOp,
        reply: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let closed = || StoreError::Backend {
            backend: self.backend,
            retryable: false,
            source: Arc::new(std::io::Error::other("the store's writer has stopped")),
        };
        self.ops.send(op).await.map_err(|_| closed())?;
        reply.await.map_err(|_| closed())?
    }

    fn expiry(&self, ttl: Option<Duration>) -> Option<i64> {
        expiry_ms(self.clock.now_ms(), ttl).map(|t| i64::try_from(t).unwrap_or(i64::MAX))
    }

    pub(crate) async fn append(
        &self,
        execution: &ExecutionId,
        events: &[Event],
        encode: fn(&Event) -> Result<Encoded, StoreError>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        check_batch(execution, events)?;
        let rows = events.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        let append = Append::new(execution.clone(), rows, projection_change(events));
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::Append(append, tx), rx).await
    }

    pub(crate) async fn kv_put(
        &self,
        key: &str,
        value: &Value,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let op = WriteOp::KvPut {
            key: key.to_owned(),
            value: text_of(&format!("key `{key}`"), value)?,
            expires_at_ms: self.expiry(ttl),
            now_ms: self.now_ms(),
            reply: tx,
        };
        self.submit(op, rx).await
    }

    pub(crate) async fn kv_put_if_absent(
        &self,
        key: &str,
        value: &Value,
        ttl: Option<Duration>,
    ) -> Result<Option<Value>, StoreError> {
        let (tx, rx) = oneshot::channel();
        let op = WriteOp::KvPutIfAbsent {
            key: key.to_owned(),
            value: text_of(&format!("key `{key}`"), value)?,
            expires_at_ms: self.expiry(ttl),
            now_ms: self.now_ms(),
            reply: tx,
        };
        let existing = self.submit(op, rx).await?;
        existing.map(|text| parse_kv(key, &text)).transpose()
    }

    pub(crate) async fn kv_delete(&self, key: &str) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        let op = WriteOp::KvDelete {
            key: key.to_owned(),
            now_ms: self.now_ms(),
            reply: tx,
        };
        self.submit(op, rx).await
    }

    pub(crate) async fn send_message(&self, message: NewMessage) -> Result<i64, StoreError> {
        let payload = text_of(
            &format!("message to `{}`", message.recipient),
            &message.payload,
        )?;
        let (tx, rx) = oneshot::channel();
        let op = WriteOp::SendMessage {
            message,
            payload,
            now_ms: self.now_ms(),
            reply: tx,
        };
        self.submit(op, rx).await
    }

    pub(crate) async fn fetch_messages(
        &self,
        recipient: &str,
        options: &FetchOptions,
    ) -> Result<Vec<Message>, StoreError> {
        let now_ms = self.now_ms();
        let claim = Claim {
            recipient: recipient.to_owned(),
            now_ms,
            cutoff_ms: now_ms
                .saturating_sub(i64::try_from(options.visibility.as_millis()).unwrap_or(i64::MAX)),
            limit: i64::try_from(options.limit).unwrap_or(i64::MAX),
            max_deliveries: i64::from(options.max_deliveries),
        };
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::FetchMessages(claim, tx), rx).await
    }

    /// Writes a projection row rebuilt from a journal of `row.events`
    /// events, unless the journal has grown since; whether it was written.
    pub(crate) async fn put_projection(&self, row: ProjectionRow) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::PutProjection(row, tx), rx).await
    }

    pub(crate) async fn settle_message(&self, id: i64, ack: bool) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::SettleMessage { id, ack, reply: tx }, rx)
            .await
    }
}
