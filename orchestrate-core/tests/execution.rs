//! One execution end to end: interpolation, outputs, projections, events.

mod support;

use futures::StreamExt;
use orchestrate_core::bus::{EventBus, MemoryBus, MemoryBusConfig, Overflow};
use orchestrate_core::journal::ExecutionView;
use orchestrate_core::{agent_fn, Error, ExecutionStatus, Orchestrator, StepStatus};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_testing::MockAgent;
use serde_json::json;
use std::sync::Arc;
use support::{assert_contiguous, journal, position, trace};

fn two_steps() -> WorkflowDef {
    WorkflowDef::from_json(
        r#"{
        "name": "hello",
        "steps": [
            {"id": "greet", "agent": "greet", "input": {"name": "${input.user.name}"}},
            {"id": "shout", "agent": "shout", "depends_on": ["greet"],
             "input": {"text": "${steps.greet.output.text}", "times": "${input.times ?? 1}"}}
        ]
    }"#,
    )
    .unwrap()
}

fn orchestrator() -> Orchestrator {
    Orchestrator::builder()
        .agent(agent_fn("greet", |input, _| async move {
            Ok(json!({"text": format!("hello {}", input["name"].as_str().unwrap())}))
        }))
        .agent(agent_fn("shout", |input, _| async move {
            let text = input["text"].as_str().unwrap().to_uppercase();
            Ok(json!(text.repeat(input["times"].as_u64().unwrap() as usize)))
        }))
        .workflow(two_steps())
        .build()
        .unwrap()
}

#[tokio::test]
async fn interpolated_outputs_flow_between_steps() {
    let orch = orchestrator();
    let wf = orch.workflow("hello").unwrap();
    let exec = orch
        .run(&wf, json!({"user": {"name": "ada"}, "times": 2}))
        .await
        .unwrap();
    let done = exec.clone().await.unwrap();
    assert_eq!(done.status(), ExecutionStatus::Succeeded);
    assert_eq!(done.output("greet"), Some(&json!({"text": "hello ada"})));
    assert_eq!(done.output("shout"), Some(&json!("HELLO ADAHELLO ADA")));
    assert_eq!(exec.status(), ExecutionStatus::Succeeded);

    // The live view is exactly the fold of the stored journal.
    let events = journal(&orch, &exec).await;
    assert_contiguous(&events);
    assert_eq!(ExecutionView::from_events(&events), done);
    assert!(
        position(&events, "step_succeeded", "greet") < position(&events, "step_started", "shout")
    );
}

#[tokio::test]
async fn missing_interpolation_path_fails_the_step_naming_it() {
    let orch = orchestrator();
    let wf = orch.workflow("hello").unwrap();
    let err = orch
        .run(&wf, json!({"user": {}}))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "interpolation");
    let text = err.to_string();
    assert!(
        text.contains("greet") && text.contains("input.user.name"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_and_duplicate_agents_are_typed_errors_at_build() {
    let err = Orchestrator::builder()
        .workflow(two_steps())
        .build()
        .unwrap_err();
    match err {
        Error::UnknownAgent {
            workflow,
            step,
            agent,
        } => {
            assert_eq!((&*workflow, &*step, &*agent), ("hello", "greet", "greet"));
        }
        other => panic!("expected UnknownAgent, got {other:?}"),
    }
    let err = Orchestrator::builder()
        .agent(MockAgent::new("a"))
        .agent(MockAgent::new("a"))
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "duplicate_agent");
    let invalid = WorkflowDef::builder("bad")
        .step(StepDef::new("x", "a").depends_on(["y"]))
        .build();
    let err = Orchestrator::builder()
        .agent(MockAgent::new("a"))
        .workflow(invalid)
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "validation");
}

#[tokio::test]
async fn event_stream_is_complete_even_when_the_bus_drops() {
    // A bus that keeps only 2 events per subscriber: the stream refills
    // what was dropped from the journal.
    let bus = Arc::new(MemoryBus::with_config(MemoryBusConfig {
        capacity: 2,
        overflow: Overflow::DropOldest,
    }));
    let mock = MockAgent::new("m");
    let mut builder = WorkflowDef::builder("chain").step(StepDef::new("s0", "m"));
    for i in 1..20 {
        builder =
            builder.step(StepDef::new(format!("s{i}"), "m").depends_on([format!("s{}", i - 1)]));
    }
    let orch = Orchestrator::builder()
        .agent(mock)
        .bus(bus.clone())
        .build()
        .unwrap();
    let wf = orch.bind(&builder.build()).unwrap();
    let exec = orch.run(&wf, json!(1)).await.unwrap();
    let stream = exec.events().await.unwrap();
    exec.wait().await.unwrap();
    let seen: Vec<u64> = stream.map(|e| e.seq).collect().await;
    let stored = journal(&orch, &exec).await;
    assert_eq!(seen, (0..stored.len() as u64).collect::<Vec<_>>());
    assert!(bus.dropped() > 0, "the scenario must actually drop events");
}

#[tokio::test]
async fn custom_events_are_journaled_before_the_step_result() {
    let agent = agent_fn("talker", |_, ctx| async move {
        ctx.emit("progress", json!({"pct": 50})).await.unwrap();
        ctx.emit("progress", json!({"pct": 100})).await.unwrap();
        Ok(json!("done"))
    });
    let orch = Orchestrator::builder().agent(agent).build().unwrap();
    let wf = orch
        .bind(
            &WorkflowDef::builder("w")
                .step(StepDef::new("t", "talker"))
                .build(),
        )
        .unwrap();
    let exec = orch.run(&wf, json!(null)).await.unwrap();
    let view = exec.wait().await.unwrap();
    assert_eq!(view.custom_events(), 2);
    let events = journal(&orch, &exec).await;
    let custom = position(&events, "custom", "t");
    assert!(custom < position(&events, "step_succeeded", "t"));
    assert_eq!(view.step("t").unwrap().status, StepStatus::Succeeded);
}

#[tokio::test]
async fn typed_agents_run_in_workflows() {
    #[derive(serde::Deserialize)]
    struct In {
        a: i64,
        b: i64,
    }
    #[derive(serde::Serialize)]
    struct Out {
        sum: i64,
    }
    let add =
        orchestrate_core::typed_agent("add", |i: In, _| async move { Ok(Out { sum: i.a + i.b }) });
    let orch = Orchestrator::builder().agent(add).build().unwrap();
    let wf = orch
        .bind(
            &WorkflowDef::builder("w")
                .step(StepDef::new("add", "add").input(json!({"a": "${input.x}", "b": 2})))
                .build(),
        )
        .unwrap();
    let done = orch
        .run(&wf, json!({"x": 40}))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(done.output("add"), Some(&json!({"sum": 42})));
    let err = orch
        .run(&wf, json!({"x": "nope"}))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "agent");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn events_emitted_after_the_execution_ended_are_refused() {
    let kept = Arc::new(std::sync::Mutex::new(None));
    let keep = kept.clone();
    let agent = agent_fn("keeper", move |_, ctx| {
        let keep = keep.clone();
        async move {
            ctx.emit("during", json!(1)).await.unwrap();
            *keep.lock().unwrap() = Some(ctx);
            Ok(json!("done"))
        }
    });
    let orch = Orchestrator::builder().agent(agent).build().unwrap();
    let wf = orch
        .bind(
            &WorkflowDef::builder("w")
                .step(StepDef::new("k", "keeper"))
                .build(),
        )
        .unwrap();
    let exec = orch.run(&wf, json!(null)).await.unwrap();
    let view = exec.wait().await.unwrap();
    assert_eq!(view.custom_events(), 1);
    let ctx = kept.lock().unwrap().take().unwrap();
    let late = ctx.emit("after", json!(2)).await.unwrap_err();
    assert!(late.is_cancelled(), "{late:?}");
    let customs = trace(&journal(&orch, &exec).await)
        .into_iter()
        .filter(|(kind, _)| kind == "custom")
        .count();
    assert_eq!(customs, 1);
}

#[test]
fn an_execution_whose_runtime_stops_ends_as_orphaned() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (orch, exec) = runtime.block_on(async {
        let forever = agent_fn("forever", |_, _| async {
            std::future::pending::<()>().await;
            Ok(json!(null))
        });
        let orch = Orchestrator::builder().agent(forever).build().unwrap();
        let wf = orch
            .bind(
                &WorkflowDef::builder("w")
                    .step(StepDef::new("f", "forever"))
                    .build(),
            )
            .unwrap();
        let exec = orch.run(&wf, json!(null)).await.unwrap();
        (orch, exec)
    });
    // Dropping the runtime drops every task on it, the driver among them.
    drop(runtime);
    // Bounded, so that a regression fails instead of hanging the suite.
    let waiter = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let ended = waiter
        .block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(30), exec.wait()).await
        })
        .expect("the waiter was never told");
    assert!(
        matches!(&ended, Err(Error::Orphaned(id)) if id == exec.id()),
        "{ended:?}"
    );
    drop(orch);
}
