//! The attempt timeout: a timer armed only when the attempt suspends.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::pin_project;
use tokio::time::Sleep;

/// Runs `fut` with a time limit of `after`, counted from its first
/// suspension. An operation that completes in its first poll (a cache hit, a
/// no-op, a validation failure) never reads the clock or touches the timer
/// wheel, which `tokio::time::timeout` does on creation.
pub(crate) fn timeout<F: Future>(after: Duration, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        after,
        timer: None,
    }
}

/// The future of [`timeout`]: `Err(after)` when the time ran out.
#[pin_project]
pub(crate) struct Timeout<F> {
    #[pin]
    fut: F,
    after: Duration,
    /// Boxed: a timer is as large as a small future, and only attempts that
    /// wait need one; the others stay small.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Duration>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(value) = this.fut.poll(cx) {
            return Poll::Ready(Ok(value));
        }
        let after = *this.after;
        this.timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)))
            .as_mut()
            .poll(cx)
            .map(|()| Err(after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ready_at_once_is_never_timed() {
        assert_eq!(timeout(Duration::ZERO, async { 7 }).await, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_suspended_operation_times_out_after_the_limit() {
        let start = tokio::time::Instant::now();
        let slow = timeout(
            Duration::from_secs(2),
            tokio::time::sleep(Duration::from_secs(5)),
        );
        assert_eq!(slow.await, Err(Duration::from_secs(2)));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let quick = timeout(Duration::from_secs(2), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "done"
        });
        assert_eq!(quick.await, Ok("done"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_limit_fails_an_operation_that_suspends() {
        let pending = timeout(Duration::ZERO, std::future::pending::<()>());
        assert_eq!(pending.await, Err(Duration::ZERO));
    }
}
