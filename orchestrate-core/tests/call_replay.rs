//! Replay: a resumed execution runs its callers again; every call that had
//! ended returns its recorded result without running, a call that was
//! running runs again with the same idempotency key, and a call that
//! differs from its record fails its caller.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use orchestrate_core::journal::EventKind;
use orchestrate_core::resilience::RetryConfig;
use orchestrate_core::store::{MemoryStore, Store};
use orchestrate_core::{
    agent_fn, default_policy, AgentError, Error, ExecutionId, ExecutionStatus, Orchestrator,
};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::json;

/// Runs of each call, by idempotency key.
type Ledger = Arc<Mutex<HashMap<String, u32>>>;

fn count(ledger: &Ledger, key: &str) -> u32 {
    ledger.lock().unwrap().get(key).copied().unwrap_or(0)
}

/// A caller that asks `plan` for a choice, calls `flaky` (which fails for
/// good), falls back to `backup`, then calls `slow`; `slow` never returns
/// while `stall` is set, like a process about to die. With `direct` set,
/// the caller picks its first child from it, read behind the journal's back.
struct World {
    ledger: Ledger,
    stall: Arc<AtomicBool>,
    direct: Arc<AtomicBool>,
}

impl World {
    fn new() -> Self {
        Self {
            ledger: Ledger::default(),
            stall: Arc::new(AtomicBool::new(true)),
            direct: Arc::new(AtomicBool::new(false)),
        }
    }

    fn orchestrator(&self, store: Arc<dyn Store>) -> Orchestrator {
        let ledger = self.ledger.clone();
        let counted = move |name: &'static str| {
            let ledger = ledger.clone();
            move |key: String| {
                *ledger.lock().unwrap().entry(key).or_default() += 1;
                name
            }
        };
        let (plan, flaky, backup, slow) = (
            counted("plan"),
            counted("flaky"),
            counted("backup"),
            counted("slow"),
        );
        let (stall, direct) = (self.stall.clone(), self.direct.clone());
        Orchestrator::builder()
            .agent(agent_fn("caller", move |input, ctx| {
                let direct = direct.load(Ordering::SeqCst);
                async move {
                    let first = if direct { "backup" } else { "plan" };
                    let plan = ctx.call(first, input.clone()).await?;
                    let fixed = match ctx.call("flaky", plan.clone()).await {
                        Ok(v) => v,
                        Err(Error::CallFailed { cause, .. }) => {
                            ctx.call("backup", json!({"after": cause.code})).await?
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let last = ctx.call("slow", fixed.clone()).await?;
                    Ok(json!({"plan": plan, "fixed": fixed, "last": last}))
                }
            }))
            .agent(agent_fn("plan", move |input, ctx| {
                plan(ctx.idempotency_key());
                async move { Ok(json!({"steps": input})) }
            }))
            .agent(agent_fn("flaky", move |_, ctx| {
                flaky(ctx.idempotency_key());
                async move { Err(AgentError::permanent("flaky is down")) }
            }))
            .agent(agent_fn("backup", move |input, ctx| {
                backup(ctx.idempotency_key());
                async move { Ok(json!({"backup": input})) }
            }))
            .agent(agent_fn("slow", move |input, ctx| {
                slow(ctx.idempotency_key());
                let stall = stall.load(Ordering::SeqCst);
                async move {
                    if stall {
                        std::future::pending::<()>().await;
                    }
                    Ok(json!({"slow": input}))
                }
            }))
            .default_policy(default_policy().retry(RetryConfig::attempts(1)))
            .store(store)
            .workflow(
                WorkflowDef::builder("calls")
                    .step(StepDef::new("s", "caller").input(json!("${input}")))
                    .build(),
            )
            .build()
            .unwrap()
    }

    /// Runs on a runtime of its own until `slow` runs, then drops that
    /// runtime: every task dies mid-flight, as in a killed process.
    fn run_and_crash(&self, store: Arc<dyn Store>) -> ExecutionId {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let id = rt.block_on(async {
            let orch = self.orchestrator(store);
            let exec = orch
                .run(&orch.workflow("calls").unwrap(), json!(3))
                .await
                .unwrap();
            let key = format!("{}/s/3", exec.id());
            while count(&self.ledger, &key) == 0 {
                tokio::task::yield_now().await;
            }
            exec.id().clone()
        });
        drop(rt);
        id
    }
}

/// A runtime for what follows a crash (the tests are plain functions: a
/// crash drops a runtime of its own, which cannot happen inside another).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs workflow `workflow` of the orchestrator `build` makes over `store`
/// on a runtime of its own until call `call` has started (its start is in
/// the journal), then drops that runtime, as a killed process would stop.
/// Returns the execution and its journal at that moment.
fn crash_once_started(
    store: &Arc<dyn Store>,
    build: impl FnOnce(Arc<dyn Store>) -> Orchestrator,
    workflow: &str,
    options: orchestrate_core::RunOptions,
    call: &str,
) -> (ExecutionId, Vec<orchestrate_core::journal::Event>) {
    let rt = runtime();
    let found = rt.block_on(async {
        let orch = build(store.clone());
        let exec = orch
            .run_with(&orch.workflow(workflow).unwrap(), json!(null), options)
            .await
            .unwrap();
        loop {
            let events = store.load(exec.id(), 0).await.unwrap_or_default();
            let started = events
                .iter()
                .any(|e| matches!(&e.kind, EventKind::CallStarted(s) if &*s.call == call));
            if started {
                break (exec.id().clone(), events);
            }
            tokio::task::yield_now().await;
        }
    });
    drop(rt);
    found
}

#[test]
fn ended_calls_are_replayed_and_the_running_one_runs_again() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let world = World::new();
    let id = world.run_and_crash(store.clone());
    let key = |call: &str| format!("{id}/{call}");
    assert_eq!(
        (
            count(&world.ledger, &key("s/0")),
            count(&world.ledger, &key("s/1")),
            count(&world.ledger, &key("s/2")),
            count(&world.ledger, &key("s/3"))
        ),
        (1, 1, 1, 1)
    );

    world.stall.store(false, Ordering::SeqCst);
    let orch = world.orchestrator(store.clone());
    let rt = runtime();
    let view = rt.block_on(async { orch.resume(&id).await.unwrap().wait().await.unwrap() });
    assert_eq!(view.status(), ExecutionStatus::Succeeded);
    assert_eq!(
        view.output("s"),
        Some(&json!({
            "plan": {"steps": 3},
            "fixed": {"backup": {"after": "agent"}},
            "last": {"slow": {"backup": {"after": "agent"}}}
        })),
        "the result of an uninterrupted run"
    );
    // The plan, the failure and the fallback were replayed; only the call
    // in flight ran again, under the same key.
    assert_eq!(
        (
            count(&world.ledger, &key("s/0")),
            count(&world.ledger, &key("s/1")),
            count(&world.ledger, &key("s/2")),
            count(&world.ledger, &key("s/3"))
        ),
        (1, 1, 1, 2)
    );
    let events = rt.block_on(store.load(&id, 0)).unwrap();
    let starts: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallStarted(start) => Some(&*start.call),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        ["s/0", "s/1", "s/2", "s/3"],
        "no call started twice"
    );
}

#[test]
fn a_caller_that_decides_differently_on_replay_fails_naming_the_call() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let world = World::new();
    let id = world.run_and_crash(store.clone());

    // The caller now reads its choice from outside the journal.
    world.direct.store(true, Ordering::SeqCst);
    world.stall.store(false, Ordering::SeqCst);
    let orch = world.orchestrator(store.clone());
    let (err, view) = runtime().block_on(async {
        let err = orch.resume(&id).await.unwrap().wait().await.unwrap_err();
        (err, orch.execution(&id).await.unwrap().view())
    });
    assert_eq!(view.status(), ExecutionStatus::Failed);
    let step = view.step("s").unwrap();
    let cause = step.error.as_ref().unwrap();
    assert_eq!(cause.code, "non_deterministic", "{err}");
    assert!(cause.message.contains("call `s/0`"), "{}", cause.message);
    assert!(
        cause.message.contains("recorded agent `plan`")
            && cause.message.contains("now agent `backup`"),
        "{}",
        cause.message
    );
    // The differing call never ran.
    assert_eq!(count(&world.ledger, &format!("{id}/s/0")), 1);
}

#[test]
fn a_caller_that_swallows_a_divergence_still_fails() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let flag = Arc::new(AtomicBool::new(false));
    let stall = Arc::new(AtomicBool::new(true));
    let build = |store: Arc<dyn Store>| {
        let (flag, stall) = (flag.clone(), stall.clone());
        Orchestrator::builder()
            .agent(agent_fn("caller", move |_, ctx| {
                let pick = if flag.load(Ordering::SeqCst) {
                    "b"
                } else {
                    "a"
                };
                async move {
                    // Whatever the call says, carry on.
                    let first = ctx
                        .call(pick, json!(null))
                        .await
                        .unwrap_or(json!("ignored"));
                    let second = ctx.call("wait", json!(null)).await?;
                    Ok(json!([first, second]))
                }
            }))
            .agent(agent_fn("a", |_, _| async move { Ok(json!("a")) }))
            .agent(agent_fn("b", |_, _| async move { Ok(json!("b")) }))
            .agent(agent_fn("wait", move |_, _| {
                let stall = stall.load(Ordering::SeqCst);
                async move {
                    if stall {
                        std::future::pending::<()>().await;
                    }
                    Ok(json!("done"))
                }
            }))
            .store(store)
            .workflow(
                WorkflowDef::builder("swallow")
                    .step(StepDef::new("s", "caller"))
                    .build(),
            )
            .build()
            .unwrap()
    };
    // Until the second call has started.
    let (id, _) = crash_once_started(&store, build, "swallow", Default::default(), "s/1");
    flag.store(true, Ordering::SeqCst);
    stall.store(false, Ordering::SeqCst);
    let orch = build(store);
    let err =
        runtime().block_on(async { orch.resume(&id).await.unwrap().wait().await.unwrap_err() });
    assert_eq!(err.code(), "non_deterministic", "{err}");
}

#[test]
fn the_clock_randomness_and_outside_reads_are_replayed() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let stall = Arc::new(AtomicBool::new(true));
    let reads = Arc::new(Mutex::new(0u32));
    let build = |store: Arc<dyn Store>| {
        let (stall, reads) = (stall.clone(), reads.clone());
        Orchestrator::builder()
            .agent(agent_fn("decider", move |_, ctx| {
                let reads = reads.clone();
                async move {
                    let at = ctx.now().await?;
                    let dice = ctx.random_u64().await?;
                    let outside: u32 = ctx
                        .side_effect("outside", async {
                            let mut n = reads.lock().unwrap();
                            *n += 1;
                            *n
                        })
                        .await?;
                    let pick = if dice % 2 == 0 { "even" } else { "odd" };
                    let picked = ctx.call(pick, json!(null)).await?;
                    let last = ctx.call("wait", json!(null)).await?;
                    let at = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
                    Ok(json!({"at": at, "dice": dice, "outside": outside, "picked": picked, "last": last}))
                }
            }))
            .agent(agent_fn("even", |_, _| async move { Ok(json!("even")) }))
            .agent(agent_fn("odd", |_, _| async move { Ok(json!("odd")) }))
            .agent(agent_fn("wait", move |_, _| {
                let stall = stall.load(Ordering::SeqCst);
                async move {
                    if stall {
                        std::future::pending::<()>().await;
                    }
                    Ok(json!("done"))
                }
            }))
            .store(store)
            .workflow(WorkflowDef::builder("effects").step(StepDef::new("s", "decider")).build())
            .build()
            .unwrap()
    };
    let (id, events) = crash_once_started(&store, build, "effects", Default::default(), "s/4");
    let recorded: Vec<serde_json::Value> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SideEffect { value, .. } => Some((**value).clone()),
            _ => None,
        })
        .collect();
    assert_eq!(recorded.len(), 3);
    stall.store(false, Ordering::SeqCst);
    let orch = build(store);
    let view = runtime().block_on(async { orch.resume(&id).await.unwrap().wait().await.unwrap() });
    let out = view.output("s").unwrap();
    assert_eq!(out["at"], recorded[0]);
    assert_eq!(out["dice"], recorded[1]);
    assert_eq!(out["outside"], json!(1), "the outside read ran once");
    assert_eq!(*reads.lock().unwrap(), 1);
    let parity = if recorded[1].as_u64().unwrap() % 2 == 0 {
        "even"
    } else {
        "odd"
    };
    assert_eq!(out["picked"], json!(parity));
}

#[test]
fn a_resumed_attempt_does_not_pay_its_budget_twice() {
    use orchestrate_core::budget::{Budget, ROOT};
    use orchestrate_core::RunOptions;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let stall = Arc::new(AtomicBool::new(true));
    let build = |store: Arc<dyn Store>| {
        let stall = stall.clone();
        Orchestrator::builder()
            .agent(agent_fn("spender", |_, ctx| async move {
                // 60 of 100, then a call that was running at the crash:
                // resumed, the 60 must not count again (120 > 100).
                ctx.consume(60)?;
                let waited = ctx.call("wait", json!(null)).await?;
                ctx.consume(30)?;
                Ok(json!([waited, ctx.budget().and_then(|b| b.available)]))
            }))
            .agent(agent_fn("wait", move |_, _| {
                let stall = stall.load(Ordering::SeqCst);
                async move {
                    if stall {
                        std::future::pending::<()>().await;
                    }
                    Ok(json!("waited"))
                }
            }))
            .store(store)
            .workflow(
                WorkflowDef::builder("pay")
                    .step(StepDef::new("s", "spender"))
                    .build(),
            )
            .build()
            .unwrap()
    };
    let options = RunOptions {
        budget: Some(Budget::new(100, "tokens")),
        ..RunOptions::default()
    };
    let (id, _) = crash_once_started(&store, build, "pay", options, "s/0");
    stall.store(false, Ordering::SeqCst);
    let orch = build(store);
    let view = runtime().block_on(async { orch.resume(&id).await.unwrap().wait().await.unwrap() });
    assert_eq!(view.output("s"), Some(&json!(["waited", 10])));
    assert_eq!(view.calls().budget(ROOT).unwrap().consumed, 90);
}
