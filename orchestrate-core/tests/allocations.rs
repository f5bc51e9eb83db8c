//! Copies the hot paths must not make, counted by a global allocator.

use std::future::IntoFuture;

use futures::FutureExt;
use orchestrate_core::{agent_fn, Execution, ExecutionView, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::Value;

/// Allocations made while awaiting `execution`, which has ended.
fn allocations_of_awaiting(execution: Execution) -> u64 {
    let mut view: Option<ExecutionView> = None;
    let counted = allocation_counter::measure(|| {
        view = execution
            .into_future()
            .now_or_never()
            .expect("the execution has ended")
            .ok();
    });
    assert_eq!(view.expect("succeeded").steps().len(), 21);
    counted.count_total
}

async fn ended_fanout(orch: &Orchestrator) -> Execution {
    let mut b = WorkflowDef::builder("fanout").step(StepDef::new("start", "noop"));
    for i in 0..20 {
        b = b.step(StepDef::new(format!("w{i}"), "noop").depends_on(["start"]));
    }
    let wf = orch.bind(&b.build()).unwrap();
    let execution = orch.run(&wf, Value::Null).await.unwrap();
    // On this one-thread runtime the driver has finished, and its task
    // dropped it, by the time a waiter runs.
    execution.wait().await.unwrap();
    execution
}

#[tokio::test]
async fn awaiting_the_last_handle_takes_the_view_without_copying_it() {
    let orch = Orchestrator::builder()
        .agent(agent_fn("noop", |_, _| async { Ok(Value::Null) }))
        .max_concurrency(20)
        .build()
        .unwrap();

    let last = ended_fanout(&orch).await;
    // The boxed future of `IntoFuture`, nothing else.
    assert_eq!(allocations_of_awaiting(last), 1);

    // While another handle lives, the view is shared with it and copied.
    let shared = ended_fanout(&orch).await;
    let other = shared.clone();
    assert!(allocations_of_awaiting(shared) > 1);
    drop(other);
}
