//! Conformance cases for values: whatever the orchestrator accepts is
//! stored and read back identically; what no store could read back is
//! refused before anything is written.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orchestrate_core::depth::MAX_VALUE_DEPTH;
use orchestrate_core::journal::{Event, EventKind, ExecutionStart};
use orchestrate_core::store::{MessageQuery, NewMessage, Store, StoreError};
use orchestrate_core::ExecutionId;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

use super::{subject, ManualClock, Subject, START_MS};
use crate::strategy::arb_json;

/// Cases of the round-trip property in a normal run: each writes several
/// records of up to a megabyte. `ORCHESTRATE_FUZZ_CASES` asks for more.
const DEFAULT_CASES: u32 = 24;

/// The number of cases a property or fuzz test runs: `default`, or what
/// the `ORCHESTRATE_FUZZ_CASES` environment variable asks for.
pub fn fuzz_cases(default: u32) -> u32 {
    std::env::var("ORCHESTRATE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A journal that carries `value` in every field that holds an agent's or
/// a host's value: the execution's input, a step's output (its
/// checkpoint), an interrupt payload, a decision and a custom payload.
pub fn journal_carrying(id: &str, value: &Value) -> Vec<Event> {
    let shared = Arc::new(value.clone());
    let kinds = [
        EventKind::ExecutionStarted(Arc::new(ExecutionStart {
            workflow: "values".into(),
            version: "1".into(),
            correlation_id: id.into(),
            input: shared.clone(),
            idempotency_key: None,
            started_at_ms: START_MS,
            steps: Arc::from(["a".into(), "b".into()]),
        })),
        EventKind::Custom {
            step: "a".into(),
            name: "progress".into(),
            payload: Box::new(value.clone()),
        },
        EventKind::StepSucceeded {
            step: "a".into(),
            output: shared.clone(),
            attempts: 1,
            fallback_from: None,
        },
        EventKind::StepInterrupted {
            step: "b".into(),
            payload: shared.clone(),
        },
        EventKind::StepDecided {
            step: "b".into(),
            approved: true,
            value: Some(shared),
            reason: None,
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(seq, kind)| Event {
            execution_id: id.into(),
            seq: seq as u64,
            at_us: seq as u64,
            kind,
        })
        .collect()
}

/// Stores `value` every way a store keeps values and reads each back.
async fn round_trip(store: &dyn Store, n: u64, value: &Value) -> Result<(), TestCaseError> {
    let id = format!("exec-value-{n}");
    let events = journal_carrying(&id, value);
    let failed = |what: &str, e: StoreError| TestCaseError::fail(format!("{what}: {e}"));
    store
        .append(&ExecutionId::from(id.as_str()), &events)
        .await
        .map_err(|e| failed("append", e))?;
    let loaded = store
        .load(&ExecutionId::from(id.as_str()), 0)
        .await
        .map_err(|e| failed("load", e))?;
    if loaded != events {
        let first = loaded
            .iter()
            .zip(&events)
            .position(|(read, written)| read != written)
            .unwrap_or(loaded.len().min(events.len()));
        let show = |e: Option<&Event>| {
            let text = format!("{e:?}");
            text.chars().take(400).collect::<String>()
        };
        return Err(TestCaseError::fail(format!(
            "the journal read back differs ({} events written, {} read) at event {first}: \
             wrote {}, read {}",
            events.len(),
            loaded.len(),
            show(events.get(first)),
            show(loaded.get(first)),
        )));
    }
    let key = format!("value-{n}");
    store
        .kv_put(&key, value.clone(), None)
        .await
        .map_err(|e| failed("kv_put", e))?;
    let read = store.kv_get(&key).await.map_err(|e| failed("kv_get", e))?;
    if read.as_ref() != Some(value) {
        return Err(TestCaseError::fail("the key-value value read back differs"));
    }
    let recipient = format!("mailbox-{n}");
    store
        .send_message(NewMessage::new(&recipient, value.clone()))
        .await
        .map_err(|e| failed("send_message", e))?;
    let messages = store
        .list_messages(&MessageQuery {
            recipient: Some(recipient),
            ..MessageQuery::default()
        })
        .await
        .map_err(|e| failed("list_messages", e))?;
    if messages.len() != 1 || &messages[0].payload != value {
        return Err(TestCaseError::fail("the message read back differs"));
    }
    Ok(())
}

/// Property: arbitrary JSON ([`arb_json`]: nesting up to the limit, large,
/// negative and fractional numbers, unicode with escaped control
/// characters, empty keys, megabyte strings) round-trips through the
/// journal (append / load, every payload field including a step's
/// checkpointed output), the key-value area and the mailboxes.
pub async fn arbitrary_values_round_trip<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let store = s.store.clone();
    let handle = tokio::runtime::Handle::current();
    let next = AtomicU64::new(0);
    let config = Config {
        cases: fuzz_cases(DEFAULT_CASES),
        failure_persistence: None,
        ..Config::default()
    };
    // The property runs on this worker thread, each case's store calls on
    // the runtime; proptest shrinks a failing value to a small one.
    let result = tokio::task::block_in_place(|| {
        TestRunner::new(config).run(&arb_json(), |value| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            handle.block_on(round_trip(&*store, n, &value))
        })
    });
    if let Err(e) = result {
        panic!("a value did not round-trip: {e}");
    }
}

/// A value nested exactly [`MAX_VALUE_DEPTH`] deep, and one holding
/// megabyte strings, are stored and read back;
/// one level deeper is refused by `append`, `kv_put`, `kv_put_if_absent`
/// and `send_message`, and nothing of it is written.
pub async fn values_past_the_depth_limit_are_refused<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let nested = |depth: usize| {
        (0..depth).fold(json!("leaf"), |v, level| {
            if level % 2 == 0 {
                Value::Array(vec![v])
            } else {
                Value::Object([(String::new(), v)].into_iter().collect())
            }
        })
    };
    let deepest = nested(MAX_VALUE_DEPTH);
    round_trip(&*s.store, 0, &deepest).await.unwrap();
    // And a string of a megabyte, escapes and all, every time.
    let megabyte = json!(["\u{0}\"é\u{1F4A5}".repeat(1 << 17), {"": "x".repeat(1 << 20)}]);
    round_trip(&*s.store, 1, &megabyte).await.unwrap();

    let too_deep = nested(MAX_VALUE_DEPTH + 1);
    let id = ExecutionId::from("exec-too-deep");
    let events = journal_carrying(id.as_str(), &too_deep);
    // Refused whether the deep value comes first or later in the batch.
    let mut shallow_first = journal_carrying(id.as_str(), &json!(1));
    shallow_first[2] = events[2].clone();
    assert!(refused(s.store.append(&id, &events).await));
    assert!(refused(s.store.append(&id, &shallow_first).await));
    assert!(matches!(
        s.store.load(&id, 0).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(refused(
        s.store.kv_put("deep", too_deep.clone(), None).await
    ));
    assert!(refused(
        s.store
            .kv_put_if_absent("deep", too_deep.clone(), None)
            .await
    ));
    assert_eq!(s.store.kv_get("deep").await.unwrap(), None);
    assert!(refused(
        s.store
            .send_message(NewMessage::new("deep", too_deep))
            .await
    ));
    let messages = s
        .store
        .list_messages(&MessageQuery {
            recipient: Some("deep".into()),
            ..MessageQuery::default()
        })
        .await
        .unwrap();
    assert!(messages.is_empty());
}

fn refused<T>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::ValueTooDeep { limit, .. }) if limit == MAX_VALUE_DEPTH)
}
