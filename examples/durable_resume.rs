//! Run with `cargo run -p orchestrate-examples --example durable_resume -- --stop-after 3`
//! then `cargo run -p orchestrate-examples --example durable_resume`
//!
//! A six-step pipeline on SQLite. With `--stop-after N` the process exits
//! abruptly once N steps are journaled; the next invocation finds the
//! unfinished execution in the database, resumes it, and runs only what is
//! left. `--db PATH` chooses the file (default: in the temp directory).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestrate_core::journal::EventKind;
use orchestrate_core::store::{ExecutionQuery, Store};
use orchestrate_core::{agent_fn, BoxError, Execution, ExecutionView, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_store::sqlite::SqliteStore;
use serde_json::json;

const STEPS: [&str; 6] = [
    "fetch",
    "clean",
    "summarize",
    "translate",
    "review",
    "publish",
];

/// The pipeline: each step works on the previous step's text.
pub fn pipeline() -> WorkflowDef {
    let mut b = WorkflowDef::builder("publish-article");
    for (i, step) in STEPS.iter().enumerate() {
        let input = match i {
            0 => json!({"text": "${input.title}"}),
            _ => json!({"text": format!("${{steps.{}.output.text}}", STEPS[i - 1])}),
        };
        let deps: Vec<&str> = if i == 0 { vec![] } else { vec![STEPS[i - 1]] };
        b = b.step(StepDef::new(*step, "editor").depends_on(deps).input(input));
    }
    b.build()
}

/// What one invocation did.
#[derive(Debug)]
pub enum Outcome {
    /// Stopped on purpose after this many steps; the execution is unfinished.
    Stopped(usize),
    /// Finished; `resumed` says whether it continued an earlier run.
    Finished {
        view: Box<ExecutionView>,
        resumed: bool,
    },
}

/// Resumes the unfinished run in `db`, or starts one; with `stop_after`,
/// returns as soon as that many steps are journaled.
pub async fn run(db: &Path, stop_after: Option<usize>) -> Result<Outcome, BoxError> {
    let store = Arc::new(SqliteStore::open(db).await?);
    let editor = agent_fn("editor", |input, ctx| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let text = input["text"].as_str().unwrap_or_default();
        Ok(json!({"text": format!("{text} +{}", ctx.step_id())}))
    });
    let orchestrator = Orchestrator::builder()
        .agent(editor)
        .store(store.clone())
        .workflow(pipeline())
        .build()?;
    let unfinished = store.list_executions(&ExecutionQuery::unfinished()).await?;
    let (execution, resumed): (Execution, bool) = match unfinished.first() {
        Some(summary) => (orchestrator.resume(&summary.id).await?, true),
        None => {
            let wf = orchestrator
                .workflow("publish-article")
                .ok_or("workflow not registered")?;
            (
                orchestrator
                    .run(&wf, json!({"title": "Durable agents"}))
                    .await?,
                false,
            )
        }
    };
    if let Some(n) = stop_after {
        let mut events = execution.events().await?;
        let mut done = 0;
        while let Some(event) = events.next().await {
            if matches!(event.kind, EventKind::StepSucceeded { .. }) {
                done += 1;
                if done >= n {
                    return Ok(Outcome::Stopped(done));
                }
            }
        }
    }
    Ok(Outcome::Finished {
        view: Box::new(execution.wait().await?),
        resumed,
    })
}

fn args() -> (PathBuf, Option<usize>) {
    let mut db = std::env::temp_dir().join("orchestrate-durable-resume.db");
    let mut stop_after = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--stop-after" => stop_after = args.next().and_then(|n| n.parse().ok()),
            "--db" => db = args.next().map(PathBuf::from).unwrap_or(db),
            other => eprintln!("ignoring unknown argument `{other}`"),
        }
    }
    (db, stop_after)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (db, stop_after) = args();
    println!("database: {}", db.display());
    match run(&db, stop_after).await? {
        Outcome::Stopped(n) => {
            println!("stopping abruptly after {n} steps; run again without --stop-after to resume");
            // Like a crash: no graceful shutdown, the running step is lost.
            std::process::exit(0);
        }
        Outcome::Finished { view, resumed } => {
            println!(
                "{} execution finished: {:?}",
                if resumed { "resumed" } else { "new" },
                view.status()
            );
            for step in view.steps() {
                println!(
                    "  {:<10} {}",
                    step.id,
                    step.output.as_deref().cloned().unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
