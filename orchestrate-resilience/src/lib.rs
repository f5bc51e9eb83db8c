//! Resilience policies for any async operation: retry with jittered
//! backoff, circuit breaker, timeout, bulkhead, rate limit and fallback.
//!
//! A [`Policy`] composes any subset of them in one fixed order,
//! `retry(backoff(rate_limit(bulkhead(circuit_breaker(timeout(attempt))))))`,
//! and is bound to a [`Key`]: breakers, bulkheads and limiters live in a
//! [`Registry`], so every policy bound to the same key shares one breaker.
//! This crate depends on nothing else of `orchestrate`; `orchestrate-core`
//! wraps every agent attempt in a policy.
//!
//! # Example
//!
//! ```
//! use orchestrate_resilience::{BreakerConfig, BulkheadConfig, Policy, Registry, RetryConfig};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = Registry::new();
//! let policy = Policy::builder()
//!     .timeout(Duration::from_secs(5))
//!     .retry(RetryConfig::attempts(3))
//!     .circuit_breaker(BreakerConfig::default())
//!     .bulkhead(BulkheadConfig::new(8, 32))
//!     .registry(&registry)
//!     .key("search-api")
//!     .build();
//! let hits = policy.call(|| async { Ok::<_, std::io::Error>(42) }).await.unwrap();
//! assert_eq!(hits, 42);
//! assert_eq!(registry.breaker_snapshots()[0].key.name(), "search-api");
//! # }
//! ```
//!
//! Time is read from tokio's clock, so `tokio::time::pause` makes every
//! delay, timeout and breaker period deterministic in tests.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![doc(test(attr(deny(warnings))))]

mod backoff;
mod breaker;
mod bulkhead;
mod cancel;
mod classify;
mod error;
mod key;
mod observe;
mod policy;
mod rate_limit;
mod rng;
mod timeout;

pub use backoff::{Backoff, Jitter};
pub use breaker::{
    BreakerConfig, BreakerSnapshot, BreakerState, CircuitBreaker, Permit, Transition,
    TransitionHook, Trip,
};
pub use bulkhead::{Bulkhead, BulkheadConfig, Slot};
pub use cancel::Cancellation;
pub use classify::Retryable;
pub use error::{ErrorKind, PolicyError};
pub use key::Key;
pub use observe::{NoObserver, Observer, PolicyEvent};
pub use policy::{CallOptions, Outcome, Policy, PolicyBuilder, Registry, RetryConfig};
pub use rate_limit::{RateLimitConfig, RateLimitMode, RateLimiter};

/// The README's example, compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
