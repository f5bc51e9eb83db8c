//! A second Ctrl-C stops `run` at once, without waiting for the grace
//! period of an agent that does not stop when cancelled.
//!
//! Alone in its test binary: it sends SIGINT to its own process.
#![cfg(unix)]

use std::sync::Arc;
use std::time::Duration;

use orchestrate_cli::{Cli, Exit};
use orchestrate_core::{agent_fn, Orchestrator};
use serde_json::json;
use tokio::sync::Notify;

fn interrupt_this_process() {
    let sent = std::process::Command::new("kill")
        .args(["-INT", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_stops_without_waiting_for_the_grace_period() {
    // Listening here too, from the start: no SIGINT ends the test process.
    let _kept = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).unwrap();
    let started = Arc::new(Notify::new());
    let cancelled = Arc::new(Notify::new());
    let (on_start, on_cancel) = (started.clone(), cancelled.clone());
    let builder = Orchestrator::builder()
        .agent(agent_fn("stubborn", move |_, ctx| {
            let (on_start, on_cancel) = (on_start.clone(), on_cancel.clone());
            async move {
                on_start.notify_one();
                ctx.cancelled().await;
                on_cancel.notify_one();
                // Ignores it: only the end of the grace period drops it.
                std::future::pending::<()>().await;
                Ok(json!(null))
            }
        }))
        .cancel_grace(Duration::from_secs(3600));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.json");
    std::fs::write(
        &file,
        r#"{"name": "w", "steps": [{"id": "hold", "agent": "stubborn"}]}"#,
    )
    .unwrap();
    let store = format!("sqlite://{}", dir.path().join("state.db").display());
    let args = [
        "orchestrate",
        "--store",
        &store,
        "run",
        file.to_str().unwrap(),
    ]
    .map(String::from);
    let run = tokio::spawn(Cli::new(builder).run_from(args));
    started.notified().await;

    // The first press cancels; pressed again until the run has seen it
    // (one sent before `run` listened is not its to see).
    loop {
        interrupt_this_process();
        if tokio::time::timeout(Duration::from_secs(1), cancelled.notified())
            .await
            .is_ok()
        {
            break;
        }
    }
    // The second does not wait for the grace period (an hour).
    interrupt_this_process();
    let exit = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("stopped without waiting for the grace period")
        .unwrap();
    assert_eq!(exit, Exit::Interrupted);
}
