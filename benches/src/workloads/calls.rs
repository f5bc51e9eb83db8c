//! Durable calls: an agent calling a no-op agent `n` times in a row, or
//! over `n` inputs at once, each call journaled, measured against the
//! step-level workload of the same shape in the same run (the issue's
//! targets are ratios to those).

use std::sync::Arc;

use orchestrate_core::store::Store;
use orchestrate_core::{agent_fn, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_store::sqlite::SqliteStore;
use serde_json::{json, Value};

use super::{compare, compare_interleaved, Report};
use crate::chain_workflow;

/// An orchestrator whose `caller` makes its input's `n` sequential calls
/// (or, with `map`, one `map` over `n` inputs, `limit` at once) of `noop`;
/// `inc` and `noop` are the step workloads' agents.
fn orchestrator(store: Option<Arc<dyn Store>>, max_concurrency: usize) -> Orchestrator {
    let builder = Orchestrator::builder()
        .agent(agent_fn("caller", |input: Value, ctx| async move {
            let n = input["n"].as_u64().unwrap_or(0);
            match input["limit"].as_u64() {
                Some(limit) => {
                    let results = ctx
                        .map("noop", (0..n).map(|_| Value::Null), limit as usize)
                        .await;
                    for r in results {
                        r?;
                    }
                }
                None => {
                    for _ in 0..n {
                        ctx.call("noop", Value::Null).await?;
                    }
                }
            }
            Ok(Value::Null)
        }))
        .agent(agent_fn("noop", |_, _| async move { Ok(Value::Null) }))
        .agent(agent_fn("inc", |input: Value, _| async move {
            Ok(json!({"count": input["count"].as_i64().unwrap_or(0) + 1}))
        }))
        .max_concurrency(max_concurrency);
    match store {
        Some(store) => builder.store(store),
        None => builder,
    }
    .build()
    .expect("the workload's agents are registered")
}

fn calling(n: usize, limit: Option<usize>) -> (WorkflowDef, Value) {
    let def = WorkflowDef::builder("calls")
        .step(StepDef::new("caller", "caller").input(json!("${input}")))
        .build();
    let input = match limit {
        Some(limit) => json!({"n": n, "limit": limit}),
        None => json!({"n": n}),
    };
    (def, input)
}

async fn run_once(orch: &Orchestrator, wf: &orchestrate_core::Workflow, input: Value) {
    orch.run(wf, input)
        .await
        .expect("started")
        .await
        .expect("succeeded");
}

/// `n` sequential calls in one step. Floor: the `chain` workload (`n`
/// sequential steps), so `ratio_to_floor` is per call over per step.
pub(super) async fn calls(n: usize, reps: usize) -> Report {
    let orch = orchestrator(None, 10);
    let (def, input) = calling(n, None);
    let wf = orch.bind(&def).expect("valid");
    let chain = orch.bind(&chain_workflow(n, "inc")).expect("valid");
    let mut report = compare(
        "calls",
        n,
        reps,
        || run_once(&orch, &wf, input.clone()),
        || run_once(&orch, &chain, json!({"count": 0})),
    )
    .await;
    report.extra = vec![("floor", json!("chain"))];
    report
}

/// One `map` over `n` inputs, `limit` at once. Floor: the `fanout`
/// workload at 1,000 steps, its runs scaled to `n` items, so that
/// `ratio_to_floor` is per child over per fanned-out step.
pub(super) async fn map(n: usize, reps: usize) -> Report {
    const LIMIT: usize = 1_000;
    const FANOUT: usize = 1_000;
    let orch = orchestrator(None, FANOUT);
    let (def, input) = calling(n, Some(LIMIT));
    let wf = orch.bind(&def).expect("valid");
    let mut b = WorkflowDef::builder("fanout").step(StepDef::new("start", "noop"));
    for i in 0..FANOUT {
        b = b.step(StepDef::new(format!("w{i}"), "noop").depends_on(["start"]));
    }
    let fanout = b
        .step(StepDef::new("join", "noop").depends_on((0..FANOUT).map(|i| format!("w{i}"))))
        .build();
    let fanout = orch.bind(&fanout).expect("valid");
    let mut report = compare(
        "map",
        n,
        reps,
        || run_once(&orch, &wf, input.clone()),
        || run_once(&orch, &fanout, Value::Null),
    )
    .await;
    let scale = n as f64 / FANOUT as f64;
    for run in &mut report.floor_runs {
        *run *= scale;
    }
    report.extra = vec![
        ("floor", json!("fanout at 1000 steps, scaled to n")),
        ("limit", json!(LIMIT)),
    ];
    report
}

/// `n` sequential calls on SQLite, each call's end committed before the
/// caller goes on. Floor: the `checkpoint_sqlite` workload (an `n`-step
/// chain on SQLite), taken in turn.
pub(super) async fn calls_sqlite(n: usize, reps: usize) -> Result<Report, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = SqliteStore::open(dir.path().join("calls.db"))
        .await
        .map_err(|e| e.to_string())?;
    let orch = orchestrator(Some(Arc::new(store)), 10);
    let (def, input) = calling(n, None);
    let wf = orch.bind(&def).map_err(|e| e.to_string())?;
    let chain = orch
        .bind(&chain_workflow(n, "inc"))
        .map_err(|e| e.to_string())?;
    let mut report = compare_interleaved(
        "calls_sqlite",
        n,
        reps,
        || run_once(&orch, &wf, input.clone()),
        || run_once(&orch, &chain, json!({"count": 0})),
    )
    .await;
    report.extra = vec![("floor", json!("checkpoint_sqlite"))];
    Ok(report)
}
