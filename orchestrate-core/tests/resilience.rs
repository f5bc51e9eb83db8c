//! Every attempt runs under the agent's resilience policy, and what the
//! policy does is in the journal.

mod support;

use std::time::Duration;

use orchestrate_core::journal::EventKind;
use orchestrate_core::resilience::{
    Backoff, BreakerConfig, BreakerState, BulkheadConfig, Jitter, Policy, RetryConfig, Trip,
};
use orchestrate_core::{default_policy, ExecutionStatus, Orchestrator, StepStatus};
use orchestrate_graph::{OnError, StepDef, WorkflowDef};
use orchestrate_testing::MockAgent;
use serde_json::json;
use support::{journal, trace};

fn no_jitter(attempts: u32) -> RetryConfig {
    RetryConfig::attempts(attempts).with_backoff(Backoff::default().with_jitter(Jitter::None))
}

#[tokio::test(start_paused = true)]
async fn retries_and_their_delays_are_journaled() {
    let flaky = MockAgent::new("flaky").returns(json!("ok")).fail_first(2);
    let orch = Orchestrator::builder()
        .agent(flaky.clone())
        .default_policy(default_policy().retry(no_jitter(3)))
        .build()
        .unwrap();
    let wf = orch
        .bind(
            &WorkflowDef::builder("w")
                .step(StepDef::new("s", "flaky"))
                .build(),
        )
        .unwrap();
    let exec = orch.run(&wf, json!(null)).await.unwrap();
    let view = exec.wait().await.unwrap();
    assert_eq!(view.step("s").unwrap().attempts, 3);
    let events = journal(&orch, &exec).await;
    let kinds: Vec<String> = trace(&events).into_iter().map(|(k, _)| k).collect();
    let s: Vec<&str> = kinds.iter().map(String::as_str).collect();
    assert_eq!(
        s,
        [
            "execution_started",
            "step_started",
            "attempt_failed",
            "retry_scheduled",
            "attempt_started",
            "attempt_failed",
            "retry_scheduled",
            "attempt_started",
            "step_succeeded",
            "execution_finished",
        ]
    );
    let delays: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RetryScheduled { delay_ms, .. } => Some(*delay_ms),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [1_000, 2_000]);
    match &events[2].kind {
        EventKind::StepSucceeded { .. } => panic!("out of order"),
        EventKind::AttemptFailed { error, attempt, .. } => {
            assert_eq!((*attempt, error.retryable), (1, true));
            assert!(error.message.contains("scripted failure"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn one_breaker_per_agent_opens_across_steps_and_executions() {
    let down = MockAgent::new("down").fail_always();
    let orch = Orchestrator::builder()
        .agent(down.clone())
        .agent_policy(
            "down",
            Policy::builder()
                .retry(RetryConfig::attempts(1))
                .circuit_breaker(BreakerConfig {
                    trip: Trip::ConsecutiveFailures(2),
                    ..BreakerConfig::default()
                }),
        )
        .build()
        .unwrap();
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("a", "down").on_error(OnError::Continue))
        .step(StepDef::new("b", "down").on_error(OnError::Continue))
        .build();
    let wf = orch.bind(&def).unwrap();
    assert_eq!(
        orch.circuit_breaker("down").unwrap().state,
        BreakerState::Closed
    );

    let first = orch.run(&wf, json!(null)).await.unwrap();
    assert_eq!(
        first.wait().await.unwrap().status(),
        ExecutionStatus::PartiallySucceeded
    );
    let snapshot = orch.circuit_breaker("down").unwrap();
    assert_eq!(snapshot.state, BreakerState::Open);
    assert!(snapshot.last_error.unwrap().contains("scripted failure"));
    let transitions: Vec<_> = journal(&orch, &first)
        .await
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::BreakerTransition {
                breaker, from, to, ..
            } => Some((breaker.to_string(), *from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        transitions,
        [("down".to_owned(), BreakerState::Closed, BreakerState::Open)]
    );

    // A new execution fails fast: the agent is not called.
    let calls = down.call_count();
    let second = orch.run(&wf, json!(null)).await.unwrap();
    let view = second.wait().await.unwrap();
    assert_eq!(down.call_count(), calls);
    let a = view.step("a").unwrap();
    assert_eq!(a.status, StepStatus::Failed);
    assert_eq!(a.error.as_ref().unwrap().code, "circuit_open");
    assert!(trace(&journal(&orch, &second).await)
        .iter()
        .any(|(k, _)| k == "attempt_rejected"));
    assert_eq!(orch.circuit_breakers().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn step_fields_override_the_agent_policy() {
    let slow = MockAgent::new("slow")
        .latency(Duration::from_secs(10))
        .ignore_cancel();
    let orch = Orchestrator::builder()
        .agent(slow.clone())
        .agent_policy(
            "slow",
            Policy::builder()
                .timeout(Duration::from_secs(60))
                .retry(no_jitter(1)),
        )
        .build()
        .unwrap();
    // The agent's 60 s timeout lets the 10 s call finish...
    let relaxed = WorkflowDef::builder("w")
        .step(StepDef::new("s", "slow"))
        .build();
    let view = orch
        .run(&orch.bind(&relaxed).unwrap(), json!(1))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(view.step("s").unwrap().status, StepStatus::Succeeded);
    // ...a step's own timeout and retries replace the agent's.
    let strict = WorkflowDef::builder("w")
        .step(
            StepDef::new("s", "slow")
                .timeout(Duration::from_secs(1))
                .retries(2),
        )
        .build();
    let calls = slow.call_count();
    let err = orch
        .run(&orch.bind(&strict).unwrap(), json!(1))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "timeout");
    assert_eq!(err.attempts(), Some(3));
    assert_eq!(slow.call_count() - calls, 3);
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_rejects_the_attempt_with_a_typed_error() {
    let busy = MockAgent::new("busy").latency(Duration::from_millis(100));
    let orch = Orchestrator::builder()
        .agent(busy)
        .agent_policy(
            "busy",
            Policy::builder()
                .bulkhead(BulkheadConfig::new(1, 0))
                .retry(RetryConfig::attempts(1)),
        )
        .build()
        .unwrap();
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("a", "busy").on_error(OnError::Continue))
        .step(StepDef::new("b", "busy").on_error(OnError::Continue))
        .build();
    let view = orch
        .run(&orch.bind(&def).unwrap(), json!(null))
        .await
        .unwrap()
        .await
        .unwrap();
    let codes: Vec<_> = view
        .steps()
        .iter()
        .map(|s| s.error.as_ref().map(|e| e.code.clone()))
        .collect();
    assert_eq!(view.count(StepStatus::Succeeded), 1);
    assert!(codes.contains(&Some("rejected".to_owned())), "{codes:?}");
}

#[tokio::test(start_paused = true)]
async fn every_attempt_gets_the_same_input() {
    // The input reads the execution's input, a direct dependency's output
    // and a further ancestor's: each retry rebuilds it from the same values.
    let source = MockAgent::new("source").returns(json!({"n": 7, "tags": ["x", "y"]}));
    let relay = MockAgent::new("relay").returns(json!("relayed"));
    let flaky = MockAgent::new("flaky").returns(json!("ok")).fail_first(2);
    let orch = Orchestrator::builder()
        .agent(source)
        .agent(relay)
        .agent(flaky.clone())
        .default_policy(default_policy().retry(no_jitter(3)))
        .build()
        .unwrap();
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("a", "source"))
        .step(StepDef::new("b", "relay").depends_on(["a"]))
        .step(StepDef::new("c", "flaky").depends_on(["b"]).input(json!({
            "user": "${input.user}",
            "n": "${steps.a.output.n}",
            "tags": "${steps.a.output.tags}",
            "via": "${steps.b.output} by ${input.user}",
            "fixed": [1, 2],
        })))
        .build();
    let wf = orch.bind(&def).unwrap();
    let view = orch
        .run(&wf, json!({"user": "ada"}))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(view.step("c").unwrap().attempts, 3);
    let calls = flaky.calls_for("c");
    let numbers: Vec<u32> = calls.iter().map(|c| c.attempt).collect();
    assert_eq!(numbers, [1, 2, 3], "each attempt sees its own number");
    let expected = json!({
        "user": "ada",
        "n": 7,
        "tags": ["x", "y"],
        "via": "relayed by ada",
        "fixed": [1, 2],
    });
    for call in &calls {
        assert_eq!(call.input, expected, "attempt {}", call.attempt);
    }
}
