//! The conformance suite every [`Store`] must pass.
//!
//! Invoke [`store_conformance!`](macro@crate::store_conformance) in a test file
//! with a factory that makes a fresh, empty store for a [`ManualClock`]
//! (key-value expiry is measured against it); every case becomes a
//! `#[tokio::test]`:
//!
//! ```ignore
//! orchestrate_testing::store_conformance!(|clock| async move {
//!     let config = MemoryStoreConfig { clock: Arc::new(clock), ..Default::default() };
//!     Subject::new(Arc::new(MemoryStore::with_config(config)))
//! });
//! ```

// A conformance case fails by panicking, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use orchestrate_core::journal::{
    BreakerState, CallStart, Event, EventKind, ExecutionStart, ExecutionStatus, SkipReason,
};
use orchestrate_core::store::{
    ExecutionQuery, FetchOptions, ManualClock, MessageQuery, MessageStatus, NewMessage, Store,
    StoreError,
};
use orchestrate_core::{ErrorInfo, ExecutionId};
use serde_json::json;

mod audit;
mod values;

pub use audit::a_healthy_store_verifies_clean_and_rebuilds_unchanged;
pub use values::{
    arbitrary_values_round_trip, fuzz_cases, journal_carrying,
    values_past_the_depth_limit_are_refused,
};

/// A store under test, and whatever must live as long as it (a temporary
/// directory, a schema to drop).
pub struct Subject {
    /// The store.
    pub store: Arc<dyn Store>,
    _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject").finish_non_exhaustive()
    }
}

impl Subject {
    /// A store that needs nothing else.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, _keep: None }
    }

    /// A store that needs `guard` alive.
    pub fn keeping(store: Arc<dyn Store>, guard: impl std::any::Any + Send + Sync) -> Self {
        Self {
            store,
            _keep: Some(Box::new(guard)),
        }
    }
}

/// The clock every case starts at (milliseconds since the epoch).
pub const START_MS: u64 = 1_700_000_000_000;

async fn subject<F, Fut>(make: &F) -> (Subject, ManualClock)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let clock = ManualClock::new(START_MS);
    (make(clock.clone()).await, clock)
}

fn ev(id: &str, seq: u64, kind: EventKind) -> Event {
    Event {
        execution_id: id.into(),
        seq,
        at_us: seq * 10,
        kind,
    }
}

fn started(id: &str, workflow: &str, started_at_ms: u64, key: Option<&str>) -> Event {
    ev(
        id,
        0,
        EventKind::ExecutionStarted(Arc::new(ExecutionStart {
            workflow: workflow.into(),
            version: "1".into(),
            correlation_id: format!("corr-{id}").into(),
            input: Arc::new(json!({"q": "x", "n": [1, 2.5, null]})),
            idempotency_key: key.map(Into::into),
            started_at_ms,
            steps: Arc::from(["a".into(), "b".into()]),
        })),
    )
}

fn finished(id: &str, seq: u64, status: ExecutionStatus) -> Event {
    ev(
        id,
        seq,
        EventKind::ExecutionFinished {
            status,
            error: None,
        },
    )
}

/// One event of every kind, as execution `id`'s journal.
pub fn every_kind(id: &str) -> Vec<Event> {
    let info = ErrorInfo::new("agent", "boom \u{1F4A5} \"quoted\"", true)
        .with_attempts(2)
        .with_origin("budget_exceeded")
        .with_overrun(orchestrate_core::budget::Overrun::new(
            "a/0",
            "",
            u64::MAX,
            7,
        ));
    let kinds = vec![
        EventKind::StepScheduled { step: "a".into() },
        EventKind::StepStarted {
            step: "a".into(),
            agent: "agent-1".into(),
        },
        EventKind::AttemptStarted {
            step: "a".into(),
            attempt: 1,
        },
        EventKind::AttemptFailed {
            step: "a".into(),
            attempt: 1,
            error: Box::new(info.clone()),
        },
        EventKind::RetryScheduled {
            step: "a".into(),
            next_attempt: 2,
            delay_ms: 1500,
        },
        EventKind::Throttled {
            step: "a".into(),
            attempt: 2,
            delay_ms: 10,
        },
        EventKind::AttemptRejected {
            step: "a".into(),
            attempt: 2,
            reason: "bulkhead full".into(),
        },
        EventKind::BreakerTransition {
            step: "a".into(),
            breaker: "agent-1".into(),
            from: BreakerState::Closed,
            to: BreakerState::HalfOpen,
        },
        EventKind::Custom {
            step: "a".into(),
            name: "progress".into(),
            payload: Box::new(json!({"pct": 50, "nested": {"deep": [true, false]}})),
        },
        EventKind::StepSucceeded {
            step: "a".into(),
            output: Arc::new(json!({"text": "ok", "big": 12345678901234_i64})),
            attempts: 2,
            fallback_from: Some(Box::new(info.clone())),
        },
        EventKind::StepInterrupted {
            step: "c".into(),
            payload: Arc::new(json!({"question": "ship it?", "diff": [1, 2]})),
        },
        EventKind::ExecutionParked {
            steps: vec!["c".into(), "d".into()],
        },
        EventKind::StepDecided {
            step: "c".into(),
            approved: true,
            value: Some(Arc::new(json!({"approved_by": "ada"}))),
            reason: None,
        },
        EventKind::StepDecided {
            step: "d".into(),
            approved: false,
            value: None,
            reason: Some("not today \u{1F6D1}".into()),
        },
        EventKind::StepFailed {
            step: "b".into(),
            error: Box::new(info.clone()),
            attempts: 3,
        },
        EventKind::StepSkipped {
            step: "b".into(),
            reason: SkipReason::Upstream { step: "a".into() },
        },
        EventKind::StepCancelled { step: "b".into() },
        EventKind::CallStarted(Arc::new(CallStart {
            call: "b/0".into(),
            parent: "b".into(),
            agent: "agent-2".into(),
            digest: u64::MAX - 7,
            depth: 1,
            label: Some("first \u{1F50E}".into()),
            budget: Some(250),
        })),
        EventKind::CallCompleted {
            call: "b/0".into(),
            output: Arc::new(json!({"found": [1, 2.5, "x"]})),
            attempts: 2,
        },
        EventKind::CallFailed {
            call: "b/1".into(),
            error: Box::new(info.clone()),
            attempts: 1,
        },
        EventKind::BudgetSet {
            amount: 1_000,
            unit: "tokens".into(),
        },
        EventKind::BudgetConsumed {
            call: "b/0".into(),
            amount: 125,
            op: Some("b/0#0".into()),
        },
        EventKind::BudgetThreshold {
            call: "b/0".into(),
            percent: 50,
        },
        EventKind::SideEffect {
            call: "b/2".into(),
            name: "now".into(),
            value: Arc::new(json!(1_733_390_000_123_456u64)),
        },
        EventKind::Decision(Arc::new(orchestrate_core::journal::Decision {
            id: "b/assign:t0.0".into(),
            by: "b".into(),
            kind: "assign".into(),
            value: json!({"worker": "w1", "at_ms": 1_733_390_000_123u64}),
        })),
        EventKind::CancelRequested,
        EventKind::ExecutionResumed {
            rerun: vec!["b".into()],
        },
        EventKind::ExecutionFinished {
            status: ExecutionStatus::Failed,
            error: Some(Box::new(info)),
        },
    ];
    let mut events = vec![started(id, "kinds", START_MS, Some("key-1"))];
    events.extend(
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, k)| ev(id, i as u64 + 1, k)),
    );
    events
}

/// Every event kind round-trips unchanged; loads start at any offset.
pub async fn append_and_load_round_trip<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let id = ExecutionId::from("exec-round-trip");
    let events = every_kind(id.as_str());
    s.store.append(&id, &events[..3]).await.unwrap();
    s.store.append(&id, &events[3..]).await.unwrap();
    let loaded = s.store.load(&id, 0).await.unwrap();
    assert_eq!(loaded.len(), events.len());
    for (a, b) in loaded.iter().zip(&events) {
        assert_eq!(a, b);
    }
    let tail = s.store.load(&id, 5).await.unwrap();
    assert_eq!(tail.first().map(|e| e.seq), Some(5));
    assert_eq!(tail.len(), events.len() - 5);
    assert!(s.store.load(&id, 1_000).await.unwrap().is_empty());
    s.store.append(&id, &[]).await.unwrap();
}

/// A store that appends at once ([`Store::append_now`]) appends as
/// `append` does: checked, in order, into the journal `append` and `load`
/// see. A store that answers `None` appended nothing.
pub async fn appending_at_once_is_appending<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let id = ExecutionId::from("exec-at-once");
    let events = every_kind(id.as_str());
    match s.store.append_now(&id, &events[..3]) {
        None => {
            assert!(matches!(
                s.store.load(&id, 0).await,
                Err(StoreError::NotFound { .. })
            ));
            return;
        }
        Some(appended) => appended.unwrap(),
    }
    assert!(matches!(
        s.store.append_now(&id, &events[1..3]),
        Some(Err(StoreError::Conflict {
            expected: 1,
            actual: 3,
            ..
        }))
    ));
    assert!(matches!(
        s.store
            .append_now(&id, &[events[3].clone(), events[5].clone()]),
        Some(Err(StoreError::InvalidBatch { .. }))
    ));
    s.store.append(&id, &events[3..5]).await.unwrap();
    s.store.append_now(&id, &events[5..]).unwrap().unwrap();
    assert_eq!(s.store.load(&id, 0).await.unwrap(), events);
}

/// A batch longer than a backend puts in one statement is stored whole, in
/// order, and counted in the execution's summary.
pub async fn long_batches_are_stored_whole<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let id = ExecutionId::from("exec-long");
    let step = |seq: u64| {
        ev(
            "exec-long",
            seq,
            EventKind::StepScheduled {
                step: format!("s{seq}").into(),
            },
        )
    };
    let mut first = vec![started("exec-long", "long", START_MS, None)];
    first.extend((1..700).map(step));
    s.store.append(&id, &first).await.unwrap();
    let second: Vec<_> = (700..1_001).map(step).collect();
    s.store.append(&id, &second).await.unwrap();
    let loaded = s.store.load(&id, 0).await.unwrap();
    assert_eq!(loaded.len(), 1_001);
    assert!(loaded.iter().enumerate().all(|(i, e)| e.seq == i as u64));
    assert_eq!(loaded[650], first[650]);
    assert_eq!(loaded[1_000], second[300]);
    let listed = s
        .store
        .list_executions(&ExecutionQuery {
            workflow: Some("long".into()),
            ..ExecutionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].events, 1_001);
    // A refused long batch writes none of its rows.
    let late: Vec<_> = (1_000..1_400).map(step).collect();
    assert!(matches!(
        s.store.append(&id, &late).await,
        Err(StoreError::Conflict {
            expected: 1_000,
            actual: 1_001,
            ..
        })
    ));
    assert_eq!(s.store.load(&id, 0).await.unwrap().len(), 1_001);
}

/// Appends must continue the journal exactly; anything else is refused.
pub async fn appends_are_checked<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let id = ExecutionId::from("exec-checks");
    let scheduled = |seq| {
        ev(
            "exec-checks",
            seq,
            EventKind::StepScheduled { step: "a".into() },
        )
    };
    assert!(matches!(
        s.store.append(&id, &[scheduled(1)]).await,
        Err(StoreError::Conflict {
            expected: 1,
            actual: 0,
            ..
        })
    ));
    s.store
        .append(
            &id,
            &[started("exec-checks", "w", START_MS, None), scheduled(1)],
        )
        .await
        .unwrap();
    assert!(matches!(
        s.store.append(&id, &[scheduled(1)]).await,
        Err(StoreError::Conflict {
            expected: 1,
            actual: 2,
            ..
        })
    ));
    assert!(matches!(
        s.store.append(&id, &[scheduled(2), scheduled(4)]).await,
        Err(StoreError::InvalidBatch { .. })
    ));
    let foreign = ev("someone-else", 2, EventKind::CancelRequested);
    assert!(matches!(
        s.store.append(&id, &[foreign]).await,
        Err(StoreError::InvalidBatch { .. })
    ));
    // A refused append that would finish the execution changes nothing.
    assert!(matches!(
        s.store
            .append(
                &id,
                &[finished("exec-checks", 1, ExecutionStatus::Succeeded)]
            )
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let listed = s
        .store
        .list_executions(&ExecutionQuery::all())
        .await
        .unwrap();
    let summary = listed.iter().find(|e| e.id == id).unwrap();
    assert_eq!(
        (summary.status, summary.events),
        (ExecutionStatus::Running, 2)
    );
    // A refused append wrote nothing.
    assert_eq!(s.store.load(&id, 0).await.unwrap().len(), 2);
    assert!(matches!(
        s.store.load(&ExecutionId::from("never-written"), 0).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Writers racing on one journal never both append the same sequence number.
pub async fn racing_appends_never_duplicate<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let id = ExecutionId::from("exec-race");
    s.store
        .append(&id, &[started("exec-race", "w", START_MS, None)])
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, id) = (s.store.clone(), id.clone());
            tokio::spawn(async move {
                let mut won = 0u64;
                for _ in 0..25 {
                    let next = store.load(&id, 0).await.unwrap().len() as u64;
                    let e = ev(id.as_str(), next, EventKind::CancelRequested);
                    match store.append(&id, &[e]).await {
                        Ok(()) => won += 1,
                        Err(StoreError::Conflict { .. }) => {}
                        Err(other) => panic!("unexpected {other}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += t.await.unwrap();
    }
    let journal = s.store.load(&id, 0).await.unwrap();
    assert_eq!(journal.len() as u64, won + 1);
    for (i, e) in journal.iter().enumerate() {
        assert_eq!(e.seq, i as u64);
    }
}

/// Executions are listed from their journals, filtered and newest first.
pub async fn executions_are_listed<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let runs = [
        ("e1", "alpha", START_MS, true),
        ("e2", "alpha", START_MS + 10, false),
        ("e3", "beta", START_MS + 20, false),
    ];
    for (id, wf, at, done) in runs {
        let mut events = vec![started(id, wf, at, (id == "e2").then_some("k2"))];
        if done {
            events.push(finished(id, 1, ExecutionStatus::Succeeded));
        }
        s.store
            .append(&ExecutionId::from(id), &events)
            .await
            .unwrap();
    }
    let ids = |list: Vec<orchestrate_core::store::ExecutionSummary>| -> Vec<String> {
        list.into_iter().map(|e| e.id.to_string()).collect()
    };
    let all = s
        .store
        .list_executions(&ExecutionQuery::all())
        .await
        .unwrap();
    assert_eq!(ids(all.clone()), ["e3", "e2", "e1"]);
    let e2 = all.iter().find(|e| e.id.as_str() == "e2").unwrap();
    assert_eq!(e2.idempotency_key.as_deref(), Some("k2"));
    assert_eq!((e2.workflow.as_str(), e2.events), ("alpha", 1));
    let unfinished = s
        .store
        .list_executions(&ExecutionQuery::unfinished())
        .await
        .unwrap();
    assert_eq!(ids(unfinished), ["e3", "e2"]);
    let alpha = ExecutionQuery {
        workflow: Some("alpha".into()),
        ..ExecutionQuery::all()
    };
    assert_eq!(
        ids(s.store.list_executions(&alpha).await.unwrap()),
        ["e2", "e1"]
    );
    let done = ExecutionQuery {
        status: Some(ExecutionStatus::Succeeded),
        ..ExecutionQuery::all()
    };
    let done = s.store.list_executions(&done).await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].id.as_str(), done[0].events), ("e1", 2));
    let first = ExecutionQuery {
        limit: 1,
        ..ExecutionQuery::all()
    };
    assert_eq!(ids(s.store.list_executions(&first).await.unwrap()), ["e3"]);
    // Finishing moves an execution out of the unfinished list.
    s.store
        .append(
            &ExecutionId::from("e3"),
            &[finished("e3", 1, ExecutionStatus::Cancelled)],
        )
        .await
        .unwrap();
    let unfinished = s
        .store
        .list_executions(&ExecutionQuery::unfinished())
        .await
        .unwrap();
    assert_eq!(ids(unfinished), ["e2"]);
}

/// Get, put, overwrite, delete and put-if-absent.
pub async fn kv_basics<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let store = &s.store;
    assert_eq!(store.kv_get("k").await.unwrap(), None);
    store
        .kv_put("k", json!({"a": [1, "two"]}), None)
        .await
        .unwrap();
    assert_eq!(
        store.kv_get("k").await.unwrap(),
        Some(json!({"a": [1, "two"]}))
    );
    store.kv_put("k", json!(2), None).await.unwrap();
    assert_eq!(store.kv_get("k").await.unwrap(), Some(json!(2)));
    assert_eq!(
        store.kv_put_if_absent("k", json!(3), None).await.unwrap(),
        Some(json!(2))
    );
    assert_eq!(
        store.kv_put_if_absent("new", json!(4), None).await.unwrap(),
        None
    );
    assert_eq!(store.kv_get("new").await.unwrap(), Some(json!(4)));
    assert!(store.kv_delete("k").await.unwrap());
    assert!(!store.kv_delete("k").await.unwrap());
    assert_eq!(store.kv_get("k").await.unwrap(), None);
}

/// Keys expire after their TTL, measured on the store's clock.
pub async fn kv_entries_expire<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, clock) = subject(&make).await;
    let store = &s.store;
    store
        .kv_put("short", json!(1), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    store.kv_put("forever", json!(2), None).await.unwrap();
    clock.advance(Duration::from_secs(9));
    assert_eq!(store.kv_get("short").await.unwrap(), Some(json!(1)));
    assert_eq!(
        store
            .kv_put_if_absent("short", json!(9), None)
            .await
            .unwrap(),
        Some(json!(1))
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(store.kv_get("short").await.unwrap(), None);
    assert!(
        !store.kv_delete("short").await.unwrap(),
        "an expired key is absent"
    );
    store
        .kv_put("short", json!(1), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        store
            .kv_put_if_absent("short", json!(3), Some(Duration::from_secs(5)))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.kv_get("short").await.unwrap(), Some(json!(3)));
    assert_eq!(store.kv_get("forever").await.unwrap(), Some(json!(2)));
}

/// Of many concurrent put-if-absent calls on one key, exactly one wins.
pub async fn concurrent_put_if_absent_has_one_winner<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = s.store.clone();
            tokio::spawn(async move {
                (
                    i,
                    store
                        .kv_put_if_absent("idem", json!(i), None)
                        .await
                        .unwrap(),
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for t in tasks {
        let (i, previous) = t.await.unwrap();
        match previous {
            None => winners.push(i),
            Some(v) => seen.push(v),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert!(seen.iter().all(|v| *v == json!(winners[0])));
    assert_eq!(
        s.store.kv_get("idem").await.unwrap(),
        Some(json!(winners[0]))
    );
}

/// Mailboxes hand out the highest priority first, FIFO within a priority.
pub async fn messages_come_by_priority_then_fifo<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let store = &s.store;
    let mut ids = Vec::new();
    for (i, priority) in [0, 5, 0, 5].into_iter().enumerate() {
        let m = NewMessage::new("a", json!({"n": i}))
            .priority(priority)
            .from("boss")
            .in_thread("t1");
        ids.push(store.send_message(m).await.unwrap());
    }
    let other = store
        .send_message(NewMessage::new("b", json!("hi")))
        .await
        .unwrap();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]) && other > ids[3],
        "ids increase"
    );
    let got = store
        .fetch_messages("a", &FetchOptions::default())
        .await
        .unwrap();
    let order: Vec<i64> = got.iter().map(|m| m.id).collect();
    assert_eq!(order, [ids[1], ids[3], ids[0], ids[2]]);
    assert!(got
        .iter()
        .all(|m| m.status == MessageStatus::Delivered && m.deliveries == 1));
    assert_eq!(got[0].payload, json!({"n": 1}));
    assert_eq!(
        (got[0].sender.as_deref(), got[0].thread.as_deref()),
        (Some("boss"), Some("t1"))
    );
    assert_eq!(got[0].created_at_ms, START_MS);
    // Delivered and within the visibility timeout: not handed out again.
    assert!(store
        .fetch_messages("a", &FetchOptions::default())
        .await
        .unwrap()
        .is_empty());
    let limited = FetchOptions {
        limit: 1,
        ..FetchOptions::default()
    };
    let b = store.fetch_messages("b", &limited).await.unwrap();
    assert_eq!((b.len(), b[0].id), (1, other));
}

/// Unacknowledged messages come back after the visibility timeout, until
/// they are delivered too often and go to the dead letters.
pub async fn unacknowledged_messages_return_then_die<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, clock) = subject(&make).await;
    let store = &s.store;
    let id = store
        .send_message(NewMessage::new("a", json!("work")))
        .await
        .unwrap();
    let options = FetchOptions {
        limit: 10,
        visibility: Duration::from_secs(10),
        max_deliveries: 2,
    };
    assert_eq!(
        store.fetch_messages("a", &options).await.unwrap()[0].deliveries,
        1
    );
    clock.advance(Duration::from_secs(9));
    assert!(store
        .fetch_messages("a", &options)
        .await
        .unwrap()
        .is_empty());
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        store.fetch_messages("a", &options).await.unwrap()[0].deliveries,
        2
    );
    clock.advance(Duration::from_secs(11));
    assert!(
        store
            .fetch_messages("a", &options)
            .await
            .unwrap()
            .is_empty(),
        "third delivery exceeds the limit"
    );
    let dead = MessageQuery {
        status: Some(MessageStatus::Dead),
        ..MessageQuery::default()
    };
    let dead = store.list_messages(&dead).await.unwrap();
    assert_eq!((dead.len(), dead[0].id, dead[0].deliveries), (1, id, 2));
}

/// Acknowledging processes a message; releasing returns it at once.
pub async fn messages_are_acknowledged_or_released<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let store = &s.store;
    let first = store
        .send_message(NewMessage::new("a", json!(1)).in_thread("x"))
        .await
        .unwrap();
    store
        .send_message(NewMessage::new("a", json!(2)).in_thread("y"))
        .await
        .unwrap();
    let got = store
        .fetch_messages("a", &FetchOptions::default())
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    store.release_message(first).await.unwrap();
    let again = store
        .fetch_messages("a", &FetchOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (again.len(), again[0].id, again[0].deliveries),
        (1, first, 2)
    );
    store.ack_message(first).await.unwrap();
    let processed = MessageQuery {
        status: Some(MessageStatus::Processed),
        ..MessageQuery::default()
    };
    assert_eq!(store.list_messages(&processed).await.unwrap()[0].id, first);
    let thread = MessageQuery {
        thread: Some("y".into()),
        recipient: Some("a".into()),
        ..MessageQuery::default()
    };
    assert_eq!(
        store.list_messages(&thread).await.unwrap()[0].payload,
        json!(2)
    );
    assert!(matches!(
        store.ack_message(999_999).await,
        Err(StoreError::MessageNotFound { id: 999_999 })
    ));
    assert!(store.release_message(999_999).await.is_err());
}

/// Concurrent fetchers of one mailbox never get the same message.
pub async fn concurrent_fetchers_get_disjoint_messages<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    for i in 0..20 {
        s.store
            .send_message(NewMessage::new("pool", json!(i)))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = s.store.clone();
            tokio::spawn(async move {
                let options = FetchOptions {
                    limit: 5,
                    ..FetchOptions::default()
                };
                store.fetch_messages("pool", &options).await.unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap().into_iter().map(|m| m.id));
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

/// Expands to one `#[tokio::test]` per conformance case for the store made
/// by `$make`, a `Fn(ManualClock) -> impl Future<Output = Subject>`.
///
/// With `requires_env = "VAR"`, each case first checks that the environment
/// variable is set, and says it was skipped when it is not (backends that
/// need a server).
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!($make, requires_env = "");
    };
    ($make:expr, requires_env = $var:literal) => {
        $crate::__store_case!($make, $var, append_and_load_round_trip);
        $crate::__store_case!($make, $var, appends_are_checked);
        $crate::__store_case!($make, $var, appending_at_once_is_appending);
        $crate::__store_case!($make, $var, long_batches_are_stored_whole);
        $crate::__store_case!($make, $var, racing_appends_never_duplicate);
        $crate::__store_case!($make, $var, executions_are_listed);
        $crate::__store_case!($make, $var, kv_basics);
        $crate::__store_case!($make, $var, kv_entries_expire);
        $crate::__store_case!($make, $var, concurrent_put_if_absent_has_one_winner);
        $crate::__store_case!($make, $var, messages_come_by_priority_then_fifo);
        $crate::__store_case!($make, $var, unacknowledged_messages_return_then_die);
        $crate::__store_case!($make, $var, messages_are_acknowledged_or_released);
        $crate::__store_case!($make, $var, concurrent_fetchers_get_disjoint_messages);
        $crate::__store_case!($make, $var, arbitrary_values_round_trip);
        $crate::__store_case!($make, $var, values_past_the_depth_limit_are_refused);
        $crate::__store_case!(
            $make,
            $var,
            a_healthy_store_verifies_clean_and_rebuilds_unchanged
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_case {
    ($make:expr, $var:literal, $case:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            if !$var.is_empty() && ::std::env::var($var).is_err() {
                eprintln!("skipped {}: {} is not set", stringify!($case), $var);
                return;
            }
            $crate::store_conformance::$case($make).await;
        }
    };
}
