//! `cancel`, `approve` and `reject`: an execution steered by id.

use std::time::Duration;

use orchestrate_core::{CancelRequest, Execution, ExecutionId, ExecutionStatus, Orchestrator};
use serde_json::Value;

use crate::error::{CliError, Exit};

/// How often `cancel` reads the journal of an execution another process
/// runs, to see it end.
const POLL: Duration = Duration::from_millis(100);

/// Asks the process running execution `id` to cancel it and waits for its
/// journal to say it ended; when nothing has ended it within `wait` (no
/// process runs it, or the one that does cannot be reached), ends it here.
pub(crate) async fn cancel(
    id: &ExecutionId,
    wait: Duration,
    orchestrator: &Orchestrator,
) -> Result<Exit, CliError> {
    let status = match orchestrator.request_cancel(id).await? {
        CancelRequest::Here(execution) | CancelRequest::Finished(execution) => {
            ended(&execution).await
        }
        CancelRequest::Requested => match ended_elsewhere(id, wait, orchestrator).await? {
            Some(status) => status,
            // Nobody took it: the execution's process has stopped (or
            // does not watch for requests), and it is ended here.
            None if orchestrator.cancel_pending(id).await? => {
                eprintln!(
                    "no process took the request within {}s: cancelling it here",
                    wait.as_secs()
                );
                ended(&orchestrator.cancel(id).await?).await
            }
            // Taken, by a process still in its grace period: ending it here
            // too would make two writers of one journal.
            None => match ended_elsewhere(id, wait, orchestrator).await? {
                Some(status) => status,
                None => {
                    return Err(CliError::StillRunning {
                        id: id.to_string(),
                        waited: 2 * wait,
                    })
                }
            },
        },
        // A kind of outcome this command does not know yet.
        _ => orchestrator.execution(id).await?.status(),
    };
    println!("execution {id}: {status:?}");
    Ok(Exit::Success)
}

/// How `execution` ended, by the cancellation or already before it.
async fn ended(execution: &Execution) -> ExecutionStatus {
    match execution.wait().await {
        Ok(view) => view.status(),
        Err(_) => execution.status(),
    }
}

/// How execution `id` ended in another process, once its journal says so,
/// or `None` after `wait`.
async fn ended_elsewhere(
    id: &ExecutionId,
    wait: Duration,
    orchestrator: &Orchestrator,
) -> Result<Option<ExecutionStatus>, CliError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let status = orchestrator.execution(id).await?.status();
        if status.is_terminal() {
            return Ok(Some(status));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
}

pub(crate) async fn approve(
    id: &ExecutionId,
    step: &str,
    value: Value,
    orchestrator: &Orchestrator,
) -> Result<Exit, CliError> {
    let history = history(id, orchestrator).await?;
    let execution = orchestrator.approve(id, step, value).await?;
    super::run::follow(&execution, false, history).await
}

pub(crate) async fn reject(
    id: &ExecutionId,
    step: &str,
    reason: String,
    orchestrator: &Orchestrator,
) -> Result<Exit, CliError> {
    let history = history(id, orchestrator).await?;
    let execution = orchestrator.reject(id, step, reason).await?;
    super::run::follow(&execution, false, history).await
}

/// How many events execution `id`'s journal holds now: what a command
/// that takes it up shows as history rather than follows.
pub(crate) async fn history(
    id: &ExecutionId,
    orchestrator: &Orchestrator,
) -> Result<u64, CliError> {
    Ok(orchestrator.execution(id).await?.view().next_seq())
}
