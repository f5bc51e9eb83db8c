//! Where steps run: polled by their execution's driver, or spawned.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestrate_core::bus::{BusError, EventBus, MemoryBus, Subscription};
use orchestrate_core::journal::Event;
use orchestrate_core::{agent_fn, AgentError, ExecutionStatus, Orchestrator, StepTasks, Workflow};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::{json, Value};
use support::{journal, position};
use tokio::sync::Barrier;

/// start → `n` parallel steps on `agent` → join.
fn fanout(n: usize, agent: &str) -> WorkflowDef {
    let mut b = WorkflowDef::builder("fanout").step(StepDef::new("start", "noop"));
    for i in 0..n {
        b = b.step(StepDef::new(format!("w{i}"), agent).depends_on(["start"]));
    }
    b.step(StepDef::new("join", "noop").depends_on((0..n).map(|i| format!("w{i}"))))
        .build()
}

/// Runs `wf` with a null input and expects it to succeed.
async fn runs_to_success(orch: &Orchestrator, wf: &Workflow) {
    let view = orch
        .run(wf, Value::Null)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(view.status(), ExecutionStatus::Succeeded);
}

/// Runs a fan-out of `n` steps that all wait at one barrier with the test,
/// and returns how many tokio tasks were alive while they waited.
async fn tasks_alive_while_steps_wait(tasks: StepTasks, n: usize) -> usize {
    let barrier = Arc::new(Barrier::new(n + 1));
    let released = Arc::new(Barrier::new(n + 1));
    let (b, r) = (barrier.clone(), released.clone());
    let orch = Orchestrator::builder()
        .agent(agent_fn("noop", |_, _| async { Ok(Value::Null) }))
        .agent(agent_fn("wait", move |_, _| {
            let (b, r) = (b.clone(), r.clone());
            async move {
                b.wait().await;
                r.wait().await;
                Ok(Value::Null)
            }
        }))
        .max_concurrency(n)
        .step_tasks(tasks)
        .build()
        .unwrap();
    let wf = orch.bind(&fanout(n, "wait")).unwrap();
    let exec = orch.run(&wf, Value::Null).await.unwrap();
    // Every step has started and none can finish before `released`.
    barrier.wait().await;
    let alive = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    released.wait().await;
    let view = exec.wait().await.unwrap();
    assert_eq!(view.status(), ExecutionStatus::Succeeded);
    alive
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_steps_run_concurrently_without_a_task_each() {
    let alive = tasks_alive_while_steps_wait(StepTasks::Inline, 20).await;
    // The driver alone (the test body runs on the runtime's own thread).
    assert!(alive <= 2, "{alive} tasks alive for 20 inline steps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_steps_have_a_task_each() {
    let alive = tasks_alive_while_steps_wait(StepTasks::Spawned, 20).await;
    assert!(alive > 20, "{alive} tasks alive for 20 spawned steps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spawned_steps_compute_in_parallel() {
    // Two steps that block their thread until the other one has run: they
    // only both finish if they run at the same time on two threads. A
    // sequential run fails (the first one's wait times out), never hangs.
    let (to_a, from_b) = mpsc::channel::<()>();
    let (to_b, from_a) = mpsc::channel::<()>();
    let ends = Arc::new(Mutex::new([Some((to_b, from_b)), Some((to_a, from_a))]));
    let orch = Orchestrator::builder()
        .agent(agent_fn("noop", |_, _| async { Ok(Value::Null) }))
        .agent(agent_fn("blocking", move |input: Value, _| {
            let ends = ends.clone();
            async move {
                let slot = input["side"].as_u64().unwrap_or(0) as usize;
                let taken = ends.lock().unwrap()[slot].take();
                let (tell, hear) = taken.expect("each side runs once");
                tell.send(()).unwrap();
                match hear.recv_timeout(Duration::from_secs(20)) {
                    Ok(()) => Ok(json!("met")),
                    Err(e) => Err(AgentError::permanent(format!(
                        "the other step never ran: {e}"
                    ))),
                }
            }
        }))
        .step_tasks(StepTasks::Spawned)
        .build()
        .unwrap();
    let def = WorkflowDef::builder("pair")
        .step(StepDef::new("a", "blocking").input(json!({"side": 0})))
        .step(StepDef::new("b", "blocking").input(json!({"side": 1})))
        .build();
    let wf = orch.bind(&def).unwrap();
    runs_to_success(&orch, &wf).await;
}

#[tokio::test]
async fn custom_events_precede_the_result_in_both_modes() {
    for tasks in [StepTasks::Inline, StepTasks::Spawned] {
        let orch = Orchestrator::builder()
            .agent(agent_fn("talker", |_, ctx| async move {
                ctx.emit("progress", json!(1))
                    .await
                    .map_err(AgentError::from_error)?;
                ctx.emit("progress", json!(2))
                    .await
                    .map_err(AgentError::from_error)?;
                Ok(json!("done"))
            }))
            .step_tasks(tasks)
            .build()
            .unwrap();
        let wf = orch
            .bind(
                &WorkflowDef::builder("w")
                    .step(StepDef::new("t", "talker"))
                    .build(),
            )
            .unwrap();
        let exec = orch.run(&wf, Value::Null).await.unwrap();
        let view = exec.wait().await.unwrap();
        assert_eq!(view.custom_events(), 2, "{tasks:?}");
        let events = journal(&orch, &exec).await;
        assert!(
            position(&events, "custom", "t") < position(&events, "step_succeeded", "t"),
            "{tasks:?}"
        );
    }
}

/// The in-process bus, counting the batches published to it: the driver
/// publishes each journal batch once, right after appending it.
#[derive(Default)]
struct CountingBus {
    inner: MemoryBus,
    batches: AtomicUsize,
}

#[async_trait]
impl EventBus for CountingBus {
    async fn publish(&self, topic: &str, events: &[Arc<Event>]) -> Result<(), BusError> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.inner.publish(topic, events).await
    }
    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError> {
        self.inner.subscribe(topic).await
    }
    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }
}

#[tokio::test]
async fn steps_that_finish_together_are_journaled_in_one_batch() {
    for tasks in [StepTasks::Inline, StepTasks::Spawned] {
        let bus = Arc::new(CountingBus::default());
        let orch = Orchestrator::builder()
            .agent(agent_fn("noop", |_, _| async { Ok(Value::Null) }))
            .bus(bus.clone())
            .max_concurrency(50)
            .step_tasks(tasks)
            .build()
            .unwrap();
        let wf = orch.bind(&fanout(50, "noop")).unwrap();
        runs_to_success(&orch, &wf).await;
        // Started; `start` done and the 50 started; the 50 done and `join`
        // started; `join` done and finished. A spawned step may finish a
        // turn late, so that mode gets some slack; a batch per step fails.
        let batches = bus.batches.load(Ordering::SeqCst);
        let most = if tasks == StepTasks::Inline { 4 } else { 20 };
        assert!(batches <= most, "{tasks:?}: {batches} batches for 52 steps");
    }
}

/// Steps that never wait finish as they start, inside their driver's poll:
/// a long chain of them still lets the other tasks of its worker run.
#[tokio::test]
async fn a_long_chain_of_steps_that_never_wait_lets_other_tasks_run() {
    let ticks = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }
    });
    let (t, s) = (ticks.clone(), seen.clone());
    let orch = Orchestrator::builder()
        .agent(agent_fn("look", move |_, _| {
            let (t, s) = (t.clone(), s.clone());
            async move {
                s.lock().unwrap().push(t.load(Ordering::SeqCst));
                Ok(Value::Null)
            }
        }))
        .build()
        .unwrap();
    let n = 2_000;
    let def = WorkflowDef::builder("chain")
        .steps((0..n).map(|i| {
            let step = StepDef::new(format!("c{i}"), "look");
            if i == 0 {
                step
            } else {
                step.depends_on([format!("c{}", i - 1)])
            }
        }))
        .build();
    let wf = orch.bind(&def).unwrap();
    runs_to_success(&orch, &wf).await;
    ticker.abort();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), n);
    // On this one-thread runtime the ticker only runs when the driver
    // yields: it did so within the chain, not only before or after it.
    assert!(
        seen[n - 1] > seen[0],
        "the ticker never ran during the chain: {} then {}",
        seen[0],
        seen[n - 1]
    );
}
