//! Running an operation under a [`Policy`].

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::{CallOptions, Policy};
use crate::cancel::Cancellation;
use crate::classify::Retryable;
use crate::error::{ErrorKind, PolicyError};
use crate::observe::{Observer, PolicyEvent};
use crate::rate_limit::RateLimitMode;

/// Builds an event only when someone listens: failure texts allocate.
fn emit(observer: Option<&dyn Observer>, event: impl FnOnce() -> PolicyEvent) {
    if let Some(o) = observer {
        o.on_event(event());
    }
}

/// Traces a breaker transition inside the attempt's span and reports it.
fn note_transition(
    span: &tracing::Span,
    observer: Option<&dyn Observer>,
    key: &crate::Key,
    (from, to): crate::Transition,
) {
    span.in_scope(|| tracing::info!(%key, %from, %to, "circuit breaker transition"));
    emit(observer, || PolicyEvent::BreakerTransition {
        key: key.clone(),
        from,
        to,
    });
}

fn is_cancelled(source: Option<&dyn Cancellation>) -> bool {
    source.is_some_and(Cancellation::is_cancelled)
}

/// Sleeps `delay`; `false` if cancelled first.
async fn sleep_or_cancel(delay: Duration, source: Option<&dyn Cancellation>) -> bool {
    match source {
        None => {
            tokio::time::sleep(delay).await;
            true
        }
        Some(source) => tokio::select! {
            biased;
            _ = source.cancellation_token().cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        },
    }
}

async fn cancelled(source: Option<&dyn Cancellation>) {
    match source {
        Some(source) => source.cancellation_token().cancelled().await,
        None => std::future::pending().await,
    }
}

impl Policy {
    /// Runs `op` under the policy, classifying errors with [`Retryable`].
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] with the last cause and the attempts made.
    pub async fn call<T, E, F, Fut>(&self, mut op: F) -> Result<T, PolicyError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Retryable + Display,
    {
        self.call_with(CallOptions::new(), move |_| op()).await
    }

    /// Runs `op` (given the attempt number, from 1) with cancellation and an
    /// observer.
    ///
    /// Cancellation stops the policy before the next attempt and during any
    /// wait (backoff, rate limit, bulkhead queue) with
    /// [`ErrorKind::Cancelled`]; an attempt already running is not
    /// interrupted: the operation sees the token itself.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] with the last cause and the attempts made.
    pub fn call_with<'a, T, E, F, Fut>(
        &'a self,
        options: CallOptions<'a>,
        op: F,
    ) -> impl Future<Output = Result<T, PolicyError<E>>> + 'a
    where
        F: FnMut(u32) -> Fut + 'a,
        Fut: Future<Output = Result<T, E>> + 'a,
        E: Retryable + Display + 'a,
        T: 'a,
    {
        // Not `async`: an async fn holds its arguments twice, and every
        // byte of this future is in every running step.
        self.run(options, |e: &E| (e.is_retryable(), e.retry_after()), op)
    }

    /// Like [`call_with`](Self::call_with) with a custom classifier deciding
    /// which operation errors are retried (timeouts always are; an open
    /// circuit and cancellation never are).
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] with the last cause and the attempts made.
    pub async fn call_classified<T, E, F, Fut, C>(
        &self,
        options: CallOptions<'_>,
        classify: C,
        op: F,
    ) -> Result<T, PolicyError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display,
        C: Fn(&E) -> bool,
    {
        self.run(options, |e: &E| (classify(e), None), op).await
    }

    // Not `async fn`: it would hold its arguments twice in its future.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn run<'a, T, E, F, Fut, C>(
        &'a self,
        options: CallOptions<'a>,
        classify: C,
        mut op: F,
    ) -> impl Future<Output = Result<T, PolicyError<E>>> + 'a
    where
        F: FnMut(u32) -> Fut + 'a,
        Fut: Future<Output = Result<T, E>> + 'a,
        E: Display + 'a,
        C: Fn(&E) -> (bool, Option<Duration>) + 'a,
        T: 'a,
    {
        async move {
            let b = &*self.inner;
            let (token, observer) = (options.cancel, options.observer);
            let deadline = b.retry.deadline.map(|d| Instant::now() + d);
            // The clock is only read when there is a deadline.
            let remaining = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                // Everything about this attempt, admission included, is traced
                // inside its span.
                // Made only once a `tracing` subscriber exists: without one, a
                // span is still created, entered and dropped, and with
                // `tracing`'s `log` feature each of those calls into the logger.
                // (The attempt's events still reach `log`.)
                let span = if tracing::dispatcher::has_been_set() {
                    tracing::info_span!("attempt", attempt)
                } else {
                    tracing::Span::none()
                };
                if is_cancelled(token) {
                    return Err(PolicyError::new(ErrorKind::Cancelled, attempt - 1));
                }
                if let Some(limiter) = &b.limiter {
                    let max_wait = match limiter.config().mode {
                        RateLimitMode::Reject => Some(Duration::ZERO),
                        RateLimitMode::Wait => remaining(),
                    };
                    match limiter.reserve(max_wait) {
                        Ok(wait) if wait.is_zero() => {}
                        Ok(wait) => {
                            emit(observer, || PolicyEvent::Throttled {
                                attempt,
                                delay: wait,
                            });
                            if !Box::pin(sleep_or_cancel(wait, token)).await {
                                return Err(PolicyError::new(ErrorKind::Cancelled, attempt - 1));
                            }
                        }
                        Err(retry_after) => {
                            let kind = ErrorKind::RateLimited {
                                key: b.key.clone(),
                                retry_after,
                            };
                            span.in_scope(|| tracing::info!(reason = %kind, "attempt rejected"));
                            emit(observer, || PolicyEvent::Rejected {
                                attempt,
                                reason: kind.to_string(),
                            });
                            return Err(PolicyError::new(kind, attempt - 1));
                        }
                    }
                }
                let slot = match &b.bulkhead {
                    None => None,
                    // A free slot is taken without touching the cancellation
                    // token: waiting on it costs a lock and a registration.
                    Some(bulkhead) => match bulkhead.try_acquire() {
                        Some(slot) => Some(slot),
                        None => {
                            // Boxed, as are the waits below: rare, and
                            // waiting anyway, they would otherwise make
                            // every call's future larger.
                            let acquired = Box::pin(async {
                                tokio::select! {
                                    biased;
                                    _ = cancelled(token) => None,
                                    r = bulkhead.acquire() => Some(r),
                                }
                            })
                            .await;
                            match acquired {
                                None => {
                                    return Err(PolicyError::new(ErrorKind::Cancelled, attempt - 1))
                                }
                                Some(Ok(slot)) => Some(slot),
                                Some(Err(())) => {
                                    let config = bulkhead.config();
                                    let kind = ErrorKind::BulkheadFull {
                                        key: b.key.clone(),
                                        limit: config.max_concurrent,
                                        queue: config.max_queue,
                                    };
                                    span.in_scope(
                                        || tracing::info!(reason = %kind, "attempt rejected"),
                                    );
                                    emit(observer, || PolicyEvent::Rejected {
                                        attempt,
                                        reason: kind.to_string(),
                                    });
                                    return Err(PolicyError::new(kind, attempt - 1));
                                }
                            }
                        }
                    },
                };
                let permit = match &b.breaker {
                    None => None,
                    Some(breaker) => {
                        let (admitted, transition) = breaker.try_acquire();
                        if let Some(t) = transition {
                            note_transition(&span, observer, &b.key, t);
                        }
                        match admitted {
                            Ok(permit) => Some(permit),
                            Err(()) => {
                                let kind = ErrorKind::CircuitOpen { key: b.key.clone() };
                                span.in_scope(
                                    || tracing::info!(reason = %kind, "attempt rejected"),
                                );
                                emit(observer, || PolicyEvent::Rejected {
                                    attempt,
                                    reason: kind.to_string(),
                                });
                                return Err(PolicyError::new(kind, attempt - 1));
                            }
                        }
                    }
                };

                emit(observer, || PolicyEvent::AttemptStarted { attempt });
                let limit = match (b.timeout, remaining()) {
                    (Some(t), Some(r)) => Some(t.min(r)),
                    (t, r) => t.or(r),
                };
                let running = op(attempt).instrument(span.clone());
                let outcome = match limit {
                    Some(after) => crate::timeout::timeout(after, running).await,
                    None => Ok(running.await),
                };

                let transition;
                let (last, retryable, asked_delay) = match outcome {
                    Ok(Ok(value)) => {
                        if let (Some(breaker), Some(permit)) = (&b.breaker, permit) {
                            if let Some(t) = breaker.on_success(permit) {
                                note_transition(&span, observer, &b.key, t);
                            }
                        }
                        return Ok(value);
                    }
                    Ok(Err(error)) => {
                        transition = match (&b.breaker, permit) {
                            (Some(breaker), Some(permit)) => breaker.on_failure(permit, &error),
                            _ => None,
                        };
                        let (retryable, asked) = classify(&error);
                        span.in_scope(|| tracing::info!(%error, retryable, "attempt failed"));
                        emit(observer, || PolicyEvent::AttemptFailed {
                            attempt,
                            error: error.to_string(),
                            retryable,
                        });
                        (ErrorKind::Operation(error), retryable, asked)
                    }
                    Err(after) => {
                        transition = match (&b.breaker, permit) {
                            (Some(breaker), Some(permit)) => breaker
                                .on_failure(permit, &format_args!("timed out after {after:?}")),
                            _ => None,
                        };
                        span.in_scope(|| tracing::info!(?after, "attempt timed out"));
                        emit(observer, || PolicyEvent::TimedOut { attempt, after });
                        (ErrorKind::Timeout { after }, true, None)
                    }
                };
                if let Some(t) = transition {
                    note_transition(&span, observer, &b.key, t);
                }
                // The slot is not held while waiting to retry.
                drop(slot);
                if is_cancelled(token) {
                    return Err(PolicyError::new(ErrorKind::Cancelled, attempt));
                }
                if !retryable || attempt >= b.retry.max_attempts {
                    return Err(PolicyError::new(last, attempt));
                }
                let mut delay = b.retry.backoff.delay(attempt, self.rng());
                if let Some(asked) = asked_delay {
                    delay = delay.max(asked);
                }
                if remaining().is_some_and(|r| delay >= r) {
                    span.in_scope(|| {
                        tracing::info!(?delay, "retry would pass the deadline; giving up")
                    });
                    return Err(PolicyError::new(last, attempt));
                }
                span.in_scope(|| {
                    tracing::info!(?delay, next_attempt = attempt + 1, "retry scheduled")
                });
                emit(observer, || PolicyEvent::RetryScheduled {
                    next_attempt: attempt + 1,
                    delay,
                });
                if !Box::pin(sleep_or_cancel(delay, token)).await {
                    return Err(PolicyError::new(ErrorKind::Cancelled, attempt));
                }
            }
        }
    }
}
