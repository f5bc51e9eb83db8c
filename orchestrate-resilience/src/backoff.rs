//! Exponential backoff with jitter.

use std::time::Duration;

use crate::rng::Rng;

/// How a backoff delay is randomised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Jitter {
    /// The exact exponential delay.
    None,
    /// Uniform in `[0, delay)` ("full jitter").
    Full,
    /// `delay * uniform(0.5, 1.5)`: spreads retries while keeping the
    /// expected delay (the default).
    #[default]
    Proportional,
}

/// Exponential backoff: attempt `n` (from 1) waits `base * factor^(n-1)`,
/// capped at `max`, then jittered (and capped again).
///
/// # Examples
///
/// ```
/// use orchestrate_resilience::{Backoff, Jitter};
/// use std::time::Duration;
///
/// let b = Backoff::default().with_jitter(Jitter::None);
/// assert_eq!(b.base_delay(1), Duration::from_secs(1));
/// assert_eq!(b.base_delay(3), Duration::from_secs(4));
/// assert_eq!(b.base_delay(30), Duration::from_secs(30)); // the cap
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Delay after the first failed attempt (default 1 s).
    pub base: Duration,
    /// Growth per attempt (default 2).
    pub factor: f64,
    /// Upper bound of any delay (default 30 s).
    pub max: Duration,
    /// Randomisation (default proportional).
    pub jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(30),
            jitter: Jitter::Proportional,
        }
    }
}

impl Backoff {
    /// Sets the base delay.
    pub fn with_base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Sets the growth factor (values below 1 are treated as 1).
    pub fn with_factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Sets the cap.
    pub fn with_max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Sets the jitter mode.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay after failed attempt `attempt` (from 1), before jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exp = self
            .factor
            .max(1.0)
            .powi(attempt.saturating_sub(1).min(1024) as i32);
        let secs = self.base.as_secs_f64() * exp;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    pub(crate) fn delay(&self, attempt: u32, rng: &Rng) -> Duration {
        let d = self.base_delay(attempt);
        let jittered = match self.jitter {
            Jitter::None => d,
            Jitter::Full => d.mul_f64(rng.next_f64()),
            Jitter::Proportional => d.mul_f64(0.5 + rng.next_f64()),
        };
        jittered.min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn jitter_bounds_hold_over_ten_thousand_samples() {
        let rng = crate::rng::Rng::seeded(42);
        for attempt in 1..=4 {
            let full = Backoff::default().with_jitter(Jitter::Full);
            let prop = Backoff::default().with_jitter(Jitter::Proportional);
            let d = full.base_delay(attempt);
            let (mut lo, mut hi) = (Duration::MAX, Duration::ZERO);
            for _ in 0..10_000 {
                let f = full.delay(attempt, &rng);
                assert!(f < d || d.is_zero(), "full jitter {f:?} >= {d:?}");
                let p = prop.delay(attempt, &rng);
                assert!(
                    p >= d / 2 && p <= d.mul_f64(1.5),
                    "proportional {p:?} for {d:?}"
                );
                lo = lo.min(p);
                hi = hi.max(p);
            }
            // The samples cover the range, not one corner of it.
            assert!(
                lo < d.mul_f64(0.55) && hi > d.mul_f64(1.45),
                "{lo:?}..{hi:?} for {d:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn delays_grow_and_respect_the_cap(base_ms in 1u64..5_000, factor in 1.0f64..4.0, max_ms in 1u64..60_000, n in 1u32..40) {
            let b = Backoff::default()
                .with_base(Duration::from_millis(base_ms))
                .with_factor(factor)
                .with_max(Duration::from_millis(max_ms))
                .with_jitter(Jitter::None);
            prop_assert!(b.base_delay(n) <= b.max);
            prop_assert!(b.base_delay(n) <= b.base_delay(n + 1));
            let rng = crate::rng::Rng::seeded(n.into());
            let p = b.with_jitter(Jitter::Proportional).delay(n, &rng);
            prop_assert!(p <= b.max);
        }
    }
}
