//! Executions on the in-memory store: chain, fan-out, layered DAG, many at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use orchestrate_core::{agent_fn, Orchestrator, Workflow};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use super::{compare, compare_fresh, layers_for, median, timed_fresh, Report};
use crate::{chain_workflow, layered_dag, layered_workflow};

/// What the `inc` agent returns for `input`.
fn inc(input: &Value) -> Value {
    json!({"count": input["count"].as_i64().unwrap_or(0) + 1})
}

/// An orchestrator with the default policies and in-memory store, whose
/// agents return `{"count": input.count + 1}` (`inc`) or `null` (`noop`).
fn orchestrator(max_concurrency: usize) -> Orchestrator {
    Orchestrator::builder()
        .agent(agent_fn(
            "inc",
            |input: Value, _| async move { Ok(inc(&input)) },
        ))
        .agent(agent_fn("noop", |_, _| async move { Ok(Value::Null) }))
        .max_concurrency(max_concurrency)
        .build()
        .expect("the workload's agents are registered")
}

async fn run_once(orch: &Orchestrator, wf: &Workflow, input: Value) {
    let execution = orch.run(wf, input).await.expect("started");
    execution.await.expect("succeeded");
}

/// The agents' own work in one step of a chain, as the workload's run
/// does it: the step's input object built from the previous output
/// (`{"count": ...}`, as the step's template builds it) and the `inc`
/// agent's call, a boxed future (as a `dyn Agent`'s call is). The work
/// floors keep each output behind an `Arc`, as a journal keeps every
/// output until its execution is dropped.
fn agent_step(prev: &Value) -> Pin<Box<dyn Future<Output = Value> + Send>> {
    let mut input = Map::with_capacity(1);
    input.insert("count".to_owned(), prev["count"].clone());
    let input = Value::Object(input);
    Box::pin(async move { inc(&input) })
}

/// Adds the agents' work floor to `report`: `work_floor_median_s`, the
/// floor's shape doing the agents' own work and no orchestration, and the
/// workload's ratio to it. The outputs a run kept are dropped untimed, as
/// the workload's journals are.
fn with_work_floor(mut report: Report, work_runs: &[f64]) -> Report {
    let work = median(work_runs);
    report.extra = vec![
        ("work_floor_median_s", json!(work)),
        (
            "work_floor_ratio_to_floor",
            json!(work / report.floor_median_s()),
        ),
        ("ratio_to_work_floor", json!(report.median_s() / work)),
    ];
    report
}

/// `n` sequential steps. Floor: `n` sequential spawn + await. Beside it,
/// the work floor: each spawned task runs one step's [`agent_step`].
pub(super) async fn chain(n: usize, reps: usize) -> Report {
    let orch = orchestrator(10);
    let wf = orch.bind(&chain_workflow(n, "inc")).expect("valid");
    let report = compare(
        "chain",
        n,
        reps,
        || run_once(&orch, &wf, json!({"count": 0})),
        || async move {
            for _ in 0..n {
                tokio::spawn(async {}).await.expect("joined");
            }
        },
    )
    .await;
    let work = timed_fresh(
        reps,
        || Vec::with_capacity(n + 1),
        |mut kept: Vec<Arc<Value>>| async move {
            let mut prev = Arc::new(json!({"count": 0}));
            kept.push(prev.clone());
            for _ in 0..n {
                let output = tokio::spawn(agent_step(&prev)).await.expect("joined");
                prev = Arc::new(output);
                kept.push(prev.clone());
            }
            kept
        },
    )
    .await;
    with_work_floor(report, &work)
}

/// start → `n` parallel steps → join. Floor: spawn `n` tasks, join them.
pub(super) async fn fanout(n: usize, reps: usize) -> Report {
    let orch = orchestrator(n.max(1));
    let mut b = WorkflowDef::builder("fanout").step(StepDef::new("start", "noop"));
    for i in 0..n {
        b = b.step(StepDef::new(format!("w{i}"), "noop").depends_on(["start"]));
    }
    let def = b
        .step(StepDef::new("join", "noop").depends_on((0..n).map(|i| format!("w{i}"))))
        .build();
    let wf = orch.bind(&def).expect("valid");
    compare(
        "fanout",
        n,
        reps,
        || run_once(&orch, &wf, Value::Null),
        || async move {
            let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(async {})).collect();
            for t in tasks {
                t.await.expect("joined");
            }
        },
    )
    .await
}

/// The layered random DAG. Floor: one task per node, each awaiting its
/// predecessors' completion signals.
pub(super) async fn layered(n: usize, reps: usize) -> Report {
    let (layers, width) = layers_for(n);
    let orch = orchestrator(layers * width);
    let wf = orch
        .bind(&layered_workflow(layers, width, "noop"))
        .expect("valid");
    let preds = layered_dag(layers, width);
    compare(
        "layered",
        layers * width,
        reps,
        || run_once(&orch, &wf, Value::Null),
        || {
            let preds = preds.clone();
            async move {
                let (senders, receivers): (Vec<_>, Vec<_>) =
                    (0..preds.len()).map(|_| watch::channel(false)).unzip();
                let tasks: Vec<_> = preds
                    .iter()
                    .zip(senders)
                    .map(|(ps, done)| {
                        let waits: Vec<watch::Receiver<bool>> =
                            ps.iter().map(|&p| receivers[p].clone()).collect();
                        tokio::spawn(async move {
                            for mut w in waits {
                                w.wait_for(|d| *d).await.expect("predecessor signals");
                            }
                            done.send_replace(true);
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("joined");
                }
            }
        },
    )
    .await
}

/// `n` five-step chains started at once, all awaited. Floor: `n` tasks
/// each awaiting five boxed no-op futures. Beside it, the work floor: each
/// task's five futures are the five steps' [`agent_step`]s, its input
/// made before it is spawned as the workload's is.
///
/// Every run has an orchestrator of its own, made and dropped untimed:
/// otherwise a run's store would still hold the previous run's `n`
/// finished journals (its default retention is 10,000), the peak would be
/// that of `2n` executions, and the run would pay for evicting them.
pub(super) async fn concurrent(n: usize, reps: usize) -> Report {
    let report = compare_fresh(
        "concurrent",
        n,
        reps,
        || {
            let orch = orchestrator(10);
            let wf = orch.bind(&chain_workflow(5, "inc")).expect("valid");
            (orch, wf)
        },
        |(orch, wf)| async move {
            let mut executions = Vec::with_capacity(n);
            for _ in 0..n {
                executions.push(orch.run(&wf, json!({"count": 0})).await.expect("started"));
            }
            for e in executions {
                e.await.expect("succeeded");
            }
            (orch, wf)
        },
        || async move {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    tokio::spawn(async {
                        for _ in 0..5 {
                            let f: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async {});
                            f.await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("joined");
            }
        },
    )
    .await;
    let work = timed_fresh(
        reps,
        || Vec::with_capacity(n),
        |mut kept: Vec<Vec<Arc<Value>>>| async move {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let input = json!({"count": 0});
                    tokio::spawn(async move {
                        let mut outputs = Vec::with_capacity(6);
                        let mut prev = Arc::new(input);
                        outputs.push(prev.clone());
                        for _ in 0..5 {
                            prev = Arc::new(agent_step(&prev).await);
                            outputs.push(prev.clone());
                        }
                        outputs
                    })
                })
                .collect();
            for t in tasks {
                kept.push(t.await.expect("joined"));
            }
            kept
        },
    )
    .await;
    with_work_floor(report, &work)
}
