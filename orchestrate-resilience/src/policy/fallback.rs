//! Graceful degradation: a value or an alternate operation when the policy
//! gives up.

use std::fmt::Display;
use std::future::Future;

use super::{CallOptions, Policy};
use crate::classify::Retryable;
use crate::error::PolicyError;
use crate::observe::PolicyEvent;

/// The result of a call with a fallback: the operation's value, or the
/// fallback's with the reason the policy gave up.
#[derive(Debug)]
pub enum Outcome<T, E> {
    /// The operation succeeded.
    Primary(T),
    /// The policy gave up (retries exhausted, timeout, open breaker,
    /// rejection) and the fallback produced the value.
    Fallback {
        /// The fallback's value.
        value: T,
        /// Why the policy gave up.
        cause: PolicyError<E>,
    },
}

impl<T, E> Outcome<T, E> {
    /// The value, whichever produced it.
    pub fn into_value(self) -> T {
        match self {
            Outcome::Primary(v) | Outcome::Fallback { value: v, .. } => v,
        }
    }

    /// Whether the fallback produced the value.
    pub fn is_fallback(&self) -> bool {
        matches!(self, Outcome::Fallback { .. })
    }
}

impl Policy {
    /// Runs `op`; when the policy gives up for any reason but cancellation,
    /// runs `fallback` instead and records a
    /// [`FallbackUsed`](PolicyEvent::FallbackUsed) event.
    ///
    /// # Errors
    ///
    /// Only cancellation.
    ///
    /// # Examples
    ///
    /// ```
    /// use orchestrate_resilience::{CallOptions, Policy};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let policy = Policy::builder().build();
    /// let out = policy
    ///     .call_or_else(
    ///         CallOptions::new(),
    ///         |_| async { Err::<&str, _>(std::io::Error::other("down")) },
    ///         |_| async { "cached answer" },
    ///     )
    ///     .await
    ///     .unwrap();
    /// assert!(out.is_fallback());
    /// assert_eq!(out.into_value(), "cached answer");
    /// # }
    /// ```
    pub async fn call_or_else<T, E, F, Fut, G, GFut>(
        &self,
        options: CallOptions<'_>,
        op: F,
        fallback: G,
    ) -> Result<Outcome<T, E>, PolicyError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Retryable + Display,
        G: FnOnce(&PolicyError<E>) -> GFut,
        GFut: Future<Output = T>,
    {
        match self.call_with(options, op).await {
            Ok(v) => Ok(Outcome::Primary(v)),
            Err(cause) if cause.is_cancelled() => Err(cause),
            Err(cause) => {
                if let Some(o) = options.observer {
                    o.on_event(PolicyEvent::FallbackUsed {
                        reason: cause.to_string(),
                    });
                }
                tracing::info!(reason = %cause, "fallback used");
                let value = fallback(&cause).await;
                Ok(Outcome::Fallback { value, cause })
            }
        }
    }

    /// Runs `op`, falling back to `value` (see [`call_or_else`](Self::call_or_else)).
    ///
    /// # Errors
    ///
    /// Only cancellation.
    pub async fn call_or<T, E, F, Fut>(
        &self,
        options: CallOptions<'_>,
        value: T,
        op: F,
    ) -> Result<Outcome<T, E>, PolicyError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Retryable + Display,
    {
        self.call_or_else(options, op, |_| async move { value })
            .await
    }
}
