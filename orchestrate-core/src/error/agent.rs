//! [`AgentError`]: what an agent returns when it fails, and how retry
//! policies should treat it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::boxed::SharedError;

/// How an agent failure should be treated by retry policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retry {
    /// Worth retrying (network blip, overload, rate limit).
    Transient,
    /// Retrying cannot help (bad input, refused request).
    Permanent,
    /// Retry, but not before this delay.
    After(Duration),
}

/// What an [`Agent`](crate::Agent) returns when it fails.
///
/// # Examples
///
/// ```
/// use orchestrate_core::AgentError;
/// use std::time::Duration;
///
/// assert!(AgentError::transient("503 from upstream").is_retryable());
/// assert!(!AgentError::permanent("invalid prompt").is_retryable());
/// let later = AgentError::retry_after("rate limited", Duration::from_secs(2));
/// assert_eq!(later.retry_delay(), Some(Duration::from_secs(2)));
/// ```
#[derive(Clone, Debug)]
pub struct AgentError {
    pub(super) message: Arc<str>,
    pub(super) retry: Retry,
    pub(super) source: Option<SharedError>,
    pub(super) interrupt: Option<Arc<serde_json::Value>>,
}

impl AgentError {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::with(message, Retry::Transient)
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::with(message, Retry::Permanent)
    }

    /// A failure to retry after `delay` at the earliest.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        Self::with(message, Retry::After(delay))
    }

    /// Wraps any error as a transient failure, keeping it as the source.
    pub fn from_error(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: error.to_string().into(),
            retry: Retry::Transient,
            source: Some(Arc::new(error)),
            interrupt: None,
        }
    }

    /// Not a failure: the step needs an external decision (human approval)
    /// before it can produce its output. The execution parks once nothing
    /// else can run; [`Orchestrator::approve`](crate::Orchestrator::approve)
    /// supplies the step's output, [`Orchestrator::reject`](crate::Orchestrator::reject)
    /// fails it. `payload` tells the reviewer what to decide.
    ///
    /// # Examples
    ///
    /// ```
    /// use orchestrate_core::AgentError;
    /// let ask = AgentError::interrupt(serde_json::json!({"question": "ship it?"}));
    /// assert!(ask.is_interrupt());
    /// ```
    pub fn interrupt(payload: serde_json::Value) -> Self {
        Self {
            message: "waiting for an external decision".into(),
            retry: Retry::Permanent,
            source: None,
            interrupt: Some(Arc::new(payload)),
        }
    }

    /// Whether this is an [`interrupt`](Self::interrupt).
    pub fn is_interrupt(&self) -> bool {
        self.interrupt.is_some()
    }

    /// The payload of an [`interrupt`](Self::interrupt).
    pub fn interrupt_payload(&self) -> Option<&Arc<serde_json::Value>> {
        self.interrupt.as_ref()
    }

    fn with(message: impl Into<String>, retry: Retry) -> Self {
        Self {
            message: message.into().into(),
            retry,
            source: None,
            interrupt: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Changes the retry classification.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The retry classification.
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// Whether retrying may help.
    pub fn is_retryable(&self) -> bool {
        !matches!(self.retry, Retry::Permanent)
    }

    /// The delay asked for by [`AgentError::retry_after`].
    pub fn retry_delay(&self) -> Option<Duration> {
        match self.retry {
            Retry::After(d) => Some(d),
            _ => None,
        }
    }
}

impl orchestrate_resilience::Retryable for AgentError {
    fn is_retryable(&self) -> bool {
        AgentError::is_retryable(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_delay()
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AgentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
