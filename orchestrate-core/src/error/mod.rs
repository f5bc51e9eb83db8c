//! The error taxonomy: one enum for everything the orchestrator reports, and
//! [`AgentError`] for what agents return.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use orchestrate_graph::template::EvalError;
use orchestrate_graph::ValidationErrors;
use thiserror::Error;

use crate::bus::BusError;
use crate::ids::ExecutionId;
use crate::store::StoreError;

pub use crate::boxed::{BoxError, SharedError};
pub use crate::error_info::ErrorInfo;

mod agent;
mod param;

pub use agent::{AgentError, Retry};
pub use param::ParamError;

/// What [`Error::CallNotRunning`] found instead of a running call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallLookup {
    /// The execution does not run in this process: it has ended, is
    /// parked, runs in another process, or does not exist.
    ExecutionNotHere,
    /// The execution runs here, and its call tree holds no such call.
    NoSuchCall,
    /// The call tree shows the call with this status: ended, or not
    /// running yet (a call that is ending as it is looked up may still
    /// show as running).
    Status(crate::journal::CallStatus),
}

impl fmt::Display for CallLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallLookup::ExecutionNotHere => f.write_str("the execution does not run here"),
            CallLookup::NoSuchCall => f.write_str("the execution has no such call"),
            CallLookup::Status(status) => write!(f, "the call is {}", status.as_str()),
        }
    }
}

/// Everything the orchestrator can report.
///
/// Every variant has a stable [`code`](Error::code), says whether it is
/// [retryable](Error::is_retryable), and carries the attempt count where one
/// applies.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The workflow definition is invalid.
    #[error(transparent)]
    Validation(#[from] ValidationErrors),
    /// A step names an agent that was never registered.
    #[error("workflow `{workflow}`, step `{step}`: unknown agent `{agent}`")]
    UnknownAgent {
        /// The workflow.
        workflow: Arc<str>,
        /// The step naming the agent, or the call (its id, `plan/0`) that
        /// asked for it.
        step: Arc<str>,
        /// The unknown agent name.
        agent: Arc<str>,
    },
    /// No registered workflow has this name.
    #[error("no workflow named `{workflow}` is registered")]
    UnknownWorkflow {
        /// The name.
        workflow: Arc<str>,
    },
    /// The workflow's steps differ from those the execution's journal records.
    #[error(
        "execution `{execution}` was started with other steps than workflow `{workflow}` has now"
    )]
    WorkflowMismatch {
        /// The workflow.
        workflow: Arc<str>,
        /// The execution.
        execution: ExecutionId,
    },
    /// Two registered agents share a name.
    #[error("two agents are registered as `{agent}`")]
    DuplicateAgent {
        /// The name.
        agent: Arc<str>,
    },
    /// An agent returned an error on its last attempt.
    #[error("step `{step}`: agent `{agent}` failed after {attempts} attempt(s): {source}")]
    Agent {
        /// The step.
        step: Arc<str>,
        /// The agent.
        agent: Arc<str>,
        /// Attempts made.
        attempts: u32,
        /// The agent's error.
        #[source]
        source: AgentError,
    },
    /// An attempt did not finish within its timeout.
    #[error("step `{step}`: attempt {attempts} timed out after {after:?}")]
    Timeout {
        /// The step.
        step: Arc<str>,
        /// Attempts made.
        attempts: u32,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The agent's circuit breaker is open.
    #[error("step `{step}`: circuit of agent `{agent}` is open")]
    CircuitOpen {
        /// The step.
        step: Arc<str>,
        /// The agent.
        agent: Arc<str>,
    },
    /// The agent's bulkhead was full or its rate limit exhausted; the attempt
    /// did not run.
    #[error("step `{step}`: agent `{agent}` refused the call: {reason}")]
    Rejected {
        /// The step.
        step: Arc<str>,
        /// The agent.
        agent: Arc<str>,
        /// Which limit and why.
        reason: String,
    },
    /// The execution or step was cancelled.
    #[error("{}", match step { Some(s) => format!("step `{s}` cancelled"), None => "execution cancelled".to_owned() })]
    Cancelled {
        /// The step, or the call (its id, `plan/0`), when one step or call
        /// was cancelled rather than the whole execution.
        step: Option<Arc<str>>,
    },
    /// A budget would be overrun: the allocation or consumption was
    /// refused and changed nothing. The [`Overrun`](crate::budget::Overrun)
    /// names the step or call that asked, the account that would have been
    /// overrun, the amount asked and what that account had. (Boxed: every
    /// `Result` of this crate carries an `Error`'s size.)
    // The text journals written before the typed form hold: a replay of
    // one reads the same.
    #[error("step `{node}`: budget exceeded: {0}", node = .0.node)]
    BudgetExceeded(Box<crate::budget::Overrun>),
    /// An agent panicked.
    #[error("step `{step}`: agent `{agent}` panicked: {message}")]
    Panicked {
        /// The step.
        step: Arc<str>,
        /// The agent.
        agent: Arc<str>,
        /// The panic message.
        message: String,
    },
    /// A step's input template did not resolve.
    #[error(transparent)]
    Interpolation(#[from] EvalError),
    /// A step emitted more custom events than the journal allows.
    #[error("step `{step}`: more than {limit} custom events in one execution")]
    JournalLimit {
        /// The step.
        step: Arc<str>,
        /// The limit.
        limit: u32,
    },
    /// A value nests deeper than [`MAX_VALUE_DEPTH`](crate::depth::MAX_VALUE_DEPTH)
    /// levels: it is refused where it is produced, so that nothing is
    /// journaled that a store could not read back.
    #[error("{}{what} nests deeper than {limit} levels, the most a journal stores", step.as_ref().map(|s| format!("step `{s}`: ")).unwrap_or_default())]
    ValueTooDeep {
        /// The step that produced it, when a step did.
        step: Option<Arc<str>>,
        /// Which value (`"output"`, `"execution input"`, ...).
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A call (see [`call`](crate::call)) failed for good. The same error,
    /// from the journal, when a resumed execution replays the call.
    #[error("call `{call}` to agent `{agent}` failed: {cause}")]
    CallFailed {
        /// The call's id.
        call: Arc<str>,
        /// The agent called.
        agent: Arc<str>,
        /// The child's error, as the journal records it. (Boxed: every
        /// `Result` of this crate carries an `Error`'s size.)
        cause: Box<ErrorInfo>,
    },
    /// A replayed call differs from the journal's record of it: the caller
    /// decided differently than when it first ran (it read the clock, a
    /// random number or the outside world other than through its context).
    #[error("call `{call}` is not the call the journal recorded: recorded {recorded}, now {now}")]
    NonDeterministic {
        /// The call's id.
        call: Arc<str>,
        /// The recorded agent and input digest.
        recorded: String,
        /// This run's agent and input digest.
        now: String,
    },
    /// The call was terminated (see
    /// [`Orchestrator::terminate`](crate::Orchestrator::terminate)), with
    /// its subtree; its caller may handle this and go on.
    #[error("call `{call}` was terminated")]
    Terminated {
        /// The call's id (the one terminated, or the caller's call below it).
        call: Arc<str>,
    },
    /// No call with this id is running in this process.
    #[error("execution `{execution}`: no call `{call}` is running here: {found}")]
    CallNotRunning {
        /// The execution.
        execution: ExecutionId,
        /// The call.
        call: String,
        /// What was found instead.
        found: CallLookup,
    },
    /// A side effect's value could not be written to or read from JSON.
    #[error("side effect `{name}` ({call}): {reason}")]
    SideEffect {
        /// The id it took among its caller's calls.
        call: Arc<str>,
        /// Its name.
        name: Arc<str>,
        /// What went wrong.
        reason: String,
    },
    /// A decision's choice could not be written to JSON, or its recorded
    /// choice read back as the type asked for.
    #[error("decision `{kind}` ({id}): {reason}")]
    Decision {
        /// The decision's id.
        id: Arc<str>,
        /// Its kind.
        kind: Arc<str>,
        /// What went wrong.
        reason: String,
    },
    /// A call would nest deeper than
    /// [`Limits::max_call_depth`](crate::Limits::max_call_depth).
    #[error("call `{call}` would be {limit} calls deep past its step, past the limit")]
    CallTooDeep {
        /// The call's id.
        call: Arc<str>,
        /// The limit.
        limit: u32,
    },
    /// A key given to a call or a decision cannot name it (see
    /// [`CallOptions::key`](crate::CallOptions::key) and
    /// [`Context::decide`](crate::Context::decide)).
    #[error("call `{call}`: the key {reason}")]
    CallKey {
        /// The id the call or decision would have taken.
        call: Arc<str>,
        /// What is wrong with the key.
        reason: &'static str,
    },
    /// A step names a pattern that was never registered.
    #[error("workflow `{workflow}`, step `{step}`: unknown pattern `{pattern}`")]
    UnknownPattern {
        /// The workflow.
        workflow: Arc<str>,
        /// The step.
        step: Arc<str>,
        /// The pattern's name.
        pattern: Arc<str>,
    },
    /// A pattern refused a step's parameters.
    #[error("workflow `{workflow}`, step `{step}`: pattern `{pattern}`, parameter `{}`: {}", .error.param, .error.reason)]
    PatternParams {
        /// The workflow.
        workflow: Arc<str>,
        /// The step.
        step: Arc<str>,
        /// The pattern's name.
        pattern: Arc<str>,
        /// The parameter and what is wrong with it.
        error: ParamError,
    },
    /// Two patterns were registered under one name.
    #[error("two patterns are registered as `{pattern}`")]
    DuplicatePattern {
        /// The name.
        pattern: Arc<str>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// No execution has this id.
    #[error("execution `{0}` not found")]
    ExecutionNotFound(ExecutionId),
    /// The execution failed; raised for executions read back from a journal,
    /// where only the recorded summary of the cause survives.
    #[error("execution `{execution}` failed{}", cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    Failed {
        /// The execution.
        execution: ExecutionId,
        /// The recorded cause.
        cause: Option<ErrorInfo>,
    },
    /// The execution is parked: steps wait for an external decision
    /// ([`Orchestrator::approve`](crate::Orchestrator::approve) or
    /// [`reject`](crate::Orchestrator::reject)).
    #[error("execution `{execution}` is parked, waiting for a decision on {}", steps.join(", "))]
    Parked {
        /// The execution.
        execution: ExecutionId,
        /// The steps waiting.
        steps: Vec<String>,
    },
    /// A decision named a step that is not waiting for one.
    #[error("execution `{execution}`: step `{step}` is not waiting for a decision")]
    NotInterrupted {
        /// The execution.
        execution: ExecutionId,
        /// The step.
        step: String,
    },
    /// The journal shows the execution unfinished, but no process is
    /// running it here (its process stopped).
    #[error("execution `{0}` is unfinished and not running in this process")]
    Orphaned(ExecutionId),
}

impl Error {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation(_) => "validation",
            Error::UnknownAgent { .. } => "unknown_agent",
            Error::DuplicateAgent { .. } => "duplicate_agent",
            Error::UnknownWorkflow { .. } => "unknown_workflow",
            Error::WorkflowMismatch { .. } => "workflow_mismatch",
            Error::Agent { .. } => "agent",
            Error::Timeout { .. } => "timeout",
            Error::CircuitOpen { .. } => "circuit_open",
            Error::Rejected { .. } => "rejected",
            Error::Cancelled { .. } => "cancelled",
            Error::BudgetExceeded(_) => "budget_exceeded",
            Error::Panicked { .. } => "panicked",
            Error::Interpolation(_) => "interpolation",
            Error::JournalLimit { .. } => "journal_limit",
            Error::ValueTooDeep { .. } => "value_too_deep",
            Error::CallFailed { .. } => "call_failed",
            Error::NonDeterministic { .. } => "non_deterministic",
            Error::CallTooDeep { .. } => "call_too_deep",
            Error::CallKey { .. } => "call_key",
            Error::UnknownPattern { .. } => "unknown_pattern",
            Error::PatternParams { .. } => "pattern_params",
            Error::DuplicatePattern { .. } => "duplicate_pattern",
            Error::SideEffect { .. } => "side_effect",
            Error::Decision { .. } => "decision",
            Error::Terminated { .. } => "terminated",
            Error::CallNotRunning { .. } => "call_not_running",
            Error::Store(_) => "store",
            Error::Bus(_) => "bus",
            Error::ExecutionNotFound(_) => "execution_not_found",
            Error::Orphaned(_) => "orphaned",
            Error::Failed { .. } => "failed",
            Error::Parked { .. } => "parked",
            Error::NotInterrupted { .. } => "not_interrupted",
        }
    }

    /// Whether retrying the failed operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Agent { source, .. } => source.is_retryable(),
            Error::Timeout { .. } => true,
            Error::CallFailed { cause, .. } => cause.retryable,
            Error::Store(e) => e.is_retryable(),
            Error::Bus(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Attempts made, where the error ends a series of attempts.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Error::Agent { attempts, .. } | Error::Timeout { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// Whether this is a cancellation.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled { .. })
    }

    /// A serialisable summary for the journal.
    pub fn info(&self) -> ErrorInfo {
        ErrorInfo {
            code: self.code().into(),
            message: self.to_string(),
            retryable: self.is_retryable(),
            attempts: self.attempts(),
            origin: self.origin().map(str::to_owned),
            overrun: self.overrun().cloned().map(Box::new),
        }
    }

    /// The refused budget operation behind this error: its own, or the one
    /// an agent's failure passed on with `?`, or the one a failed call
    /// recorded. Lets a caller see how much was left when a child's
    /// consumption was refused.
    pub fn overrun(&self) -> Option<&crate::budget::Overrun> {
        match self {
            Error::BudgetExceeded(overrun) => Some(overrun),
            Error::Agent { source, .. } => std::error::Error::source(source)?
                .downcast_ref::<Error>()?
                .overrun(),
            Error::CallFailed { cause, .. } => cause.overrun.as_deref(),
            _ => None,
        }
    }

    /// The code of the error this one passed on, at the bottom of a
    /// chain (see [`ErrorInfo::origin`]): an agent's failure whose source
    /// is an orchestrate error, or a failed call that recorded one.
    pub fn origin(&self) -> Option<&str> {
        match self {
            Error::Agent { source, .. } => {
                let passed = std::error::Error::source(source)?.downcast_ref::<Error>()?;
                Some(passed.origin().unwrap_or(passed.code()))
            }
            Error::CallFailed { cause, .. } => cause.origin.as_deref(),
            _ => None,
        }
    }
}

/// An agent may return what a call gave it with `?`: the failure keeps the
/// error as its source and its retry classification (a retryable child
/// failure is transient for the caller too).
impl From<Error> for AgentError {
    fn from(error: Error) -> Self {
        let retry = if error.is_retryable() {
            Retry::Transient
        } else {
            Retry::Permanent
        };
        AgentError {
            message: error.to_string().into(),
            retry,
            source: Some(Arc::new(error)),
            interrupt: None,
        }
    }
}

/// Refuses a value nested too deeply to journal, where it enters.
pub(crate) fn refuse_too_deep(
    step: Option<&str>,
    what: &'static str,
    value: &serde_json::Value,
) -> Result<(), Error> {
    if crate::depth::exceeds_max_depth(value) {
        return Err(Error::ValueTooDeep {
            step: step.map(Into::into),
            what,
            limit: crate::depth::MAX_VALUE_DEPTH,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_retryability_and_attempts() {
        let agent = Error::Agent {
            step: "s".into(),
            agent: "a".into(),
            attempts: 3,
            source: AgentError::transient("flaky"),
        };
        assert_eq!(agent.code(), "agent");
        assert!(agent.is_retryable());
        assert_eq!(agent.attempts(), Some(3));
        assert!(std::error::Error::source(&agent).is_some());

        let permanent = Error::Agent {
            step: "s".into(),
            agent: "a".into(),
            attempts: 1,
            source: AgentError::permanent("bad input"),
        };
        assert!(!permanent.is_retryable());

        let timeout = Error::Timeout {
            step: "s".into(),
            attempts: 2,
            after: Duration::from_secs(1),
        };
        assert!(timeout.is_retryable());
        assert_eq!(timeout.info().code, "timeout");

        let open = Error::CircuitOpen {
            step: "s".into(),
            agent: "a".into(),
        };
        assert!(!open.is_retryable());
        let cancelled = Error::Cancelled { step: None };
        assert!(!cancelled.is_retryable() && cancelled.is_cancelled());
        assert_eq!(cancelled.to_string(), "execution cancelled");
    }

    #[test]
    fn agent_error_keeps_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let e = AgentError::from_error(io);
        assert!(e.is_retryable());
        assert_eq!(
            std::error::Error::source(&e).map(|s| s.to_string()),
            Some("reset".into())
        );
    }
}
