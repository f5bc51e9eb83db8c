//! The mock agent does what its script says, deterministically.

use std::time::Duration;

use orchestrate_core::{Agent, Context};
use orchestrate_testing::MockAgent;
use serde_json::json;

async fn outcomes(mock: &MockAgent, steps: usize) -> Vec<bool> {
    let mut out = Vec::new();
    for i in 0..steps {
        let ctx = Context::detached(&format!("step-{i}"));
        out.push(mock.call(json!(i), &ctx).await.is_ok());
    }
    out
}

#[tokio::test]
async fn seeded_probability_is_reproducible_and_near_its_rate() {
    let a = outcomes(&MockAgent::new("m").fail_with_probability(0.3, 7), 2000).await;
    let b = outcomes(&MockAgent::new("m").fail_with_probability(0.3, 7), 2000).await;
    let c = outcomes(&MockAgent::new("m").fail_with_probability(0.3, 8), 2000).await;
    assert_eq!(a, b, "same seed, same outcomes");
    assert_ne!(a, c, "another seed, other outcomes");
    let failures = a.iter().filter(|ok| !**ok).count();
    assert!(
        (450..750).contains(&failures),
        "{failures} failures of 2000 at p = 0.3"
    );
}

#[tokio::test]
async fn failures_are_transient_unless_permanent() {
    let ctx = Context::detached("s");
    let err = MockAgent::new("m")
        .fail_always()
        .call(json!(1), &ctx)
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    let err = MockAgent::new("m")
        .fail_always()
        .permanent()
        .call(json!(1), &ctx)
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    // fail_first(n) fails attempts 1..=n; a detached context is attempt 1.
    assert!(MockAgent::new("m")
        .fail_first(1)
        .call(json!(1), &ctx)
        .await
        .is_err());
    assert!(MockAgent::new("m")
        .fail_first(0)
        .call(json!(1), &ctx)
        .await
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn latency_runs_on_tokio_time_and_calls_are_recorded() {
    let mock = MockAgent::new("m")
        .returns(json!("done"))
        .latency(Duration::from_secs(30));
    let start = tokio::time::Instant::now();
    let out = mock
        .call(json!({"q": 1}), &Context::detached("s1"))
        .await
        .unwrap();
    assert_eq!(out, json!("done"));
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    let calls = mock.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].step.as_str(), calls[0].attempt), ("s1", 1));
    assert_eq!(calls[0].input, json!({"q": 1}));
}

#[tokio::test(start_paused = true)]
async fn cancellation_cuts_latency_short_unless_ignored() {
    let ctx = Context::detached("s");
    ctx.cancellation_token().cancel();
    let start = tokio::time::Instant::now();
    let slow = MockAgent::new("m").latency(Duration::from_secs(30));
    assert!(slow.call(json!(1), &ctx).await.is_err());
    assert_eq!(start.elapsed(), Duration::ZERO);
    let stubborn = slow.clone().ignore_cancel();
    assert!(stubborn.call(json!(1), &ctx).await.is_ok());
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test]
#[should_panic(expected = "scripted to panic on attempt 1")]
async fn panics_when_scripted() {
    let _ = MockAgent::new("m")
        .panic_on_attempt(1)
        .call(json!(1), &Context::detached("s"))
        .await;
}
