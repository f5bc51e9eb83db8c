//! Spans nest execution → step → attempt and carry the correlation id.
//!
//! Alone in its test binary: tracing caches callsite interest process-wide,
//! and a test running concurrently without a subscriber could race it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use orchestrate_core::{agent_fn, Orchestrator, RunOptions};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::json;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn agent_logs_sit_inside_execution_step_and_attempt_spans() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let agent = agent_fn("talk", |_, _| async move {
        tracing::info!("inside the agent");
        Ok(json!(1))
    });
    let orch = Orchestrator::builder().agent(agent).build().unwrap();
    let wf = orch
        .bind(
            &WorkflowDef::builder("traced")
                .step(StepDef::new("s1", "talk"))
                .build(),
        )
        .unwrap();
    let options = RunOptions {
        correlation_id: Some("corr-42".into()),
        ..RunOptions::default()
    };
    let exec = orch.run_with(&wf, json!(null), options).await.unwrap();
    exec.wait().await.unwrap();

    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("inside the agent"))
        .expect(&text);
    let exec_at = line.find("execution{").expect(line);
    let step_at = line.find("step{").expect(line);
    let attempt_at = line.find("attempt{attempt=1}").expect(line);
    assert!(exec_at < step_at && step_at < attempt_at, "{line}");
    assert!(
        line.contains(&format!("execution_id={}", exec.id())),
        "{line}"
    );
    assert!(line.contains("correlation_id=corr-42"), "{line}");
    assert!(line.contains("step=s1"), "{line}");
    assert_eq!(exec.view().correlation_id(), "corr-42");
}
