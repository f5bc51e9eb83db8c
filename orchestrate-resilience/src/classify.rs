//! Deciding whether an operation's error is worth another attempt.

use std::time::Duration;

/// An operation error that says whether retrying may help.
///
/// The default classifier of a [`Policy`](crate::Policy) retries errors
/// whose [`is_retryable`](Retryable::is_retryable) is true; timeouts are
/// retried, an open circuit and cancellation never are. Use
/// [`Policy::call_classified`](crate::Policy::call_classified) for errors
/// that do not implement this trait.
pub trait Retryable {
    /// Whether another attempt may succeed.
    fn is_retryable(&self) -> bool;

    /// A delay the error asks for before the next attempt (e.g. HTTP
    /// `Retry-After`); the backoff delay is used when this is longer.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Retryable for std::io::Error {
    fn is_retryable(&self) -> bool {
        use std::io::ErrorKind::*;
        matches!(
            self.kind(),
            ConnectionRefused
                | ConnectionReset
                | ConnectionAborted
                | NotConnected
                | BrokenPipe
                | TimedOut
                | Interrupted
                | WouldBlock
                | UnexpectedEof
        )
    }
}
