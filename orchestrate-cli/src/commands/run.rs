//! `run` and `resume`: an execution started or taken up, and followed to
//! its end with its progress shown.

use std::io::Write as _;
use std::path::Path;

use futures::StreamExt;
use orchestrate_core::journal::EventKind;
use orchestrate_core::store::Store;
use orchestrate_core::{Execution, ExecutionId, ExecutionStatus, Orchestrator, RunOptions};
use serde_json::Value;

use crate::error::{CliError, Exit};
use crate::progress;
use crate::state::{keep_definition, keep_execution_definition};

pub(crate) async fn run(
    file: &Path,
    input: Value,
    key: Option<String>,
    json: bool,
    orchestrator: &Orchestrator,
    store: &dyn Store,
) -> Result<Exit, CliError> {
    let def = super::check::load(file, orchestrator)?;
    let kept = keep_definition(store, &def).await?;
    let workflow = orchestrator.bind(&def)?;
    let mut options = RunOptions::default();
    if let Some(key) = key {
        // One key space per workflow, as `orchestrate serve` keeps them.
        options = options.idempotency_key(format!("{}/{key}", def.name));
    }
    let execution = orchestrator.run_with(&workflow, input, options).await?;
    keep_execution_definition(store, execution.id(), &kept).await?;
    follow(&execution, json, 0).await
}

pub(crate) async fn resume(
    id: &ExecutionId,
    json: bool,
    orchestrator: &Orchestrator,
) -> Result<Exit, CliError> {
    let history = super::control::history(id, orchestrator).await?;
    let execution = orchestrator.resume(id).await?;
    if execution.status() == ExecutionStatus::Parked {
        // Nothing runs until a decision: its history, then the hint.
        return follow(&execution, json, 0).await;
    }
    follow(&execution, json, history).await
}

/// Prints `execution`'s events as they happen (lines, or JSON with
/// `json`) until it ends or parks (a park before event `history`, read
/// back from its journal, does not count); the first Ctrl-C cancels it
/// (its attempts get the grace period), a second ends the process at
/// once.
pub(crate) async fn follow(
    execution: &Execution,
    json: bool,
    history: u64,
) -> Result<Exit, CliError> {
    // Listening before the first event: no press is lost between looks.
    let mut ctrl_c = CtrlC::listen()?;
    let mut events = execution.events().await?;
    let mut interrupted = false;
    let mut display = progress::Display::choose(json);
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                // Parked, it waits for a decision that may take days: the
                // stream stays open, but this command is done. A park in
                // the history of an approved execution is not this one.
                let parked = matches!(event.kind, EventKind::ExecutionParked { .. })
                    && event.seq >= history;
                // A closed pipe (`| head`) is not the workflow's failure:
                // it runs on to its end, shown no more.
                if display.show(&event).is_err() {
                    display = progress::Display::Closed;
                }
                if parked {
                    break;
                }
            }
            () = ctrl_c.pressed() => {
                if interrupted {
                    // Not waiting for the steps: the command line's caller
                    // skips the orchestrator's shutdown on this exit.
                    display.finish();
                    eprintln!(
                        "interrupted again: stopping now, leaving the execution unfinished; `orchestrate cancel {}` ends it",
                        execution.id()
                    );
                    return Ok(Exit::Interrupted);
                }
                interrupted = true;
                display.note("interrupted: cancelling (Ctrl-C again to stop at once)");
                execution.cancel();
            }
        }
    }
    display.finish();
    let view = execution.view();
    let exit = match view.status() {
        ExecutionStatus::Succeeded | ExecutionStatus::PartiallySucceeded => Exit::Success,
        // By Ctrl-C here, or `orchestrate cancel` from another process.
        ExecutionStatus::Cancelled => Exit::Interrupted,
        ExecutionStatus::Parked => {
            if !json {
                eprintln!(
                    "execution {} waits for a decision: `orchestrate approve {} STEP` or `reject`",
                    execution.id(),
                    execution.id()
                );
            }
            Exit::Success
        }
        _ => Exit::Failed,
    };
    if !json && exit == Exit::Success && !matches!(display, progress::Display::Closed) {
        if let Some(last) = view.steps().iter().rev().find_map(|s| s.output.as_deref()) {
            // Closed meanwhile or not, the run's exit code stands.
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "output: {last}");
        }
    }
    Ok(exit)
}

/// Ctrl-C presses: one listener for a whole run.
struct CtrlC {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl CtrlC {
    fn listen() -> Result<Self, CliError> {
        #[cfg(unix)]
        {
            let kind = tokio::signal::unix::SignalKind::interrupt();
            let signal = tokio::signal::unix::signal(kind).map_err(|source| CliError::Io {
                path: "SIGINT".into(),
                source,
            })?;
            Ok(Self { signal })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next press.
    async fn pressed(&mut self) {
        #[cfg(unix)]
        if self.signal.recv().await.is_none() {
            // No more signals will come (the runtime is shutting down).
            std::future::pending::<()>().await;
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
