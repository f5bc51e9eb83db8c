//! Persistence: the [`Store`] trait and the in-memory implementation.

mod memory;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use thiserror::Error;

use crate::error::SharedError;
use crate::ids::ExecutionId;
use crate::journal::Event;

pub use memory::{MemoryStore, MemoryStoreConfig};

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
    async fn append(
        &self,
        execution: &ExecutionId,
        events: &[Arc<Event>],
    ) -> Result<(), StoreError>;

    /// Loads the journal from sequence number `from` (inclusive), in order.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when the execution has no journal.
    async fn load(&self, execution: &ExecutionId, from: u64)
        -> Result<Vec<Arc<Event>>, StoreError>;

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

pub(crate) fn check_batch(
    execution: &ExecutionId,
    events: &[Arc<Event>],
) -> Result<(), StoreError> {
    let invalid = |reason: String| StoreError::InvalidBatch {
        execution: execution.clone(),
        reason,
    };
    for (i, e) in events.iter().enumerate() {
        if &e.execution_id != execution {
            return Err(invalid(format!(
                "event seq {} belongs to `{}`",
                e.seq, e.execution_id
            )));
        }
        if i > 0 && e.seq != events[i - 1].seq + 1 {
            return Err(invalid(format!(
                "seq {} follows {}",
                e.seq,
                events[i - 1].seq
            )));
        }
    }
    Ok(())
}
