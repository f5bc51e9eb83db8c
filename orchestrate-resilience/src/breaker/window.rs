//! A sliding window of call outcomes in atomic buckets.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: u64 = 10;

struct Bucket {
    /// Which bucket period (`now / bucket_ns`) the counts belong to.
    epoch: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
}

/// Ten buckets covering the window; a bucket from an older period is reset
/// by the first call that lands in it. Counts are approximate under races
/// at bucket boundaries, exact otherwise.
pub(super) struct Window {
    bucket_ns: u64,
    buckets: [Bucket; BUCKETS as usize],
}

impl Window {
    pub(super) fn new(window: Duration) -> Self {
        let total = u64::try_from(window.as_nanos())
            .unwrap_or(u64::MAX)
            .max(BUCKETS);
        Self {
            bucket_ns: total / BUCKETS,
            buckets: std::array::from_fn(|_| Bucket {
                epoch: AtomicU64::new(u64::MAX),
                calls: AtomicU32::new(0),
                failures: AtomicU32::new(0),
            }),
        }
    }

    pub(super) fn record(&self, now_ns: u64, failed: bool) {
        let epoch = now_ns / self.bucket_ns;
        let bucket = &self.buckets[(epoch % BUCKETS) as usize];
        let seen = bucket.epoch.load(Ordering::Acquire);
        if seen != epoch
            && bucket
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            bucket.calls.store(0, Ordering::Release);
            bucket.failures.store(0, Ordering::Release);
        }
        bucket.calls.fetch_add(1, Ordering::AcqRel);
        if failed {
            bucket.failures.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// `(calls, failures)` over the window ending at `now_ns`.
    pub(super) fn totals(&self, now_ns: u64) -> (u32, u32) {
        let epoch = now_ns / self.bucket_ns;
        self.buckets
            .iter()
            .filter(|b| {
                let e = b.epoch.load(Ordering::Acquire);
                e != u64::MAX && e <= epoch && epoch - e < BUCKETS
            })
            .fold((0, 0), |(c, f), b| {
                (
                    c + b.calls.load(Ordering::Acquire),
                    f + b.failures.load(Ordering::Acquire),
                )
            })
    }

    pub(super) fn reset(&self) {
        for b in &self.buckets {
            b.epoch.store(u64::MAX, Ordering::Release);
            b.calls.store(0, Ordering::Release);
            b.failures.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_buckets_fall_out_of_the_window() {
        let w = Window::new(Duration::from_secs(10));
        let s = 1_000_000_000;
        w.record(0, true);
        w.record(s / 2, false);
        assert_eq!(w.totals(s), (2, 1));
        w.record(5 * s, true);
        assert_eq!(w.totals(9 * s), (3, 2));
        // At 10.5 s the first second has left the window.
        assert_eq!(w.totals(10 * s + s / 2), (1, 1));
        assert_eq!(w.totals(16 * s), (0, 0));
        w.reset();
        assert_eq!(w.totals(5 * s), (0, 0));
    }
}
