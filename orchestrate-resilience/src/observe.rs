//! Observing what a policy does, call by call.

use std::time::Duration;

use crate::breaker::BreakerState;
use crate::key::Key;

/// One thing a policy did during a call.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PolicyEvent {
    /// Attempt `attempt` (from 1) is about to run the operation.
    AttemptStarted {
        /// Attempt number.
        attempt: u32,
    },
    /// Attempt `attempt` failed; `retryable` says whether the classifier
    /// allows another.
    AttemptFailed {
        /// Attempt number.
        attempt: u32,
        /// The failure, as text.
        error: String,
        /// The classifier's verdict.
        retryable: bool,
    },
    /// Attempt `attempt` timed out.
    TimedOut {
        /// Attempt number.
        attempt: u32,
        /// The timeout.
        after: Duration,
    },
    /// The policy waits `delay` before attempt `next_attempt`.
    RetryScheduled {
        /// The attempt that will follow.
        next_attempt: u32,
        /// The wait.
        delay: Duration,
    },
    /// The circuit breaker of `key` changed state because of this call.
    BreakerTransition {
        /// The breaker.
        key: Key,
        /// Previous state.
        from: BreakerState,
        /// New state.
        to: BreakerState,
    },
    /// The bulkhead, rate limiter or open breaker refused an attempt.
    Rejected {
        /// Attempt number.
        attempt: u32,
        /// Why, as text.
        reason: String,
    },
    /// The rate limiter made the attempt wait.
    Throttled {
        /// Attempt number.
        attempt: u32,
        /// The wait.
        delay: Duration,
    },
    /// The policy gave up and the fallback produced the result.
    FallbackUsed {
        /// Why the policy gave up, as text.
        reason: String,
    },
}

/// Receives a call's [`PolicyEvent`]s as they happen.
///
/// Called inline on the calling task: keep it cheap (count, log, send on a
/// channel).
pub trait Observer: Send + Sync {
    /// One event.
    fn on_event(&self, event: PolicyEvent);
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn on_event(&self, _: PolicyEvent) {}
}

impl<F: Fn(PolicyEvent) + Send + Sync> Observer for F {
    fn on_event(&self, event: PolicyEvent) {
        self(event)
    }
}
