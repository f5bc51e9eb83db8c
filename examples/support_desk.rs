//! Run with `cargo run -p orchestrate-examples --example support_desk`
//!
//! Handoff: a triage agent reads the customer's message and hands control
//! (and the whole conversation) to a specialist; a reviewer gate judges
//! the specialist's answer and sends the first one back, with its reason,
//! and the specialist answers again. Every hop and verdict is journaled to
//! SQLite; the call tree, with its decisions, is printed from the journal.

use std::sync::Arc;

use orchestrate_core::pattern::handoff::{Gate, Handoff, HandoffInput, Turn};
use orchestrate_core::{agent_fn, Agent, BoxError, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_store::sqlite::SqliteStore;
use serde_json::{json, Value};

/// Sends billing questions to billing, the rest to tech support.
fn triage() -> impl Agent {
    agent_fn("triage", |input: Value, _| async move {
        let input = HandoffInput::from_value(input)?;
        let text = input.task.as_str().unwrap_or_default().to_lowercase();
        let turn = if text.contains("refund") || text.contains("invoice") {
            Turn::to("billing", json!("the customer asks about money")).because("mentions a refund")
        } else {
            Turn::to("tech", json!("the customer has a technical problem"))
                .because("no money involved")
        };
        Ok(turn.with_state("ticket", json!("T-1042")).into())
    })
}

/// Answers; told why when the reviewer sent its answer back.
fn specialist(name: &'static str, answer: &'static str) -> impl Agent {
    agent_fn(name, move |input: Value, _| async move {
        let input = HandoffInput::from_value(input)?;
        let reply = match input.feedback {
            None => answer.to_owned(),
            Some(_) => format!("{answer}; it reaches your account within 5 working days"),
        };
        Ok(Turn::done(json!(reply)).into())
    })
}

/// The quality gate: an answer must say when.
fn reviewer() -> impl Agent {
    agent_fn("reviewer", |input: Value, _| async move {
        let reply = input["reply"].as_str().unwrap_or_default();
        Ok(if reply.contains("days") {
            json!({"pass": true})
        } else {
            json!({"pass": false, "reason": "tell the customer when to expect it"})
        })
    })
}

/// Runs the desk on the SQLite file `db` for `message`; returns its output
/// and the call tree as the journal has it.
pub async fn run(db: &std::path::Path, message: &str) -> Result<(Value, String), BoxError> {
    let store = Arc::new(SqliteStore::open(db).await?);
    let desk = Handoff::builder("desk", "triage")
        .agents(["billing", "tech"])
        .gate(Gate::agent("reviewer").after(["billing", "tech"]))
        .max_hops(6)
        .build()?;
    let orchestrator = Orchestrator::builder()
        .agent(triage())
        .agent(specialist("billing", "your refund was issued"))
        .agent(specialist("tech", "restart the router"))
        .agent(reviewer())
        .agent(desk)
        .store(store)
        .build()?;
    let workflow = orchestrator.bind(
        &WorkflowDef::builder("support")
            .step(StepDef::new("desk", "desk").input(json!("${input}")))
            .build(),
    )?;
    let execution = orchestrator.run(&workflow, json!(message)).await?;
    let id = execution.id().clone();
    execution.wait().await?;
    let view = orchestrator.execution(&id).await?.view();
    Ok((
        view.output("desk").cloned().unwrap_or_default(),
        view.calls().to_text(),
    ))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let (output, tree) = run(&dir.path().join("desk.db"), "Where is my refund?").await?;
    println!("answer: {}", output["answer"]);
    println!("by: {}, after {} hops", output["by"], output["hops"]);
    println!("\ncall tree:\n{tree}");
    Ok(())
}
