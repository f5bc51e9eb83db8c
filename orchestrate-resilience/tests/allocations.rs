//! The success path allocates nothing per call: no boxing, no cloning of
//! keys, no event unless someone observes.

use std::time::Duration;

use orchestrate_resilience::{BreakerConfig, BulkheadConfig, CallOptions, Policy, RetryConfig};

/// Timeout, retry, circuit breaker and bulkhead.
fn full_stack() -> Policy {
    Policy::builder()
        .timeout(Duration::from_secs(30))
        .retry(RetryConfig::default())
        .circuit_breaker(BreakerConfig::default())
        .bulkhead(BulkheadConfig::new(64, 64))
        .build()
}

#[test]
fn a_successful_call_under_the_full_stack_does_not_allocate() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let policy = full_stack();
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

/// Every running step holds one of these futures: its rare waits (a retry's
/// back-off, a throttle, a full bulkhead) are boxed when they happen rather
/// than reserved in every call.
#[test]
fn a_call_future_reserves_no_room_for_its_rare_waits() {
    let policy = full_stack();
    let token = tokio_util::sync::CancellationToken::new();
    let call = policy.call_with(CallOptions::new().cancel(&token), |_| async {
        Ok::<_, std::io::Error>(())
    });
    // 264 bytes today; 496 with the waits held inline.
    let size = std::mem::size_of_val(&call);
    assert!(size <= 320, "a call's future grew to {size} bytes");
}
