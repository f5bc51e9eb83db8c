//! The event stream of an execution another process runs: over a bus that
//! keeps to its process, its events are read from the store, live, to the
//! end. Each orchestrator stands for a process; they share the store only.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestrate_core::journal::EventKind;
use orchestrate_core::store::{MemoryStore, Store};
use orchestrate_core::{agent_fn, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::json;
use tokio::sync::Semaphore;

/// A process whose `gate` steps each wait for a permit of `open`.
fn process(store: Arc<dyn Store>, open: Arc<Semaphore>) -> Orchestrator {
    Orchestrator::builder()
        .agent(agent_fn("gate", move |input, _| {
            let open = open.clone();
            async move {
                open.acquire().await.unwrap().forget();
                Ok(input)
            }
        }))
        .store(store)
        .workflow(
            WorkflowDef::builder("gated")
                .step(StepDef::new("first", "gate").input(json!(1)))
                .step(
                    StepDef::new("second", "gate")
                        .input(json!(2))
                        .depends_on(["first"]),
                )
                .build(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_stream_follows_an_execution_run_elsewhere_to_its_end() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let open = Arc::new(Semaphore::new(0));
    let runner = process(store.clone(), open.clone());
    let execution = runner
        .run(&runner.workflow("gated").unwrap(), json!(null))
        .await
        .unwrap();
    tokio::task::yield_now().await;

    let watcher = process(store.clone(), Arc::new(Semaphore::new(0)));
    let mut events = watcher
        .execution(execution.id())
        .await
        .unwrap()
        .events()
        .await
        .unwrap();
    // What was stored before the stream began.
    let first = events.next().await.unwrap();
    assert!(matches!(first.kind, EventKind::ExecutionStarted(_)));

    // What happens after: the runner goes on while the watcher reads.
    open.add_permits(2);
    let rest: Vec<_> = tokio::time::timeout(Duration::from_secs(20), events.collect::<Vec<_>>())
        .await
        .expect("the stream ended with the execution");
    let seqs: Vec<u64> = rest.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "in order, none missing"
    );
    assert!(matches!(
        rest.last().unwrap().kind,
        EventKind::ExecutionFinished { .. }
    ));
    let succeeded = rest
        .iter()
        .filter(|e| matches!(e.kind, EventKind::StepSucceeded { .. }))
        .count();
    assert_eq!(succeeded, 2);
}
