//! Resume: an execution whose process stopped continues from its journal.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use orchestrate_core::store::{ExecutionQuery, MemoryStore, Store};
use orchestrate_core::{agent_fn, Agent, Error, ExecutionId, ExecutionStatus, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::json;
use support::{assert_contiguous, journal};

type Ledger = Arc<Mutex<HashMap<String, u32>>>;

fn chain() -> WorkflowDef {
    WorkflowDef::builder("chain")
        .step(StepDef::new("a", "inc").input(json!({"n": "${input.n}"})))
        .step(
            StepDef::new("b", "inc")
                .depends_on(["a"])
                .input(json!({"n": "${steps.a.output.n}"})),
        )
        .step(
            StepDef::new("c", "inc")
                .depends_on(["b"])
                .input(json!({"n": "${steps.b.output.n}"})),
        )
        .step(
            StepDef::new("d", "inc")
                .depends_on(["c"])
                .input(json!({"n": "${steps.c.output.n}"})),
        )
        .build()
}

/// Adds one, records each call under the step's idempotency key, and (when
/// `stall_on` names the step) never returns, like a process about to die.
fn inc(ledger: Ledger, stall_on: Option<&'static str>) -> impl Agent {
    agent_fn("inc", move |input, ctx| {
        let ledger = ledger.clone();
        async move {
            *ledger
                .lock()
                .unwrap()
                .entry(ctx.idempotency_key())
                .or_default() += 1;
            if stall_on == Some(ctx.step_id()) {
                std::future::pending::<()>().await;
            }
            Ok(json!({"n": input["n"].as_i64().unwrap() + 1}))
        }
    })
}

fn orchestrator(
    store: Arc<dyn Store>,
    ledger: Ledger,
    stall_on: Option<&'static str>,
) -> Orchestrator {
    Orchestrator::builder()
        .agent(inc(ledger, stall_on))
        .store(store)
        .workflow(chain())
        .build()
        .unwrap()
}

/// Runs the workflow on a runtime of its own until step `stall_on` is
/// running, then drops that runtime: every task dies mid-flight, as in a
/// killed process. Returns the execution id.
fn run_and_crash(store: Arc<dyn Store>, ledger: Ledger, stall_on: &'static str) -> ExecutionId {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(async {
        let orch = orchestrator(store, ledger.clone(), Some(stall_on));
        let exec = orch
            .run(&orch.workflow("chain").unwrap(), json!({"n": 0}))
            .await
            .unwrap();
        while !ledger
            .lock()
            .unwrap()
            .contains_key(&format!("{}/{stall_on}", exec.id()))
        {
            tokio::task::yield_now().await;
        }
        exec.id().clone()
    });
    drop(rt);
    id
}

#[tokio::test]
async fn a_stopped_execution_resumes_without_rerunning_completed_steps() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let ledger = Ledger::default();
    let id = {
        let (store, ledger) = (store.clone(), ledger.clone());
        tokio::task::spawn_blocking(move || run_and_crash(store, ledger, "c"))
            .await
            .unwrap()
    };
    let unfinished = store
        .list_executions(&ExecutionQuery::unfinished())
        .await
        .unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].id, id);

    let orch = orchestrator(store.clone(), ledger.clone(), None);
    let exec = orch.resume(&id).await.unwrap();
    let view = exec.wait().await.unwrap();
    assert_eq!(view.status(), ExecutionStatus::Succeeded);
    assert_eq!(
        view.output("d"),
        Some(&json!({"n": 4})),
        "same result as an uninterrupted run"
    );

    let calls = ledger.lock().unwrap().clone();
    let count = |step: &str| calls.get(&format!("{id}/{step}")).copied().unwrap_or(0);
    assert_eq!(
        (count("a"), count("b"), count("c"), count("d")),
        (1, 1, 2, 1)
    );

    let events = journal(&orch, &exec).await;
    assert_contiguous(&events);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind.name() == "execution_resumed")
            .count(),
        1
    );
    assert!(store
        .list_executions(&ExecutionQuery::unfinished())
        .await
        .unwrap()
        .is_empty());

    // Resuming a finished execution returns it as it is.
    assert_eq!(
        orch.resume(&id)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap()
            .output("d"),
        Some(&json!({"n": 4}))
    );
}

#[tokio::test]
async fn resume_needs_the_workflow_and_the_same_steps() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let ledger = Ledger::default();
    let id = {
        let (store, ledger) = (store.clone(), ledger.clone());
        tokio::task::spawn_blocking(move || run_and_crash(store, ledger, "b"))
            .await
            .unwrap()
    };
    let bare = Orchestrator::builder()
        .agent(inc(ledger.clone(), None))
        .store(store.clone())
        .build()
        .unwrap();
    assert!(matches!(
        bare.resume(&id).await,
        Err(Error::UnknownWorkflow { .. })
    ));
    let other = bare
        .bind(
            &WorkflowDef::builder("chain")
                .step(StepDef::new("x", "inc"))
                .build(),
        )
        .unwrap();
    assert_eq!(
        bare.resume_with(&other, &id).await.unwrap_err().code(),
        "workflow_mismatch"
    );
    assert!(matches!(
        bare.resume(&ExecutionId::from("ghost")).await,
        Err(Error::ExecutionNotFound(_))
    ));
    // With the right workflow it finishes.
    let right = bare.bind(&chain()).unwrap();
    let view = bare
        .resume_with(&right, &id)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(view.output("d"), Some(&json!({"n": 4})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_resuming_at_once_never_both_write() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let ledger = Ledger::default();
    let id = {
        let (store, ledger) = (store.clone(), ledger.clone());
        tokio::task::spawn_blocking(move || run_and_crash(store, ledger, "b"))
            .await
            .unwrap()
    };
    let first = orchestrator(store.clone(), ledger.clone(), None);
    let second = orchestrator(store.clone(), ledger.clone(), None);
    let (a, b) = tokio::join!(first.resume(&id), second.resume(&id));
    let (a, b) = (a.unwrap().wait().await, b.unwrap().wait().await);
    // One resumes it. The other either conflicts at its first append (and
    // runs nothing) or, if it looked after the first had finished, gets the
    // finished execution.
    let won = match (a, b) {
        (Ok(v), Err(e)) | (Err(e), Ok(v)) => {
            assert!(e.to_string().contains("journal conflict"), "{e}");
            v
        }
        (Ok(v), Ok(w)) => {
            assert_eq!(v, w);
            v
        }
        other => panic!("neither resumed it: {other:?}"),
    };
    assert_eq!(won.output("d"), Some(&json!({"n": 4})));
    let calls = ledger.lock().unwrap().clone();
    assert_eq!(
        calls.get(&format!("{id}/b")),
        Some(&2),
        "the crashed run and the winner"
    );
    let events = store.load(&id, 0).await.unwrap();
    assert_contiguous(&events);
    let count = |kind: &str| events.iter().filter(|e| e.kind.name() == kind).count();
    assert_eq!(
        (count("execution_resumed"), count("execution_finished")),
        (1, 1)
    );
}
