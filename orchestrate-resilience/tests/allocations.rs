//! The success path allocates nothing per call: no boxing, no cloning of
//! keys, no event unless someone observes.

use std::time::Duration;

use orchestrate_resilience::{BreakerConfig, BulkheadConfig, CallOptions, Policy, RetryConfig};

#[test]
fn a_successful_call_under_the_full_stack_does_not_allocate() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let policy = Policy::builder()
        .timeout(Duration::from_secs(30))
        .retry(RetryConfig::default())
        .circuit_breaker(BreakerConfig::default())
        .bulkhead(BulkheadConfig::new(64, 64))
        .build();
    let token = tokio_util::sync::CancellationToken::new();
    let run = |n: u64| {
        rt.block_on(async {
            for i in 0..n {
                let r = policy
                    .call_with(CallOptions::new().cancel(&token), |_| async move {
                        Ok::<_, std::io::Error>(i)
                    })
                    .await;
                assert_eq!(r.unwrap(), i);
            }
        })
    };
    run(10); // warm up lazily initialised runtime and tracing state
    let small = allocation_counter::measure(|| run(10)).count_total;
    let large = allocation_counter::measure(|| run(10_010)).count_total;
    assert_eq!(
        large,
        small,
        "10,000 more calls allocated {} more times",
        large - small
    );
}
