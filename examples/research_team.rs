//! Run with `cargo run -p orchestrate-examples --example research_team`
//!
//! Hierarchical teams: a director splits a research programme into topics
//! for two leads, each lead splits its topic into questions for its
//! analysts. Budgets flow down the tree: every node is given a share of
//! its parent's. One analyst's question is a rabbit hole: it overruns its
//! share and its branch is stopped, while the others finish. The run is
//! journaled to SQLite; the call tree, with its budgets and decisions, is
//! printed from the journal.

use std::sync::Arc;

use orchestrate_core::budget::ROOT;
use orchestrate_core::pattern::hierarchy::{Authority, Hierarchy, Node};
use orchestrate_core::{agent_fn, Agent, BoxError, Orchestrator, RunOptions};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_store::sqlite::SqliteStore;
use serde_json::{json, Value};

/// Splits a task (`"a, b"`) into one subtask per part, for `role`.
fn splitter(name: &'static str, role: &'static str) -> impl Agent {
    agent_fn(name, move |task: Value, _| async move {
        let parts: Vec<Value> = task
            .as_str()
            .unwrap_or_default()
            .split(" / ")
            .map(|part| json!({"role": role, "task": part}))
            .collect();
        Ok(Value::Array(parts))
    })
}

/// Answers a question, consuming 40 tokens per word of it (the rabbit
/// hole costs far more).
fn analyst() -> impl Agent {
    agent_fn("analyse", |question: Value, ctx| async move {
        let question = question.as_str().unwrap_or_default().to_owned();
        let words = question.split_whitespace().count() as u64;
        let cost = if question.contains("rabbit") {
            1_000
        } else {
            40 * words
        };
        ctx.consume(cost)?;
        Ok(json!({"question": question, "tokens": cost}))
    })
}

/// Runs the team on the SQLite file `db`; returns its output and the call
/// tree with budgets, as the journal has it.
pub async fn run(db: &std::path::Path) -> Result<(Value, String), BoxError> {
    let store = Arc::new(SqliteStore::open(db).await?);
    let team = Hierarchy::builder("team", "director")
        .authority(
            Authority::new()
                .allow("strategic", ["tactical"])
                .allow("tactical", ["operational"]),
        )
        .node(Node::manager("director", "strategic", "by-topic").children(["lead-a", "lead-b"]))
        .node(
            Node::manager("lead-a", "tactical", "by-question")
                .children(["ana-1", "ana-2"])
                .budget(600),
        )
        .node(
            Node::manager("lead-b", "tactical", "by-question")
                .children(["ana-3", "ana-4"])
                .budget(600),
        )
        .node(Node::leaf("ana-1", "operational", "analyse").budget(250))
        .node(Node::leaf("ana-2", "operational", "analyse").budget(250))
        .node(Node::leaf("ana-3", "operational", "analyse").budget(250))
        .node(Node::leaf("ana-4", "operational", "analyse").budget(250))
        .build()?;
    let orchestrator = Orchestrator::builder()
        .agent(splitter("by-topic", "tactical"))
        .agent(agent_fn("by-question", |task: Value, _| async move {
            // A topic's questions are separated by `;`.
            let questions: Vec<Value> = task
                .as_str()
                .unwrap_or_default()
                .split("; ")
                .map(|q| json!({"role": "operational", "task": q}))
                .collect();
            Ok(Value::Array(questions))
        }))
        .agent(analyst())
        .agent(team)
        .store(store)
        .build()?;
    let workflow = orchestrator.bind(
        &WorkflowDef::builder("research")
            .step(StepDef::new("team", "team").input(json!("${input}")))
            .build(),
    )?;
    let programme = "how tides work; why the moon matters / what is at the bottom of the rabbit hole; how deep wells go";
    let execution = orchestrator
        .run_with(
            &workflow,
            json!(programme),
            RunOptions::default().budget(2_000, "tokens"),
        )
        .await?;
    let id = execution.id().clone();
    execution.wait().await?;
    let view = orchestrator.execution(&id).await?.view();
    let calls = view.calls();
    let mut tree = calls.to_text();
    if let Some(total) = calls.budget(ROOT) {
        tree.push_str(&format!("execution budget: {total}\n"));
    }
    Ok((view.output("team").cloned().unwrap_or_default(), tree))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let (output, tree) = run(&dir.path().join("team.db")).await?;
    println!("{}", serde_json::to_string_pretty(&output)?);
    println!("\ncall tree:\n{tree}");
    Ok(())
}
