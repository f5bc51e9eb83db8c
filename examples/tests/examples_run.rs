//! The examples run in CI: their code is compiled in here and executed.

#[path = "../hello_workflow.rs"]
#[allow(dead_code)]
mod hello_workflow;

#[path = "../research_pipeline.rs"]
#[allow(dead_code)]
mod research_pipeline;

use orchestrate_core::ExecutionStatus;
use serde_json::json;

#[tokio::test]
async fn hello_workflow_interpolates_and_reports() {
    let report = hello_workflow::run().await.unwrap();
    assert!(
        report.contains("greet -> {\"greeting\":\"Hello, orchestrate\"}"),
        "{report}"
    );
    assert!(
        report.contains("shout -> \"HELLO, ORCHESTRATE!!!\""),
        "{report}"
    );
    assert!(
        report.contains("Batch 1: [greet]\nBatch 2: [shout]"),
        "{report}"
    );
    assert!(report.contains("journal: 10 events"), "{report}");
}

// Paused: the stand-in tools' sleeps run on tokio's virtual clock.
#[tokio::test(start_paused = true)]
async fn research_pipeline_fans_out_and_joins() {
    let done = research_pipeline::run("rust").await.unwrap();
    assert_eq!(done.status(), ExecutionStatus::Succeeded);
    assert_eq!(
        done.output("report"),
        Some(&json!({"title": "Report: rust", "sources": 3}))
    );
    // The two searches overlap: each starts before the other finishes.
    let web = done.step("web").unwrap();
    let papers = done.step("papers").unwrap();
    assert!(web.started_us < papers.finished_us && papers.started_us < web.finished_us);
}
