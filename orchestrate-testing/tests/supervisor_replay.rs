//! A supervisor whose recoveries depend on the order its calls end replays
//! strictly: a replay ends its calls in another order than the run did.

use std::time::Duration;

use orchestrate_core::pattern::supervisor::{RestartPolicy, Strategy, Supervisor, Worker};
use orchestrate_core::resilience::RetryConfig;
use orchestrate_core::{agent_fn, default_policy, AgentError, Orchestrator, OrchestratorBuilder};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_testing::replay::check_replay;
use serde_json::{json, Value};

/// `flaky` fails tasks 2, 6, 10.. at once and takes 50 ms to double
/// 0, 4, 8..; `steady` doubles the rest at once. Round robin gives `flaky`
/// the even tasks, so in the run its failures end before its successes
/// (two in a row: a restart), while a replay ends every call at once, in
/// the order they were made.
fn builder() -> OrchestratorBuilder {
    let flaky = || {
        agent_fn("flaky", |task: Value, _| async move {
            let n = task.as_i64().unwrap_or(0);
            if n % 4 == 2 {
                return Err(AgentError::permanent("flaky"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(json!(n * 2))
        })
    };
    let steady = agent_fn("steady", |task: Value, _| async move {
        Ok(json!(task.as_i64().unwrap_or(0) * 2))
    });
    let pool = Supervisor::builder("pool")
        .worker(Worker::from_factory(flaky))
        .worker(Worker::new(steady))
        .strategy(Strategy::RoundRobin)
        .limit(8)
        .max_reassign(3)
        .restart(
            RestartPolicy::default()
                .after_failures(2)
                .restarts_per_worker(10),
        )
        .build()
        .unwrap();
    Orchestrator::builder()
        .agent(pool)
        .default_policy(default_policy().retry(RetryConfig::attempts(1)))
        .workflow(
            WorkflowDef::builder("pool")
                .step(StepDef::new("pool", "pool").input(json!("${input}")))
                .build(),
        )
}

#[tokio::test(start_paused = true)]
async fn recoveries_replay_whatever_order_the_calls_end_in() {
    let orch = builder().build().unwrap();
    let tasks: Vec<i64> = (0..16).collect();
    let exec = orch
        .run(&orch.workflow("pool").unwrap(), json!(tasks))
        .await
        .unwrap();
    let view = exec.clone().await.unwrap();
    let doubled: Vec<i64> = (0..16).map(|n| n * 2).collect();
    assert_eq!(view.output("pool"), Some(&json!(doubled)));
    let restarts = view
        .calls()
        .decisions_by("pool")
        .filter(|d| &*d.kind == "recover" && d.value["action"] == "restart")
        .count();
    assert!(restarts >= 1, "the run must restart `flaky` at least once");

    let checked = check_replay(&**orch.store(), exec.id(), builder())
        .await
        .unwrap_or_else(|d| panic!("{d}"));
    assert!(checked.calls > 16, "{checked:?}");
}
