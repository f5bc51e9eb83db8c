//! What a policy returns when it gives up.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use crate::key::Key;

/// Why a policy gave up, without the attempt count (see [`PolicyError`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ErrorKind<E> {
    /// The operation's own error, from the last attempt.
    #[error("{0}")]
    Operation(E),
    /// The last attempt did not complete within its timeout.
    #[error("attempt timed out after {after:?}")]
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// The circuit breaker is open: the operation was not run.
    #[error("circuit `{key}` is open")]
    CircuitOpen {
        /// The breaker's key.
        key: Key,
    },
    /// The bulkhead and its wait queue are full: the operation was not run.
    #[error("bulkhead `{key}` is full ({limit} running, {queue} waiting)")]
    BulkheadFull {
        /// The bulkhead's key.
        key: Key,
        /// Its concurrency limit.
        limit: usize,
        /// Its wait-queue bound.
        queue: usize,
    },
    /// The rate limit is exhausted and the policy rejects rather than waits.
    #[error("rate limit `{key}` exhausted; retry in {retry_after:?}")]
    RateLimited {
        /// The limiter's key.
        key: Key,
        /// When a request would be admitted.
        retry_after: Duration,
    },
    /// Cancelled through the call's token.
    #[error("cancelled")]
    Cancelled,
}

/// A policy's final error: why it gave up and how many attempts it made.
///
/// The source chain starts at the last cause, so `?` into a
/// `Box<dyn Error>` keeps it.
#[derive(Debug)]
pub struct PolicyError<E> {
    kind: ErrorKind<E>,
    attempts: u32,
}

impl<E> PolicyError<E> {
    pub(crate) fn new(kind: ErrorKind<E>, attempts: u32) -> Self {
        Self { kind, attempts }
    }

    /// Why the policy gave up.
    pub fn kind(&self) -> &ErrorKind<E> {
        &self.kind
    }

    /// Consumes the error, returning why the policy gave up.
    pub fn into_kind(self) -> ErrorKind<E> {
        self.kind
    }

    /// Attempts started (0 when the first was rejected before running).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The operation's own error, when that is what ended the call.
    pub fn into_operation_error(self) -> Option<E> {
        match self.kind {
            ErrorKind::Operation(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the last attempt timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::Timeout { .. })
    }

    /// Whether the breaker was open.
    pub fn is_circuit_open(&self) -> bool {
        matches!(self.kind, ErrorKind::CircuitOpen { .. })
    }

    /// Whether the call was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.kind, ErrorKind::Cancelled)
    }

    /// Whether the bulkhead or the rate limiter turned the call away.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::BulkheadFull { .. } | ErrorKind::RateLimited { .. }
        )
    }
}

impl<E: fmt::Display> fmt::Display for PolicyError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (after {} attempt(s))", self.kind, self.attempts)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for PolicyError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Operation(e) => Some(e),
            _ => None,
        }
    }
}
