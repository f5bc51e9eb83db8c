//! What an agent knows about the attempt it is running.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::depth::{exceeds_max_depth, MAX_VALUE_DEPTH};
use crate::error::Error;
use crate::executor::{Inbox, TaskMsg};
use crate::ids::ExecutionId;

/// Sends an attempt's custom events to its execution's journal.
pub(crate) struct EventSink {
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) limit: u32,
}

/// What every step of one execution shares, made once per execution: a
/// step's context then takes two reference counts, not one per field.
pub(crate) struct ExecutionScope {
    execution_id: ExecutionId,
    correlation_id: Arc<str>,
    token: CancellationToken,
    sink: Option<EventSink>,
    /// The execution's input, which a retry evaluates its step's template
    /// against again (`None` outside an execution).
    input: Option<Arc<Value>>,
}

impl ExecutionScope {
    pub(crate) fn new(
        execution_id: ExecutionId,
        correlation_id: Arc<str>,
        token: CancellationToken,
        sink: EventSink,
        input: Arc<Value>,
    ) -> Self {
        Self {
            execution_id,
            correlation_id,
            token,
            sink: Some(sink),
            input: Some(input),
        }
    }
}

/// The context of one attempt: ids, the attempt number, cancellation, and a
/// way to write custom events into the journal. Cheap to clone.
pub struct Context {
    scope: Arc<ExecutionScope>,
    step_id: Arc<str>,
    step_index: usize,
    /// Atomic so that a step's attempts can share one context: each sets
    /// its number before it starts, once the previous one is over.
    attempt: AtomicU32,
}

impl Clone for Context {
    fn clone(&self) -> Self {
        Self {
            scope: self.scope.clone(),
            step_id: self.step_id.clone(),
            step_index: self.step_index,
            attempt: AtomicU32::new(self.attempt()),
        }
    }
}

impl Context {
    pub(crate) fn new(scope: Arc<ExecutionScope>, step_id: Arc<str>, step_index: usize) -> Self {
        Self {
            scope,
            step_id,
            step_index,
            attempt: AtomicU32::new(1),
        }
    }

    /// A context outside any execution, for calling an agent directly (tests,
    /// scripts): a fresh execution id, attempt 1, a token nobody cancels, and
    /// [`emit`](Self::emit) discarding events.
    pub fn detached(step_id: &str) -> Self {
        let execution_id = ExecutionId::new();
        let scope = ExecutionScope {
            correlation_id: execution_id.as_str().into(),
            execution_id,
            token: CancellationToken::new(),
            sink: None,
            input: None,
        };
        Self::new(Arc::new(scope), step_id.into(), 0)
    }

    /// Numbers the attempt about to start.
    pub(crate) fn set_attempt(&self, attempt: u32) {
        self.attempt.store(attempt, Ordering::Relaxed);
    }

    /// The execution this attempt belongs to.
    pub fn execution_id(&self) -> &ExecutionId {
        &self.scope.execution_id
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
        &self.scope.correlation_id
    }

    /// A key for this step of this execution, the same on every attempt:
    /// pass it to external services to make side effects happen once.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.scope.execution_id, self.step_id)
    }

    /// The token cancelled when the execution is cancelled.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.scope.token
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.scope.token.is_cancelled()
    }

    /// Completes when cancellation is requested.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn cancelled(&self) {
        self.scope.token.cancelled().await
    }

    /// Appends a custom event to the execution's journal, after any event
    /// this attempt emitted before and before the step's own result.
    ///
    /// # Errors
    ///
    /// [`Error::JournalLimit`] past the orchestrator's limit of custom events
    /// per execution; [`Error::ValueTooDeep`] when the payload nests deeper
    /// than [`MAX_VALUE_DEPTH`]; [`Error::Cancelled`] when the execution has
    /// ended.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the event may or may
    /// not be recorded.
    pub async fn emit(&self, name: impl Into<String>, payload: Value) -> Result<(), Error> {
        if exceeds_max_depth(&payload) {
            return Err(Error::ValueTooDeep {
                step: Some(self.step_id.clone()),
                what: "custom event payload",
                limit: MAX_VALUE_DEPTH,
            });
        }
        let Some(sink) = &self.scope.sink else {
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
                name: name.into().into_boxed_str(),
                payload: Box::new(payload),
            })
            .map_err(|_| Error::Cancelled {
                step: Some(self.step_id.clone()),
            })
    }

    pub(crate) fn sink(&self) -> Option<&EventSink> {
        self.scope.sink.as_ref()
    }

    pub(crate) fn step_index(&self) -> usize {
        self.step_index
    }

    /// The execution's input (null outside an execution).
    pub(crate) fn execution_input(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.scope.input.as_deref().unwrap_or(&NULL)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("execution_id", &self.scope.execution_id)
            .field("step_id", &self.step_id)
            .field("attempt", &self.attempt())
            .field("correlation_id", &self.scope.correlation_id)
            .field("cancelled", &self.scope.token.is_cancelled())
            .finish()
    }
}
