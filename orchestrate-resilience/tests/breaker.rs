//! The circuit breaker: transitions, fail-fast, probes, snapshots, and a
//! model test against a reference state machine.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestrate_resilience::{
    BreakerConfig, BreakerState, CallOptions, CircuitBreaker, Key, Policy, PolicyEvent, Registry,
    Trip,
};
use proptest::prelude::*;

fn config(failures: u32, open_ms: u64, probes: u32, successes: u32) -> BreakerConfig {
    BreakerConfig {
        trip: Trip::ConsecutiveFailures(failures),
        open_duration: Duration::from_millis(open_ms),
        half_open_probes: probes,
        success_threshold: successes,
    }
}

fn io_err() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::ConnectionReset)
}

#[tokio::test(start_paused = true)]
async fn opens_fails_fast_half_opens_and_closes() {
    let registry = Registry::new();
    let transitions = Arc::new(Mutex::new(Vec::new()));
    {
        let transitions = transitions.clone();
        registry.on_transition(move |key, from, to| {
            transitions
                .lock()
                .unwrap()
                .push((key.to_string(), from, to));
        });
    }
    let policy = Policy::builder()
        .circuit_breaker(BreakerConfig::default())
        .registry(&registry)
        .key(Key::new("search").with_target("api.example.com"))
        .build();
    let ran = AtomicUsize::new(0);
    let fail = || async {
        ran.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(io_err())
    };
    for _ in 0..5 {
        assert!(!policy.call(fail).await.unwrap_err().is_circuit_open());
    }
    let breaker = policy.circuit_breaker().unwrap();
    assert_eq!(breaker.state(), BreakerState::Open);

    // Open: fails fast without running the operation.
    let err = policy.call(fail).await.unwrap_err();
    assert!(err.is_circuit_open());
    assert_eq!(err.attempts(), 0);
    assert_eq!(ran.load(Ordering::SeqCst), 5);

    // After the default 60 s, one probe; two successes close it.
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(policy
        .call(|| async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap_err()
        .is_circuit_open());
    tokio::time::advance(Duration::from_secs(1)).await;
    policy
        .call(|| async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    policy
        .call(|| async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);

    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.transitions, 3);
    assert_eq!(snapshot.last_error.as_deref(), Some("connection reset"));
    assert!(snapshot.last_transition.is_some());
    assert_eq!(
        transitions.lock().unwrap().as_slice(),
        [
            (
                "search@api.example.com".to_owned(),
                BreakerState::Closed,
                BreakerState::Open
            ),
            (
                "search@api.example.com".to_owned(),
                BreakerState::Open,
                BreakerState::HalfOpen
            ),
            (
                "search@api.example.com".to_owned(),
                BreakerState::HalfOpen,
                BreakerState::Closed
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_and_extra_callers_are_turned_away() {
    let breaker = CircuitBreaker::new(Key::new("k"), config(1, 100, 1, 1));
    let (p, _) = breaker.try_acquire();
    breaker.on_failure(p.unwrap(), &"boom");
    assert_eq!(breaker.state(), BreakerState::Open);
    tokio::time::advance(Duration::from_millis(100)).await;
    let (probe, t) = breaker.try_acquire();
    assert_eq!(t, Some((BreakerState::Open, BreakerState::HalfOpen)));
    let probe = probe.unwrap();
    // The single probe slot is taken.
    assert!(breaker.try_acquire().0.is_err());
    assert_eq!(
        breaker.on_failure(probe, &"still down"),
        Some((BreakerState::HalfOpen, BreakerState::Open))
    );
    // A probe dropped without a report frees its slot.
    tokio::time::advance(Duration::from_millis(100)).await;
    drop(breaker.try_acquire().0.unwrap());
    let (again, _) = breaker.try_acquire();
    assert!(again.is_ok());
}

#[tokio::test(start_paused = true)]
async fn two_policies_on_one_key_share_one_breaker_and_events_report_transitions() {
    let registry = Registry::new();
    let make = || {
        Policy::builder()
            .circuit_breaker(config(2, 1_000, 1, 1))
            .registry(&registry)
            .key("agent")
            .build()
    };
    let (a, b) = (make(), make());
    assert!(Arc::ptr_eq(
        a.circuit_breaker().unwrap(),
        b.circuit_breaker().unwrap()
    ));
    let events = Mutex::new(Vec::new());
    let observer = |e: PolicyEvent| events.lock().unwrap().push(e);
    let _ = a.call(|| async { Err::<(), _>(io_err()) }).await;
    let _ = b
        .call_with(CallOptions::new().observe(&observer), |_| async {
            Err::<(), _>(io_err())
        })
        .await;
    assert!(events
        .lock()
        .unwrap()
        .contains(&PolicyEvent::BreakerTransition {
            key: Key::new("agent"),
            from: BreakerState::Closed,
            to: BreakerState::Open,
        }));
    assert!(a
        .call(|| async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap_err()
        .is_circuit_open());
    assert_eq!(registry.breaker_snapshots().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_mode_opens_on_the_share_of_failures_in_the_window() {
    let breaker = CircuitBreaker::new(
        Key::new("k"),
        BreakerConfig {
            trip: Trip::FailureRate {
                threshold: 0.5,
                window: Duration::from_secs(10),
                min_calls: 4,
            },
            ..BreakerConfig::default()
        },
    );
    let record = |ok: bool| {
        let (p, _) = breaker.try_acquire();
        let p = p.unwrap();
        if ok {
            breaker.on_success(p)
        } else {
            breaker.on_failure(p, &"x")
        }
    };
    // Below the rate: 1 of 4, then 2 of 5.
    assert_eq!(record(false), None);
    assert_eq!(record(true), None);
    assert_eq!(record(true), None);
    assert_eq!(record(true), None);
    assert_eq!(record(false), None);
    assert_eq!(breaker.snapshot().window_failures, 2);
    // Old calls leave the window: 2 fresh failures among 4 calls opens.
    tokio::time::advance(Duration::from_secs(11)).await;
    let snapshot = breaker.snapshot();
    assert_eq!((snapshot.window_calls, snapshot.window_failures), (0, 0));
    assert_eq!(record(true), None);
    assert_eq!(record(true), None);
    assert_eq!(record(false), None);
    assert_eq!(
        record(false),
        Some((BreakerState::Closed, BreakerState::Open))
    );
}

/// The reference model: a plain state machine over sequential calls.
#[derive(Debug)]
struct Model {
    state: BreakerState,
    consecutive: u32,
    opened_at: u64,
    successes: u32,
}

#[derive(Debug, Clone)]
enum Op {
    Call(bool),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<bool>().prop_map(Op::Call),
        1 => (0u64..150).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn breaker_follows_the_reference_model(
        failures in 1u32..5,
        successes in 1u32..4,
        open_ms in 1u64..100,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            let breaker = CircuitBreaker::new(Key::new("m"), config(failures, open_ms, 1, successes));
            let mut m = Model { state: BreakerState::Closed, consecutive: 0, opened_at: 0, successes: 0 };
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Advance(ms) => {
                        tokio::time::advance(Duration::from_millis(ms)).await;
                        now += ms;
                    }
                    Op::Call(ok) => {
                        if m.state == BreakerState::Open && now - m.opened_at >= open_ms {
                            m.state = BreakerState::HalfOpen;
                            m.successes = 0;
                        }
                        let admitted_by_model = m.state != BreakerState::Open;
                        let (permit, _) = breaker.try_acquire();
                        assert_eq!(permit.is_ok(), admitted_by_model, "admission at {now} ms, model {m:?}");
                        let Ok(permit) = permit else { continue };
                        if ok { breaker.on_success(permit); } else { breaker.on_failure(permit, &"f"); }
                        match (m.state, ok) {
                            (BreakerState::Closed, true) => m.consecutive = 0,
                            (BreakerState::Closed, false) => {
                                m.consecutive += 1;
                                if m.consecutive >= failures {
                                    m.state = BreakerState::Open;
                                    m.opened_at = now;
                                }
                            }
                            (BreakerState::HalfOpen, true) => {
                                m.successes += 1;
                                if m.successes >= successes {
                                    m.state = BreakerState::Closed;
                                    m.consecutive = 0;
                                }
                            }
                            (BreakerState::HalfOpen, false) => {
                                m.state = BreakerState::Open;
                                m.opened_at = now;
                            }
                            (BreakerState::Open, _) => unreachable!(),
                        }
                    }
                }
                assert_eq!(breaker.state(), m.state, "state at {now} ms");
                if m.state == BreakerState::Closed {
                    assert_eq!(breaker.snapshot().consecutive_failures, m.consecutive);
                }
            }
        });
    }
}
