//! Retry and backoff on tokio's paused clock: exact counts and delays.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestrate_resilience::{
    Backoff, CallOptions, Cancellation, ErrorKind, Jitter, Policy, PolicyEvent, RetryConfig,
    Retryable,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq)]
struct Flaky {
    retryable: bool,
    after: Option<Duration>,
}

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "flaky (retryable: {})", self.retryable)
    }
}

impl Retryable for Flaky {
    fn is_retryable(&self) -> bool {
        self.retryable
    }
    fn retry_after(&self) -> Option<Duration> {
        self.after
    }
}

const TRANSIENT: Flaky = Flaky {
    retryable: true,
    after: None,
};

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<PolicyEvent>>>);

impl Recorder {
    fn delays(&self) -> Vec<Duration> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                PolicyEvent::RetryScheduled { delay, .. } => Some(*delay),
                _ => None,
            })
            .collect()
    }
    fn events(&self) -> Vec<PolicyEvent> {
        self.0.lock().unwrap().clone()
    }
}

impl orchestrate_resilience::Observer for Recorder {
    fn on_event(&self, event: PolicyEvent) {
        self.0.lock().unwrap().push(event);
    }
}

fn policy(attempts: u32, jitter: Jitter, seed: u64) -> Policy {
    Policy::builder()
        .retry(RetryConfig::attempts(attempts).with_backoff(Backoff::default().with_jitter(jitter)))
        .seed(seed)
        .build()
}

/// Runs an always-failing operation; returns (attempts, scheduled delays, elapsed).
async fn always_failing(policy: &Policy) -> (u32, Vec<Duration>, Duration) {
    let rec = Recorder::default();
    let start = Instant::now();
    let err = policy
        .call_with(CallOptions::new().observe(&rec), |_| async {
            Err::<(), _>(TRANSIENT)
        })
        .await
        .unwrap_err();
    (err.attempts(), rec.delays(), start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn no_jitter_waits_exactly_the_exponential_delays() {
    let (attempts, delays, elapsed) = always_failing(&policy(4, Jitter::None, 1)).await;
    assert_eq!(attempts, 4);
    assert_eq!(
        delays,
        [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
    assert_eq!(elapsed, Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn seeded_jitter_replays_exactly_and_stays_in_bounds() {
    for (jitter, low, high) in [(Jitter::Full, 0.0, 1.0), (Jitter::Proportional, 0.5, 1.5)] {
        let (attempts, first, elapsed) = always_failing(&policy(5, jitter, 99)).await;
        let (_, second, _) = always_failing(&policy(5, jitter, 99)).await;
        let (_, other, _) = always_failing(&policy(5, jitter, 100)).await;
        assert_eq!(attempts, 5);
        assert_eq!(first, second, "{jitter:?}: same seed, same delays");
        assert_ne!(first, other, "{jitter:?}: another seed, other delays");
        // tokio's timer has millisecond ticks: each sleep ends on the next tick.
        let slept: Duration = first
            .iter()
            .map(|d| Duration::from_millis(d.as_nanos().div_ceil(1_000_000) as u64))
            .sum();
        assert_eq!(
            elapsed, slept,
            "{jitter:?}: slept exactly the scheduled delays"
        );
        for (i, d) in first.iter().enumerate() {
            let base = Duration::from_secs(1 << i);
            assert!(
                *d >= base.mul_f64(low) && *d <= base.mul_f64(high),
                "{jitter:?} {d:?} vs {base:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn default_policy_is_three_attempts_with_proportional_jitter() {
    let policy = Policy::builder()
        .retry(RetryConfig::default())
        .seed(7)
        .build();
    let (attempts, delays, _) = always_failing(&policy).await;
    assert_eq!(attempts, 3);
    assert_eq!(delays.len(), 2);
    assert!(delays[0] >= Duration::from_millis(500) && delays[0] <= Duration::from_millis(1500));
    assert!(delays[1] >= Duration::from_secs(1) && delays[1] <= Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn the_classifier_decides_and_the_last_cause_is_kept() {
    let mut calls = 0;
    let err = policy(5, Jitter::None, 1)
        .call(|| {
            calls += 1;
            let n = calls;
            async move {
                Err::<(), _>(Flaky {
                    retryable: n < 2,
                    after: None,
                })
            }
        })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 2);
    assert!(matches!(
        err.kind(),
        ErrorKind::Operation(Flaky {
            retryable: false,
            ..
        })
    ));
    assert!(err.to_string().contains("after 2 attempt(s)"));

    // A custom classifier over an error without `Retryable`.
    let mut calls = 0;
    let err = policy(5, Jitter::None, 1)
        .call_classified(
            CallOptions::new(),
            |e: &String| e != "fatal",
            |_| {
                calls += 1;
                let msg = if calls < 3 { "blip" } else { "fatal" };
                async move { Err::<(), _>(msg.to_owned()) }
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.into_operation_error().as_deref(), Some("fatal"));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_when_longer_than_the_backoff() {
    let (_, delays, _) = {
        let rec = Recorder::default();
        let start = Instant::now();
        let err = policy(2, Jitter::None, 1)
            .call_with(CallOptions::new().observe(&rec), |_| async {
                Err::<(), _>(Flaky {
                    retryable: true,
                    after: Some(Duration::from_secs(9)),
                })
            })
            .await
            .unwrap_err();
        (err.attempts(), rec.delays(), start.elapsed())
    };
    assert_eq!(delays, [Duration::from_secs(9)]);
}

#[tokio::test(start_paused = true)]
async fn never_sleeps_past_the_deadline() {
    let policy = Policy::builder()
        .retry(
            RetryConfig::attempts(10)
                .with_backoff(Backoff::default().with_jitter(Jitter::None))
                .with_deadline(Duration::from_millis(3500)),
        )
        .build();
    let (attempts, delays, elapsed) = always_failing(&policy).await;
    // Delays 1 s and 2 s fit (t = 3 s); the next, 4 s, would pass 3.5 s.
    assert_eq!(attempts, 3);
    assert_eq!(delays.len(), 2);
    assert_eq!(elapsed, Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn timeouts_end_attempts_that_never_complete_and_are_retried() {
    let policy = Policy::builder()
        .timeout(Duration::from_secs(2))
        .retry(RetryConfig::attempts(2).with_backoff(Backoff::default().with_jitter(Jitter::None)))
        .build();
    let rec = Recorder::default();
    let start = Instant::now();
    let err = policy
        .call_with(CallOptions::new().observe(&rec), |_| {
            std::future::pending::<Result<(), Flaky>>()
        })
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(err.attempts(), 2);
    // 2 s, 1 s backoff, 2 s.
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    let timeouts = rec
        .events()
        .iter()
        .filter(|e| matches!(e, PolicyEvent::TimedOut { .. }))
        .count();
    assert_eq!(timeouts, 2);
}

#[tokio::test(start_paused = true)]
async fn cancellation_during_backoff_returns_at_once_without_another_attempt() {
    let policy = policy(5, Jitter::None, 1);
    let token = CancellationToken::new();
    let calls = Arc::new(Mutex::new(0));
    let task = {
        let (policy, token, calls) = (policy.clone(), token.clone(), calls.clone());
        tokio::spawn(async move {
            policy
                .call_with(CallOptions::new().cancel(&token), |_| {
                    *calls.lock().unwrap() += 1;
                    async { Err::<(), _>(TRANSIENT) }
                })
                .await
        })
    };
    // First attempt fails at t = 0, then a 1 s backoff; cancel in the middle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cancelled_at = Instant::now();
    token.cancel();
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(cancelled_at.elapsed(), Duration::ZERO);
    assert!(err.is_cancelled());
    assert_eq!(err.attempts(), 1);
    assert_eq!(*calls.lock().unwrap(), 1);

    // Already cancelled: nothing runs.
    let err = policy
        .call_with(CallOptions::new().cancel(&token), |_| async {
            Ok::<_, Flaky>(())
        })
        .await
        .unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.attempts(), 0);
}

/// A source that makes its token at the first wait, and counts.
#[derive(Default)]
struct LazySource {
    token: std::sync::OnceLock<CancellationToken>,
    made: std::sync::atomic::AtomicU32,
    parent: CancellationToken,
}

impl Cancellation for LazySource {
    fn is_cancelled(&self) -> bool {
        match self.token.get() {
            Some(token) => token.is_cancelled(),
            None => self.parent.is_cancelled(),
        }
    }

    fn cancellation_token(&self) -> &CancellationToken {
        self.token.get_or_init(|| {
            self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.parent.child_token()
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_source_is_asked_for_its_token_only_when_the_policy_waits() {
    use std::sync::atomic::Ordering;
    let policy = policy(5, Jitter::None, 1);

    // No wait: asked whether it was cancelled, never for its token.
    let source = LazySource::default();
    policy
        .call_with(CallOptions::new().cancel_with(&source), |_| async {
            Ok::<_, Flaky>(())
        })
        .await
        .unwrap();
    assert_eq!(source.made.load(Ordering::Relaxed), 0);

    // Its parent cancelled before the call: nothing runs, still no token.
    let source = LazySource::default();
    source.parent.cancel();
    let err = policy
        .call_with(CallOptions::new().cancel_with(&source), |_| async {
            Ok::<_, Flaky>(())
        })
        .await
        .unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.attempts(), 0);
    assert_eq!(source.made.load(Ordering::Relaxed), 0);

    // A backoff waits on its token, made then, and cancelling the parent
    // stops the wait at once.
    let source = Arc::new(LazySource::default());
    let task = {
        let (policy, source) = (policy.clone(), source.clone());
        tokio::spawn(async move {
            policy
                .call_with(CallOptions::new().cancel_with(&*source), |_| async {
                    Err::<(), _>(TRANSIENT)
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(source.made.load(Ordering::Relaxed), 1);
    let cancelled_at = Instant::now();
    source.parent.cancel();
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(cancelled_at.elapsed(), Duration::ZERO);
    assert!(err.is_cancelled());
    assert_eq!(err.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn events_follow_the_call() {
    let rec = Recorder::default();
    let mut n = 0;
    policy(3, Jitter::None, 1)
        .call_with(CallOptions::new().observe(&rec), |attempt| {
            n += 1;
            assert_eq!(attempt, n);
            async move {
                if attempt < 2 {
                    Err(TRANSIENT)
                } else {
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(
        rec.events(),
        [
            PolicyEvent::AttemptStarted { attempt: 1 },
            PolicyEvent::AttemptFailed {
                attempt: 1,
                error: TRANSIENT.to_string(),
                retryable: true
            },
            PolicyEvent::RetryScheduled {
                next_attempt: 2,
                delay: Duration::from_secs(1)
            },
            PolicyEvent::AttemptStarted { attempt: 2 },
        ]
    );
}
