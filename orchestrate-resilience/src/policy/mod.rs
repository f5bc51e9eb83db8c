//! [`Policy`]: a composed, keyed, shareable resilience stack.

mod call;
mod fallback;
mod registry;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::bulkhead::{Bulkhead, BulkheadConfig};
use crate::cancel::Cancellation;
use crate::key::Key;
use crate::observe::Observer;
use crate::rate_limit::{RateLimitConfig, RateLimiter};
use crate::rng::Rng;

pub use fallback::Outcome;
pub use registry::Registry;

/// Retry settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryConfig {
    /// Attempts in all, the first included (default 3).
    pub max_attempts: u32,
    /// Delays between attempts.
    pub backoff: Backoff,
    /// Overall deadline of a call, from its start: no attempt runs and no
    /// sleep reaches past it (default none).
    pub deadline: Option<Duration>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::default(),
            deadline: None,
        }
    }
}

impl RetryConfig {
    /// `max_attempts` attempts with the default backoff.
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            ..Self::default()
        }
    }

    /// Sets the backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the overall deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

/// Per-call options: cancellation and an observer.
#[derive(Clone, Copy, Default)]
pub struct CallOptions<'a> {
    pub(crate) cancel: Option<&'a dyn Cancellation>,
    pub(crate) observer: Option<&'a dyn Observer>,
}

impl fmt::Debug for CallOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOptions")
            .field("cancellable", &self.cancel.is_some())
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl<'a> CallOptions<'a> {
    /// No cancellation, no observer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes no further attempt, and stops any wait, once `token` is
    /// cancelled (an attempt running then is not interrupted).
    pub fn cancel(mut self, token: &'a CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// As [`cancel`](Self::cancel), for `source`, whose token is asked for
    /// only when the policy waits (see [`Cancellation`]).
    pub fn cancel_with(mut self, source: &'a dyn Cancellation) -> Self {
        self.cancel = Some(source);
        self
    }

    /// Reports every [`PolicyEvent`](crate::PolicyEvent) of the call.
    pub fn observe(mut self, observer: &'a dyn Observer) -> Self {
        self.observer = Some(observer);
        self
    }
}

/// What a [`Policy`] is made of (configuration only).
#[derive(Clone, Debug, Default)]
struct Spec {
    timeout: Option<Duration>,
    retry: Option<RetryConfig>,
    breaker: Option<BreakerConfig>,
    bulkhead: Option<BulkheadConfig>,
    rate_limit: Option<RateLimitConfig>,
}

/// Builds a [`Policy`] from any subset of timeout, retry, circuit breaker,
/// bulkhead and rate limit.
///
/// Whatever the order of the builder calls, a call runs as
/// `retry(backoff(rate_limit(bulkhead(circuit_breaker(timeout(attempt))))))`:
/// each attempt waits for the rate limiter, takes a bulkhead slot, asks the
/// breaker, and runs under the timeout; failures the classifier allows are
/// retried after a backoff delay.
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct PolicyBuilder {
    spec: Spec,
    seed: Option<u64>,
    registry: Option<Registry>,
    key: Option<Key>,
}

impl PolicyBuilder {
    /// Times out each attempt after `timeout`, counted from the attempt's
    /// first suspension: an attempt that completes without suspending never
    /// arms a timer (and cannot be timed out: nothing interrupts a poll).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.spec.timeout = Some(timeout);
        self
    }

    /// Retries with `retry`.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.spec.retry = Some(retry);
        self
    }

    /// Guards calls with a circuit breaker.
    pub fn circuit_breaker(mut self, config: BreakerConfig) -> Self {
        self.spec.breaker = Some(config);
        self
    }

    /// Limits concurrent calls.
    pub fn bulkhead(mut self, config: BulkheadConfig) -> Self {
        self.spec.bulkhead = Some(config);
        self
    }

    /// Limits the call rate.
    pub fn rate_limit(mut self, config: RateLimitConfig) -> Self {
        self.spec.rate_limit = Some(config);
        self
    }

    /// Seeds the jitter generator, for reproducible delays.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Keeps breaker, bulkhead and limiter state in `registry` (default: a
    /// registry of this policy's own).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The key of the state this policy uses (default `"default"`).
    pub fn key(mut self, key: impl Into<Key>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Builds the policy, creating or joining its keyed state.
    pub fn build(self) -> Policy {
        let registry = self.registry.unwrap_or_default();
        let rng = Arc::new(self.seed.map_or_else(Rng::from_entropy, Rng::seeded));
        Policy::bind(
            Arc::new(self.spec),
            registry,
            self.key.unwrap_or_else(|| Key::new("default")),
            rng,
        )
    }
}

/// A resilience stack bound to a key: cheap to clone (one reference count),
/// shareable across tasks; calls take no global lock and allocate nothing
/// on the success path.
///
/// # Examples
///
/// ```
/// use orchestrate_resilience::{Backoff, Jitter, Policy, RetryConfig};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let policy = Policy::builder()
///     .timeout(Duration::from_secs(2))
///     .retry(RetryConfig::attempts(3).with_backoff(Backoff::default().with_jitter(Jitter::None)))
///     .build();
/// let mut calls = 0;
/// let result: Result<&str, _> = policy
///     .call(|| {
///         calls += 1;
///         let n = calls;
///         async move { if n < 3 { Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset)) } else { Ok("up") } }
///     })
///     .await;
/// assert_eq!(result.unwrap(), "up");
/// assert_eq!(calls, 3);
/// # }
/// ```
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Bound>,
}

pub(crate) struct Bound {
    spec: Arc<Spec>,
    registry: Registry,
    key: Key,
    rng: Arc<Rng>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: RetryConfig,
    pub(crate) breaker: Option<Arc<CircuitBreaker>>,
    pub(crate) bulkhead: Option<Arc<Bulkhead>>,
    pub(crate) limiter: Option<Arc<RateLimiter>>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("key", &self.inner.key)
            .field("timeout", &self.inner.timeout)
            .field("retry", &self.inner.retry)
            .field("breaker", &self.inner.breaker.is_some())
            .field("bulkhead", &self.inner.bulkhead.is_some())
            .field("rate_limit", &self.inner.limiter.is_some())
            .finish()
    }
}

impl Policy {
    /// Starts a builder.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    fn bind(spec: Arc<Spec>, registry: Registry, key: Key, rng: Arc<Rng>) -> Self {
        let bound = Bound {
            timeout: spec.timeout,
            // No retry configured means one attempt.
            retry: spec.retry.unwrap_or(RetryConfig {
                max_attempts: 1,
                ..RetryConfig::default()
            }),
            breaker: spec.breaker.map(|c| registry.breaker(&key, c)),
            bulkhead: spec.bulkhead.map(|c| registry.bulkhead(&key, c)),
            limiter: spec.rate_limit.map(|c| registry.limiter(&key, c)),
            spec,
            registry,
            key,
            rng,
        };
        Self {
            inner: Arc::new(bound),
        }
    }

    /// The same stack on another key of the same registry (e.g. one breaker
    /// per agent, or per agent and host).
    pub fn for_key(&self, key: impl Into<Key>) -> Self {
        let inner = &self.inner;
        let rebound = Self::bind(
            inner.spec.clone(),
            inner.registry.clone(),
            key.into(),
            inner.rng.clone(),
        );
        // Keep overrides made with `with_*` on this handle.
        rebound.with_overrides(inner.timeout, inner.retry)
    }

    /// The same state with another attempt timeout (`None`: no timeout).
    pub fn with_timeout(&self, timeout: Option<Duration>) -> Self {
        self.with_overrides(timeout, self.inner.retry)
    }

    /// The same state with another number of attempts (the first included).
    pub fn with_max_attempts(&self, max_attempts: u32) -> Self {
        let retry = RetryConfig {
            max_attempts: max_attempts.max(1),
            ..self.inner.retry
        };
        self.with_overrides(self.inner.timeout, retry)
    }

    fn with_overrides(&self, timeout: Option<Duration>, retry: RetryConfig) -> Self {
        let i = &self.inner;
        Self {
            inner: Arc::new(Bound {
                spec: i.spec.clone(),
                registry: i.registry.clone(),
                key: i.key.clone(),
                rng: i.rng.clone(),
                timeout,
                retry,
                breaker: i.breaker.clone(),
                bulkhead: i.bulkhead.clone(),
                limiter: i.limiter.clone(),
            }),
        }
    }

    /// The key.
    pub fn key(&self) -> &Key {
        &self.inner.key
    }

    /// The registry holding this policy's keyed state.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The attempt timeout.
    pub fn timeout(&self) -> Option<Duration> {
        self.inner.timeout
    }

    /// The retry settings.
    pub fn retry_config(&self) -> &RetryConfig {
        &self.inner.retry
    }

    /// The circuit breaker, if the policy has one.
    pub fn circuit_breaker(&self) -> Option<&Arc<CircuitBreaker>> {
        self.inner.breaker.as_ref()
    }

    /// The bulkhead, if the policy has one.
    pub fn bulkhead(&self) -> Option<&Arc<Bulkhead>> {
        self.inner.bulkhead.as_ref()
    }

    pub(crate) fn rng(&self) -> &Rng {
        &self.inner.rng
    }
}
