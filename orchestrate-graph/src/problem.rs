//! Validation problems, all reported at once.

use std::fmt;

use thiserror::Error;

/// One thing wrong with a workflow definition, naming the step and why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Problem {
    /// The workflow has no steps.
    #[error("workflow has no steps")]
    Empty,
    /// An id is empty or uses characters other than letters, digits, `_`, `-`.
    #[error("step `{step}`: invalid id (use letters, digits, `_` and `-`)")]
    InvalidId {
        /// The id as written.
        step: String,
    },
    /// A step names neither an agent nor a pattern.
    #[error("step `{step}`: no agent named")]
    MissingAgent {
        /// The step.
        step: String,
    },
    /// A step names both an agent and a pattern.
    #[error("step `{step}`: names both an agent and a pattern; a step runs one")]
    AgentAndPattern {
        /// The step.
        step: String,
    },
    /// A step has `params` but no pattern to give them to.
    #[error("step `{step}`: `params` without a `pattern`")]
    ParamsWithoutPattern {
        /// The step.
        step: String,
    },
    /// Two steps share an id.
    #[error("step `{step}`: duplicate id")]
    DuplicateId {
        /// The repeated id.
        step: String,
    },
    /// A dependency names no step of the workflow.
    #[error("step `{step}`: depends on unknown step `{dependency}`")]
    UnknownDependency {
        /// The step declaring the dependency.
        step: String,
        /// The unknown id.
        dependency: String,
    },
    /// The dependencies form a cycle; `path` starts and ends at the same step
    /// and follows the direction of execution (`a -> b` means `b` depends on `a`).
    #[error("cycle: {}", path.join(" -> "))]
    Cycle {
        /// The steps of the cycle, first repeated at the end.
        path: Vec<String>,
    },
    /// Every step depends on another, so nothing can start.
    #[error("no entry step: every step depends on another")]
    NoEntry,
    /// An orphan: a step that no entry step reaches, because it depends
    /// (transitively) on a cycle, so it could never start. Steps on the cycle
    /// itself are reported by [`Problem::Cycle`].
    #[error("step `{step}`: unreachable from every entry step (it waits on a cycle)")]
    Unreachable {
        /// The step.
        step: String,
    },
    /// An input template or condition that does not parse.
    #[error("step `{step}`: malformed {field} at `{location}`: {reason}")]
    MalformedInterpolation {
        /// The step.
        step: String,
        /// `"input"` or `"condition"`.
        field: &'static str,
        /// JSON pointer inside the input (empty for the root or a condition).
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// An expression reads the output of a step that does not exist.
    #[error("step `{step}`: `${{{expr}}}` references unknown step `{referenced}`")]
    UnknownReference {
        /// The step using the expression.
        step: String,
        /// The unknown id.
        referenced: String,
        /// The expression as written.
        expr: String,
    },
    /// An expression reads the output of a step that is not upstream, so its
    /// output would not exist when this step runs.
    #[error("step `{step}`: `${{{expr}}}` references step `{referenced}`, which is not upstream of it (add it to depends_on)")]
    NotUpstream {
        /// The step using the expression.
        step: String,
        /// The referenced step.
        referenced: String,
        /// The expression as written.
        expr: String,
    },
    /// A cost estimate that is negative or not finite.
    #[error("step `{step}`: cost must be a finite number >= 0")]
    InvalidCost {
        /// The step.
        step: String,
    },
}

impl Problem {
    /// The step the problem is about, when it is about one step.
    pub fn step(&self) -> Option<&str> {
        match self {
            Problem::Empty | Problem::NoEntry | Problem::Cycle { .. } => None,
            Problem::InvalidId { step }
            | Problem::MissingAgent { step }
            | Problem::AgentAndPattern { step }
            | Problem::ParamsWithoutPattern { step }
            | Problem::DuplicateId { step }
            | Problem::UnknownDependency { step, .. }
            | Problem::Unreachable { step }
            | Problem::MalformedInterpolation { step, .. }
            | Problem::UnknownReference { step, .. }
            | Problem::NotUpstream { step, .. }
            | Problem::InvalidCost { step } => Some(step),
        }
    }
}

/// Every problem found in a workflow definition.
///
/// # Examples
///
/// ```
/// use orchestrate_graph::{Plan, Problem, StepDef, WorkflowDef};
///
/// let def = WorkflowDef::builder("w")
///     .step(StepDef::new("a", "x").depends_on(["ghost"]))
///     .step(StepDef::new("a", "x"))
///     .build();
/// let errors = Plan::new(&def).unwrap_err();
/// assert!(errors.problems().iter().any(|p| matches!(p, Problem::DuplicateId { .. })));
/// assert!(errors.problems().iter().any(|p| matches!(p, Problem::UnknownDependency { .. })));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub struct ValidationErrors {
    workflow: String,
    problems: Vec<Problem>,
}

impl ValidationErrors {
    pub(crate) fn new(workflow: &str, problems: Vec<Problem>) -> Self {
        Self {
            workflow: workflow.to_owned(),
            problems,
        }
    }

    /// The name of the workflow that failed validation.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// The problems, in the order they were found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "workflow `{}` is invalid ({} problem{})",
            self.workflow,
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}
