//! `Orchestrator::cancel(id)`: running, parked, or left unfinished by a
//! process that stopped.

use std::sync::Arc;

use orchestrate_core::store::{MemoryStore, Store};
use orchestrate_core::{agent_fn, AgentError, ExecutionStatus, Orchestrator, StepStatus};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::json;

fn orchestrator(store: Arc<dyn Store>) -> Orchestrator {
    Orchestrator::builder()
        .agent(agent_fn("ask", |_, _| async move {
            Err(AgentError::interrupt(json!("approve?")))
        }))
        .agent(agent_fn("hang", |_, ctx| async move {
            ctx.cancelled().await;
            Err(AgentError::permanent("stopped"))
        }))
        .agent(agent_fn("done", |_, _| async move { Ok(json!("done")) }))
        .store(store)
        .workflow(
            WorkflowDef::builder("parks")
                .step(StepDef::new("first", "done"))
                .step(StepDef::new("ask", "ask").depends_on(["first"]))
                .step(StepDef::new("after", "done").depends_on(["ask"]))
                .build(),
        )
        .workflow(
            WorkflowDef::builder("hangs")
                .step(StepDef::new("hang", "hang"))
                .build(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_running_execution_is_cancelled_by_id() {
    let orch = orchestrator(Arc::new(MemoryStore::new()));
    let exec = orch
        .run(&orch.workflow("hangs").unwrap(), json!(null))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let again = orch.cancel(exec.id()).await.unwrap();
    let err = again.wait().await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(exec.status(), ExecutionStatus::Cancelled);
}

#[tokio::test]
async fn a_parked_execution_is_cancelled_by_id_from_another_process() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let id = {
        let first = orchestrator(store.clone());
        let exec = first
            .run(&first.workflow("parks").unwrap(), json!(null))
            .await
            .unwrap();
        assert!(exec.wait().await.is_err());
        assert_eq!(exec.status(), ExecutionStatus::Parked);
        exec.id().clone()
    };
    // A new orchestrator on the same store: nothing runs there.
    let second = orchestrator(store.clone());
    let exec = second.cancel(&id).await.unwrap();
    let err = exec.wait().await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    let view = second.execution(&id).await.unwrap().view();
    assert_eq!(view.status(), ExecutionStatus::Cancelled);
    assert_eq!(view.step("first").unwrap().status, StepStatus::Succeeded);
    assert_eq!(view.step("ask").unwrap().status, StepStatus::Cancelled);
    assert_eq!(view.step("after").unwrap().status, StepStatus::Cancelled);
    // A finished execution is returned as it is.
    let again = second.cancel(&id).await.unwrap();
    assert_eq!(again.status(), ExecutionStatus::Cancelled);
    assert!(second.cancel(&"nope".into()).await.is_err());
}

#[test]
fn an_execution_whose_process_stopped_is_cancelled_without_running_anything() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(async {
        let orch = orchestrator(store.clone());
        let exec = orch
            .run(&orch.workflow("hangs").unwrap(), json!(null))
            .await
            .unwrap();
        tokio::task::yield_now().await;
        exec.id().clone()
    });
    drop(rt);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let orch = orchestrator(store.clone());
        let exec = orch.cancel(&id).await.unwrap();
        assert!(exec.wait().await.unwrap_err().is_cancelled());
        let events = store.load(&id, 0).await.unwrap();
        let started = events
            .iter()
            .filter(|e| e.kind.name() == "step_started")
            .count();
        assert_eq!(started, 1, "the step was not started again");
        assert_eq!(
            orch.execution(&id)
                .await
                .unwrap()
                .view()
                .step("hang")
                .unwrap()
                .status,
            StepStatus::Cancelled
        );
    });
}
