//! A store that stops accepting appends: the execution fails with the
//! store's error, whether the store appends at once or through a future,
//! and what it accepted before stays. A slow store holds back no more than
//! the journal's own writes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestrate_core::journal::Event;
use orchestrate_core::store::{
    ExecutionQuery, ExecutionSummary, FetchOptions, MemoryStore, Message, MessageQuery, NewMessage,
    RebuildReport, Store, StoreError, VerifyReport,
};
use orchestrate_core::{Error, ExecutionId, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_testing::MockAgent;
use serde_json::{json, Value};

/// A memory store whose appends fail from batch `accepted` on, answering
/// at once (`append_now`) or only through `append`.
struct BreakingStore {
    inner: MemoryStore,
    accepted: usize,
    batches: AtomicUsize,
    /// Batches that came through `append` instead of `append_now`.
    awaited: AtomicUsize,
    at_once: bool,
    /// How long an awaited append takes.
    latency: Duration,
}

impl BreakingStore {
    fn new(accepted: usize, at_once: bool) -> Self {
        Self {
            inner: MemoryStore::new(),
            accepted,
            batches: AtomicUsize::new(0),
            awaited: AtomicUsize::new(0),
            at_once,
            latency: Duration::ZERO,
        }
    }

    /// A store that never breaks, whose appends take `latency`.
    fn slow(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::new(usize::MAX, false)
        }
    }

    fn append_checked(&self, execution: &ExecutionId, events: &[Event]) -> Result<(), StoreError> {
        if self.batches.fetch_add(1, Ordering::SeqCst) >= self.accepted {
            return Err(StoreError::Backend {
                backend: "breaking",
                retryable: true,
                source: Arc::new(std::io::Error::other("connection dropped")),
            });
        }
        self.inner
            .append_now(execution, events)
            .expect("the memory store appends at once")
    }
}

#[async_trait]
impl Store for BreakingStore {
    async fn append(&self, execution: &ExecutionId, events: &[Event]) -> Result<(), StoreError> {
        self.awaited.fetch_add(1, Ordering::SeqCst);
        // Waits first, as a store across a network would.
        tokio::task::yield_now().await;
        tokio::time::sleep(self.latency).await;
        self.append_checked(execution, events)
    }

    fn append_now(
        &self,
        execution: &ExecutionId,
        events: &[Event],
    ) -> Option<Result<(), StoreError>> {
        self.at_once.then(|| self.append_checked(execution, events))
    }

    async fn load(&self, execution: &ExecutionId, from: u64) -> Result<Vec<Event>, StoreError> {
        self.inner.load(execution, from).await
    }

    async fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Vec<ExecutionSummary>, StoreError> {
        self.inner.list_executions(query).await
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.inner.verify().await
    }

    async fn rebuild_projections(&self) -> Result<RebuildReport, StoreError> {
        self.inner.rebuild_projections().await
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        self.inner.kv_get(key).await
    }

    async fn kv_put(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.inner.kv_put(key, value, ttl).await
    }

    async fn kv_put_if_absent(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<Option<Value>, StoreError> {
        self.inner.kv_put_if_absent(key, value, ttl).await
    }

    async fn kv_delete(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.kv_delete(key).await
    }

    async fn send_message(&self, message: NewMessage) -> Result<i64, StoreError> {
        self.inner.send_message(message).await
    }

    async fn fetch_messages(
        &self,
        recipient: &str,
        options: &FetchOptions,
    ) -> Result<Vec<Message>, StoreError> {
        self.inner.fetch_messages(recipient, options).await
    }

    async fn ack_message(&self, id: i64) -> Result<(), StoreError> {
        self.inner.ack_message(id).await
    }

    async fn release_message(&self, id: i64) -> Result<(), StoreError> {
        self.inner.release_message(id).await
    }

    async fn list_messages(&self, query: &MessageQuery) -> Result<Vec<Message>, StoreError> {
        self.inner.list_messages(query).await
    }
}

fn chain() -> WorkflowDef {
    WorkflowDef::builder("chain")
        .step(StepDef::new("a", "agent"))
        .step(StepDef::new("b", "agent").depends_on(["a"]))
        .step(StepDef::new("c", "agent").depends_on(["b"]))
        .build()
}

async fn run_on(store: Arc<BreakingStore>) {
    let agent = MockAgent::new("agent").returns(json!(1));
    let orch = Orchestrator::builder()
        .agent(agent.clone())
        .store(store.clone())
        .build()
        .unwrap();
    let exec = orch
        .run(&orch.bind(&chain()).unwrap(), json!(null))
        .await
        .unwrap();
    let id = exec.id().clone();
    match exec.await {
        Err(Error::Store(StoreError::Backend {
            backend, source, ..
        })) => {
            assert_eq!(backend, "breaking");
            assert!(
                source.to_string().contains("connection dropped"),
                "{source}"
            );
        }
        other => panic!("expected the store's error, got {other:?}"),
    }
    // The first batch (the start, and step a starting) was accepted and
    // stays; nothing after it was written, and no step ran past the failure.
    let kept = store.inner.load(&id, 0).await.unwrap();
    let kinds: Vec<&str> = kept.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["execution_started", "step_started"]);
    assert!(agent.calls().len() <= 1, "{:?}", agent.calls());
    // A store that answers at once is never awaited; one that does not
    // is awaited for both batches.
    let awaited = store.awaited.load(Ordering::SeqCst);
    assert_eq!(awaited, if store.at_once { 0 } else { 2 });
}

#[tokio::test]
async fn an_append_refused_at_once_fails_the_execution_with_the_stores_error() {
    run_on(Arc::new(BreakingStore::new(1, true))).await;
}

#[tokio::test]
async fn an_append_refused_after_waiting_fails_the_execution_the_same_way() {
    run_on(Arc::new(BreakingStore::new(1, false))).await;
}

#[tokio::test]
async fn a_map_whose_journal_breaks_returns_what_the_journal_took_and_cancels_the_rest() {
    let store = Arc::new(BreakingStore::new(3, true));
    let noop = MockAgent::new("noop").returns(json!(1));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let orch = Orchestrator::builder()
        .agent(orchestrate_core::agent_fn("fan", move |_, ctx| {
            let record = record.clone();
            async move {
                let results = ctx.map("noop", (0..300).map(|i| json!(i)), 50).await;
                *record.lock().unwrap() = results.iter().map(Result::is_ok).collect();
                Ok(Value::Null)
            }
        }))
        .agent(noop.clone())
        .store(store.clone())
        .build()
        .unwrap();
    let wf = WorkflowDef::builder("w")
        .step(StepDef::new("s", "fan"))
        .build();
    let exec = orch
        .run(&orch.bind(&wf).unwrap(), Value::Null)
        .await
        .unwrap();
    let id = exec.id().clone();
    assert!(matches!(exec.await, Err(Error::Store(_))));
    let kept = store.inner.load(&id, 0).await.unwrap();
    let journaled: std::collections::HashSet<String> = kept
        .iter()
        .filter_map(|e| match &e.kind {
            orchestrate_core::journal::EventKind::CallCompleted { call, .. } => {
                Some(call.to_string())
            }
            _ => None,
        })
        .collect();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 300, "the map returned");
    // What the caller saw succeed is exactly what the journal holds.
    for (i, ok) in seen.iter().enumerate() {
        assert_eq!(*ok, journaled.contains(&format!("s/{i}")), "call s/{i}");
    }
    assert!(
        !journaled.is_empty() && journaled.len() < 300,
        "{}",
        journaled.len()
    );
    // Only the calls in flight when the journal broke ran past it.
    let ran = noop.calls().len();
    assert!(ran <= journaled.len() + 50, "{ran} ran");
}

#[tokio::test(start_paused = true)]
async fn a_slow_journal_does_not_hold_an_agents_concurrency_slot() {
    // One call of `limited` at a time; each ends at once. Its slot is free
    // once its end is sent: the next does not wait for the store's write.
    let store = Arc::new(BreakingStore::slow(Duration::from_millis(50)));
    let started = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = started.clone();
    let orch = Orchestrator::builder()
        .agent(orchestrate_core::agent_fn("caller", |_, ctx| async move {
            let calls = (0..3).map(|i| orchestrate_core::Call::new("limited", json!(i)));
            for result in ctx.call_all(calls).await {
                result?;
            }
            Ok(Value::Null)
        }))
        .agent(orchestrate_core::agent_fn("limited", move |input, _| {
            record.lock().unwrap().push(tokio::time::Instant::now());
            async move { Ok(input) }
        }))
        .agent_concurrency("limited", 1)
        .store(store)
        .build()
        .unwrap();
    let wf = WorkflowDef::builder("w")
        .step(StepDef::new("s", "caller"))
        .build();
    orch.run(&orch.bind(&wf).unwrap(), Value::Null)
        .await
        .unwrap()
        .await
        .unwrap();
    let started = started.lock().unwrap().clone();
    assert_eq!(started.len(), 3);
    let spread = started[2] - started[0];
    assert!(
        spread < Duration::from_millis(50),
        "the calls started {spread:?} apart: each waited for a write"
    );
}
