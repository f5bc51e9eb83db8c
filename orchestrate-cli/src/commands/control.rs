//! `cancel`, `approve` and `reject`: an execution steered by id.

use orchestrate_core::{ExecutionId, Orchestrator};
use serde_json::Value;

use crate::error::{CliError, Exit};

pub(crate) async fn cancel(
    id: &ExecutionId,
    orchestrator: &Orchestrator,
) -> Result<Exit, CliError> {
    let execution = orchestrator.cancel(id).await?;
    // Ended by the cancellation or already before it: either way, said.
    let status = match execution.wait().await {
        Ok(view) => view.status(),
        Err(_) => execution.status(),
    };
    println!("execution {id}: {status:?}");
    Ok(Exit::Success)
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
