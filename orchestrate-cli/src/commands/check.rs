//! `validate` and `plan`: a workflow file read, checked and drawn.

use std::path::Path;

use orchestrate_core::Orchestrator;
use orchestrate_graph::{Plan, Problem, WorkflowDef};

use crate::args::PlanFormat;
use crate::error::{CliError, Exit};
use crate::state::read;

/// Reads workflow `file` as JSON, naming the line and column of a
/// syntax or shape error.
pub(crate) fn parse(file: &Path) -> Result<WorkflowDef, CliError> {
    WorkflowDef::from_json(&read(file)?).map_err(|e| CliError::Invalid {
        file: file.to_owned(),
        problems: vec![format!("  line {}, column {}: {e}", e.line(), e.column())],
    })
}

/// Reads workflow `file` and checks it against `orchestrator`'s agents
/// and patterns, reporting every problem at once.
pub(crate) fn load(file: &Path, orchestrator: &Orchestrator) -> Result<WorkflowDef, CliError> {
    let invalid = |problems: Vec<String>| CliError::Invalid {
        file: file.to_owned(),
        problems,
    };
    let def = parse(file)?;
    let mut problems: Vec<String> = match Plan::new(&def) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .problems()
            .iter()
            .map(|p| format!("  {}: {p}", json_path(&def, p)))
            .collect(),
    };
    let agents = orchestrator.agent_names();
    for (i, step) in def.steps.iter().enumerate() {
        if step.pattern.is_none() && !step.agent.is_empty() && !agents.contains(&&*step.agent) {
            problems.push(format!(
                "  $.steps[{i}].agent: step `{}`: unknown agent `{}` (known: {})",
                step.id,
                step.agent,
                agents.join(", ")
            ));
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    // Patterns and their parameters are checked when bound.
    orchestrator
        .bind(&def)
        .map_err(|e| invalid(vec![format!("  $.steps: {e}")]))?;
    Ok(def)
}

/// Where in the file `problem` is, as a JSON path.
fn json_path(def: &WorkflowDef, problem: &Problem) -> String {
    let Some(step) = problem.step() else {
        return "$.steps".into();
    };
    // A repeated id is the later step's problem.
    let found = if matches!(problem, Problem::DuplicateId { .. }) {
        def.steps.iter().rposition(|s| &*s.id == step)
    } else {
        def.steps.iter().position(|s| &*s.id == step)
    };
    let Some(i) = found else {
        return "$.steps".into();
    };
    let field = match problem {
        Problem::MissingAgent { .. } => ".agent",
        Problem::AgentAndPattern { .. } => ".pattern",
        Problem::ParamsWithoutPattern { .. } => ".params",
        Problem::UnknownDependency { .. } => ".depends_on",
        Problem::InvalidCost { .. } => ".cost",
        Problem::InvalidId { .. } | Problem::DuplicateId { .. } => ".id",
        _ => "",
    };
    format!("$.steps[{i}]{field}")
}

pub(crate) fn validate(file: &Path, orchestrator: &Orchestrator) -> Result<Exit, CliError> {
    let def = load(file, orchestrator)?;
    println!(
        "{}: workflow `{}` is valid ({} steps)",
        file.display(),
        def.name,
        def.steps.len()
    );
    Ok(Exit::Success)
}

pub(crate) fn plan(
    file: &Path,
    format: PlanFormat,
    orchestrator: &Orchestrator,
) -> Result<Exit, CliError> {
    let def = load(file, orchestrator)?;
    let plan = Plan::new(&def).map_err(|e| CliError::Usage(e.to_string()))?;
    let drawn = match format {
        PlanFormat::Text => plan.to_text(),
        PlanFormat::Mermaid => plan.to_mermaid(),
        PlanFormat::Dot => plan.to_dot(),
    };
    print!("{drawn}");
    if !drawn.ends_with('\n') {
        println!();
    }
    Ok(Exit::Success)
}
