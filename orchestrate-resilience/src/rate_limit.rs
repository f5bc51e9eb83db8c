//! A keyed token bucket (GCRA), lock-free.
//!
//! Written here rather than taken from `governor`: governor waits on its own
//! timer, which tokio's paused clock cannot drive, and deterministic tests of
//! waiting are a requirement; the algorithm itself is a few lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::key::Key;

/// What a limiter does when no token is available.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RateLimitMode {
    /// Wait for the next token (the default).
    #[default]
    Wait,
    /// Reject at once with the time until the next token.
    Reject,
}

/// Settings of a [`RateLimiter`]: `requests` per `per`, with bursts of up to
/// `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests per period.
    pub requests: u32,
    /// The period.
    pub per: Duration,
    /// Requests allowed back to back after a quiet spell (at least 1).
    pub burst: u32,
    /// Waiting or rejecting.
    pub mode: RateLimitMode,
}

impl RateLimitConfig {
    /// `requests` per `per`, burst equal to `requests`, waiting when empty.
    pub fn new(requests: u32, per: Duration) -> Self {
        Self {
            requests,
            per,
            burst: requests,
            mode: RateLimitMode::Wait,
        }
    }

    /// Sets the burst.
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// Sets the mode.
    pub fn with_mode(mut self, mode: RateLimitMode) -> Self {
        self.mode = mode;
        self
    }
}

/// A token bucket as the generic cell rate algorithm: one atomic
/// "theoretical arrival time" advanced by compare-and-swap.
#[derive(Debug)]
pub struct RateLimiter {
    key: Key,
    config: RateLimitConfig,
    base: Instant,
    interval_ns: u64,
    tolerance_ns: u64,
    tat_ns: AtomicU64,
}

impl RateLimiter {
    /// A full bucket for `key`.
    pub fn new(key: Key, config: RateLimitConfig) -> Self {
        let per = u64::try_from(config.per.as_nanos()).unwrap_or(u64::MAX);
        let interval_ns = (per / u64::from(config.requests.max(1))).max(1);
        Self {
            key,
            config,
            base: Instant::now(),
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(config.burst.max(1))),
            tat_ns: AtomicU64::new(0),
        }
    }

    /// The key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The settings.
    pub fn config(&self) -> RateLimitConfig {
        self.config
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Takes a token if one is available now; otherwise says how long until
    /// one will be.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        self.reserve(Some(Duration::ZERO)).map(|_| ())
    }

    /// Reserves the next token, waiting at most `max_wait` (`None`: any
    /// wait). Returns the wait the caller must sleep before proceeding, or
    /// the wait that was too long, reserving nothing.
    pub fn reserve(&self, max_wait: Option<Duration>) -> Result<Duration, Duration> {
        let now = self.now_ns();
        let mut tat = self.tat_ns.load(Ordering::Acquire);
        loop {
            let next = tat.max(now).saturating_add(self.interval_ns);
            let wait =
                Duration::from_nanos(next.saturating_sub(now).saturating_sub(self.tolerance_ns));
            if max_wait.is_some_and(|m| wait > m) {
                return Err(wait);
            }
            match self
                .tat_ns
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(wait),
                Err(actual) => tat = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_paces() {
        let l = RateLimiter::new(
            Key::new("k"),
            RateLimitConfig::new(10, Duration::from_secs(1)).with_burst(3),
        );
        for _ in 0..3 {
            assert_eq!(l.try_acquire(), Ok(()));
        }
        assert_eq!(l.try_acquire(), Err(Duration::from_millis(100)));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(l.try_acquire(), Ok(()));
        assert!(l.try_acquire().is_err());
        // Waiting reservations queue up one interval apart.
        assert_eq!(l.reserve(None), Ok(Duration::from_millis(100)));
        assert_eq!(l.reserve(None), Ok(Duration::from_millis(200)));
        assert_eq!(
            l.reserve(Some(Duration::from_millis(250))),
            Err(Duration::from_millis(300))
        );
        // A quiet spell refills the burst, no more.
        tokio::time::advance(Duration::from_secs(10)).await;
        for _ in 0..3 {
            assert_eq!(l.try_acquire(), Ok(()));
        }
        assert!(l.try_acquire().is_err());
    }
}
