//! Cancellation: the token, the grace period, and what the journal records.

mod support;

use std::time::Duration;

use orchestrate_core::{ExecutionStatus, Orchestrator, StepStatus, StepTasks};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_testing::MockAgent;
use serde_json::json;
use support::{assert_contiguous, journal, trace};
use tokio::time::Instant;

fn workflow() -> WorkflowDef {
    WorkflowDef::builder("w")
        .step(StepDef::new("running", "agent"))
        .step(StepDef::new("later", "agent").depends_on(["running"]))
        .build()
}

#[tokio::test(start_paused = true)]
async fn cooperative_attempts_stop_at_once_and_the_execution_ends_cancelled() {
    cooperative_attempts_stop_at_once(StepTasks::Inline).await;
}

#[tokio::test(start_paused = true)]
async fn cooperative_spawned_attempts_stop_at_once_too() {
    cooperative_attempts_stop_at_once(StepTasks::Spawned).await;
}

async fn cooperative_attempts_stop_at_once(tasks: StepTasks) {
    let agent = MockAgent::new("agent").latency(Duration::from_secs(3600));
    let orch = Orchestrator::builder()
        .agent(agent.clone())
        .step_tasks(tasks)
        .build()
        .unwrap();
    let exec = orch
        .run(&orch.bind(&workflow()).unwrap(), json!(null))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(agent.call_count(), 1);
    let start = Instant::now();
    exec.cancel();
    let err = exec.wait().await.unwrap_err();
    assert!(err.is_cancelled());
    assert!(
        start.elapsed() < Duration::from_millis(1),
        "no grace needed: {:?}",
        start.elapsed()
    );
    let view = exec.view();
    assert_eq!(view.status(), ExecutionStatus::Cancelled);
    assert!(view.cancel_requested());
    assert_eq!(view.step("running").unwrap().status, StepStatus::Cancelled);
    assert_eq!(view.step("later").unwrap().status, StepStatus::Cancelled);
    let events = journal(&orch, &exec).await;
    assert_contiguous(&events);
    assert!(trace(&events).iter().any(|(k, _)| k == "cancel_requested"));
}

#[tokio::test(start_paused = true)]
async fn attempts_ignoring_the_token_are_dropped_after_the_grace_period() {
    dropped_after_the_grace_period(StepTasks::Inline).await;
}

#[tokio::test(start_paused = true)]
async fn spawned_attempts_ignoring_the_token_are_aborted_after_the_grace_period() {
    dropped_after_the_grace_period(StepTasks::Spawned).await;
}

async fn dropped_after_the_grace_period(tasks: StepTasks) {
    let agent = MockAgent::new("agent")
        .latency(Duration::from_secs(3600))
        .ignore_cancel();
    let orch = Orchestrator::builder()
        .agent(agent)
        .step_tasks(tasks)
        .cancel_grace(Duration::from_secs(2))
        .build()
        .unwrap();
    let exec = orch
        .run(&orch.bind(&workflow()).unwrap(), json!(null))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let start = Instant::now();
    exec.cancel();
    let err = exec.wait().await.unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(
        exec.view().step("running").unwrap().status,
        StepStatus::Cancelled
    );
}

#[tokio::test(start_paused = true)]
async fn default_grace_period_is_five_seconds() {
    let agent = MockAgent::new("agent")
        .latency(Duration::from_secs(3600))
        .ignore_cancel();
    let orch = Orchestrator::builder().agent(agent).build().unwrap();
    let exec = orch
        .run(&orch.bind(&workflow()).unwrap(), json!(null))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let start = Instant::now();
    exec.cancel();
    exec.wait().await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_finishes_within_the_grace_keeps_its_output() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("almost", "almost").input(json!("${input}")))
        .step(StepDef::new("never", "agent").depends_on(["almost"]))
        .build();
    let almost = MockAgent::new("almost")
        .latency(Duration::from_millis(500))
        .ignore_cancel();
    let orch = Orchestrator::builder()
        .agent(almost)
        .agent(MockAgent::new("agent"))
        .build()
        .unwrap();
    let exec = orch.run(&orch.bind(&def).unwrap(), json!(7)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    exec.cancel();
    exec.wait().await.unwrap_err();
    let view = exec.view();
    assert_eq!(view.step("almost").unwrap().status, StepStatus::Succeeded);
    assert_eq!(view.output("almost"), Some(&json!(7)));
    assert_eq!(view.step("never").unwrap().status, StepStatus::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_every_running_execution() {
    let agent = MockAgent::new("agent").latency(Duration::from_secs(3600));
    let orch = Orchestrator::builder().agent(agent).build().unwrap();
    let wf = orch.bind(&workflow()).unwrap();
    let a = orch.run(&wf, json!(1)).await.unwrap();
    let b = orch.run(&wf, json!(2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(orch.running_count(), 2);
    orch.shutdown().await;
    assert_eq!(a.status(), ExecutionStatus::Cancelled);
    assert_eq!(b.status(), ExecutionStatus::Cancelled);
    assert_eq!(orch.running_count(), 0);
}
