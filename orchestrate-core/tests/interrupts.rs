//! Human in the loop: a step asks for a decision, the execution parks, and
//! an approval or rejection resumes it from the store.

mod support;

use std::sync::Arc;

use orchestrate_core::store::{ExecutionQuery, MemoryStore, Store};
use orchestrate_core::{agent_fn, AgentError, Error, ExecutionStatus, Orchestrator, StepStatus};
use orchestrate_graph::{OnError, StepDef, WorkflowDef};
use orchestrate_testing::MockAgent;
use serde_json::json;
use support::{assert_contiguous, journal};

fn workflow(on_error: OnError) -> WorkflowDef {
    WorkflowDef::builder("review")
        .step(StepDef::new("draft", "writer").input(json!("${input.topic}")))
        .step(
            StepDef::new("approve", "reviewer")
                .depends_on(["draft"])
                .input(json!({"draft": "${steps.draft.output}"}))
                .on_error(on_error),
        )
        .step(
            StepDef::new("publish", "writer")
                .depends_on(["approve"])
                .input(json!("${steps.approve.output.verdict}")),
        )
        .step(
            StepDef::new("index", "writer")
                .depends_on(["draft"])
                .input(json!("indexed")),
        )
        .build()
}

fn orchestrator(store: Arc<dyn Store>, on_error: OnError) -> Orchestrator {
    Orchestrator::builder()
        .agent(MockAgent::new("writer"))
        .agent(agent_fn("reviewer", |input, _| async move {
            Err(AgentError::interrupt(
                json!({"please_review": input["draft"]}),
            ))
        }))
        .store(store)
        .workflow(workflow(on_error))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_step_parks_the_execution_until_it_is_approved() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first = orchestrator(store.clone(), OnError::Fail);
    let exec = first
        .run(&first.workflow("review").unwrap(), json!({"topic": "rust"}))
        .await
        .unwrap();
    let err = exec.wait().await.unwrap_err();
    assert!(
        matches!(&err, Error::Parked { steps, .. } if steps == &["approve"]),
        "{err}"
    );
    let view = exec.view();
    assert_eq!(view.status(), ExecutionStatus::Parked);
    let step = view.step("approve").unwrap();
    assert_eq!(step.status, StepStatus::Interrupted);
    assert_eq!(
        step.interrupt.as_deref(),
        Some(&json!({"please_review": "rust"}))
    );
    // Independent work finished before parking; dependents wait.
    assert_eq!(view.step("index").unwrap().status, StepStatus::Succeeded);
    assert_eq!(view.step("publish").unwrap().status, StepStatus::Pending);
    let parked = ExecutionQuery {
        status: Some(ExecutionStatus::Parked),
        ..ExecutionQuery::all()
    };
    assert_eq!(store.list_executions(&parked).await.unwrap().len(), 1);

    // Another orchestrator (another process) decides later.
    let second = orchestrator(store.clone(), OnError::Fail);
    let resumed = second
        .approve(exec.id(), "approve", json!({"verdict": "ship it"}))
        .await
        .unwrap();
    let done = resumed.wait().await.unwrap();
    assert_eq!(done.status(), ExecutionStatus::Succeeded);
    assert_eq!(done.output("approve"), Some(&json!({"verdict": "ship it"})));
    assert_eq!(done.output("publish"), Some(&json!("ship it")));
    let events = journal(&second, &resumed).await;
    assert_contiguous(&events);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    for kind in [
        "step_interrupted",
        "execution_parked",
        "execution_resumed",
        "step_decided",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

#[tokio::test]
async fn a_rejection_fails_the_step_under_its_policy() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let orch = orchestrator(store.clone(), OnError::Fail);
    let exec = orch
        .run(&orch.workflow("review").unwrap(), json!({"topic": "x"}))
        .await
        .unwrap();
    exec.wait().await.unwrap_err();
    let rejected = orch
        .reject(exec.id(), "approve", "too short")
        .await
        .unwrap();
    let err = rejected.wait().await.unwrap_err();
    assert!(err.to_string().contains("rejected: too short"), "{err}");
    let view = rejected.view();
    assert_eq!(view.status(), ExecutionStatus::Failed);
    assert_eq!(view.step("publish").unwrap().status, StepStatus::Skipped);

    // With `continue`, the rest finishes around the rejected step.
    let orch = orchestrator(Arc::new(MemoryStore::new()), OnError::Continue);
    let exec = orch
        .run(&orch.workflow("review").unwrap(), json!({"topic": "x"}))
        .await
        .unwrap();
    exec.wait().await.unwrap_err();
    let view = orch
        .reject(exec.id(), "approve", "no")
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(view.status(), ExecutionStatus::PartiallySucceeded);
}

#[tokio::test]
async fn decisions_need_a_waiting_step() {
    let orch = orchestrator(Arc::new(MemoryStore::new()), OnError::Fail);
    let exec = orch
        .run(&orch.workflow("review").unwrap(), json!({"topic": "x"}))
        .await
        .unwrap();
    exec.wait().await.unwrap_err();
    for step in ["draft", "nope"] {
        let err = orch.approve(exec.id(), step, json!(1)).await.unwrap_err();
        assert_eq!(err.code(), "not_interrupted", "{step}");
    }
    orch.approve(exec.id(), "approve", json!({"verdict": "ok"}))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    // Decided once: a second decision is refused.
    let err = orch
        .approve(exec.id(), "approve", json!(2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_interrupted");
    // Resuming a parked execution does not run anything: it stays parked.
    let orch = orchestrator(Arc::new(MemoryStore::new()), OnError::Fail);
    let exec = orch
        .run(&orch.workflow("review").unwrap(), json!({"topic": "x"}))
        .await
        .unwrap();
    exec.wait().await.unwrap_err();
    assert_eq!(
        orch.resume(exec.id())
            .await
            .unwrap()
            .wait()
            .await
            .unwrap_err()
            .code(),
        "parked"
    );
}
