//! `workflows/hello.json` runs with this project's agents, in memory.

#[path = "../src/agents.rs"]
mod agents;

use orchestrate_core::graph::WorkflowDef;
use orchestrate_core::Orchestrator;
use serde_json::json;

#[tokio::test]
async fn hello_greets_whoever_it_is_given() {
    let def = WorkflowDef::from_json(include_str!("../workflows/hello.json")).unwrap();
    let builder = Orchestrator::builder().agent(agents::greet()).workflow(def);
    let orchestrator = orchestrate_cli::agents::builtin(builder).build().unwrap();
    let workflow = orchestrator.workflow("hello").unwrap();
    let done = orchestrator
        .run(&workflow, json!({"who": "Ada"}))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        done.output("answer"),
        Some(&json!({"greeting": "Hello, Ada!"}))
    );
}
