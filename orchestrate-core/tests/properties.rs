//! Property tests: any generated DAG runs to completion in dependency order,
//! each step receiving exactly its dependencies' outputs, with a gap-free
//! journal whose fold equals the live view.

mod support;

use std::time::Duration;

use orchestrate_core::journal::ExecutionView;
use orchestrate_core::{ExecutionStatus, Orchestrator};
use orchestrate_testing::strategy::{arb_dag, workflow_from_dag};
use orchestrate_testing::MockAgent;
use proptest::prelude::*;
use serde_json::json;
use support::{assert_contiguous, journal, position};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn generated_workflows_run_in_dependency_order(
        deps in arb_dag(1..=30),
        concurrency in 1usize..6,
        latency_ms in 0u64..3,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        rt.block_on(async {
            let agent = MockAgent::new("mock")
                .latency(Duration::from_millis(latency_ms))
                .respond_with(|input, _| json!({"from": input["step"]}));
            let orch = Orchestrator::builder()
                .agent(agent.clone())
                .max_concurrency(concurrency)
                .build()
                .unwrap();
            let wf = orch.bind(&workflow_from_dag(&deps, "mock")).unwrap();
            let exec = orch.run(&wf, json!(null)).await.unwrap();
            let view = exec.wait().await.unwrap();
            assert_eq!(view.status(), ExecutionStatus::Succeeded);
            assert_eq!(agent.call_count(), deps.len());

            let events = journal(&orch, &exec).await;
            assert_contiguous(&events);
            assert_eq!(ExecutionView::from_events(&events), view);
            for (i, ds) in deps.iter().enumerate() {
                let step = format!("s{i}");
                let started = position(&events, "step_started", &step);
                for d in ds {
                    assert!(position(&events, "step_succeeded", &format!("s{d}")) < started);
                }
                let call = &agent.calls_for(&step)[0];
                let expected: Vec<_> = ds.iter().map(|d| json!({"from": format!("s{d}")})).collect();
                assert_eq!(call.input["deps"], json!(expected));
            }
        });
    }
}
