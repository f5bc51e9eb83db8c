//! Run with `cargo run -p orchestrate-examples --example deep_research`
//!
//! Agents that decide at run time whom to call. A planner splits a
//! question into as many sub-questions as it finds, `map`s a researcher
//! over them, each given a share of the execution's token budget, and a
//! writer joins what came back. One sub-question is a rabbit hole: its
//! researcher overruns its share and is stopped, the others finish. The
//! run is journaled to SQLite; the call tree, with budgets, is printed
//! from the journal.

use std::sync::Arc;

use orchestrate_core::budget::{Budget, ROOT};
use orchestrate_core::{agent_fn, BoxError, Call, CallOptions, Orchestrator, RunOptions};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_store::sqlite::SqliteStore;
use serde_json::{json, Value};

/// Tokens each researcher is given out of the execution's budget.
const SHARE: u64 = 300;

/// The planner: one sub-question per clause of the question, each
/// researched under its own share, then the writer.
fn planner() -> impl orchestrate_core::Agent {
    agent_fn("planner", |question, ctx| async move {
        let question = question.as_str().unwrap_or_default().to_owned();
        ctx.consume(50)?; // planning costs tokens too
        let subs: Vec<String> = question
            .split(" and ")
            .map(|s| s.trim().trim_end_matches('?').to_owned())
            .collect();
        let calls = subs.iter().map(|q| {
            Call::new("researcher", json!(q))
                .with_options(CallOptions::new().label(q.clone()).budget(SHARE))
        });
        let mut notes = Vec::new();
        let mut dropped = Vec::new();
        for (sub, result) in subs.iter().zip(ctx.call_all(calls).await) {
            match result {
                Ok(note) => notes.push(note),
                Err(e) => dropped.push(json!({"question": sub, "why": e.to_string()})),
            }
        }
        let report = ctx
            .call("writer", json!({"question": question, "notes": notes}))
            .await?;
        Ok(json!({"report": report, "dropped": dropped}))
    })
}

/// A researcher: reads sources, 100 tokens each, until it has three; a
/// rabbit hole never has enough.
fn researcher() -> impl orchestrate_core::Agent {
    agent_fn("researcher", |question, ctx| async move {
        let question = question.as_str().unwrap_or_default().to_owned();
        let wanted = if question.contains("rabbit hole") {
            10
        } else {
            2
        };
        let mut sources = Vec::new();
        for n in 0..wanted {
            ctx.consume(100)?; // refused once the share is spent
            sources.push(format!("source {n} on {question}"));
        }
        Ok(json!({"question": question, "sources": sources}))
    })
}

fn writer() -> impl orchestrate_core::Agent {
    agent_fn("writer", |input, ctx| async move {
        ctx.consume(80)?;
        let notes = input["notes"].as_array().cloned().unwrap_or_default();
        let sources: usize = notes
            .iter()
            .map(|n| n["sources"].as_array().map_or(0, Vec::len))
            .sum();
        Ok(json!(format!(
            "{}: {} findings from {sources} sources",
            input["question"].as_str().unwrap_or_default(),
            notes.len()
        )))
    })
}

/// Runs the research on the SQLite file `db` and returns the planner's
/// output and the call tree, with budgets, as the journal has it.
pub async fn run(db: &std::path::Path, question: &str) -> Result<(Value, String), BoxError> {
    let store = Arc::new(SqliteStore::open(db).await?);
    let orchestrator = Orchestrator::builder()
        .agent(planner())
        .agent(researcher())
        .agent(writer())
        .store(store.clone())
        .workflow(
            WorkflowDef::builder("deep-research")
                .step(StepDef::new("research", "planner").input(json!("${input}")))
                .build(),
        )
        .build()?;
    let options = RunOptions {
        budget: Some(Budget::new(2_000, "tokens")),
        ..RunOptions::default()
    };
    let workflow = orchestrator
        .workflow("deep-research")
        .ok_or("workflow not registered")?;
    let execution = orchestrator
        .run_with(&workflow, json!(question), options)
        .await?;
    let id = execution.id().clone();
    execution.wait().await?;

    // Read back from the store, as another process would.
    let view = Orchestrator::builder()
        .store(store)
        .build()?
        .execution(&id)
        .await?
        .view();
    let calls = view.calls();
    let mut tree = calls.to_text();
    if let Some(total) = calls.budget(ROOT) {
        tree.push_str(&format!("execution budget: {total}\n"));
    }
    Ok((view.output("research").cloned().unwrap_or_default(), tree))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let question = "how do tokio tasks get scheduled and why do budgets matter \
                    and what is at the bottom of the rabbit hole?";
    let (output, tree) = run(&dir.path().join("research.db"), question).await?;
    println!("{}", serde_json::to_string_pretty(&output)?);
    println!("\ncall tree:\n{tree}");
    Ok(())
}
