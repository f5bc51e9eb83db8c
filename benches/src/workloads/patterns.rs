//! Patterns: a supervisor handing out no-op tasks to a pool of no-op
//! workers, measured against a `map` child's time in the same run (the
//! issue's target is a ratio to it).

use orchestrate_core::pattern::supervisor::{Supervisor, Worker};
use orchestrate_core::{agent_fn, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::{json, Value};

use super::{compare, Report};

const WORKERS: usize = 1_000;
const LIMIT: usize = 1_000;
/// The `map` floor's size: its runs are scaled to the supervisor's `n`.
const MAPPED: usize = 10_000;

/// A supervisor of 1,000 no-op workers running `n` no-op tasks, 1,000 at
/// once. Floor: one `map` over 10,000 inputs (limit 1,000) of a no-op
/// agent, scaled to `n`, so that `ratio_to_floor` is per task over per
/// map child.
pub(super) async fn supervisor(n: usize, reps: usize) -> Report {
    let pool = Supervisor::builder("pool")
        .workers((0..WORKERS).map(|i| {
            Worker::new(agent_fn(
                format!("w{i}"),
                |_, _| async move { Ok(Value::Null) },
            ))
        }))
        .limit(LIMIT)
        .build()
        .expect("a pool of distinct workers");
    let orch = Orchestrator::builder()
        .agent(pool)
        .agent(agent_fn("noop", |_, _| async move { Ok(Value::Null) }))
        .agent(agent_fn("mapper", |n: Value, ctx| async move {
            let n = n.as_u64().unwrap_or(0);
            for r in ctx.map("noop", (0..n).map(|_| Value::Null), LIMIT).await {
                r?;
            }
            Ok(Value::Null)
        }))
        .build()
        .expect("the workload's agents are registered");
    let step = |agent: &str| {
        let def = WorkflowDef::builder(agent)
            .step(StepDef::new("s", agent).input(json!("${input}")))
            .build();
        orch.bind(&def).expect("valid")
    };
    let (pool_wf, map_wf) = (step("pool"), step("mapper"));
    let tasks = Value::Array(vec![Value::Null; n]);
    let mut report = compare(
        "supervisor",
        n,
        reps,
        || async {
            orch.run(&pool_wf, tasks.clone())
                .await
                .expect("started")
                .await
                .expect("succeeded");
        },
        || async {
            orch.run(&map_wf, json!(MAPPED))
                .await
                .expect("started")
                .await
                .expect("succeeded");
        },
    )
    .await;
    let scale = n as f64 / MAPPED as f64;
    for run in &mut report.floor_runs {
        *run *= scale;
    }
    report.extra = vec![
        (
            "floor",
            json!("map child (10000 inputs, limit 1000), scaled to n"),
        ),
        ("workers", json!(WORKERS)),
        ("limit", json!(LIMIT)),
    ];
    report
}
