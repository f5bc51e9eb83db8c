//! Journal export caps and redacts.

use orchestrate_core::journal::ExportOptions;
use orchestrate_core::{agent_fn, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::{json, Value};

#[tokio::test]
async fn export_redacts_secrets_and_caps_fields() {
    let agent = agent_fn("login", |input, _| async move {
        Ok(json!({"session_token": "s3cr3t", "echo": input}))
    });
    let orch = Orchestrator::builder().agent(agent).build().unwrap();
    let wf = orch
        .bind(
            &WorkflowDef::builder("w")
                .step(
                    StepDef::new("login", "login")
                        .input(json!({"password": "${input.password}", "note": "${input.note}"})),
                )
                .build(),
        )
        .unwrap();
    let exec = orch
        .run(
            &wf,
            json!({"password": "hunter2", "note": "x".repeat(20_000)}),
        )
        .await
        .unwrap();
    exec.wait().await.unwrap();
    let text = exec.export_json(&ExportOptions::default()).await.unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("s3cr3t"),
        "secret leaked"
    );
    let doc: Value = serde_json::from_str(&text).unwrap();
    let events = doc["events"].as_array().unwrap();
    assert_eq!(events.len() as u64, exec.view().next_seq());
    let started = &events[0];
    assert_eq!(started["type"], "execution_started");
    assert!(started["input"]["note"]
        .as_str()
        .unwrap()
        .ends_with("[truncated]"));
    assert_eq!(started["input"]["password"], "[redacted]");
}
