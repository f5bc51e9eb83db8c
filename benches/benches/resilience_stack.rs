//! A successful no-op call: bare, under the full orchestrate policy
//! (timeout + breaker + retry + bulkhead), and under tower's Timeout + Retry.

use std::future::{ready, Ready};
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use orchestrate_resilience::{BreakerConfig, BulkheadConfig, CallOptions, Policy, RetryConfig};
use tower::retry::Policy as TowerPolicy;
use tower::{ServiceBuilder, ServiceExt};

async fn noop(i: u64) -> Result<u64, std::io::Error> {
    Ok(black_box(i))
}

/// Retries up to `n` times, like the orchestrate policy's 3 attempts.
#[derive(Clone)]
struct Attempts(usize);

impl<E> TowerPolicy<u64, u64, E> for Attempts {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => None,
            Err(_) if self.0 > 0 => {
                self.0 -= 1;
                Some(ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn resilience_stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let policy = Policy::builder()
        .timeout(Duration::from_secs(30))
        .retry(RetryConfig::default())
        .circuit_breaker(BreakerConfig::default())
        .bulkhead(BulkheadConfig::new(1_000, 100_000))
        .build();
    let token = tokio_util::sync::CancellationToken::new();
    let tower_svc = ServiceBuilder::new()
        .retry(Attempts(2))
        .timeout(Duration::from_secs(30))
        .service_fn(noop);

    let mut group = c.benchmark_group("resilience");
    group.bench_function("bare", |b| b.to_async(&rt).iter(|| noop(black_box(1))));
    group.bench_function("orchestrate_full_stack", |b| {
        b.to_async(&rt)
            .iter(|| policy.call_with(CallOptions::new().cancel(&token), |_| noop(black_box(1))))
    });
    // Cloning per request is how tower services are driven concurrently.
    group.bench_function("tower_timeout_retry", |b| {
        b.to_async(&rt)
            .iter(|| tower_svc.clone().oneshot(black_box(1)))
    });
    let variants = [
        ("v_empty", Policy::builder().build()),
        (
            "v_timeout",
            Policy::builder().timeout(Duration::from_secs(30)).build(),
        ),
        (
            "v_retry",
            Policy::builder().retry(RetryConfig::default()).build(),
        ),
        (
            "v_breaker",
            Policy::builder()
                .circuit_breaker(BreakerConfig::default())
                .build(),
        ),
        (
            "v_bulkhead",
            Policy::builder()
                .bulkhead(BulkheadConfig::new(1_000, 100_000))
                .build(),
        ),
    ];
    for (name, p) in variants {
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| p.call_with(CallOptions::new(), |_| noop(black_box(1))))
        });
    }
    group.bench_function("full_no_token", |b| {
        b.to_async(&rt)
            .iter(|| policy.call_with(CallOptions::new(), |_| noop(black_box(1))))
    });
    group.finish();
}

criterion_group!(benches, resilience_stack);
criterion_main!(benches);
