//! Durable calls: agents that call agents at run time, through the
//! policies and the journal, with deterministic ids.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestrate_core::journal::{Event, EventKind};
use orchestrate_core::resilience::{Backoff, Jitter, RetryConfig};
use orchestrate_core::store::{MemoryStore, Store};
use orchestrate_core::{
    agent_fn, default_policy, AgentError, Call, CallLookup, CallOptions, Context, Error,
    Orchestrator, StepTasks,
};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::{json, Value};
use support::journal;

fn one_step(agent: &str) -> WorkflowDef {
    WorkflowDef::builder(agent)
        .step(StepDef::new("s", agent).input(json!("${input}")))
        .build()
}

/// `(kind, call)` of every call event, in journal order.
fn calls(events: &[Event]) -> Vec<(&'static str, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallStarted(start) => Some(("started", start.call.to_string())),
            EventKind::CallCompleted { call, .. } => Some(("completed", call.to_string())),
            EventKind::CallFailed { call, .. } => Some(("failed", call.to_string())),
            _ => None,
        })
        .collect()
}

/// How many calls of an agent run at once, and the most that did.
#[derive(Clone, Default)]
struct Overlap {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Overlap {
    /// Counts one more running for `ms` (paused time).
    async fn hold(&self, ms: u64) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// How many calls an agent's execution's journal holds completed, read
/// from its store while it runs.
async fn completed_in(store: &dyn Store, ctx: &Context) -> Result<usize, AgentError> {
    let events = store
        .load(ctx.execution_id(), 0)
        .await
        .map_err(|e| AgentError::permanent(e.to_string()))?;
    Ok(events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::CallCompleted { .. }))
        .count())
}

fn quick() -> Backoff {
    Backoff::default()
        .with_base(Duration::from_millis(5))
        .with_jitter(Jitter::None)
}

fn no_retries() -> orchestrate_core::resilience::PolicyBuilder {
    default_policy().retry(RetryConfig::attempts(1))
}

#[tokio::test]
async fn a_call_runs_its_child_and_journals_it_before_the_caller_goes_on() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let orch = Orchestrator::builder()
        .agent(agent_fn("parent", |input, ctx| async move {
            let first = ctx.call("child", json!({"n": input})).await?;
            let second = ctx
                .call_with("child", first.clone(), CallOptions::new().label("again"))
                .await?;
            Ok(json!([first, second]))
        }))
        .agent(agent_fn("child", move |input, ctx| {
            record.lock().unwrap().push((
                ctx.call_id().to_owned(),
                ctx.parent_call_id().map(str::to_owned),
                ctx.depth(),
                ctx.idempotency_key(),
            ));
            async move { Ok(json!({"wrapped": input})) }
        }))
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("parent")).unwrap();
    let exec = orch.run(&wf, json!(7)).await.unwrap();
    let done = exec.clone().await.unwrap();
    assert_eq!(
        done.output("s"),
        Some(&json!([{"wrapped": {"n": 7}}, {"wrapped": {"wrapped": {"n": 7}}}]))
    );
    let id = exec.id().to_string();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (
                "s/0".to_owned(),
                Some("s".to_owned()),
                1,
                format!("{id}/s/0")
            ),
            (
                "s/1".to_owned(),
                Some("s".to_owned()),
                1,
                format!("{id}/s/1")
            ),
        ]
    );

    let events = journal(&orch, &exec).await;
    assert_eq!(
        calls(&events),
        [
            ("started", "s/0".to_owned()),
            ("completed", "s/0".to_owned()),
            ("started", "s/1".to_owned()),
            ("completed", "s/1".to_owned()),
        ]
    );
    let start = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::CallStarted(start) if &*start.call == "s/1" => Some(start.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (&*start.parent, &*start.agent, start.depth),
        ("s", "child", 1)
    );
    assert_eq!(start.label.as_deref(), Some("again"));
    let succeeded = support::position(&events, "step_succeeded", "s");
    let last_call = events
        .iter()
        .rposition(|e| matches!(e.kind, EventKind::CallCompleted { .. }))
        .unwrap();
    assert!(last_call < succeeded);
}

#[tokio::test]
async fn nested_calls_take_ids_from_their_callers() {
    let orch = Orchestrator::builder()
        .agent(agent_fn("tree", |input, ctx| async move {
            let depth = input.as_u64().unwrap_or(0);
            if depth == 0 {
                return Ok(json!(ctx.call_id()));
            }
            let children = ctx
                .call_all([
                    Call::new("tree", json!(depth - 1)),
                    Call::new("tree", json!(depth - 1)),
                ])
                .await;
            let children: Result<Vec<Value>, Error> = children.into_iter().collect();
            Ok(json!(children?))
        }))
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("tree")).unwrap();
    let exec = orch.run(&wf, json!(2)).await.unwrap();
    let done = exec.clone().await.unwrap();
    assert_eq!(
        done.output("s"),
        Some(&json!([["s/0/0", "s/0/1"], ["s/1/0", "s/1/1"]]))
    );
    let events = journal(&orch, &exec).await;
    let mut started: Vec<String> = calls(&events)
        .into_iter()
        .filter(|(kind, _)| *kind == "started")
        .map(|(_, call)| call)
        .collect();
    started.sort();
    assert_eq!(started, ["s/0", "s/0/0", "s/0/1", "s/1", "s/1/0", "s/1/1"]);
}

#[tokio::test(start_paused = true)]
async fn map_keeps_input_order_one_result_each_under_its_limit() {
    let overlap = Overlap::default();
    let counted = overlap.clone();
    let orch = Orchestrator::builder()
        .agent(agent_fn("fan", |input, ctx| async move {
            let inputs: Vec<Value> = input.as_array().cloned().unwrap_or_default();
            let results = ctx.map("slow", inputs, 3).await;
            Ok(json!(results
                .into_iter()
                .map(|r| r.unwrap_or_else(|e| json!(e.code())))
                .collect::<Vec<_>>()))
        }))
        .agent(agent_fn("slow", move |input, ctx| {
            let counted = counted.clone();
            async move {
                let n = input.as_u64().unwrap_or(0);
                // Later inputs finish first.
                counted.hold(100 - n * 10).await;
                if n == 4 {
                    return Err(AgentError::permanent("four is refused"));
                }
                Ok(json!({"n": n, "call": ctx.call_id()}))
            }
        }))
        .agent_policy("slow", no_retries())
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("fan")).unwrap();
    let inputs: Vec<u64> = (0..8).collect();
    let done = orch.run(&wf, json!(inputs)).await.unwrap().await.unwrap();
    let out = done.output("s").unwrap().as_array().unwrap().clone();
    assert_eq!(out.len(), 8);
    for (i, r) in out.iter().enumerate() {
        if i == 4 {
            assert_eq!(r, &json!("call_failed"));
        } else {
            assert_eq!(r, &json!({"n": i, "call": format!("s/{i}")}));
        }
    }
    assert_eq!(overlap.most(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_map_of_limit_zero_runs_every_call_at_once() {
    // 0 is no limit, as for an agent's concurrency limit.
    let overlap = Overlap::default();
    let counted = overlap.clone();
    let orch = Orchestrator::builder()
        .agent(agent_fn("fan", |_, ctx| async move {
            let results = ctx.map("slow", (0..20).map(|i| json!(i)), 0).await;
            Ok(json!(results
                .into_iter()
                .filter_map(Result::ok)
                .collect::<Vec<_>>()))
        }))
        .agent(agent_fn("slow", move |input, _| {
            let counted = counted.clone();
            async move {
                counted.hold(10).await;
                Ok(input)
            }
        }))
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("fan")).unwrap();
    let done = orch.run(&wf, Value::Null).await.unwrap().await.unwrap();
    let expected: Vec<u64> = (0..20).collect();
    assert_eq!(done.output("s"), Some(&json!(expected)));
    assert_eq!(overlap.most(), 20);
}

#[tokio::test]
async fn a_map_returns_once_the_journal_holds_every_result() {
    // Children that end as they start send their ends to the journal and
    // free their places at once; the map waits for the journal once, for
    // all of them, before its caller sees any result.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let read = store.clone();
    let orch = Orchestrator::builder()
        .store(store)
        .agent(agent_fn("fan", move |input, ctx| {
            let read = read.clone();
            async move {
                let n = input.as_u64().unwrap_or(0);
                let results = ctx.map("echo", (0..n).map(|i| json!(i)), 50).await;
                let journaled = completed_in(&*read, &ctx).await?;
                let outputs: Vec<Value> = results.into_iter().filter_map(Result::ok).collect();
                Ok(json!({"outputs": outputs, "journaled": journaled}))
            }
        }))
        .agent(agent_fn("echo", |input, _| async move { Ok(input) }))
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("fan")).unwrap();
    // More children than a task's cooperative budget: the map gives way to
    // the driver in between, which journals some ends before the last ones.
    let n = 300;
    let done = orch.run(&wf, json!(n)).await.unwrap().await.unwrap();
    let expected: Vec<u64> = (0..n).collect();
    assert_eq!(
        done.output("s"),
        Some(&json!({"outputs": expected, "journaled": n}))
    );
}

#[tokio::test]
async fn a_map_keeps_at_most_its_limit_of_calls_unjournaled() {
    at_most_the_limit_unjournaled(StepTasks::Inline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_in_a_spawned_step_keeps_at_most_its_limit_unjournaled() {
    // The map and the driver in tasks of their own, on two threads.
    at_most_the_limit_unjournaled(StepTasks::Spawned).await;
}

async fn at_most_the_limit_unjournaled(tasks: StepTasks) {
    // A crash runs again the calls whose ends the journal does not hold: a
    // call keeps its place among the map's `limit` until the journal holds
    // its end, so that there are never more of them, however fast its
    // agent ends and however far the driver lags.
    const LIMIT: usize = 4;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let read = store.clone();
    let ended = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (count, peak) = (ended.clone(), most.clone());
    let orch = Orchestrator::builder()
        .step_tasks(tasks)
        .store(store)
        .agent(agent_fn("fan", |_, ctx| async move {
            let results = ctx.map("child", (0..200).map(|i| json!(i)), LIMIT).await;
            Ok(json!(results.iter().filter(|r| r.is_ok()).count()))
        }))
        .agent(agent_fn("child", move |_, ctx| {
            let (read, count, peak) = (read.clone(), count.clone(), peak.clone());
            async move {
                let journaled = completed_in(&*read, &ctx).await?;
                // Ended by their agents, not yet journaled.
                let ahead = count.load(Ordering::SeqCst) - journaled;
                peak.fetch_max(ahead, Ordering::SeqCst);
                count.fetch_add(1, Ordering::SeqCst);
                Ok(Value::Null)
            }
        }))
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("fan")).unwrap();
    let done = orch.run(&wf, Value::Null).await.unwrap().await.unwrap();
    assert_eq!(done.output("s"), Some(&json!(200)));
    assert_eq!(ended.load(Ordering::SeqCst), 200);
    // This call holds a place itself: the others are at most `LIMIT - 1`.
    let most = most.load(Ordering::SeqCst);
    assert!(most < LIMIT, "{most} calls ended unjournaled at once");
}

#[tokio::test(start_paused = true)]
async fn a_map_given_up_journals_its_running_calls_cancelled_and_makes_no_more() {
    let orch = Orchestrator::builder()
        .agent(agent_fn("impatient", |_, ctx| async move {
            tokio::select! {
                _ = ctx.map("slow", (0..5).map(|i| json!(i)), 2) => Ok(json!("finished")),
                () = tokio::time::sleep(Duration::from_millis(50)) => Ok(json!("gave up")),
            }
        }))
        .agent(agent_fn("slow", |input, _| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(input)
        }))
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("impatient")).unwrap();
    let exec = orch.run(&wf, Value::Null).await.unwrap();
    let done = exec.clone().await.unwrap();
    assert_eq!(done.output("s"), Some(&json!("gave up")));
    let events = journal(&orch, &exec).await;
    // Two started (the limit), both ended cancelled, in either order; the
    // three never started were never journaled.
    let mut ended = calls(&events);
    ended.sort();
    assert_eq!(
        ended,
        [
            ("failed", "s/0".to_owned()),
            ("failed", "s/1".to_owned()),
            ("started", "s/0".to_owned()),
            ("started", "s/1".to_owned()),
        ]
    );
    let codes: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallFailed { error, .. } => Some(error.code.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(codes, ["cancelled", "cancelled"]);
}

#[tokio::test(start_paused = true)]
async fn calls_run_under_the_agents_policy_and_concurrency_limit() {
    let tries = Arc::new(AtomicUsize::new(0));
    let counted = tries.clone();
    let overlap = Overlap::default();
    let held = overlap.clone();
    let orch = Orchestrator::builder()
        .agent(agent_fn("boss", |_, ctx| async move {
            let flaky = ctx.call("flaky", json!(null)).await?;
            let hung = ctx.call("hung", json!(null)).await;
            let limited = ctx.map("limited", (0..6).map(|n| json!(n)), 6).await;
            Ok(json!({
                "flaky": flaky,
                "hung": hung.map_err(|e| e.to_string()).unwrap_err(),
                "limited": limited.len(),
            }))
        }))
        .agent(agent_fn("flaky", move |_, _| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(AgentError::transient("not yet"))
                } else {
                    Ok(json!("third time"))
                }
            }
        }))
        .agent(agent_fn("hung", |_, _| async move {
            std::future::pending::<()>().await;
            Ok(json!(null))
        }))
        .agent(agent_fn("limited", move |_, _| {
            let held = held.clone();
            async move {
                held.hold(10).await;
                Ok(json!(null))
            }
        }))
        .agent_policy(
            "flaky",
            default_policy().retry(RetryConfig::attempts(3).with_backoff(quick())),
        )
        .agent_policy("hung", no_retries().timeout(Duration::from_millis(50)))
        .agent_concurrency("limited", 2)
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("boss")).unwrap();
    let exec = orch.run(&wf, json!(null)).await.unwrap();
    let done = exec.clone().await.unwrap();
    let out = done.output("s").unwrap();
    assert_eq!(out["flaky"], json!("third time"));
    assert!(
        out["hung"]
            .as_str()
            .unwrap()
            .contains("call `s/1` to agent `hung` failed"),
        "{out}"
    );
    assert_eq!(tries.load(Ordering::SeqCst), 3);
    assert_eq!(overlap.most(), 2);
    let events = journal(&orch, &exec).await;
    let attempts: Vec<(String, u32, Option<String>)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallCompleted { call, attempts, .. } => {
                Some((call.to_string(), *attempts, None))
            }
            EventKind::CallFailed {
                call,
                attempts,
                error,
            } => Some((call.to_string(), *attempts, Some(error.code.clone()))),
            _ => None,
        })
        .take(2)
        .collect();
    assert_eq!(
        attempts,
        [
            ("s/0".to_owned(), 3, None),
            ("s/1".to_owned(), 1, Some("timeout".to_owned()))
        ]
    );
}

#[tokio::test]
async fn an_unknown_agent_and_a_call_too_deep_are_typed_errors() {
    let orch = Orchestrator::builder()
        .agent(agent_fn("asker", |_, ctx| async move {
            match ctx.call("nobody", json!(1)).await {
                Err(Error::UnknownAgent { agent, step, .. }) => {
                    Ok(json!({"agent": &*agent, "call": &*step}))
                }
                other => Ok(json!(format!("unexpected {other:?}"))),
            }
        }))
        .agent(agent_fn("recurse", |_, ctx| async move {
            match ctx.call("recurse", json!(null)).await {
                Ok(v) => Ok(v),
                Err(Error::CallTooDeep { call, limit }) => {
                    Ok(json!({"call": &*call, "limit": limit}))
                }
                Err(e) => Err(e.into()),
            }
        }))
        .max_call_depth(3)
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("asker")).unwrap();
    let done = orch.run(&wf, json!(null)).await.unwrap().await.unwrap();
    assert_eq!(
        done.output("s"),
        Some(&json!({"agent": "nobody", "call": "s/0"}))
    );
    let wf = orch.bind(&one_step("recurse")).unwrap();
    let done = orch.run(&wf, json!(null)).await.unwrap().await.unwrap();
    assert_eq!(
        done.output("s"),
        Some(&json!({"call": "s/0/0/0/0", "limit": 3}))
    );
}

#[tokio::test]
async fn a_cancelled_execution_cancels_its_calls() {
    let saw_cancel = Arc::new(AtomicUsize::new(0));
    let saw = saw_cancel.clone();
    let started = Arc::new(tokio::sync::Notify::new());
    let notify = started.clone();
    let orch = Orchestrator::builder()
        .agent(agent_fn("parent", |_, ctx| async move {
            Ok(ctx.call("child", json!(null)).await?)
        }))
        .agent(agent_fn("child", move |_, ctx| {
            let (saw, notify) = (saw.clone(), notify.clone());
            async move {
                notify.notify_one();
                ctx.cancelled().await;
                saw.fetch_add(1, Ordering::SeqCst);
                Err(AgentError::permanent("stopped"))
            }
        }))
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("parent")).unwrap();
    let exec = orch.run(&wf, json!(null)).await.unwrap();
    started.notified().await;
    exec.cancel();
    let err = exec.clone().await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(saw_cancel.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_retried_caller_numbers_its_calls_by_attempt() {
    let orch = Orchestrator::builder()
        .agent(agent_fn("parent", |_, ctx| async move {
            let child = ctx.call("child", json!(ctx.attempt())).await?;
            if ctx.attempt() == 1 {
                return Err(AgentError::transient("once more"));
            }
            Ok(child)
        }))
        .agent(agent_fn("child", |input, ctx| async move {
            Ok(json!({"attempt": input, "call": ctx.call_id()}))
        }))
        .agent_policy(
            "parent",
            default_policy().retry(RetryConfig::attempts(2).with_backoff(quick())),
        )
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("parent")).unwrap();
    let exec = orch.run(&wf, json!(null)).await.unwrap();
    let done = exec.clone().await.unwrap();
    assert_eq!(
        done.output("s"),
        Some(&json!({"attempt": 2, "call": "s@2/0"}))
    );
    let events = journal(&orch, &exec).await;
    let started: Vec<String> = calls(&events)
        .into_iter()
        .filter(|(k, _)| *k == "started")
        .map(|(_, c)| c)
        .collect();
    assert_eq!(started, ["s/0", "s@2/0"]);
}

#[tokio::test]
async fn terminating_a_middle_call_stops_its_subtree_while_its_siblings_finish() {
    use orchestrate_core::journal::CallStatus;
    let gate = Arc::new(tokio::sync::Notify::new());
    let open = gate.clone();
    let orch = Orchestrator::builder()
        .agent(agent_fn("root", |_, ctx| async move {
            let results = ctx
                .call_all([Call::new("level", json!(3)), Call::new("level", json!(3))])
                .await;
            Ok(json!(results
                .into_iter()
                .map(|r| r.unwrap_or_else(|e| json!(e.code())))
                .collect::<Vec<_>>()))
        }))
        .agent(agent_fn("level", |input, ctx| async move {
            let below = input.as_u64().unwrap_or(0);
            if below == 0 {
                return Ok(ctx.call("leaf", json!(null)).await?);
            }
            match ctx.call("level", json!(below - 1)).await {
                Ok(v) => Ok(v),
                // A caller may handle its child's termination and go on.
                Err(Error::Terminated { call }) => Ok(json!(format!("{call} was stopped"))),
                Err(e) => Err(e.into()),
            }
        }))
        .agent(agent_fn("leaf", move |_, ctx| {
            let gate = open.clone();
            async move {
                tokio::select! {
                    () = ctx.cancelled() => Err(AgentError::permanent("told to stop")),
                    () = gate.notified() => Ok(json!("leaf done")),
                }
            }
        }))
        .default_policy(no_retries())
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("root")).unwrap();
    let exec = orch.run(&wf, json!(null)).await.unwrap();
    // Both branches are five calls deep: s/0 .. s/0/0/0/0/0 (the leaf) and
    // s/1 .. s/1/0/0/0/0.
    let running = |id: &str| {
        exec.view()
            .calls()
            .get(id)
            .is_some_and(|c| c.status == CallStatus::Running)
    };
    while !(running("s/0/0/0/0/0") && running("s/1/0/0/0/0")) {
        tokio::task::yield_now().await;
    }
    assert!(matches!(
        orch.terminate(exec.id(), "s/9"),
        Err(Error::CallNotRunning {
            found: CallLookup::NoSuchCall,
            ..
        })
    ));
    orch.terminate(exec.id(), "s/0/0").unwrap();
    while exec.view().calls().get("s/0").map(|c| c.status) != Some(CallStatus::Completed) {
        tokio::task::yield_now().await;
    }
    let ended = orch.terminate(exec.id(), "s/0").unwrap_err();
    assert!(matches!(
        ended,
        Error::CallNotRunning {
            found: CallLookup::Status(CallStatus::Completed),
            ..
        }
    ));
    assert!(
        ended.to_string().ends_with("the call is completed"),
        "{ended}"
    );
    gate.notify_one();
    let done = exec.clone().await.unwrap();
    assert!(matches!(
        orch.terminate(exec.id(), "s/1"),
        Err(Error::CallNotRunning {
            found: CallLookup::ExecutionNotHere,
            ..
        })
    ));
    assert_eq!(
        done.output("s"),
        Some(&json!(["s/0/0 was stopped", "leaf done"]))
    );
    let tree = done.calls().clone();
    let status = |id: &str| tree.get(id).unwrap().status;
    for id in ["s/0/0", "s/0/0/0", "s/0/0/0/0", "s/0/0/0/0/0"] {
        assert_eq!(status(id), CallStatus::Terminated, "{id}");
    }
    assert_eq!(tree.get("s/0/0/0/0/0").unwrap().depth, 5);
    for id in ["s/0", "s/1", "s/1/0", "s/1/0/0", "s/1/0/0/0", "s/1/0/0/0/0"] {
        assert_eq!(status(id), CallStatus::Completed, "{id}");
    }
    assert_eq!(tree.descendants("s/0/0").len(), 3);
    assert_eq!(tree.ancestors("s/1/0/0/0/0").len(), 4);
    // The same tree from the journal, as a new process would read it.
    let events = journal(&orch, &exec).await;
    assert_eq!(
        &orchestrate_core::journal::CallTree::from_events(&events),
        &tree
    );
    let text = tree.to_text();
    assert!(text.contains("s/0/0 → level [terminated"), "{text}");
}

#[tokio::test]
async fn a_call_made_by_a_terminated_call_in_its_grace_period_does_not_run() {
    use orchestrate_core::journal::CallStatus;
    let gate = Arc::new(tokio::sync::Notify::new());
    let open = gate.clone();
    let leaf_runs = Arc::new(AtomicUsize::new(0));
    let runs = leaf_runs.clone();
    let orch = Orchestrator::builder()
        .agent(agent_fn("root", |_, ctx| async move {
            match ctx.call("stubborn", json!(null)).await {
                Err(Error::Terminated { call }) => Ok(json!(format!("{call} was stopped"))),
                other => Ok(json!(format!("{other:?}"))),
            }
        }))
        // Ignores its termination, then makes a call in its grace period.
        .agent(agent_fn("stubborn", move |_, ctx| {
            let gate = open.clone();
            async move {
                gate.notified().await;
                let leaf = ctx.call("leaf", json!(null)).await;
                Ok(json!(leaf.map_err(|e| e.code().to_owned())))
            }
        }))
        .agent(agent_fn("leaf", move |_, _| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move { Ok(json!("leaf ran")) }
        }))
        .default_policy(no_retries())
        .cancel_grace(Duration::from_secs(60))
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("root")).unwrap();
    let exec = orch.run(&wf, json!(null)).await.unwrap();
    while exec.view().calls().get("s/0").map(|c| c.status) != Some(CallStatus::Running) {
        tokio::task::yield_now().await;
    }
    orch.terminate(exec.id(), "s/0").unwrap();
    gate.notify_one();
    let done = exec.clone().await.unwrap();
    assert_eq!(done.output("s"), Some(&json!("s/0 was stopped")));
    assert_eq!(leaf_runs.load(Ordering::SeqCst), 0, "the leaf's agent ran");
    let leaf = done.calls().get("s/0/0").cloned().unwrap();
    assert_eq!(leaf.status, CallStatus::Terminated);
    assert_eq!(leaf.attempts, 0);
}

#[tokio::test]
async fn a_sub_workflow_runs_its_steps_as_calls_below_its_own() {
    let sub = WorkflowDef::builder("enrich")
        .step(StepDef::new("fetch", "fetch").input(json!("${input.url}")))
        .step(
            StepDef::new("parse", "parse")
                .depends_on(["fetch"])
                .input(json!({"page": "${steps.fetch.output}"})),
        )
        .step(
            StepDef::new("count", "count")
                .depends_on(["fetch"])
                .input(json!("${steps.fetch.output}")),
        )
        .build();
    let orch = Orchestrator::builder()
        .agent(agent_fn("boss", move |input, ctx| {
            let sub = sub.clone();
            async move {
                let first = ctx.call("count", json!("warm up")).await?;
                let enriched = ctx.run_workflow(&sub, json!({"url": input})).await?;
                Ok(json!({"first": first, "enriched": enriched}))
            }
        }))
        .agent(agent_fn("fetch", |url, _| async move {
            Ok(json!(format!(
                "<html>{}</html>",
                url.as_str().unwrap_or("")
            )))
        }))
        .agent(agent_fn("parse", |input, _| async move {
            Ok(json!({"title": input["page"].as_str().map(|p| p.len())}))
        }))
        .agent(agent_fn("count", |input, _| async move {
            Ok(json!(input.as_str().map_or(0, str::len)))
        }))
        .build()
        .unwrap();
    let wf = orch.bind(&one_step("boss")).unwrap();
    let exec = orch.run(&wf, json!("a.b")).await.unwrap();
    let done = exec.clone().await.unwrap();
    assert_eq!(
        done.output("s"),
        Some(&json!({
            "first": 7,
            "enriched": {"fetch": "<html>a.b</html>", "parse": {"title": 16}, "count": 16}
        }))
    );
    let tree = done.calls();
    let workflow = tree.get("s/1").unwrap();
    assert_eq!(&*workflow.agent, "workflow:enrich");
    let mut steps: Vec<&str> = tree.subordinates("s/1").iter().map(|c| &*c.id).collect();
    steps.sort();
    assert_eq!(steps, ["s/1/count", "s/1/fetch", "s/1/parse"]);
    assert_eq!(tree.get("s/1/parse").unwrap().depth, 2);

    // An invalid definition is a typed error before anything runs.
    let broken = WorkflowDef::builder("broken")
        .step(StepDef::new("a", "fetch").depends_on(["missing"]))
        .build();
    let orch2 = Orchestrator::builder()
        .agent(agent_fn("boss", move |_, ctx| {
            let broken = broken.clone();
            async move {
                match ctx.run_workflow(&broken, json!(null)).await {
                    Err(Error::Validation(e)) => Ok(json!(e.to_string())),
                    other => Ok(json!(format!("unexpected {other:?}"))),
                }
            }
        }))
        .agent(agent_fn("fetch", |_, _| async move { Ok(json!(1)) }))
        .build()
        .unwrap();
    let wf = orch2.bind(&one_step("boss")).unwrap();
    let done = orch2.run(&wf, json!(null)).await.unwrap().await.unwrap();
    assert!(done
        .output("s")
        .unwrap()
        .as_str()
        .unwrap()
        .contains("missing"));
}

#[tokio::test]
async fn a_long_caller_id_names_its_calls_whole() {
    let long = "x".repeat(120);
    let orch = Orchestrator::builder()
        .agent(agent_fn("parent", |_, ctx| async move {
            Ok(ctx.call("child", json!(null)).await?)
        }))
        .agent(agent_fn("child", |_, ctx| async move {
            Ok(json!(ctx.call_id()))
        }))
        .build()
        .unwrap();
    let wf = orch
        .bind(
            &WorkflowDef::builder("w")
                .step(StepDef::new(long.as_str(), "parent"))
                .build(),
        )
        .unwrap();
    let done = orch.run(&wf, json!(null)).await.unwrap().await.unwrap();
    assert_eq!(done.output(&long), Some(&json!(format!("{long}/0"))));
}
