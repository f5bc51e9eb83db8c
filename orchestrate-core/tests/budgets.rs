//! Budgets through the orchestrator: an execution's budget, allocations to
//! calls, consumption that bubbles up, overruns refused before anything
//! runs, remainders returned, thresholds journaled, all read back from the
//! journal.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use orchestrate_core::budget::{Balance, Budget, ROOT};
use orchestrate_core::journal::{CallStatus, EventKind};
use orchestrate_core::store::{MemoryStore, Store};
use orchestrate_core::{agent_fn, Call, CallOptions, Error, Execution, Orchestrator, RunOptions};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::json;

#[tokio::test]
async fn a_branch_that_overruns_is_stopped_while_the_others_finish() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let greedy_runs = Arc::new(AtomicUsize::new(0));
    let counted = greedy_runs.clone();
    let orch = Orchestrator::builder()
        .agent(agent_fn("planner", |_, ctx| async move {
            let branches = (0..4).map(|n| {
                Call::new("researcher", json!(if n == 2 { 3 } else { 1 }))
                    .with_options(CallOptions::new().budget(250))
            });
            let results = ctx.call_all(branches).await;
            let finished = results.iter().filter(|r| r.is_ok()).count();
            // More than is left: refused before the child runs.
            let greedy = ctx
                .call_with("greedy", json!(null), CallOptions::new().budget(600))
                .await;
            // Typed: who asked, whose budget, how much, how much was left.
            let refused = match greedy {
                Err(Error::BudgetExceeded(o)) => {
                    json!([o.node.as_ref(), o.bank.as_ref(), o.asked, o.available])
                }
                other => json!(format!("{other:?}")),
            };
            Ok(json!({"finished": finished, "refused": refused, "left": ctx.budget().and_then(|b| b.available)}))
        }))
        .agent(agent_fn("researcher", |rounds, ctx| async move {
            let given = ctx.budget().and_then(|b| b.allocated);
            for _ in 0..rounds.as_u64().unwrap_or(0) {
                ctx.consume(100)?;
            }
            Ok(json!({"given": given}))
        }))
        .agent(agent_fn("greedy", move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { Ok(json!(null)) }
        }))
        .store(store.clone())
        .workflow(
            WorkflowDef::builder("research")
                .step(StepDef::new("plan", "planner"))
                .build(),
        )
        .build()
        .unwrap();
    let options = RunOptions {
        budget: Some(Budget::new(1_000, "tokens")),
        ..RunOptions::default()
    };
    let exec = orch
        .run_with(&orch.workflow("research").unwrap(), json!(null), options)
        .await
        .unwrap();
    let done = exec.clone().await.unwrap();
    assert_eq!(
        done.output("plan"),
        Some(&json!({"finished": 3, "refused": ["plan/4", "", 600, 500], "left": 500}))
    );
    assert_eq!(
        greedy_runs.load(Ordering::SeqCst),
        0,
        "refused before it ran"
    );

    let tree = done.calls();
    let overrun = tree.get("plan/2").unwrap();
    assert_eq!(overrun.status, CallStatus::Failed);
    assert!(overrun.error.as_ref().unwrap().message.contains("budget"));
    // Its agent passed the refused consumption on with `?`: the call's
    // failure still says what was refused.
    assert_eq!(
        overrun.error.as_ref().unwrap().overrun.as_deref(),
        Some(&orchestrate_core::budget::Overrun::new(
            "plan/2", "plan/2", 100, 50
        ))
    );
    assert_eq!(
        tree.budget("plan/2").unwrap(),
        // Ended: what it did not use went back.
        Balance {
            allocated: Some(250),
            consumed: 200,
            held: 0,
            available: Some(0)
        }
    );
    assert_eq!(
        tree.budget(ROOT).unwrap(),
        Balance {
            allocated: Some(1_000),
            consumed: 500,
            held: 0,
            available: Some(500)
        }
    );
    assert_eq!(tree.budget("plan").unwrap().consumed, 500);
    // A refused call is journaled as refused, never run.
    let refused = tree.get("plan/4").unwrap();
    assert_eq!(refused.status, CallStatus::Failed);
    assert_eq!(refused.error.as_ref().unwrap().code, "budget_exceeded");
    let recorded = refused.error.as_ref().unwrap().overrun.clone().unwrap();
    assert_eq!((recorded.asked, recorded.available), (600, 500));
    assert_eq!(refused.attempts, 0);

    // Thresholds, each once: the overrunning branch's 50 % and 80 %, the
    // execution's 50 %.
    let events = store.load(exec.id(), 0).await.unwrap();
    let mut thresholds: Vec<(String, u8)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::BudgetThreshold { call, percent } => Some((call.to_string(), *percent)),
            _ => None,
        })
        .collect();
    thresholds.sort();
    assert_eq!(
        thresholds,
        [
            ("".to_owned(), 50),
            ("plan/2".to_owned(), 50),
            ("plan/2".to_owned(), 80)
        ]
    );
    // The call tree shows the budgets.
    let text = tree.to_text();
    let line = text.lines().find(|l| l.starts_with("plan/2 ")).unwrap();
    assert!(line.ends_with("budget 200/250 used, 0 left"), "{text}");

    // A fresh process reads the same budgets from the journal.
    let again = Orchestrator::builder()
        .store(store.clone())
        .build()
        .unwrap();
    let view = again.execution(exec.id()).await.unwrap().view();
    assert_eq!(view.calls().budget(ROOT), tree.budget(ROOT));
    assert_eq!(view.calls().budget("plan/2"), tree.budget("plan/2"));
}

#[tokio::test]
async fn without_a_budget_consumption_is_counted_and_never_refused() {
    let orch = Orchestrator::builder()
        .agent(agent_fn("spender", |_, ctx| async move {
            ctx.consume(1 << 40)?;
            let child = ctx.call("spender2", json!(null)).await?;
            Ok(json!({"child": child, "mine": ctx.budget().map(|b| b.consumed)}))
        }))
        .agent(agent_fn("spender2", |_, ctx| async move {
            ctx.consume(5)?;
            Ok(json!(ctx.budget().and_then(|b| b.available)))
        }))
        .build()
        .unwrap();
    let wf = orch
        .bind(
            &WorkflowDef::builder("w")
                .step(StepDef::new("s", "spender"))
                .build(),
        )
        .unwrap();
    let done = orch.run(&wf, json!(null)).await.unwrap().await.unwrap();
    assert_eq!(
        done.output("s"),
        Some(&json!({"child": null, "mine": (1u64 << 40) + 5}))
    );
    assert_eq!(done.calls().budget(ROOT).unwrap().consumed, (1 << 40) + 5);
}

#[tokio::test]
async fn thresholds_are_configurable() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let orch = Orchestrator::builder()
        .agent(agent_fn("spend", |_, ctx| async move {
            for _ in 0..10 {
                ctx.consume(10)?;
            }
            Ok(json!(null))
        }))
        .budget_thresholds([90, 25])
        .store(store.clone())
        .build()
        .unwrap();
    let exec = run_step_with_100(&orch, "spend", "cents").await;
    exec.clone().await.unwrap();
    let percents: Vec<u8> = store
        .load(exec.id(), 0)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::BudgetThreshold { percent, .. } => Some(*percent),
            _ => None,
        })
        .collect();
    assert_eq!(percents, [25, 90]);
}

#[tokio::test]
async fn a_call_its_caller_gives_up_on_returns_its_budget_and_is_journaled_cancelled() {
    let orch = Orchestrator::builder()
        .agent(agent_fn("impatient", |_, ctx| async move {
            let slow = ctx.call_with("slow", json!(null), CallOptions::new().budget(50));
            let fast = ctx.call("fast", json!(null));
            // The fast one wins; the slow one's future is dropped.
            let winner = tokio::select! {
                biased;
                r = fast => r?,
                r = slow => r?,
            };
            Ok(json!({"winner": winner, "left": ctx.budget().and_then(|b| b.available)}))
        }))
        .agent(agent_fn("slow", |_, ctx| async move {
            ctx.consume(10)?;
            std::future::pending::<()>().await;
            Ok(json!("slow"))
        }))
        .agent(agent_fn("fast", |_, _| async move {
            tokio::task::yield_now().await;
            Ok(json!("fast"))
        }))
        .build()
        .unwrap();
    let exec = run_step_with_100(&orch, "impatient", "tokens").await;
    let done = exec.clone().await.unwrap();
    assert_eq!(
        done.output("s"),
        Some(&json!({"winner": "fast", "left": 90}))
    );
    let tree = done.calls();
    assert_eq!(tree.get("s/0").unwrap().status, CallStatus::Cancelled);
    assert_eq!(
        tree.budget(ROOT).unwrap(),
        Balance {
            allocated: Some(100),
            consumed: 10,
            held: 0,
            available: Some(90)
        }
    );
}

#[tokio::test]
async fn a_refusal_two_calls_down_still_says_what_was_refused() {
    let orch = Orchestrator::builder()
        .agent(agent_fn("boss", |_, ctx| async move {
            let failed = ctx
                .call_with("lead", json!(null), CallOptions::new().budget(30))
                .await
                .unwrap_err();
            // The lead passed its worker's failure on with `?`.
            let o = failed.overrun().cloned().unwrap();
            Ok(json!([
                failed.code(),
                o.node.as_ref(),
                o.bank.as_ref(),
                o.asked,
                o.available
            ]))
        }))
        .agent(agent_fn("lead", |_, ctx| async move {
            Ok(ctx.call("worker", json!(null)).await?)
        }))
        .agent(agent_fn("worker", |_, ctx| async move {
            ctx.consume(20)?;
            ctx.consume(20)?;
            Ok(json!(null))
        }))
        .build()
        .unwrap();
    let done = run_step_with_100(&orch, "boss", "tokens")
        .await
        .await
        .unwrap();
    assert_eq!(
        done.output("s"),
        Some(&json!(["call_failed", "s/0/0", "s/0", 20, 10]))
    );
}

/// Starts workflow `w`, one step `s` of agent `agent`, with a root budget
/// of 100 `unit`.
async fn run_step_with_100(orch: &Orchestrator, agent: &str, unit: &str) -> Execution {
    let wf = orch
        .bind(
            &WorkflowDef::builder("w")
                .step(StepDef::new("s", agent))
                .build(),
        )
        .unwrap();
    let options = RunOptions {
        budget: Some(Budget::new(100, unit)),
        ..RunOptions::default()
    };
    orch.run_with(&wf, json!(null), options).await.unwrap()
}
