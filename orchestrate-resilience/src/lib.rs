//! Resilience policies for `orchestrate`: retry with jittered backoff,
//! circuit breaker, timeout, bulkhead and rate limit, composed in the order
//! `retry(backoff(circuit_breaker(timeout(attempt))))`.
//!
//! # Status
//!
//! This crate is reserved and empty: the policies land with the resilience
//! issue. Until then `orchestrate-core` applies each step's `timeout` and
//! `retries` fields itself (immediate retries of retryable failures, honouring
//! an agent's `retry_after`), with no breaker, bulkhead or rate limit.
//!
//! It will depend on nothing else in the family, so it can wrap any async
//! operation on its own.
//!
//! ```
//! // Nothing to call yet; the crate builds so that dependants can name it.
//! ```

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]
