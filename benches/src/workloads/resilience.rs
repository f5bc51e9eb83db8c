//! `n` sequential successful no-op calls under the full default policy.

use std::future::{ready, Ready};
use std::hint::black_box;
use std::time::Duration;

use orchestrate_core::default_policy;
use orchestrate_resilience::CallOptions;
use serde_json::json;
use tower::retry::Policy as TowerPolicy;
use tower::{ServiceBuilder, ServiceExt};

use super::{compare, timed, Report};

async fn noop(i: u64) -> Result<u64, std::io::Error> {
    Ok(black_box(i))
}

#[derive(Clone)]
struct Attempts(usize);

impl<E> TowerPolicy<u64, u64, E> for Attempts {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Err(_) if self.0 > 0 => {
                self.0 -= 1;
                Some(ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// The orchestrator's default policy (timeout + breaker + retry + bulkhead)
/// with a cancellation token, as every agent attempt runs. Floor: tower
/// `Retry` + `Timeout`; the bare call is reported as `bare_median_s`.
pub(super) async fn resilience(n: usize, reps: usize) -> Report {
    let policy = default_policy().key("bench").build();
    let token = tokio_util::sync::CancellationToken::new();
    let tower_svc = ServiceBuilder::new()
        .retry(Attempts(2))
        .timeout(Duration::from_secs(30))
        .service_fn(noop);
    let mut report = compare(
        "resilience",
        n,
        reps,
        || {
            let (policy, token) = (&policy, &token);
            async move {
                for i in 0..n as u64 {
                    let r = policy
                        .call_with(CallOptions::new().cancel(token), |_| noop(i))
                        .await;
                    black_box(r.is_ok());
                }
            }
        },
        || {
            let svc = &tower_svc;
            async move {
                for i in 0..n as u64 {
                    black_box(svc.clone().oneshot(i).await.is_ok());
                }
            }
        },
    )
    .await;
    let bare = timed(reps, || async move {
        for i in 0..n as u64 {
            black_box(noop(i).await.is_ok());
        }
    })
    .await;
    let bare_median = super::median(&bare);
    let per = |s: f64| s * 1e9 / n.max(1) as f64;
    let overhead = per(report.median_s()) - per(bare_median);
    let tower_overhead = per(report.floor_median_s()) - per(bare_median);
    report.extra = vec![
        ("bare_median_s", json!(bare_median)),
        ("overhead_ns", json!(overhead)),
        ("tower_overhead_ns", json!(tower_overhead)),
        ("overhead_ratio_to_tower", json!(overhead / tower_overhead)),
    ];
    report
}
