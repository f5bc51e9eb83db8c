//! `Orchestrator::request_cancel`: a cancellation asked for by one process
//! and carried out by the one running the execution. Each orchestrator
//! here stands for a process; they share only the store.

use std::sync::Arc;
use std::time::Duration;

use orchestrate_core::store::{MemoryStore, MessageQuery, MessageStatus, Store};
use orchestrate_core::{
    agent_fn, AgentError, CancelRequest, Error, ExecutionId, ExecutionStatus, Orchestrator,
    CANCEL_MAILBOX,
};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::json;

const LOOK_EVERY: Duration = Duration::from_millis(100);

fn orchestrator(store: Arc<dyn Store>, watch: bool) -> Orchestrator {
    let builder = Orchestrator::builder()
        .agent(agent_fn("hang", |_, ctx| async move {
            ctx.cancelled().await;
            Err(AgentError::permanent("stopped"))
        }))
        .agent(agent_fn("ask", |_, _| async move {
            Err(AgentError::interrupt(json!("approve?")))
        }))
        .agent(agent_fn("done", |_, _| async move { Ok(json!("done")) }))
        .store(store)
        .workflow(
            WorkflowDef::builder("hangs")
                .step(StepDef::new("hang", "hang"))
                .build(),
        )
        .workflow(
            WorkflowDef::builder("parks")
                .step(StepDef::new("ask", "ask"))
                .build(),
        )
        .workflow(
            WorkflowDef::builder("quick")
                .step(StepDef::new("done", "done"))
                .build(),
        );
    let builder = if watch {
        builder.watch_cancel_requests(LOOK_EVERY)
    } else {
        builder
    };
    builder.build().unwrap()
}

/// `wait`'s result, or a failed test when the execution does not end in
/// (virtual) time.
async fn ended<T>(wait: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LOOK_EVERY * 50, wait)
        .await
        .expect("the execution ended")
}

async fn requests(store: &dyn Store, id: &ExecutionId, status: MessageStatus) -> usize {
    store
        .list_messages(&MessageQuery {
            recipient: Some(CANCEL_MAILBOX.to_owned()),
            status: Some(status),
            thread: Some(id.as_str().to_owned()),
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test(start_paused = true)]
async fn the_process_running_the_execution_takes_the_request_and_no_other() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first = orchestrator(store.clone(), true);
    let second = orchestrator(store.clone(), true);
    let asked = first
        .run(&first.workflow("hangs").unwrap(), json!(null))
        .await
        .unwrap();
    let other = second
        .run(&second.workflow("hangs").unwrap(), json!(null))
        .await
        .unwrap();
    tokio::task::yield_now().await;

    let requester = orchestrator(store.clone(), false);
    let request = requester.request_cancel(asked.id()).await.unwrap();
    assert!(matches!(request, CancelRequest::Requested), "{request:?}");

    let err = ended(asked.wait()).await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(
        requests(&*store, asked.id(), MessageStatus::Processed).await,
        1
    );
    assert_eq!(
        requests(&*store, asked.id(), MessageStatus::Pending).await,
        0
    );

    // The other process looked too, and left its own execution running.
    tokio::time::sleep(LOOK_EVERY * 5).await;
    assert_eq!(other.status(), ExecutionStatus::Running);
    other.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_process_that_does_not_watch_leaves_the_request_pending() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let unwatched = orchestrator(store.clone(), false);
    let exec = unwatched
        .run(&unwatched.workflow("hangs").unwrap(), json!(null))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let requester = orchestrator(store.clone(), true);
    let request = requester.request_cancel(exec.id()).await.unwrap();
    assert!(matches!(request, CancelRequest::Requested), "{request:?}");
    tokio::time::sleep(LOOK_EVERY * 10).await;
    assert_eq!(exec.status(), ExecutionStatus::Running);
    assert_eq!(
        requests(&*store, exec.id(), MessageStatus::Pending).await,
        1
    );

    // Taken over and cancelled here instead: the request is settled.
    requester.cancel(exec.id()).await.unwrap();
    assert_eq!(
        requests(&*store, exec.id(), MessageStatus::Pending).await,
        0
    );
    exec.cancel();
}

#[test]
fn a_request_for_a_stopped_execution_is_honoured_when_it_is_resumed() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    };
    // A process that starts the execution, then stops.
    let id = runtime().block_on(async {
        let orch = orchestrator(store.clone(), true);
        let exec = orch
            .run(&orch.workflow("hangs").unwrap(), json!(null))
            .await
            .unwrap();
        tokio::task::yield_now().await;
        exec.id().clone()
    });
    runtime().block_on(async {
        let requester = orchestrator(store.clone(), false);
        let request = requester.request_cancel(&id).await.unwrap();
        assert!(matches!(request, CancelRequest::Requested), "{request:?}");
    });
    runtime().block_on(async {
        // No watch here: resuming reads the request itself.
        let orch = orchestrator(store.clone(), false);
        let exec = orch.resume(&id).await.unwrap();
        assert!(ended(exec.wait()).await.unwrap_err().is_cancelled());
        let started = store
            .load(&id, 0)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.kind.name() == "step_started")
            .count();
        assert_eq!(started, 1, "the step was not run again");
        assert_eq!(requests(&*store, &id, MessageStatus::Pending).await, 0);
        assert_eq!(requests(&*store, &id, MessageStatus::Processed).await, 1);
    });
}

#[tokio::test]
async fn finished_parked_unknown_and_local_executions_need_no_request() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let orch = orchestrator(store.clone(), false);

    let quick = orch
        .run(&orch.workflow("quick").unwrap(), json!(null))
        .await
        .unwrap();
    quick.wait().await.unwrap();
    let request = orch.request_cancel(quick.id()).await.unwrap();
    assert!(matches!(request, CancelRequest::Finished(_)), "{request:?}");

    let parked = orch
        .run(&orch.workflow("parks").unwrap(), json!(null))
        .await
        .unwrap();
    assert!(parked.wait().await.is_err());
    let elsewhere = orchestrator(store.clone(), false);
    let CancelRequest::Here(cancelled) = elsewhere.request_cancel(parked.id()).await.unwrap()
    else {
        panic!("a parked execution is cancelled where it is asked");
    };
    assert!(cancelled.wait().await.unwrap_err().is_cancelled());

    let running = orch
        .run(&orch.workflow("hangs").unwrap(), json!(null))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let CancelRequest::Here(here) = orch.request_cancel(running.id()).await.unwrap() else {
        panic!("an execution running here is cancelled here");
    };
    assert!(here.wait().await.unwrap_err().is_cancelled());

    for id in [quick.id(), parked.id(), running.id()] {
        assert_eq!(requests(&*store, id, MessageStatus::Pending).await, 0);
    }
    let unknown = orch.request_cancel(&"nope".into()).await.unwrap_err();
    assert!(matches!(unknown, Error::ExecutionNotFound(_)), "{unknown}");
}

/// An orchestrator that watches too rarely to take a request while its
/// executions run, with an agent held until `open` is notified, which then
/// answers (`"finish"`) or waits for a decision (`"park"`).
fn slow_watcher(store: Arc<dyn Store>, open: Arc<tokio::sync::Notify>) -> Orchestrator {
    gated_process(store, open)
        .watch_cancel_requests(Duration::from_secs(3600))
        .build()
        .unwrap()
}

/// The workflow of [`gated_process`], which it does not register: it is
/// bound, as `orchestrate run` does with a file.
fn gated() -> WorkflowDef {
    WorkflowDef::builder("gated")
        .step(StepDef::new("gate", "gate").input(json!("${input}")))
        .build()
}

fn gated_process(
    store: Arc<dyn Store>,
    open: Arc<tokio::sync::Notify>,
) -> orchestrate_core::OrchestratorBuilder {
    Orchestrator::builder()
        .agent(agent_fn("gate", move |input, _| {
            let open = open.clone();
            async move {
                open.notified().await;
                if input == json!("park") {
                    Err(AgentError::interrupt(json!("approve?")))
                } else {
                    Ok(input)
                }
            }
        }))
        .store(store)
}

#[tokio::test]
async fn a_request_not_taken_in_time_is_settled_when_the_run_ends_and_cancels_a_park() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let open = Arc::new(tokio::sync::Notify::new());
    let runner = slow_watcher(store.clone(), open.clone());
    let requester = orchestrator(store.clone(), false);
    let gated = runner.bind(&gated()).unwrap();

    // Finished before anyone took the request: moot, and settled.
    let finishes = runner.run(&gated, json!("finish")).await.unwrap();
    tokio::task::yield_now().await;
    let request = requester.request_cancel(finishes.id()).await.unwrap();
    assert!(matches!(request, CancelRequest::Requested), "{request:?}");
    assert!(runner.cancel_pending(finishes.id()).await.unwrap());
    open.notify_one();
    finishes.wait().await.unwrap();
    until_settled(&runner, finishes.id()).await;
    assert_eq!(finishes.status(), ExecutionStatus::Succeeded);

    // Parked before anyone took the request: cancelled, not left to be
    // cancelled when a decision wakes it up.
    let parks = runner.run(&gated, json!("park")).await.unwrap();
    tokio::task::yield_now().await;
    requester.request_cancel(parks.id()).await.unwrap();
    open.notify_one();
    assert!(parks.wait().await.is_err());
    until_settled(&runner, parks.id()).await;
    let view = runner.execution(parks.id()).await.unwrap();
    assert!(ended(view.wait()).await.unwrap_err().is_cancelled());
    assert_eq!(view.status(), ExecutionStatus::Cancelled);
}

/// Waits for the runner to settle `id`'s requests after its run.
async fn until_settled(runner: &Orchestrator, id: &ExecutionId) {
    for _ in 0..1_000 {
        if !runner.cancel_pending(id).await.unwrap() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the request for {id} is still pending");
}

#[tokio::test]
async fn resume_cancels_a_parked_execution_a_request_waits_for() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let open = Arc::new(tokio::sync::Notify::new());
    // A process that does not watch: the request stays pending.
    let runner = gated_process(store.clone(), open.clone()).build().unwrap();
    let parks = runner
        .run(&runner.bind(&gated()).unwrap(), json!("park"))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let requester = orchestrator(store.clone(), false);
    let request = requester.request_cancel(parks.id()).await.unwrap();
    assert!(matches!(request, CancelRequest::Requested), "{request:?}");
    open.notify_one();
    assert!(parks.wait().await.is_err());
    assert_eq!(parks.status(), ExecutionStatus::Parked);
    assert!(runner.cancel_pending(parks.id()).await.unwrap());

    let later = gated_process(store.clone(), Arc::default())
        .build()
        .unwrap();
    let resumed = later
        .resume_with(&later.bind(&gated()).unwrap(), parks.id())
        .await
        .unwrap();
    assert!(ended(resumed.wait()).await.unwrap_err().is_cancelled());
    assert!(!later.cancel_pending(parks.id()).await.unwrap());
}
