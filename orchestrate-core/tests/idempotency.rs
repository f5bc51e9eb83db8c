//! Idempotency keys return the same execution within their TTL.

use std::time::Duration;

use orchestrate_core::{Error, ExecutionId, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_testing::MockAgent;
use serde_json::json;

fn setup(latency: Duration) -> (Orchestrator, MockAgent) {
    let agent = MockAgent::new("agent").latency(latency);
    let orch = Orchestrator::builder()
        .agent(agent.clone())
        .workflow(
            WorkflowDef::builder("w")
                .step(StepDef::new("s", "agent").input(json!("${input}")))
                .build(),
        )
        .build()
        .unwrap();
    (orch, agent)
}

#[tokio::test(start_paused = true)]
async fn same_key_returns_the_running_then_the_finished_execution() {
    let (orch, agent) = setup(Duration::from_millis(100));
    let wf = orch.workflow("w").unwrap();
    let first = orch.run_with_key("order-1", &wf, json!(1)).await.unwrap();
    let again = orch.run_with_key("order-1", &wf, json!(2)).await.unwrap();
    assert_eq!(first.id(), again.id());
    let out = again.await.unwrap();
    assert_eq!(out.output("s"), Some(&json!(1)));
    assert_eq!(out.idempotency_key(), Some("order-1"));

    // Finished, still within the TTL: the same execution, from the store.
    let after = orch.run_with_key("order-1", &wf, json!(3)).await.unwrap();
    assert_eq!(after.id(), first.id());
    assert_eq!(after.await.unwrap().output("s"), Some(&json!(1)));
    assert_eq!(agent.call_count(), 1);

    // A different key is a different execution.
    let other = orch.run_with_key("order-2", &wf, json!(4)).await.unwrap();
    assert_ne!(other.id(), first.id());
}

#[tokio::test(start_paused = true)]
async fn key_expires_after_the_ttl_default_ten_minutes() {
    let (orch, _) = setup(Duration::ZERO);
    let wf = orch.workflow("w").unwrap();
    let first = orch.run_with_key("k", &wf, json!(1)).await.unwrap();
    first.wait().await.unwrap();
    tokio::time::advance(Duration::from_secs(599)).await;
    assert_eq!(
        orch.run_with_key("k", &wf, json!(1)).await.unwrap().id(),
        first.id()
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_ne!(
        orch.run_with_key("k", &wf, json!(1)).await.unwrap().id(),
        first.id()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_with_one_key_share_one_execution() {
    let (orch, agent) = setup(Duration::ZERO);
    let wf = orch.workflow("w").unwrap();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let (orch, wf) = (orch.clone(), wf.clone());
            tokio::spawn(async move { orch.run_with_key("shared", &wf, json!(i)).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        let exec = h.await.unwrap();
        ids.push(exec.id().clone());
        exec.wait().await.unwrap();
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(agent.call_count(), 1);
}

#[tokio::test]
async fn unknown_execution_ids_are_typed_errors() {
    let (orch, _) = setup(Duration::ZERO);
    let err = orch
        .execution(&ExecutionId::from("nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ExecutionNotFound(ref id) if id.as_str() == "nope"));
}

#[tokio::test]
async fn a_finished_failed_execution_read_back_reports_its_recorded_cause() {
    let agent = MockAgent::new("agent").fail_always().permanent();
    let orch = Orchestrator::builder()
        .agent(agent)
        .workflow(
            WorkflowDef::builder("w")
                .step(StepDef::new("s", "agent"))
                .build(),
        )
        .build()
        .unwrap();
    let wf = orch.workflow("w").unwrap();
    let live = orch.run_with_key("k", &wf, json!(1)).await.unwrap();
    assert_eq!(live.wait().await.unwrap_err().code(), "agent");
    let again = orch.run_with_key("k", &wf, json!(1)).await.unwrap();
    assert_eq!(again.id(), live.id());
    let err = again.wait().await.unwrap_err();
    assert_eq!(err.code(), "failed");
    assert!(err.to_string().contains("scripted failure"), "{err}");
}
