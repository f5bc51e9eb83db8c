//! Run with `cargo run -p orchestrate-examples --example research_pipeline`
//!
//! Four steps: plan the research, search the web and papers in parallel,
//! then join both into a report. The searches overlap in time, which the
//! step timings show.

use std::fmt::Write as _;
use std::time::Duration;

use orchestrate_core::{agent_fn, Error, ExecutionView, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::{json, Value};

/// The pipeline: `plan -> (web, papers) -> report`.
pub fn pipeline() -> WorkflowDef {
    WorkflowDef::builder("research")
        .step(StepDef::new("plan", "planner").input(json!({"topic": "${input.topic}"})))
        .step(
            StepDef::new("web", "web_search")
                .depends_on(["plan"])
                .input(json!({"queries": "${steps.plan.output.queries}"}))
                .cost(3.0),
        )
        .step(
            StepDef::new("papers", "paper_search")
                .depends_on(["plan"])
                .input(json!({"query": "${steps.plan.output.queries[0]}"}))
                .cost(5.0),
        )
        .step(
            StepDef::new("report", "writer")
                .depends_on(["web", "papers"])
                .input(json!({
                    "topic": "${input.topic}",
                    "web": "${steps.web.output.hits}",
                    "papers": "${steps.papers.output.hits ?? []}"
                })),
        )
        .build()
}

/// Runs the pipeline on `topic` and returns the final view.
pub async fn run(topic: &str) -> Result<ExecutionView, Error> {
    let planner = agent_fn("planner", |input, _| async move {
        let topic = input["topic"].as_str().unwrap_or_default().to_owned();
        Ok(json!({"queries": [topic.clone(), format!("{topic} benchmarks")]}))
    });
    // Stand-ins for real tools: each takes a while, like a network call.
    let web = agent_fn("web_search", |input, _| async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let hits: Vec<Value> = input["queries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|q| {
                json!(format!(
                    "https://example.org/?q={}",
                    q.as_str().unwrap_or_default()
                ))
            })
            .collect();
        Ok(json!({"hits": hits}))
    });
    let papers = agent_fn("paper_search", |input, _| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(
            json!({"hits": [format!("A survey of {}", input["query"].as_str().unwrap_or_default())]}),
        )
    });
    let writer = agent_fn("writer", |input, _| async move {
        let sources = input["web"].as_array().map_or(0, Vec::len)
            + input["papers"].as_array().map_or(0, Vec::len);
        Ok(
            json!({"title": format!("Report: {}", input["topic"].as_str().unwrap_or_default()), "sources": sources}),
        )
    });

    let orchestrator = Orchestrator::builder()
        .agent(planner)
        .agent(web)
        .agent(papers)
        .agent(writer)
        .build()?;
    let workflow = orchestrator.bind(&pipeline())?;
    orchestrator
        .run(&workflow, json!({"topic": topic}))
        .await?
        .await
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let plan = orchestrate_graph::Plan::new(&pipeline())?;
    println!("{}", plan.to_text());
    println!("critical path: {:?}\n", plan.critical_path_ids());
    let done = run("agent orchestration").await?;
    let mut out = String::new();
    for step in done.steps() {
        let start = step.started_us.unwrap_or_default() / 1000;
        let end = step.finished_us.unwrap_or_default() / 1000;
        let _ = writeln!(
            out,
            "{:<7} {:>3}..{:>3} ms  {}",
            step.id,
            start,
            end,
            step.output.as_deref().cloned().unwrap_or_default()
        );
    }
    print!("{out}");
    Ok(())
}
