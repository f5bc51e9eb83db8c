//! `list`, `inspect` and `export`: what the store holds, read.

use std::fmt::Write as _;

use orchestrate_core::journal::{ExecutionView, ExportOptions};
use orchestrate_core::store::{ExecutionQuery, Store};
use orchestrate_core::{ExecutionId, ExecutionStatus, Orchestrator};

use crate::args::StatusFilter;
use crate::error::{CliError, Exit};

pub(crate) async fn list(
    store: &dyn Store,
    status: Option<StatusFilter>,
    workflow: Option<String>,
) -> Result<Exit, CliError> {
    let query = ExecutionQuery {
        status: status.map(|s| match s {
            StatusFilter::Running => ExecutionStatus::Running,
            StatusFilter::Parked => ExecutionStatus::Parked,
            StatusFilter::Succeeded => ExecutionStatus::Succeeded,
            StatusFilter::PartiallySucceeded => ExecutionStatus::PartiallySucceeded,
            StatusFilter::Failed => ExecutionStatus::Failed,
            StatusFilter::Cancelled => ExecutionStatus::Cancelled,
        }),
        workflow,
        limit: 0,
    };
    let executions = store.list_executions(&query).await?;
    println!(
        "{:<38} {:<20} {:<20} {:>7}",
        "ID", "WORKFLOW", "STATUS", "EVENTS"
    );
    for e in executions {
        println!(
            "{:<38} {:<20} {:<20} {:>7}",
            e.id.to_string(),
            e.workflow,
            format!("{:?}", e.status),
            e.events
        );
    }
    Ok(Exit::Success)
}

pub(crate) async fn inspect(
    id: &ExecutionId,
    tree: bool,
    gantt: bool,
    orchestrator: &Orchestrator,
) -> Result<Exit, CliError> {
    let view = orchestrator.execution(id).await?.view();
    print!("{}", summary(&view));
    if tree {
        println!("\ncalls:");
        if view.calls().calls().is_empty() {
            println!("  (none: its agents called no other)");
        } else {
            print!("{}", view.calls().to_text());
        }
    }
    if gantt {
        println!();
        print!("{}", to_gantt(&view));
    }
    Ok(Exit::Success)
}

/// The execution's status and a line per step.
fn summary(view: &ExecutionView) -> String {
    let mut text = String::new();
    let id = view.id().map(ToString::to_string).unwrap_or_default();
    let _ = writeln!(text, "execution {id}");
    let _ = writeln!(text, "workflow  {}", view.workflow());
    let _ = writeln!(text, "status    {:?}", view.status());
    if let Some(error) = view.error() {
        let _ = writeln!(text, "error     {error}");
    }
    let _ = writeln!(text, "steps:");
    for step in view.steps() {
        let took = match (step.started_us, step.finished_us) {
            (Some(start), Some(end)) => format!("{:.3}s", end.saturating_sub(start) as f64 / 1e6),
            _ => String::new(),
        };
        let _ = write!(
            text,
            "  {:<24} {:<12} attempts {:<3} {took}",
            step.id,
            format!("{:?}", step.status),
            step.attempts
        );
        if let Some(error) = &step.error {
            let _ = write!(text, "  {error}");
        }
        text.push('\n');
    }
    text
}

/// The steps' timing as a Mermaid gantt chart, in milliseconds since the
/// execution started.
pub(crate) fn to_gantt(view: &ExecutionView) -> String {
    let mut text = String::from("gantt\n    dateFormat x\n    axisFormat %S.%L s\n");
    let _ = writeln!(text, "    title {}", view.workflow());
    let _ = writeln!(text, "    section steps");
    for step in view.steps() {
        let (Some(start), Some(end)) = (step.started_us, step.finished_us) else {
            continue;
        };
        let tag = match step.status {
            orchestrate_core::StepStatus::Failed => "crit, ",
            _ => "",
        };
        // Mermaid refuses a task that ends where it starts.
        let (start_ms, end_ms) = (start / 1_000, (end / 1_000).max(start / 1_000 + 1));
        let _ = writeln!(
            text,
            "    {} :{tag}{}, {start_ms}, {end_ms}",
            step.id.replace(':', "_"),
            step.id.replace([':', ','], "_")
        );
    }
    text
}

pub(crate) async fn export(
    id: &ExecutionId,
    orchestrator: &Orchestrator,
) -> Result<Exit, CliError> {
    let execution = orchestrator.execution(id).await?;
    println!(
        "{}",
        execution.export_json(&ExportOptions::default()).await?
    );
    Ok(Exit::Success)
}
