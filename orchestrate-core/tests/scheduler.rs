//! Scheduling: dynamic readiness, FIFO, concurrency limits, on_error, conditions.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orchestrate_core::journal::SkipReason;
use orchestrate_core::resilience::{Backoff, Jitter, RetryConfig};
use orchestrate_core::{
    agent_fn, default_policy, Agent, Error, ExecutionStatus, ExecutionView, Orchestrator,
    StepStatus,
};
use orchestrate_graph::{OnError, StepDef, WorkflowDef};
use orchestrate_testing::MockAgent;
use serde_json::json;
use support::{journal, position, trace};

/// Runs `def` with a null input on `orch` and waits for its end.
async fn run_to_end(orch: &Orchestrator, def: &WorkflowDef) -> Result<ExecutionView, Error> {
    orch.run(&orch.bind(def).unwrap(), json!(null))
        .await
        .unwrap()
        .await
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An agent that sleeps `input.ms` and tracks how many calls overlap.
fn gauge(name: &str, now: Arc<AtomicUsize>, peak: Arc<AtomicUsize>) -> impl Agent {
    agent_fn(name.to_owned(), move |input, _| {
        let (now, peak) = (now.clone(), peak.clone());
        async move {
            let current = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(current, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(input["ms"].as_u64().unwrap_or(10))).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(input)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_step_starts_when_its_own_dependencies_finish_not_its_generation() {
    // Generations are [a, c] then [b, d]; d only needs c, so it must start
    // at 10 ms, long before a finishes at 100 ms.
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("a", "sleep").input(json!({"ms": 100})))
        .step(StepDef::new("c", "sleep").input(json!({"ms": 10})))
        .step(StepDef::new("b", "sleep").depends_on(["a"]))
        .step(StepDef::new("d", "sleep").depends_on(["c"]))
        .build();
    let peak = Arc::new(AtomicUsize::new(0));
    let orch = Orchestrator::builder()
        .agent(gauge("sleep", Arc::default(), peak))
        .build()
        .unwrap();
    let view = run_to_end(&orch, &def).await.unwrap();
    let d_started = view.step("d").unwrap().started_us.unwrap();
    let a_finished = view.step("a").unwrap().finished_us.unwrap();
    assert!(d_started < 20_000, "d started at {d_started} µs");
    assert!(a_finished >= 100_000);
    assert!(d_started < a_finished);
}

#[tokio::test(start_paused = true)]
async fn global_concurrency_limit_is_never_exceeded_and_is_reached() {
    let mut b =
        WorkflowDef::builder("fan").step(StepDef::new("start", "work").input(json!({"ms": 1})));
    for i in 0..20 {
        b = b.step(
            StepDef::new(format!("w{i}"), "work")
                .depends_on(["start"])
                .input(json!({"ms": 10})),
        );
    }
    let peak = Arc::new(AtomicUsize::new(0));
    let orch = Orchestrator::builder()
        .agent(gauge("work", Arc::default(), peak.clone()))
        .max_concurrency(3)
        .build()
        .unwrap();
    let view = orch
        .run(&orch.bind(&b.build()).unwrap(), json!(null))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(view.count(StepStatus::Succeeded), 21);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn default_global_limit_is_ten() {
    let mut b =
        WorkflowDef::builder("fan").step(StepDef::new("start", "work").input(json!({"ms": 1})));
    for i in 0..30 {
        b = b.step(
            StepDef::new(format!("w{i}"), "work")
                .depends_on(["start"])
                .input(json!({"ms": 10})),
        );
    }
    let peak = Arc::new(AtomicUsize::new(0));
    let orch = Orchestrator::builder()
        .agent(gauge("work", Arc::default(), peak.clone()))
        .build()
        .unwrap();
    orch.run(&orch.bind(&b.build()).unwrap(), json!(null))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 10);
}

#[tokio::test(start_paused = true)]
async fn per_agent_limit_caps_one_agent_while_others_proceed() {
    let mut b =
        WorkflowDef::builder("mix").step(StepDef::new("start", "fast").input(json!({"ms": 1})));
    for i in 0..6 {
        b = b.step(
            StepDef::new(format!("s{i}"), "slow")
                .depends_on(["start"])
                .input(json!({"ms": 50})),
        );
        b = b.step(
            StepDef::new(format!("f{i}"), "fast")
                .depends_on(["start"])
                .input(json!({"ms": 5})),
        );
    }
    let slow_peak = Arc::new(AtomicUsize::new(0));
    let fast_peak = Arc::new(AtomicUsize::new(0));
    let orch = Orchestrator::builder()
        .agent(gauge("slow", Arc::default(), slow_peak.clone()))
        .agent(gauge("fast", Arc::default(), fast_peak.clone()))
        .agent_concurrency("slow", 2)
        .build()
        .unwrap();
    let view = orch
        .run(&orch.bind(&b.build()).unwrap(), json!(null))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(slow_peak.load(Ordering::SeqCst), 2);
    assert!(fast_peak.load(Ordering::SeqCst) >= 2);
    // Every fast step finished before the slow ones, which queue two at a time.
    let last_fast = (0..6)
        .map(|i| view.step(&format!("f{i}")).unwrap().finished_us.unwrap())
        .max()
        .unwrap();
    let last_slow = (0..6)
        .map(|i| view.step(&format!("s{i}")).unwrap().finished_us.unwrap())
        .max()
        .unwrap();
    assert!(
        last_fast < 60_000,
        "fast steps waited behind slow ones: {last_fast}"
    );
    assert!(last_slow >= 150_000);
}

#[tokio::test(start_paused = true)]
async fn ready_steps_start_in_fifo_order() {
    let mut b = WorkflowDef::builder("fifo").step(StepDef::new("start", "m"));
    for i in 0..8 {
        b = b.step(StepDef::new(format!("w{i}"), "m").depends_on(["start"]));
    }
    let orch = Orchestrator::builder()
        .agent(MockAgent::new("m").latency(ms(5)))
        .max_concurrency(1)
        .build()
        .unwrap();
    let exec = orch
        .run(&orch.bind(&b.build()).unwrap(), json!(null))
        .await
        .unwrap();
    exec.wait().await.unwrap();
    let events = journal(&orch, &exec).await;
    let t = trace(&events);
    let scheduled: Vec<&str> = t
        .iter()
        .filter(|(k, _)| k == "step_scheduled")
        .map(|(_, s)| s.as_str())
        .collect();
    let started: Vec<&str> = t
        .iter()
        .filter(|(k, _)| k == "step_started")
        .map(|(_, s)| s.as_str())
        .collect();
    let order: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    assert_eq!(started[0], "start");
    assert_eq!(started[1..], order);
    // Only the steps that waited for the slot are journaled as scheduled.
    assert_eq!(scheduled, order[1..]);
}

#[tokio::test(start_paused = true)]
async fn on_error_fail_cancels_the_rest_and_fails_the_execution() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("bad", "bad"))
        .step(StepDef::new("after_bad", "slow").depends_on(["bad"]))
        .step(StepDef::new("sibling", "slow"))
        .step(StepDef::new("after_sibling", "slow").depends_on(["sibling"]))
        .build();
    let bad = MockAgent::new("bad")
        .latency(ms(10))
        .fail_always()
        .permanent();
    let slow = MockAgent::new("slow").latency(ms(1_000));
    let orch = Orchestrator::builder()
        .agent(bad)
        .agent(slow.clone())
        .build()
        .unwrap();
    let exec = orch
        .run(&orch.bind(&def).unwrap(), json!(null))
        .await
        .unwrap();
    let err = exec.wait().await.unwrap_err();
    assert_eq!(err.code(), "agent");
    assert_eq!(err.attempts(), Some(1));
    let view = exec.view();
    assert_eq!(view.status(), ExecutionStatus::Failed);
    assert_eq!(view.step("bad").unwrap().status, StepStatus::Failed);
    assert_eq!(view.step("after_bad").unwrap().status, StepStatus::Skipped);
    assert_eq!(view.step("sibling").unwrap().status, StepStatus::Cancelled);
    assert_eq!(
        view.step("after_sibling").unwrap().status,
        StepStatus::Cancelled
    );
    assert_eq!(slow.call_count(), 1, "nothing new starts after the failure");
}

#[tokio::test(start_paused = true)]
async fn on_error_continue_skips_dependents_and_lets_other_branches_finish() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("bad", "bad").on_error(OnError::Continue))
        .step(StepDef::new("after_bad", "ok").depends_on(["bad"]))
        .step(StepDef::new("deeper", "ok").depends_on(["after_bad"]))
        .step(StepDef::new("sibling", "ok"))
        .step(StepDef::new("after_sibling", "ok").depends_on(["sibling"]))
        .build();
    let orch = Orchestrator::builder()
        .agent(MockAgent::new("bad").fail_always())
        .agent(MockAgent::new("ok").latency(ms(10)))
        .build()
        .unwrap();
    let view = orch
        .run(&orch.bind(&def).unwrap(), json!(1))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(view.status(), ExecutionStatus::PartiallySucceeded);
    assert_eq!(view.step("bad").unwrap().status, StepStatus::Failed);
    assert_eq!(
        view.step("after_bad").unwrap().skip_reason,
        Some(SkipReason::Upstream { step: "bad".into() })
    );
    assert_eq!(
        view.step("deeper").unwrap().skip_reason,
        Some(SkipReason::Upstream {
            step: "after_bad".into()
        })
    );
    assert_eq!(
        view.step("after_sibling").unwrap().status,
        StepStatus::Succeeded
    );
}

#[tokio::test(start_paused = true)]
async fn on_error_fallback_substitutes_the_value() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("bad", "bad").on_error(OnError::Fallback(json!({"items": []}))))
        .step(
            StepDef::new("use", "ok")
                .depends_on(["bad"])
                .input(json!("${steps.bad.output.items}")),
        )
        .build();
    let orch = Orchestrator::builder()
        .agent(MockAgent::new("bad").fail_always())
        .agent(MockAgent::new("ok"))
        .build()
        .unwrap();
    let view = orch
        .run(&orch.bind(&def).unwrap(), json!(1))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(view.status(), ExecutionStatus::Succeeded);
    let bad = view.step("bad").unwrap();
    assert!(bad.fallback);
    assert_eq!(bad.error.as_ref().unwrap().code, "agent");
    assert_eq!(view.output("use"), Some(&json!([])));
}

#[tokio::test]
async fn false_condition_skips_the_step_and_its_dependents() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("check", "m").input(json!({"ok": false})))
        .step(
            StepDef::new("gated", "m")
                .depends_on(["check"])
                .condition("${steps.check.output.ok} == true"),
        )
        .step(StepDef::new("after", "m").depends_on(["gated"]))
        .step(
            StepDef::new("other", "m")
                .depends_on(["check"])
                .condition("${steps.check.output.ok} == false"),
        )
        .build();
    let mock = MockAgent::new("m");
    let orch = Orchestrator::builder().agent(mock.clone()).build().unwrap();
    let view = run_to_end(&orch, &def).await.unwrap();
    assert_eq!(view.status(), ExecutionStatus::Succeeded);
    assert_eq!(
        view.step("gated").unwrap().skip_reason,
        Some(SkipReason::Condition)
    );
    assert_eq!(view.step("after").unwrap().status, StepStatus::Skipped);
    assert_eq!(view.step("other").unwrap().status, StepStatus::Succeeded);
    assert!(mock.calls_for("gated").is_empty() && mock.calls_for("after").is_empty());
}

#[tokio::test(start_paused = true)]
async fn retryable_failures_are_retried_up_to_the_step_policy() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("s", "flaky").retries(3))
        .build();
    let flaky = MockAgent::new("flaky").returns(json!("ok")).fail_first(2);
    let orch = Orchestrator::builder()
        .agent(flaky.clone())
        .build()
        .unwrap();
    let exec = orch
        .run(&orch.bind(&def).unwrap(), json!(null))
        .await
        .unwrap();
    let view = exec.wait().await.unwrap();
    assert_eq!(view.step("s").unwrap().attempts, 3);
    assert_eq!(
        flaky.calls().iter().map(|c| c.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let t = trace(&journal(&orch, &exec).await);
    assert_eq!(t.iter().filter(|(k, _)| k == "attempt_failed").count(), 2);

    // Permanent failures are not retried.
    let def = WorkflowDef::builder("w2")
        .step(StepDef::new("s", "perm").retries(3))
        .build();
    let perm = MockAgent::new("perm").fail_always().permanent();
    let orch = Orchestrator::builder().agent(perm.clone()).build().unwrap();
    let err = run_to_end(&orch, &def).await.unwrap_err();
    assert_eq!(err.attempts(), Some(1));
    assert_eq!(perm.call_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn timeouts_and_panics_are_typed_failures() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("s", "stuck").timeout(ms(500)).retries(1))
        .build();
    let stuck = MockAgent::new("stuck")
        .latency(Duration::from_secs(3600))
        .ignore_cancel();
    let no_jitter =
        RetryConfig::default().with_backoff(Backoff::default().with_jitter(Jitter::None));
    let orch = Orchestrator::builder()
        .agent(stuck.clone())
        .default_policy(default_policy().retry(no_jitter))
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let err = run_to_end(&orch, &def).await.unwrap_err();
    assert_eq!(err.code(), "timeout");
    assert_eq!(err.attempts(), Some(2));
    assert_eq!(stuck.call_count(), 2);
    // The step's 500 ms timeout, the 1 s backoff, then 500 ms again.
    assert_eq!(start.elapsed(), ms(2_000));

    let def = WorkflowDef::builder("w")
        .step(StepDef::new("s", "boom").retries(3))
        .build();
    let boom = MockAgent::new("boom").panic_on_attempt(1);
    let orch = Orchestrator::builder().agent(boom.clone()).build().unwrap();
    let err = run_to_end(&orch, &def).await.unwrap_err();
    assert_eq!(err.code(), "panicked");
    assert!(err.to_string().contains("scripted to panic"));
    assert_eq!(boom.call_count(), 1, "a panic is not retried");
}

#[tokio::test]
async fn execution_events_are_in_journal_order_per_step() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("a", "m"))
        .step(StepDef::new("b", "m").depends_on(["a"]))
        .build();
    let orch = Orchestrator::builder()
        .agent(MockAgent::new("m"))
        .build()
        .unwrap();
    let exec = orch
        .run(&orch.bind(&def).unwrap(), json!(null))
        .await
        .unwrap();
    exec.wait().await.unwrap();
    let events = journal(&orch, &exec).await;
    let kinds: Vec<String> = trace(&events)
        .into_iter()
        .map(|(k, s)| format!("{k}:{s}"))
        .collect();
    assert_eq!(
        kinds,
        [
            "execution_started:",
            "step_started:a",
            "step_succeeded:a",
            "step_started:b",
            "step_succeeded:b",
            "execution_finished:",
        ]
    );
    assert!(position(&events, "step_succeeded", "a") < position(&events, "step_started", "b"));
}

/// Panics at the call itself, before it returns a future: outside the
/// attempt's own guard, caught by the step's.
struct PanicsBeforeItsFuture;

impl orchestrate_core::Agent for PanicsBeforeItsFuture {
    fn name(&self) -> &str {
        "eager"
    }

    fn call<'a, 'b, 'f>(
        &'a self,
        _input: serde_json::Value,
        _ctx: &'b orchestrate_core::Context,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<serde_json::Value, orchestrate_core::AgentError>,
                > + Send
                + 'f,
        >,
    >
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        panic!("before any future")
    }
}

#[tokio::test]
async fn a_panic_outside_the_attempt_fails_the_step_naming_it_in_both_modes() {
    use orchestrate_core::StepTasks;
    for tasks in [StepTasks::Inline, StepTasks::Spawned] {
        let def = WorkflowDef::builder("w")
            .step(StepDef::new("s", "eager").retries(2))
            .build();
        let orch = Orchestrator::builder()
            .agent(PanicsBeforeItsFuture)
            .step_tasks(tasks)
            .build()
            .unwrap();
        let err = run_to_end(&orch, &def).await.unwrap_err();
        assert_eq!(err.code(), "panicked", "{tasks:?}");
        assert_eq!(
            err.to_string(),
            "step `s`: agent `eager` panicked: before any future",
            "{tasks:?}"
        );
    }
}
