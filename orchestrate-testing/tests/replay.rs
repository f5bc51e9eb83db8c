//! The replay checker catches agents whose calls depend on something read
//! behind the journal's back, and passes those that read it through their
//! context.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use orchestrate_core::{agent_fn, Orchestrator, OrchestratorBuilder};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_testing::replay::{check_replay, Divergence};
use serde_json::json;

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Waits (on the real clock, which is what the agents read) until `deadline`
/// has passed.
async fn wait_past(deadline: u64) {
    while micros_now() <= deadline {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// A planner that calls `early` before `deadline` (µs since the epoch) and
/// `late` after it, reading the time through its context when
/// `through_context`, from the system clock otherwise.
fn builder(deadline: u64, through_context: bool) -> OrchestratorBuilder {
    Orchestrator::builder()
        .agent(agent_fn("planner", move |_, ctx| async move {
            let now = if through_context {
                ctx.now().await?
            } else {
                SystemTime::now()
            };
            let micros = now.duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
            let helper = if micros < deadline { "early" } else { "late" };
            let first = ctx.call(helper, json!(1)).await?;
            let second = ctx.call("late", first.clone()).await?;
            Ok(json!([first, second]))
        }))
        .agent(agent_fn(
            "early",
            |n, _| async move { Ok(json!({"early": n})) },
        ))
        .agent(agent_fn(
            "late",
            |n, _| async move { Ok(json!({"late": n})) },
        ))
        .workflow(
            WorkflowDef::builder("plan")
                .step(StepDef::new("plan", "planner"))
                .step(
                    StepDef::new("after", "late")
                        .depends_on(["plan"])
                        .input(json!("${steps.plan.output}")),
                )
                .build(),
        )
}

async fn run_once(
    deadline: u64,
    through_context: bool,
) -> (Orchestrator, orchestrate_core::ExecutionId) {
    let orch = builder(deadline, through_context).build().unwrap();
    let exec = orch
        .run(&orch.workflow("plan").unwrap(), json!(null))
        .await
        .unwrap();
    exec.clone().await.unwrap();
    (orch, exec.id().clone())
}

#[tokio::test]
async fn an_agent_that_reads_the_clock_directly_is_caught() {
    // The run is over well before the deadline.
    let deadline = micros_now() + 20_000;
    let (orch, id) = run_once(deadline, false).await;
    // A planner that decides as the run did replays cleanly.
    let checked = check_replay(&**orch.store(), &id, builder(u64::MAX, false))
        .await
        .unwrap();
    assert_eq!(
        checked,
        orchestrate_testing::replay::ReplayCheck { steps: 2, calls: 2 }
    );

    // Past the deadline, the clock says otherwise and the planner calls
    // someone else.
    wait_past(deadline).await;
    match check_replay(&**orch.store(), &id, builder(deadline, false)).await {
        Err(Divergence::Call {
            step,
            call,
            recorded,
            now,
        }) => {
            assert_eq!((step.as_str(), call.as_str()), ("plan", "plan/0"));
            assert!(recorded.contains("agent `early`"), "{recorded}");
            assert!(now.contains("agent `late`"), "{now}");
        }
        other => panic!("expected a divergence at plan/0, got {other:?}"),
    }
}

#[tokio::test]
async fn an_agent_that_reads_the_clock_through_its_context_replays() {
    let deadline = micros_now() + 20_000;
    let (orch, id) = run_once(deadline, true).await;
    wait_past(deadline).await;
    let checked = check_replay(&**orch.store(), &id, builder(deadline, true))
        .await
        .unwrap();
    // The clock read, and the two calls.
    assert_eq!(checked.calls, 3);
}

#[tokio::test]
async fn a_call_the_journal_does_not_hold_and_another_output_are_divergences() {
    let extra = Arc::new(AtomicU64::new(0));
    let build = |extra: Arc<AtomicU64>| {
        Orchestrator::builder()
            .agent(agent_fn("caller", move |_, ctx| {
                let extra = extra.load(Ordering::SeqCst);
                async move {
                    let mut out = vec![ctx.call("echo", json!(1)).await?];
                    for n in 0..extra {
                        out.push(ctx.call("echo", json!(n)).await?);
                    }
                    Ok(json!(out))
                }
            }))
            .agent(agent_fn("echo", |n, _| async move { Ok(n) }))
            .workflow(
                WorkflowDef::builder("w")
                    .step(StepDef::new("s", "caller"))
                    .build(),
            )
    };
    let orch = build(extra.clone()).build().unwrap();
    let exec = orch
        .run(&orch.workflow("w").unwrap(), json!(null))
        .await
        .unwrap();
    exec.clone().await.unwrap();
    extra.store(1, Ordering::SeqCst);
    match check_replay(&**orch.store(), exec.id(), build(extra.clone())).await {
        Err(Divergence::Call { call, recorded, .. }) => {
            assert_eq!(call, "s/1");
            assert_eq!(recorded, "no such call");
        }
        other => panic!("expected a divergence at s/1, got {other:?}"),
    }
    // An output that differs with the same calls.
    let orch = Orchestrator::builder()
        .agent(agent_fn("flip", |_, _| async move {
            Ok(json!(SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                .to_string()))
        }))
        .workflow(
            WorkflowDef::builder("f")
                .step(StepDef::new("s", "flip"))
                .build(),
        )
        .build()
        .unwrap();
    let exec = orch
        .run(&orch.workflow("f").unwrap(), json!(null))
        .await
        .unwrap();
    exec.clone().await.unwrap();
    let again = Orchestrator::builder()
        .agent(agent_fn("flip", |_, _| async move { Ok(json!("another")) }))
        .workflow(
            WorkflowDef::builder("f")
                .step(StepDef::new("s", "flip"))
                .build(),
        );
    assert!(matches!(
        check_replay(&**orch.store(), exec.id(), again).await,
        Err(Divergence::Output { step, .. }) if step == "s"
    ));
}

#[tokio::test]
async fn an_attempt_that_makes_fewer_calls_with_the_same_output_is_a_divergence() {
    // `calls` calls of `echo`, whose outputs are dropped: the output is
    // the same however many were made.
    let build = |calls: Arc<AtomicU64>| {
        Orchestrator::builder()
            .agent(agent_fn("caller", move |_, ctx| {
                let calls = calls.load(Ordering::SeqCst);
                async move {
                    for n in 0..calls {
                        ctx.call("echo", json!(n)).await?;
                    }
                    Ok(json!("done"))
                }
            }))
            .agent(agent_fn("echo", |n, _| async move { Ok(n) }))
            .workflow(
                WorkflowDef::builder("w")
                    .step(StepDef::new("s", "caller"))
                    .build(),
            )
    };
    let calls = Arc::new(AtomicU64::new(3));
    let orch = build(calls.clone()).build().unwrap();
    let exec = orch
        .run(&orch.workflow("w").unwrap(), json!(null))
        .await
        .unwrap();
    exec.clone().await.unwrap();
    let checked = check_replay(&**orch.store(), exec.id(), build(calls.clone()))
        .await
        .unwrap();
    assert_eq!(checked.calls, 3);
    calls.store(2, Ordering::SeqCst);
    match check_replay(&**orch.store(), exec.id(), build(calls.clone())).await {
        Err(Divergence::Call {
            call,
            recorded,
            now,
            ..
        }) => {
            assert_eq!(call, "s/2");
            assert!(recorded.starts_with("agent `echo`"), "{recorded}");
            assert!(now.contains("ended first"), "{now}");
        }
        other => panic!("expected a divergence at s/2, got {other:?}"),
    }
}

#[tokio::test]
async fn an_attempt_that_takes_fewer_keys_with_the_same_output_is_a_divergence() {
    // Keyed calls of `echo` and one decision, in no set order; `skip`
    // leaves out key `k1` and decision `pick:k1`.
    use orchestrate_core::CallOptions;
    let build = |skip: bool| {
        Orchestrator::builder()
            .agent(agent_fn("caller", move |_, ctx| async move {
                for key in ["k2", "k0", "k1"] {
                    if skip && key == "k1" {
                        continue;
                    }
                    ctx.call_with("echo", json!(key), CallOptions::new().key(key))
                        .await?;
                    ctx.decide("pick", key, || key.len())?;
                }
                Ok(json!("done"))
            }))
            .agent(agent_fn("echo", |n, _| async move { Ok(n) }))
            .workflow(
                WorkflowDef::builder("w")
                    .step(StepDef::new("s", "caller"))
                    .build(),
            )
    };
    let orch = build(false).build().unwrap();
    let exec = orch
        .run(&orch.workflow("w").unwrap(), json!(null))
        .await
        .unwrap();
    exec.clone().await.unwrap();
    let checked = check_replay(&**orch.store(), exec.id(), build(false))
        .await
        .unwrap();
    assert_eq!(checked.calls, 6);
    match check_replay(&**orch.store(), exec.id(), build(true)).await {
        Err(Divergence::Call { call, now, .. }) => {
            assert_eq!(call, "s/k1");
            assert!(now.contains("not taken"), "{now}");
        }
        other => panic!("expected a divergence at s/k1, got {other:?}"),
    }
}

#[tokio::test]
async fn a_terminated_call_replays_as_terminated() {
    let builder = || {
        Orchestrator::builder()
            .agent(agent_fn("boss", |_, ctx| async move {
                match ctx.call("slow", json!(null)).await {
                    Err(orchestrate_core::Error::Terminated { call }) => {
                        Ok(json!(format!("{call} stopped")))
                    }
                    other => Ok(json!(format!("{other:?}"))),
                }
            }))
            .agent(agent_fn("slow", |_, ctx| async move {
                ctx.cancelled().await;
                Ok(json!("never"))
            }))
            .workflow(
                WorkflowDef::builder("t")
                    .step(StepDef::new("s", "boss"))
                    .build(),
            )
    };
    let orch = builder().build().unwrap();
    let exec = orch
        .run(&orch.workflow("t").unwrap(), json!(null))
        .await
        .unwrap();
    while exec.view().calls().get("s/0").is_none() {
        tokio::task::yield_now().await;
    }
    orch.terminate(exec.id(), "s/0").unwrap();
    let done = exec.clone().await.unwrap();
    assert_eq!(done.output("s"), Some(&json!("s/0 stopped")));
    let checked = check_replay(&**orch.store(), exec.id(), builder())
        .await
        .unwrap();
    assert_eq!(checked.calls, 1);
}

#[tokio::test]
async fn a_call_refused_for_its_budget_replays_refused() {
    use orchestrate_core::CallOptions;
    let builder = || {
        Orchestrator::builder()
            .agent(agent_fn("boss", |_, ctx| async move {
                let first = ctx
                    .call_with("spend", json!(40), CallOptions::new().budget(50))
                    .await?;
                // More than is left now; after `spend` returns its unused
                // 10 the books differ, and the refusal must replay anyway.
                let second = ctx
                    .call_with("spend", json!(1), CallOptions::new().budget(65))
                    .await;
                // The refusal replays typed, with the numbers of the run.
                let refused = match second {
                    Err(orchestrate_core::Error::BudgetExceeded(o)) => {
                        json!([o.asked, o.available])
                    }
                    other => json!(format!("{other:?}")),
                };
                Ok(json!([first, refused]))
            }))
            .agent(agent_fn("spend", |n, ctx| async move {
                ctx.consume(n.as_u64().unwrap_or(0))?;
                Ok(n)
            }))
            .workflow(
                WorkflowDef::builder("b")
                    .step(StepDef::new("s", "boss"))
                    .build(),
            )
    };
    let output = run_with_100_tokens_then_replay(builder, "b").await;
    assert_eq!(output, json!([40, [65, 60]]));
}

#[tokio::test]
async fn a_step_that_consumes_its_budget_replays_without_paying_twice() {
    let builder = || {
        Orchestrator::builder()
            .agent(agent_fn("spender", |_, ctx| async move {
                ctx.consume(60)?;
                let child = ctx.call("child", json!(null)).await?;
                Ok(json!([child, ctx.budget().and_then(|b| b.available)]))
            }))
            .agent(agent_fn("child", |_, ctx| async move {
                ctx.consume(30)?;
                Ok(json!("child"))
            }))
            .workflow(
                WorkflowDef::builder("p")
                    .step(StepDef::new("s", "spender"))
                    .build(),
            )
    };
    let output = run_with_100_tokens_then_replay(builder, "p").await;
    assert_eq!(output, json!(["child", 10]));
}

#[tokio::test]
async fn a_sub_workflow_whose_steps_are_named_like_numbers_replays_strictly() {
    use orchestrate_core::journal::EventKind;
    use orchestrate_core::store::{MemoryStore, Store};

    // Step "0" of the sub-workflow is call `s/0/0`, the id a numbered
    // call would have: strict replay must not take it for one.
    let inner = WorkflowDef::builder("inner")
        .step(StepDef::new("0", "echo").input(json!("${input}")))
        .build();
    let builder = move || {
        let inner = inner.clone();
        Orchestrator::builder()
            .agent(agent_fn("parent", move |input, ctx| {
                let inner = inner.clone();
                async move { Ok(ctx.run_workflow(&inner, input).await?) }
            }))
            .agent(agent_fn("echo", |n, _| async move { Ok(n) }))
            .workflow(
                WorkflowDef::builder("w")
                    .step(StepDef::new("s", "parent").input(json!("${input}")))
                    .build(),
            )
    };
    let orch = builder().build().unwrap();
    let exec = orch
        .run(&orch.workflow("w").unwrap(), json!(7))
        .await
        .unwrap();
    let done = exec.clone().await.unwrap();
    // As if the process had stopped while the sub-workflow ran: its end,
    // the step's and the execution's are not in the journal, so the
    // sub-workflow runs again, its step replayed from the record.
    let events = orch.store().load(exec.id(), 0).await.unwrap();
    let kept: Vec<_> = events
        .into_iter()
        .filter(|e| {
            !matches!(&e.kind,
                EventKind::CallCompleted { call, .. } if &**call == "s/0")
                && !matches!(
                    e.kind,
                    EventKind::StepSucceeded { .. } | EventKind::ExecutionFinished { .. }
                )
        })
        .enumerate()
        .map(|(seq, mut e)| {
            e.seq = seq as u64;
            e
        })
        .collect();
    let store = Arc::new(MemoryStore::new());
    store.append(exec.id(), &kept).await.unwrap();
    let again = builder().store(store).strict_replay(true).build().unwrap();
    let resumed = again.resume(exec.id()).await.unwrap().await.unwrap();
    assert_eq!(resumed.output("s"), done.output("s"));
    assert_eq!(resumed.output("s"), Some(&json!({"0": 7})));
}

/// Runs `workflow` (whose step `s` is checked) with a root budget of 100
/// tokens, checks that it replays, and returns step `s`'s output.
async fn run_with_100_tokens_then_replay(
    builder: impl Fn() -> OrchestratorBuilder,
    workflow: &str,
) -> serde_json::Value {
    use orchestrate_core::budget::Budget;
    use orchestrate_core::RunOptions;
    let orch = builder().build().unwrap();
    let options = RunOptions {
        budget: Some(Budget::new(100, "tokens")),
        ..RunOptions::default()
    };
    let exec = orch
        .run_with(&orch.workflow(workflow).unwrap(), json!(null), options)
        .await
        .unwrap();
    let done = exec.clone().await.unwrap();
    check_replay(&**orch.store(), exec.id(), builder())
        .await
        .unwrap();
    done.output("s").cloned().unwrap_or_default()
}

/// A router that sends task after task to the next of two agents, from a
/// counter shared by every run: `decided` takes the pick through the
/// context's `decide`, otherwise it is read behind the journal's back.
fn routing(counter: Arc<AtomicU64>, decided: bool) -> OrchestratorBuilder {
    Orchestrator::builder()
        .agent(agent_fn("route", move |task, ctx| {
            let counter = counter.clone();
            async move {
                let pick = || {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    if n % 2 == 0 { "left" } else { "right" }.to_owned()
                };
                let agent: String = if decided {
                    ctx.decide("route", "task", pick)?
                } else {
                    pick()
                };
                Ok(ctx.call(&agent, task).await?)
            }
        }))
        .agent(agent_fn("left", |_, _| async move { Ok(json!("left")) }))
        .agent(agent_fn("right", |_, _| async move { Ok(json!("right")) }))
        .workflow(
            WorkflowDef::builder("route")
                .step(StepDef::new("s", "route").input(json!("${input}")))
                .build(),
        )
}

#[tokio::test]
async fn a_choice_taken_through_decide_replays_and_one_read_behind_the_journal_is_caught() {
    for decided in [true, false] {
        let counter = Arc::new(AtomicU64::new(0));
        let orch = routing(counter.clone(), decided).build().unwrap();
        let run = orch
            .run(&orch.workflow("route").unwrap(), json!(1))
            .await
            .unwrap();
        run.clone().await.unwrap();
        // The counter moved on: a fresh pick would now go the other way.
        let checked = check_replay(&**orch.store(), run.id(), routing(counter, decided)).await;
        match (decided, checked) {
            (true, Ok(check)) => assert_eq!(check.calls, 2, "the decision and the call"),
            (
                false,
                Err(Divergence::Call {
                    call,
                    recorded,
                    now,
                    ..
                }),
            ) => {
                assert_eq!(call, "s/0");
                assert!(
                    recorded.contains("`left`") && now.contains("`right`"),
                    "{recorded} / {now}"
                );
            }
            (decided, other) => panic!("decided {decided}: {other:?}"),
        }
    }
}
