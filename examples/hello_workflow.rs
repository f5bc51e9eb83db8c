//! Run with `cargo run -p orchestrate-examples --example hello_workflow`
//!
//! Loads a two-step JSON workflow whose second step interpolates the first
//! step's output, runs it, and prints each output, the plan and the journal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use orchestrate_core::{agent_fn, AgentError, BoxError, Orchestrator};
use orchestrate_graph::WorkflowDef;
use serde_json::json;

/// The workflow, as a host would read it from disk.
const WORKFLOW: &str = include_str!("workflows/hello.json");

/// Runs the workflow and returns the report printed by `main`.
pub async fn run() -> Result<String, BoxError> {
    let def = WorkflowDef::from_json(WORKFLOW).map_err(|e| format!("workflows/hello.json: {e}"))?;

    let greeter = agent_fn("greeter", |input, _ctx| async move {
        let name = input["name"].as_str().unwrap_or("world");
        Ok(json!({"greeting": format!("Hello, {name}")}))
    });
    let shouter = agent_fn("shouter", |input, _ctx| async move {
        let text = input["text"]
            .as_str()
            .ok_or_else(|| AgentError::permanent("`text` must be a string"))?;
        let bangs = "!".repeat(input["excitement"].as_u64().unwrap_or(1) as usize);
        Ok(json!(format!("{}{bangs}", text.to_uppercase())))
    });

    let orchestrator = Orchestrator::builder()
        .agent(greeter)
        .agent(shouter)
        .workflow(def)
        .build()?;
    let workflow = orchestrator
        .workflow("hello")
        .ok_or("workflow `hello` is not registered")?;
    let execution = orchestrator
        .run(&workflow, json!({"name": "orchestrate", "excitement": 3}))
        .await?;
    let done = execution.wait().await?;

    let mut report = String::new();
    let _ = writeln!(report, "execution {} {:?}", execution.id(), done.status());
    for step in done.steps() {
        let output = step.output.as_deref().cloned().unwrap_or_default();
        let _ = writeln!(report, "  {} -> {}", step.id, output);
    }
    let _ = writeln!(report, "\nplan:\n{}", workflow.plan().to_text());

    let journal = orchestrator.store().load(execution.id(), 0).await?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for event in &journal {
        *counts.entry(event.kind.name()).or_default() += 1;
    }
    let _ = writeln!(report, "journal: {} events", journal.len());
    for (kind, n) in counts {
        let _ = writeln!(report, "  {kind:<20} {n}");
    }
    Ok(report)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    print!("{}", run().await?);
    Ok(())
}
