//! Persistence: the [`Store`] trait and the in-memory implementation.

mod checks;
mod clock;
mod memory;
mod message;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use thiserror::Error;

use crate::boxed::SharedError;
use crate::ids::ExecutionId;
use crate::journal::{Event, EventKind, ExecutionStatus};

pub use checks::{check_batch, check_continuity, check_value};
pub use clock::{expiry_ms, Clock, ManualClock, SystemClock, TokioClock};
pub use memory::{MemoryStore, MemoryStoreConfig};
pub use message::{FetchOptions, Message, MessageQuery, MessageStatus, NewMessage};
pub use verify::{Problem, RebuildReport, VerifyReport};

/// Where executions keep their journals and the key-value area (cache,
/// idempotency keys).
///
/// The journal is append-only with optimistic concurrency: an append names
/// the sequence number it expects to write next, and a store that already
/// holds that number refuses with [`StoreError::Conflict`], so two writers can
/// never both append sequence `n`.
///
/// # Cancel safety
///
/// Every method is a single operation: when its future is dropped before it
/// completes, the operation either happened entirely or not at all.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends `events`, whose sequence numbers must be consecutive and start
    /// at the journal's next sequence number.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when the first sequence number is not the next
    /// one; [`StoreError::InvalidBatch`] when the batch has gaps or mixes
    /// executions; backend errors.
    async fn append(&self, execution: &ExecutionId, events: &[Event]) -> Result<(), StoreError>;

    /// [`append`](Self::append) done at once, by a store that never waits
    /// to append (the in-memory one); `None` from a store that may wait,
    /// which the caller then awaits `append` on. The orchestrator asks
    /// this first for every batch it journals: an answer here costs no
    /// future.
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append), inside the `Some`.
    fn append_now(
        &self,
        execution: &ExecutionId,
        events: &[Event],
    ) -> Option<Result<(), StoreError>> {
        let _ = (execution, events);
        None
    }

    /// Loads the journal from sequence number `from` (inclusive), in order.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the execution has no journal;
    /// [`StoreError::Corrupt`] naming the record when one fails its checks,
    /// or naming the first missing sequence number when records are missing
    /// (see [`check_continuity`]): a damaged journal is never returned as
    /// data.
    async fn load(&self, execution: &ExecutionId, from: u64) -> Result<Vec<Event>, StoreError>;

    /// Summaries of the executions matching `query`, most recently started
    /// first (e.g. the unfinished ones to resume after a crash).
    ///
    /// A summary is a projection of the execution's journal, which a store
    /// may keep apart (a row per execution in the SQL stores). A projection
    /// is derived data: when an execution's row is missing or cannot be read
    /// (an unknown status, say), its summary is derived from its journal
    /// instead, so a damaged row never hides its execution nor fails the
    /// listing of the others. An execution whose row *and* journal are both
    /// unreadable cannot be summarised: it is left out, logged as a warning,
    /// and reported by [`verify`](Self::verify).
    /// [`rebuild_projections`](Self::rebuild_projections) rewrites the rows.
    /// A row that reads well but is stale (it disagrees with its journal) is
    /// listed as it reads; `verify` reports it. Finding missing rows costs
    /// the SQL stores one pass over an index of the executions per listing.
    ///
    /// # Errors
    ///
    /// Backend errors (the store cannot be reached).
    async fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Vec<ExecutionSummary>, StoreError>;

    /// Walks every execution's journal and reports every problem found:
    /// records that fail their checksum, version or identity check or do not
    /// decode, sequence numbers missing from a journal, a journal that does
    /// not begin with its start, and projection rows that are missing,
    /// unreadable, disagree with their journal or have no journal. The
    /// report is clean only when nothing is wrong. Verifying changes
    /// nothing.
    ///
    /// # Errors
    ///
    /// Backend errors only: what is wrong with the data is in the report.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn verify(&self) -> Result<VerifyReport, StoreError>;

    /// Rewrites every execution's projection from its journal (the journal
    /// is the truth, a projection derived from it). Journals that cannot be
    /// read and projection rows with no journal are reported and left as
    /// they are.
    ///
    /// # Errors
    ///
    /// Backend errors.
    ///
    /// # Cancel safety
    ///
    /// Each execution's projection is rewritten in one write: dropping the
    /// future leaves some rebuilt and the others as they were.
    async fn rebuild_projections(&self) -> Result<RebuildReport, StoreError>;

    /// Reads a key of the key-value area; expired keys read as absent.
    async fn kv_get(&self, key: &str) -> Result<Option<Value>, StoreError>;

    /// Writes a key, replacing any value; `ttl` of `None` never expires.
    async fn kv_put(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;

    /// Writes a key only if it is absent (or expired), atomically. Returns
    /// the value already there when it was present.
    async fn kv_put_if_absent(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<Option<Value>, StoreError>;

    /// Deletes a key; returns whether it was present.
    async fn kv_delete(&self, key: &str) -> Result<bool, StoreError>;

    /// Puts a message in its recipient's mailbox; returns its id.
    async fn send_message(&self, message: NewMessage) -> Result<i64, StoreError>;

    /// Hands out the recipient's next messages: pending ones and delivered
    /// ones not acknowledged within the visibility timeout, highest priority
    /// first, FIFO within a priority. They become
    /// [`Delivered`](MessageStatus::Delivered); one that would exceed
    /// `max_deliveries` becomes [`Dead`](MessageStatus::Dead) instead.
    async fn fetch_messages(
        &self,
        recipient: &str,
        options: &FetchOptions,
    ) -> Result<Vec<Message>, StoreError>;

    /// Marks a delivered message [`Processed`](MessageStatus::Processed).
    ///
    /// # Errors
    ///
    /// [`StoreError::MessageNotFound`] for an unknown id.
    async fn ack_message(&self, id: i64) -> Result<(), StoreError>;

    /// Returns a delivered message to the mailbox at once (a failed
    /// attempt); its delivery count stays.
    ///
    /// # Errors
    ///
    /// [`StoreError::MessageNotFound`] for an unknown id.
    async fn release_message(&self, id: i64) -> Result<(), StoreError>;

    /// Messages matching `query`, by id.
    async fn list_messages(&self, query: &MessageQuery) -> Result<Vec<Message>, StoreError>;
}

/// A shared store is a store: wrappers (e.g. an encrypting one) can hold an
/// `Arc<dyn Store>` or an `Arc` of a concrete store.
#[async_trait]
impl<S: Store + ?Sized> Store for Arc<S> {
    async fn append(&self, execution: &ExecutionId, events: &[Event]) -> Result<(), StoreError> {
        (**self).append(execution, events).await
    }

    fn append_now(
        &self,
        execution: &ExecutionId,
        events: &[Event],
    ) -> Option<Result<(), StoreError>> {
        (**self).append_now(execution, events)
    }

    async fn load(&self, execution: &ExecutionId, from: u64) -> Result<Vec<Event>, StoreError> {
        (**self).load(execution, from).await
    }

    async fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Vec<ExecutionSummary>, StoreError> {
        (**self).list_executions(query).await
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        (**self).verify().await
    }

    async fn rebuild_projections(&self) -> Result<RebuildReport, StoreError> {
        (**self).rebuild_projections().await
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        (**self).kv_get(key).await
    }

    async fn kv_put(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        (**self).kv_put(key, value, ttl).await
    }

    async fn kv_put_if_absent(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<Option<Value>, StoreError> {
        (**self).kv_put_if_absent(key, value, ttl).await
    }

    async fn kv_delete(&self, key: &str) -> Result<bool, StoreError> {
        (**self).kv_delete(key).await
    }

    async fn send_message(&self, message: NewMessage) -> Result<i64, StoreError> {
        (**self).send_message(message).await
    }

    async fn fetch_messages(
        &self,
        recipient: &str,
        options: &FetchOptions,
    ) -> Result<Vec<Message>, StoreError> {
        (**self).fetch_messages(recipient, options).await
    }

    async fn ack_message(&self, id: i64) -> Result<(), StoreError> {
        (**self).ack_message(id).await
    }

    async fn release_message(&self, id: i64) -> Result<(), StoreError> {
        (**self).release_message(id).await
    }

    async fn list_messages(&self, query: &MessageQuery) -> Result<Vec<Message>, StoreError> {
        (**self).list_messages(query).await
    }
}

/// Which executions [`Store::list_executions`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecutionQuery {
    /// Only executions in this status (`Running` includes executions whose
    /// process stopped before they finished).
    pub status: Option<ExecutionStatus>,
    /// Only executions of this workflow.
    pub workflow: Option<String>,
    /// At most this many (0: no limit).
    pub limit: usize,
}

impl ExecutionQuery {
    /// Every execution.
    pub fn all() -> Self {
        Self::default()
    }

    /// Executions that started and have not finished.
    pub fn unfinished() -> Self {
        Self {
            status: Some(ExecutionStatus::Running),
            ..Self::default()
        }
    }
}

/// One execution as [`Store::list_executions`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionSummary {
    /// The execution.
    pub id: ExecutionId,
    /// Its workflow.
    pub workflow: String,
    /// Its status, from its journal.
    pub status: ExecutionStatus,
    /// The idempotency key it was started with.
    pub idempotency_key: Option<String>,
    /// The number of events in its journal.
    pub events: u64,
}

impl ExecutionSummary {
    /// Starts a summary from an execution's first event.
    pub fn from_start(event: &Event) -> Option<Self> {
        match &event.kind {
            EventKind::ExecutionStarted(start) => Some(Self {
                id: event.execution_id.clone(),
                workflow: start.workflow.to_string(),
                status: ExecutionStatus::Running,
                idempotency_key: start.idempotency_key.as_deref().map(str::to_owned),
                events: 0,
            }),
            _ => None,
        }
    }

    /// Folds later events into the summary.
    pub fn apply(&mut self, event: &Event) {
        self.events = event.seq + 1;
        match &event.kind {
            EventKind::ExecutionFinished { status, .. } => self.status = *status,
            EventKind::ExecutionParked { .. } => self.status = ExecutionStatus::Parked,
            EventKind::ExecutionResumed { .. } => self.status = ExecutionStatus::Running,
            _ => {}
        }
    }

    /// Whether it matches `query` (ignoring the limit).
    pub fn matches(&self, query: &ExecutionQuery) -> bool {
        query.status.is_none_or(|s| s == self.status)
            && query.workflow.as_deref().is_none_or(|w| w == self.workflow)
    }
}

/// A store failure.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another writer appended first: the journal's next sequence number is
    /// `actual`, not `expected`.
    #[error("execution `{execution}`: journal conflict, expected to append seq {expected} but the next is {actual}")]
    Conflict {
        /// The execution.
        execution: ExecutionId,
        /// The sequence number the writer tried to append.
        expected: u64,
        /// The store's next sequence number.
        actual: u64,
    },
    /// A batch with a gap, a repeated number, or another execution's event.
    #[error("execution `{execution}`: invalid append batch: {reason}")]
    InvalidBatch {
        /// The execution.
        execution: ExecutionId,
        /// What is wrong.
        reason: String,
    },
    /// No journal for this execution.
    #[error("execution `{execution}` not found in the store")]
    NotFound {
        /// The execution.
        execution: ExecutionId,
    },
    /// No message has this id.
    #[error("message {id} not found")]
    MessageNotFound {
        /// The id.
        id: i64,
    },
    /// A stored record does not match its checksum, or cannot be decoded:
    /// it was corrupted or tampered with, and is never returned as data.
    #[error("execution `{execution}`, seq {seq}{}: corrupt record: {reason}", step.as_ref().map(|s| format!(", step `{s}`")).unwrap_or_default())]
    Corrupt {
        /// The execution.
        execution: ExecutionId,
        /// The record's sequence number.
        seq: u64,
        /// The step the record is about, when it could be read.
        step: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// The database was written by a newer version of this library.
    #[error(
        "{location}: schema version {found} is newer than the {supported} this build supports"
    )]
    SchemaTooNew {
        /// Which database.
        location: String,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The store could not be reached.
    #[error("cannot reach the {backend} store at {location}: {source}")]
    Unreachable {
        /// Which backend.
        backend: &'static str,
        /// Where (a URL without its password, or a path).
        location: String,
        /// The cause.
        #[source]
        source: SharedError,
    },
    /// A stored value could not be encoded or decoded (e.g. a wrong
    /// encryption key).
    #[error("{what}: {reason}")]
    Codec {
        /// What was being read or written.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A value to store nests deeper than
    /// [`MAX_VALUE_DEPTH`](crate::depth::MAX_VALUE_DEPTH) levels; nothing was
    /// written.
    #[error("{what}: a value nests deeper than {limit} levels, the most a store keeps")]
    ValueTooDeep {
        /// Where the value was to go.
        what: String,
        /// The limit.
        limit: usize,
    },
    /// The backend failed (connection, I/O, ...).
    #[error("{backend} store: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// Whether the operation may succeed if tried again.
        retryable: bool,
        /// The backend's error.
        #[source]
        source: SharedError,
    },
}

impl StoreError {
    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Backend {
                retryable: true,
                ..
            }
        )
    }
}
