//! Where a call's cancellation comes from.

use tokio_util::sync::CancellationToken;

/// A source of cancellation for [`CallOptions::cancel_with`]: a policy asks
/// it whether cancellation was requested before and after every attempt,
/// and asks for its token only when it has to wait (a backoff, a full
/// bulkhead, a rate limit), to stop waiting when the token is cancelled.
///
/// A [`CancellationToken`] is one. A source may also make its token at
/// that first wait: making a child token locks its parent, and most calls
/// never wait.
///
/// The policy trusts the two to agree: `is_cancelled` must answer what
/// `cancellation_token().is_cancelled()` would, whether the token was made
/// yet or not, and `cancellation_token` must give the same token each time.
///
/// ```
/// use orchestrate_resilience::{CallOptions, Cancellation, Policy};
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let token = CancellationToken::new();
/// token.cancel();
/// assert!(Cancellation::is_cancelled(&token));
/// let policy = Policy::builder().build();
/// let result = policy
///     .call_with(CallOptions::new().cancel_with(&token), |_| async {
///         Ok::<_, std::io::Error>(1)
///     })
///     .await;
/// assert!(result.unwrap_err().is_cancelled());
/// # }
/// ```
///
/// [`CallOptions::cancel_with`]: crate::CallOptions::cancel_with
pub trait Cancellation: Sync {
    /// Whether cancellation was requested.
    fn is_cancelled(&self) -> bool;

    /// The token whose cancellation stops a wait.
    fn cancellation_token(&self) -> &CancellationToken;
}

impl Cancellation for CancellationToken {
    fn is_cancelled(&self) -> bool {
        CancellationToken::is_cancelled(self)
    }

    fn cancellation_token(&self) -> &CancellationToken {
        self
    }
}
