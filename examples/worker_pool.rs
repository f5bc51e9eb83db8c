//! Run with `cargo run -p orchestrate-examples --example worker_pool`
//!
//! A supervisor hands 24 tasks to a pool of three workers. One of them is
//! flaky: it fails every task, so after two failures in a row the
//! supervisor restarts it (a fresh instance from its factory), and when it
//! keeps failing, quarantines it. The tasks it failed are reassigned, and
//! every task completes. The run is journaled to SQLite; the workers'
//! health and the supervisor's decisions are printed.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use orchestrate_core::pattern::supervisor::{
    RestartPolicy, Strategy, Supervisor, Worker, WorkerHealth,
};
use orchestrate_core::resilience::RetryConfig;
use orchestrate_core::{agent_fn, default_policy, AgentError, BoxError, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_store::sqlite::SqliteStore;
use serde_json::{json, Value};

/// What a run shows: the output, the workers' health, the flaky worker's
/// instances made, and the supervisor's recovery decisions.
#[derive(Debug)]
pub struct Report {
    /// The tasks' outputs, in task order.
    pub output: Value,
    /// Each worker's health at the end.
    pub health: Vec<WorkerHealth>,
    /// Instances of the flaky worker made (the first, then restarts).
    pub flaky_instances: u32,
    /// The `recover` decisions' actions, in order.
    pub recoveries: Vec<String>,
    /// The call tree, with the decisions, as the journal has it.
    pub tree: String,
}

fn steady(name: &'static str) -> Worker {
    Worker::new(agent_fn(name, |task: Value, _| async move {
        Ok(json!(task.as_i64().unwrap_or(0) * 10))
    }))
}

/// Runs the pool on the SQLite file `db`.
pub async fn run(db: &std::path::Path) -> Result<Report, BoxError> {
    let store = Arc::new(SqliteStore::open(db).await?);
    let made = Arc::new(AtomicU32::new(0));
    let counted = made.clone();
    let flaky = Worker::from_factory(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        agent_fn("flaky", |_, _| async move {
            Err::<Value, _>(AgentError::permanent("lost its connection"))
        })
    });
    let pool = Supervisor::builder("pool")
        .worker(steady("steady-1"))
        .worker(flaky)
        .worker(steady("steady-2"))
        .strategy(Strategy::RoundRobin)
        .limit(1)
        .restart(
            RestartPolicy::default()
                .after_failures(2)
                .restarts_per_worker(1),
        )
        .build()?;
    let orchestrator = Orchestrator::builder()
        .agent(pool.clone())
        .default_policy(default_policy().retry(RetryConfig::attempts(1)))
        .store(store)
        .build()?;
    let workflow = orchestrator.bind(
        &WorkflowDef::builder("pool")
            .step(StepDef::new("pool", "pool").input(json!("${input}")))
            .build(),
    )?;
    let execution = orchestrator
        .run(&workflow, json!((1..=24).collect::<Vec<i64>>()))
        .await?;
    let id = execution.id().clone();
    execution.wait().await?;
    let view = orchestrator.execution(&id).await?.view();
    let recoveries = view
        .calls()
        .decisions()
        .iter()
        .filter(|d| &*d.kind == "recover" && !d.value.is_null())
        .map(|d| {
            format!(
                "{} {}",
                d.value["action"].as_str().unwrap_or("?"),
                d.value["worker"].as_str().unwrap_or("?")
            )
        })
        .collect();
    Ok(Report {
        output: view.output("pool").cloned().unwrap_or_default(),
        health: pool.health(),
        flaky_instances: made.load(Ordering::SeqCst),
        recoveries,
        tree: view.calls().to_text(),
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let report = run(&dir.path().join("pool.db")).await?;
    println!("outputs: {}", report.output);
    println!("\nworkers:");
    for h in &report.health {
        println!(
            "  {:<9} {:?}: {} done, {} failed, {} restarts",
            h.name, h.state, h.successes, h.failures, h.restarts
        );
    }
    println!("\nflaky instances made: {}", report.flaky_instances);
    println!("recoveries: {}", report.recoveries.join(", "));
    println!("\ncall tree:\n{}", report.tree);
    Ok(())
}
