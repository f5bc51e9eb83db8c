//! Bulkhead, rate limit and fallback under a policy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orchestrate_resilience::{
    BreakerConfig, BulkheadConfig, CallOptions, ErrorKind, Policy, PolicyEvent, RateLimitConfig,
    RateLimitMode, Trip,
};
use proptest::prelude::*;
use tokio::time::Instant;

type IoResult = Result<(), std::io::Error>;

/// Holds a slot for `ms` of tokio time, or (with `ms == 0`) for a number of
/// scheduler turns, so that calls overlap without waiting on real time.
async fn hold(now: &AtomicUsize, peak: &AtomicUsize, ms: u64) -> IoResult {
    let current = now.fetch_add(1, Ordering::SeqCst) + 1;
    peak.fetch_max(current, Ordering::SeqCst);
    if ms == 0 {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    } else {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    now.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

/// Starts `n` calls at once; returns (completed, rejected, peak concurrency).
async fn burst(policy: &Policy, n: usize) -> (usize, usize, usize) {
    burst_holding(policy, n, 10).await
}

async fn burst_holding(policy: &Policy, n: usize, ms: u64) -> (usize, usize, usize) {
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (policy, now, peak) = (policy.clone(), now.clone(), peak.clone());
            tokio::spawn(async move { policy.call(|| hold(&now, &peak, ms)).await })
        })
        .collect();
    let (mut ok, mut rejected) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::BulkheadFull {
                            limit: _,
                            queue: _,
                            ..
                        }
                    ),
                    "{e}"
                );
                rejected += 1;
            }
        }
    }
    (ok, rejected, peak.load(Ordering::SeqCst))
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_rejects_instead_of_queueing_without_bound() {
    let policy = Policy::builder()
        .bulkhead(BulkheadConfig::new(2, 3))
        .build();
    let (ok, rejected, peak) = burst(&policy, 10).await;
    assert_eq!((ok, rejected, peak), (5, 5, 2));
    let bulkhead = policy.bulkhead().unwrap();
    assert_eq!((bulkhead.in_flight(), bulkhead.waiting()), (0, 0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn bulkhead_never_exceeds_its_limit(limit in 1usize..8, queue in 0usize..20, n in 1usize..40) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let (ok, rejected, peak) = rt.block_on(async {
            let policy = Policy::builder().bulkhead(BulkheadConfig::new(limit, queue)).build();
            burst(&policy, n).await
        });
        prop_assert!(peak <= limit);
        prop_assert_eq!(ok + rejected, n);
        prop_assert_eq!(ok, n.min(limit + queue));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulkhead_holds_under_real_parallelism() {
    let policy = Policy::builder()
        .bulkhead(BulkheadConfig::new(3, 1000))
        .build();
    let (ok, rejected, peak) = burst_holding(&policy, 200, 0).await;
    assert_eq!((ok, rejected), (200, 0));
    assert!(peak <= 3, "peak {peak}");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_waits_or_rejects() {
    let waiting = Policy::builder()
        .rate_limit(RateLimitConfig::new(10, Duration::from_secs(1)).with_burst(2))
        .build();
    let start = Instant::now();
    for _ in 0..5 {
        waiting.call(|| async { IoResult::Ok(()) }).await.unwrap();
    }
    // Two from the burst, then one every 100 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(300));

    let rejecting = Policy::builder()
        .rate_limit(
            RateLimitConfig::new(1, Duration::from_secs(1)).with_mode(RateLimitMode::Reject),
        )
        .build();
    rejecting.call(|| async { IoResult::Ok(()) }).await.unwrap();
    let err = rejecting
        .call(|| async { IoResult::Ok(()) })
        .await
        .unwrap_err();
    assert!(err.is_rejected());
    assert!(
        matches!(err.kind(), ErrorKind::RateLimited { retry_after, .. } if *retry_after == Duration::from_secs(1))
    );
}

#[tokio::test(start_paused = true)]
async fn fallback_covers_an_open_breaker_and_exhausted_retries() {
    let policy = Policy::builder()
        .circuit_breaker(BreakerConfig {
            trip: Trip::ConsecutiveFailures(1),
            ..BreakerConfig::default()
        })
        .build();
    let events = std::sync::Mutex::new(Vec::new());
    let observer = |e: PolicyEvent| events.lock().unwrap().push(e);
    let out = policy
        .call_or(CallOptions::new().observe(&observer), "cached", |_| async {
            Err::<&str, _>(std::io::Error::other("down"))
        })
        .await
        .unwrap();
    assert!(out.is_fallback());
    let ran = AtomicUsize::new(0);
    let out = policy
        .call_or(CallOptions::new().observe(&observer), "cached", |_| {
            ran.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::io::Error>("live") }
        })
        .await
        .unwrap();
    match out {
        orchestrate_resilience::Outcome::Fallback { value, cause } => {
            assert_eq!(value, "cached");
            assert!(cause.is_circuit_open());
        }
        other => panic!("expected a fallback, got {other:?}"),
    }
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "an open breaker does not run the operation"
    );
    let fallbacks = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, PolicyEvent::FallbackUsed { .. }))
        .count();
    assert_eq!(fallbacks, 2);
}
