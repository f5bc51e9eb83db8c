//! `logs`: an execution's journal as progress lines, followed as it grows.

use std::io::Write as _;
use std::time::Duration;

use orchestrate_core::journal::{Event, EventKind};
use orchestrate_core::store::{Store, StoreError};
use orchestrate_core::ExecutionId;

use crate::error::{CliError, Exit};
use crate::progress::Lines;

/// How often `--follow` reads the store for new events: the execution
/// may run in another process, whose bus this one does not see.
const POLL: Duration = Duration::from_millis(200);

pub(crate) async fn logs(
    id: &ExecutionId,
    follow: bool,
    json: bool,
    store: &dyn Store,
) -> Result<Exit, CliError> {
    let mut lines = Lines::default();
    let mut next = 0;
    let mut stdout = std::io::stdout();
    loop {
        let events = store.load(id, next).await?;
        if next == 0 && events.is_empty() {
            return Err(StoreError::NotFound {
                execution: id.clone(),
            }
            .into());
        }
        // Ended when the journal ends with a finish or a park: a park
        // followed by more events was decided, and the run went on.
        let ended = events.last().is_some_and(ends);
        for event in &events {
            let line = if json {
                serde_json::to_string(event).ok()
            } else {
                lines.line(event)
            };
            if let Some(line) = line {
                if writeln!(stdout, "{line}").is_err() {
                    return Ok(Exit::Success);
                }
            }
        }
        let _ = stdout.flush();
        if let Some(last) = events.last() {
            next = last.seq + 1;
        }
        if !follow || ended {
            return Ok(Exit::Success);
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(Exit::Interrupted),
        }
    }
}

/// Whether `event` ends what `--follow` waits for: the execution finished
/// or parked (it waits for a decision, which may take days).
fn ends(event: &Event) -> bool {
    matches!(
        event.kind,
        EventKind::ExecutionFinished { .. } | EventKind::ExecutionParked { .. }
    )
}
