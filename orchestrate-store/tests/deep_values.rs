//! Deeply nested values on the durable store: whatever the orchestrator
//! accepts, a reopened SQLite file reads back; what it could not read back
//! is refused where it is produced, with an error naming the limit.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use orchestrate_core::depth::MAX_VALUE_DEPTH;
use orchestrate_core::journal::ExecutionStatus;
use orchestrate_core::store::{ExecutionQuery, Store};
use orchestrate_core::{agent_fn, AgentError, Error, Orchestrator, StepStatus};
use orchestrate_graph::{OnError, StepDef, WorkflowDef};
use orchestrate_store::sqlite::SqliteStore;
use serde_json::{json, Value};

/// `[[…["leaf"]…]]`, `depth` arrays deep (built by hand: `json!` would
/// serialise the inner value recursively).
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("leaf"), |v, _| Value::Array(vec![v]))
}

fn orchestrator(store: Arc<SqliteStore>) -> Orchestrator {
    Orchestrator::builder()
        .agent(agent_fn("nest", |input, _| async move {
            Ok(nested(input.as_u64().unwrap_or(0) as usize))
        }))
        .agent(agent_fn("emit", |input, ctx| async move {
            let depth = input.as_u64().unwrap_or(0) as usize;
            match ctx.emit("tree", nested(depth)).await {
                Ok(()) => Ok(json!("emitted")),
                Err(e) => Ok(json!(e.code())),
            }
        }))
        .agent(agent_fn("ask", |input, _| async move {
            Err(AgentError::interrupt(nested(
                input.as_u64().unwrap_or(0) as usize
            )))
        }))
        .store(store)
        // Registered: a decision resumes an execution by its workflow's name.
        .workflow(one_step("ask", json!("${input}")))
        .build()
        .unwrap()
}

fn one_step(agent: &str, input: Value) -> WorkflowDef {
    WorkflowDef::builder(agent)
        .step(StepDef::new("s", agent).input(input))
        .build()
}

#[tokio::test]
async fn an_output_at_the_limit_is_read_back_after_reopening_and_a_deeper_one_fails_its_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.db");
    let (at_limit, too_deep) = {
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let orch = orchestrator(store.clone());
        let wf = orch.bind(&one_step("nest", json!("${input}"))).unwrap();
        let ok = orch.run(&wf, json!(MAX_VALUE_DEPTH)).await.unwrap();
        let view = ok.clone().await.unwrap();
        assert_eq!(view.output("s"), Some(&nested(MAX_VALUE_DEPTH)));
        // The reproduction: an output 200 levels deep.
        let deep = orch.run(&wf, json!(200)).await.unwrap();
        let err = deep.clone().await.unwrap_err();
        assert!(
            matches!(&err, Error::ValueTooDeep { step: Some(s), what: "output", limit } if &**s == "s" && *limit == MAX_VALUE_DEPTH),
            "{err}"
        );
        assert!(err.to_string().contains("100 levels"), "{err}");
        assert!(!err.is_retryable());
        (ok.id().clone(), deep.id().clone())
    };

    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let listed = store.list_executions(&ExecutionQuery::all()).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(store.verify().await.unwrap().is_clean());
    let orch = orchestrator(store);
    let view = orch.execution(&at_limit).await.unwrap().view();
    assert_eq!(view.output("s"), Some(&nested(MAX_VALUE_DEPTH)));
    let view = orch.execution(&too_deep).await.unwrap().view();
    assert_eq!(view.status(), ExecutionStatus::Failed);
    let step = view.step("s").unwrap();
    assert_eq!(step.status, StepStatus::Failed);
    assert_eq!(
        step.error.as_ref().map(|e| e.code.as_str()),
        Some("value_too_deep")
    );
}

#[tokio::test]
async fn every_other_way_in_refuses_a_value_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("ways.db")).await.unwrap());
    let orch = orchestrator(store.clone());

    // An execution's input.
    let wf = orch.bind(&one_step("nest", json!(1))).unwrap();
    let err = orch
        .run(&wf, nested(MAX_VALUE_DEPTH + 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ValueTooDeep {
                what: "execution input",
                ..
            }
        ),
        "{err}"
    );
    orch.run(&wf, nested(MAX_VALUE_DEPTH))
        .await
        .unwrap()
        .await
        .unwrap();

    // A custom event: the agent is told, and may go on.
    let wf = orch.bind(&one_step("emit", json!("${input}"))).unwrap();
    let done = orch
        .run(&wf, json!(MAX_VALUE_DEPTH + 1))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(done.output("s"), Some(&json!("value_too_deep")));
    let done = orch
        .run(&wf, json!(MAX_VALUE_DEPTH))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(done.output("s"), Some(&json!("emitted")));

    // An interrupt payload fails its step; one at the limit parks.
    let wf = orch.workflow("ask").unwrap();
    let err = orch
        .run(&wf, json!(MAX_VALUE_DEPTH + 1))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ValueTooDeep {
                what: "interrupt payload",
                ..
            }
        ),
        "{err}"
    );
    let parked = orch.run(&wf, json!(MAX_VALUE_DEPTH)).await.unwrap();
    assert!(matches!(parked.clone().await, Err(Error::Parked { .. })));

    // A decision.
    let err = orch
        .approve(parked.id(), "s", nested(MAX_VALUE_DEPTH + 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ValueTooDeep {
                what: "decision",
                ..
            }
        ),
        "{err}"
    );
    let approved = orch
        .approve(parked.id(), "s", nested(MAX_VALUE_DEPTH))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(approved.output("s"), Some(&nested(MAX_VALUE_DEPTH)));

    // A fallback value, when the workflow is bound.
    let def = WorkflowDef::builder("fallback")
        .step(StepDef::new("s", "nest").on_error(OnError::Fallback(nested(MAX_VALUE_DEPTH + 1))))
        .build();
    let err = orch.bind(&def).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ValueTooDeep {
                what: "fallback value",
                ..
            }
        ),
        "{err}"
    );

    assert!(store.verify().await.unwrap().is_clean());
}
