//! What an agent knows about the attempt it is running.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::executor::{Inbox, TaskMsg};
use crate::ids::ExecutionId;

/// Sends an attempt's custom events to its execution's journal.
#[derive(Clone)]
pub(crate) struct EventSink {
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) limit: u32,
}

/// The context of one attempt: ids, the attempt number, cancellation, and a
/// way to write custom events into the journal. Cheap to clone.
pub struct Context {
    execution_id: ExecutionId,
    step_id: Arc<str>,
    step_index: usize,
    /// Atomic so that a step's attempts can share one context: each sets
    /// its number before it starts, once the previous one is over.
    attempt: AtomicU32,
    correlation_id: Arc<str>,
    /// Shared by reference count: cloning a `CancellationToken` takes its
    /// tree's lock, and a context is made per step.
    token: Arc<CancellationToken>,
    sink: Option<EventSink>,
}

impl Clone for Context {
    fn clone(&self) -> Self {
        Self {
            execution_id: self.execution_id.clone(),
            step_id: self.step_id.clone(),
            step_index: self.step_index,
            attempt: AtomicU32::new(self.attempt()),
            correlation_id: self.correlation_id.clone(),
            token: self.token.clone(),
            sink: self.sink.clone(),
        }
    }
}

impl Context {
    pub(crate) fn new(
        execution_id: ExecutionId,
        step_id: Arc<str>,
        step_index: usize,
        correlation_id: Arc<str>,
        token: Arc<CancellationToken>,
        sink: EventSink,
    ) -> Self {
        Self {
            execution_id,
            step_id,
            step_index,
            attempt: AtomicU32::new(1),
            correlation_id,
            token,
            sink: Some(sink),
        }
    }

    /// A context outside any execution, for calling an agent directly (tests,
    /// scripts): a fresh execution id, attempt 1, a token nobody cancels, and
    /// [`emit`](Self::emit) discarding events.
    pub fn detached(step_id: &str) -> Self {
        let execution_id = ExecutionId::new();
        Self {
            correlation_id: execution_id.as_str().into(),
            execution_id,
            step_id: step_id.into(),
            step_index: 0,
            attempt: AtomicU32::new(1),
            token: Arc::new(CancellationToken::new()),
            sink: None,
        }
    }

    /// Numbers the attempt about to start.
    pub(crate) fn set_attempt(&self, attempt: u32) {
        self.attempt.store(attempt, Ordering::Relaxed);
    }

    /// The execution this attempt belongs to.
    pub fn execution_id(&self) -> &ExecutionId {
        &self.execution_id
    }

    /// The step being run.
    pub fn step_id(&self) -> &str {
        &self.step_id
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Relaxed)
    }

    /// The correlation id shared by every span and event of the execution.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// A key for this step of this execution, the same on every attempt:
    /// pass it to external services to make side effects happen once.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.execution_id, self.step_id)
    }

    /// The token cancelled when the execution is cancelled.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when cancellation is requested.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// Appends a custom event to the execution's journal, after any event
    /// this attempt emitted before and before the step's own result.
    ///
    /// # Errors
    ///
    /// [`Error::JournalLimit`] past the orchestrator's limit of custom events
    /// per execution; [`Error::Cancelled`] when the execution has ended.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the event may or may
    /// not be recorded.
    pub async fn emit(&self, name: impl Into<String>, payload: Value) -> Result<(), Error> {
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        if sink.inbox.emitted.fetch_add(1, Ordering::Relaxed) >= sink.limit {
            return Err(Error::JournalLimit {
                step: self.step_id.clone(),
                limit: sink.limit,
            });
        }
        sink.inbox
            .send(TaskMsg::Custom {
                step: self.step_index,
                event: Box::new((name.into(), payload)),
            })
            .map_err(|_| Error::Cancelled {
                step: Some(self.step_id.clone()),
            })
    }

    pub(crate) fn sink(&self) -> Option<&EventSink> {
        self.sink.as_ref()
    }

    pub(crate) fn step_index(&self) -> usize {
        self.step_index
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("execution_id", &self.execution_id)
            .field("step_id", &self.step_id)
            .field("attempt", &self.attempt())
            .field("correlation_id", &self.correlation_id)
            .field("cancelled", &self.token.is_cancelled())
            .finish()
    }
}
