//! The conformance suite every [`EventBus`] must pass.
//!
//! Invoke [`bus_conformance!`](macro@crate::bus_conformance) with a factory making
//! a fresh bus (`Fn() -> impl Future<Output = BusSubject>`); add
//! `requires_env = "VAR"` for buses that need a server.

// A conformance case fails by panicking, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use orchestrate_core::bus::{EventBus, Subscription};
use orchestrate_core::journal::{Event, EventKind};
use serde_json::json;

/// A bus under test, and whatever must live as long as it.
pub struct BusSubject {
    /// The bus.
    pub bus: Arc<dyn EventBus>,
    _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for BusSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusSubject").finish_non_exhaustive()
    }
}

impl BusSubject {
    /// A bus that needs nothing else.
    pub fn new(bus: Arc<dyn EventBus>) -> Self {
        Self { bus, _keep: None }
    }

    /// A bus that needs `guard` alive (a key prefix to delete, ...).
    pub fn keeping(bus: Arc<dyn EventBus>, guard: impl std::any::Any + Send + Sync) -> Self {
        Self {
            bus,
            _keep: Some(Box::new(guard)),
        }
    }
}

/// `n` custom events of execution `id`, seq `from..from + n`.
pub fn events(id: &str, from: u64, n: u64) -> Vec<Arc<Event>> {
    (from..from + n)
        .map(|seq| {
            Arc::new(Event {
                execution_id: id.into(),
                seq,
                at_us: seq,
                kind: EventKind::Custom {
                    step: "s".into(),
                    name: "tick".into(),
                    payload: Box::new(json!({"seq": seq, "text": "é\u{1F600}"})),
                },
            })
        })
        .collect()
}

/// Receives `n` events or fails after a generous bound (a hung bus must
/// fail the test, not hang it).
pub async fn receive(sub: &mut Subscription, n: usize) -> Vec<Arc<Event>> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), sub.recv()).await {
            Ok(Some(e)) => got.push(e),
            Ok(None) => panic!("subscription closed after {} of {n} events", got.len()),
            Err(_) => panic!("timed out after {} of {n} events", got.len()),
        }
    }
    got
}

fn seqs(events: &[Arc<Event>]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// Every subscriber of a topic gets every event, in order, unchanged.
pub async fn every_subscriber_gets_every_event_in_order<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = BusSubject>,
{
    let s = make().await;
    let mut a = s.bus.subscribe("orders").await.unwrap();
    let mut b = s.bus.subscribe("orders").await.unwrap();
    let sent = events("e", 0, 50);
    s.bus.publish("orders", &sent[..20]).await.unwrap();
    s.bus.publish("orders", &sent[20..]).await.unwrap();
    let got_a = receive(&mut a, 50).await;
    let got_b = receive(&mut b, 50).await;
    assert_eq!(seqs(&got_a), (0..50).collect::<Vec<_>>());
    assert_eq!(seqs(&got_b), (0..50).collect::<Vec<_>>());
    for (got, want) in got_a.iter().zip(&sent) {
        assert_eq!(**got, **want);
    }
}

/// A subscriber sees only its topic.
pub async fn topics_are_isolated<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = BusSubject>,
{
    let s = make().await;
    let mut a = s.bus.subscribe("a").await.unwrap();
    let mut b = s.bus.subscribe("b").await.unwrap();
    s.bus.publish("a", &events("x", 0, 3)).await.unwrap();
    s.bus.publish("b", &events("y", 100, 2)).await.unwrap();
    assert_eq!(seqs(&receive(&mut a, 3).await), [0, 1, 2]);
    assert_eq!(seqs(&receive(&mut b, 2).await), [100, 101]);
    // Nothing else arrives on `a`.
    s.bus.publish("b", &events("y", 102, 1)).await.unwrap();
    s.bus.publish("a", &events("x", 3, 1)).await.unwrap();
    assert_eq!(seqs(&receive(&mut a, 1).await), [3]);
}

/// A subscription starts at the events published after it was made.
pub async fn subscribers_see_events_from_their_subscription_on<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = BusSubject>,
{
    let s = make().await;
    s.bus.publish("t", &events("e", 0, 5)).await.unwrap();
    let mut late = s.bus.subscribe("t").await.unwrap();
    s.bus.publish("t", &events("e", 5, 2)).await.unwrap();
    assert_eq!(seqs(&receive(&mut late, 2).await), [5, 6]);
}

/// Publishing with no subscriber succeeds; a dropped subscriber does not
/// stop the others.
pub async fn publishing_survives_absent_and_dropped_subscribers<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = BusSubject>,
{
    let s = make().await;
    s.bus.publish("nobody", &events("e", 0, 3)).await.unwrap();
    let gone = s.bus.subscribe("t").await.unwrap();
    let mut kept = s.bus.subscribe("t").await.unwrap();
    drop(gone);
    s.bus.publish("t", &events("e", 0, 4)).await.unwrap();
    assert_eq!(seqs(&receive(&mut kept, 4).await), [0, 1, 2, 3]);
}

/// A thousand events in one batch all arrive, in order.
pub async fn large_batches_arrive_whole<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = BusSubject>,
{
    let s = make().await;
    let mut sub = s.bus.subscribe("bulk").await.unwrap();
    let sent = events("bulk", 0, 1000);
    // Within the memory bus's default capacity of 1000 per subscriber.
    s.bus.publish("bulk", &sent).await.unwrap();
    assert_eq!(
        seqs(&receive(&mut sub, 1000).await),
        (0..1000).collect::<Vec<_>>()
    );
}

/// Expands to one `#[tokio::test]` per bus conformance case.
#[macro_export]
macro_rules! bus_conformance {
    ($make:expr) => {
        $crate::bus_conformance!($make, requires_env = "");
    };
    ($make:expr, requires_env = $var:literal) => {
        $crate::__bus_case!($make, $var, every_subscriber_gets_every_event_in_order);
        $crate::__bus_case!($make, $var, topics_are_isolated);
        $crate::__bus_case!(
            $make,
            $var,
            subscribers_see_events_from_their_subscription_on
        );
        $crate::__bus_case!(
            $make,
            $var,
            publishing_survives_absent_and_dropped_subscribers
        );
        $crate::__bus_case!($make, $var, large_batches_arrive_whole);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bus_case {
    ($make:expr, $var:literal, $case:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            if !$var.is_empty() && ::std::env::var($var).is_err() {
                eprintln!("skipped {}: {} is not set", stringify!($case), $var);
                return;
            }
            $crate::bus_conformance::$case($make).await;
        }
    };
}
