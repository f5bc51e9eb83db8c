//! Journal events: every state change of an execution.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error_info::ErrorInfo;
use crate::ids::ExecutionId;
pub use orchestrate_resilience::BreakerState;

/// One entry of an execution's append-only journal.
///
/// `seq` starts at 0 and has no gaps; `at_us` is microseconds since the
/// execution started, read from a monotonic clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The execution.
    pub execution_id: ExecutionId,
    /// Position in the journal.
    pub seq: u64,
    /// Microseconds since the execution started (monotonic).
    pub at_us: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What an [`Event`] records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The execution began. Behind a pointer, as are the other rare large
    /// payloads below, so that every event stays small: a journal holds
    /// many. Shared, so that copying the event (a store keeps one) copies
    /// no payload.
    ExecutionStarted(Arc<ExecutionStart>),
    /// A process took the execution over from its journal after the one
    /// running it stopped.
    ExecutionResumed {
        /// Steps that were scheduled or running when it stopped, and run again.
        rerun: Vec<Arc<str>>,
    },
    /// A step's dependencies are satisfied but it waits for a slot (a
    /// concurrency limit). A step that starts as soon as it is ready has
    /// only its [`StepStarted`](EventKind::StepStarted).
    StepScheduled {
        /// The step.
        step: Arc<str>,
    },
    /// A step was given a slot and its first attempt began.
    StepStarted {
        /// The step.
        step: Arc<str>,
        /// The agent.
        agent: Arc<str>,
    },
    /// An attempt after the first began (the first is `StepStarted`).
    AttemptStarted {
        /// The step.
        step: Arc<str>,
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// An attempt failed and another will follow.
    AttemptFailed {
        /// The step.
        step: Arc<str>,
        /// Attempt number, from 1.
        attempt: u32,
        /// Why.
        error: Box<ErrorInfo>,
    },
    /// The resilience policy waits before the next attempt.
    RetryScheduled {
        /// The step.
        step: Arc<str>,
        /// The attempt that will follow.
        next_attempt: u32,
        /// The wait, in milliseconds.
        delay_ms: u64,
    },
    /// The agent's rate limiter delayed an attempt.
    Throttled {
        /// The step.
        step: Arc<str>,
        /// Attempt number.
        attempt: u32,
        /// The wait, in milliseconds.
        delay_ms: u64,
    },
    /// An open breaker, a full bulkhead or an exhausted rate limit refused an
    /// attempt before it ran.
    AttemptRejected {
        /// The step.
        step: Arc<str>,
        /// Attempt number.
        attempt: u32,
        /// Why.
        reason: Box<str>,
    },
    /// The agent's circuit breaker changed state during this step's call.
    BreakerTransition {
        /// The step whose call caused it.
        step: Arc<str>,
        /// The breaker's key (the agent name).
        breaker: Arc<str>,
        /// Previous state (`closed`, `open`, `half_open`).
        from: BreakerState,
        /// New state.
        to: BreakerState,
    },
    /// A step produced its output.
    StepSucceeded {
        /// The step.
        step: Arc<str>,
        /// The output.
        output: Arc<Value>,
        /// Attempts made.
        attempts: u32,
        /// Set when the output is the step's fallback value, with the failure it replaced.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallback_from: Option<Box<ErrorInfo>>,
    },
    /// A step asked for an external decision; it waits until one arrives.
    StepInterrupted {
        /// The step.
        step: Arc<str>,
        /// What the reviewer is asked.
        payload: Arc<Value>,
    },
    /// An external decision on an interrupted step arrived.
    StepDecided {
        /// The step.
        step: Arc<str>,
        /// Approved (the step succeeds with `value`) or rejected (it fails
        /// with `reason`).
        approved: bool,
        /// The approved output.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Arc<Value>>,
        /// Why it was rejected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Box<str>>,
    },
    /// A step failed for good.
    StepFailed {
        /// The step.
        step: Arc<str>,
        /// Why.
        error: Box<ErrorInfo>,
        /// Attempts made.
        attempts: u32,
    },
    /// A step did not run.
    StepSkipped {
        /// The step.
        step: Arc<str>,
        /// Why.
        reason: SkipReason,
    },
    /// A step was cancelled (running, or not yet started).
    StepCancelled {
        /// The step.
        step: Arc<str>,
    },
    /// An event emitted by an agent through [`Context::emit`](crate::Context::emit).
    Custom {
        /// The step that emitted it.
        step: Arc<str>,
        /// Event name chosen by the agent.
        name: Box<str>,
        /// Payload chosen by the agent.
        payload: Box<Value>,
    },
    /// An agent called another: a child of its attempt began (see
    /// [`call`](crate::call)).
    CallStarted(Arc<CallStart>),
    /// A call produced its output.
    CallCompleted {
        /// The call's id.
        call: Arc<str>,
        /// The output.
        output: Arc<Value>,
        /// Attempts made.
        attempts: u32,
    },
    /// A call failed for good.
    CallFailed {
        /// The call's id.
        call: Arc<str>,
        /// Why.
        error: Box<ErrorInfo>,
        /// Attempts made.
        attempts: u32,
    },
    /// A value an agent's decisions depend on, read once through its
    /// context ([`Context::side_effect`](crate::Context::side_effect),
    /// [`now`](crate::Context::now), [`random_u64`](crate::Context::random_u64))
    /// and replayed from here when the execution resumes.
    SideEffect {
        /// The id it took among its caller's calls.
        call: Arc<str>,
        /// The name its caller gave it.
        name: Box<str>,
        /// The value.
        value: Arc<Value>,
    },
    /// A choice an agent made that its later calls depend on (a
    /// pattern's assignment, restart, delegation, hop, route...), made
    /// once through [`Context::decide`](crate::Context::decide) and
    /// replayed from here when the execution resumes.
    Decision(Arc<Decision>),
    /// The execution's budget (see [`budget`](crate::budget)).
    BudgetSet {
        /// The amount.
        amount: u64,
        /// Its unit (`tokens`, `cents`, ...).
        unit: Box<str>,
    },
    /// An agent consumed part of its budget ([`Context::consume`](crate::Context::consume)).
    BudgetConsumed {
        /// The step's or call's id.
        call: Arc<str>,
        /// The amount.
        amount: u64,
        /// The consumption's id, its account's id and its number among
        /// the attempt's consumptions (`s/0#2`): a resumed attempt's
        /// consumption that the journal holds is not counted again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        op: Option<Arc<str>>,
    },
    /// An account's consumption reached a threshold of its allocation.
    BudgetThreshold {
        /// The step's or call's id (`""`: the execution's).
        call: Arc<str>,
        /// The threshold, in percent.
        percent: u8,
    },
    /// Cancellation was requested.
    CancelRequested,
    /// Nothing can run until the interrupted steps are decided; the process
    /// may exit, and a decision resumes the execution from the store.
    ExecutionParked {
        /// The steps waiting for a decision.
        steps: Vec<Arc<str>>,
    },
    /// The execution ended.
    ExecutionFinished {
        /// Final status.
        status: ExecutionStatus,
        /// The error that ended it, if it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<Box<ErrorInfo>>,
    },
}

impl EventKind {
    /// The step the event is about, if any.
    pub fn step(&self) -> Option<&Arc<str>> {
        match self {
            EventKind::StepScheduled { step }
            | EventKind::StepStarted { step, .. }
            | EventKind::AttemptStarted { step, .. }
            | EventKind::AttemptFailed { step, .. }
            | EventKind::RetryScheduled { step, .. }
            | EventKind::Throttled { step, .. }
            | EventKind::AttemptRejected { step, .. }
            | EventKind::BreakerTransition { step, .. }
            | EventKind::StepSucceeded { step, .. }
            | EventKind::StepFailed { step, .. }
            | EventKind::StepSkipped { step, .. }
            | EventKind::StepCancelled { step }
            | EventKind::StepInterrupted { step, .. }
            | EventKind::StepDecided { step, .. }
            | EventKind::Custom { step, .. } => Some(step),
            _ => None,
        }
    }

    /// The value the event carries from an agent or a host (an input, an
    /// output, an interrupt payload, a decision, a custom payload), if any:
    /// the part of a record whose shape nobody but its author controls.
    pub fn payload(&self) -> Option<&Value> {
        match self {
            EventKind::ExecutionStarted(start) => Some(&start.input),
            EventKind::StepSucceeded { output, .. } => Some(output),
            EventKind::StepInterrupted { payload, .. } => Some(payload),
            EventKind::StepDecided { value, .. } => value.as_deref(),
            EventKind::Custom { payload, .. } => Some(payload),
            EventKind::CallCompleted { output, .. } => Some(output),
            EventKind::SideEffect { value, .. } => Some(value),
            EventKind::Decision(decision) => Some(&decision.value),
            _ => None,
        }
    }

    /// The event's type name as serialised (`"step_started"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::ExecutionStarted(_) => "execution_started",
            EventKind::ExecutionResumed { .. } => "execution_resumed",
            EventKind::StepScheduled { .. } => "step_scheduled",
            EventKind::StepStarted { .. } => "step_started",
            EventKind::AttemptStarted { .. } => "attempt_started",
            EventKind::AttemptFailed { .. } => "attempt_failed",
            EventKind::RetryScheduled { .. } => "retry_scheduled",
            EventKind::Throttled { .. } => "throttled",
            EventKind::AttemptRejected { .. } => "attempt_rejected",
            EventKind::BreakerTransition { .. } => "breaker_transition",
            EventKind::StepSucceeded { .. } => "step_succeeded",
            EventKind::StepInterrupted { .. } => "step_interrupted",
            EventKind::StepDecided { .. } => "step_decided",
            EventKind::ExecutionParked { .. } => "execution_parked",
            EventKind::StepFailed { .. } => "step_failed",
            EventKind::StepSkipped { .. } => "step_skipped",
            EventKind::StepCancelled { .. } => "step_cancelled",
            EventKind::Custom { .. } => "custom",
            EventKind::CallStarted(_) => "call_started",
            EventKind::CallCompleted { .. } => "call_completed",
            EventKind::CallFailed { .. } => "call_failed",
            EventKind::SideEffect { .. } => "side_effect",
            EventKind::Decision(_) => "decision",
            EventKind::BudgetSet { .. } => "budget_set",
            EventKind::BudgetConsumed { .. } => "budget_consumed",
            EventKind::BudgetThreshold { .. } => "budget_threshold",
            EventKind::CancelRequested => "cancel_requested",
            EventKind::ExecutionFinished { .. } => "execution_finished",
        }
    }
}

/// What [`EventKind::Decision`] records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The decision's id: its maker's id, then `kind:key`
    /// (`pool/assign:t7.0`).
    pub id: Arc<str>,
    /// Who decided: a step's or a call's id.
    pub by: Arc<str>,
    /// What was decided, as its maker names it: the built-in patterns
    /// take `assign`, `reassign` and `recover` (the supervisor), `hop`
    /// and `gate` (handoff), `delegate` and `escalation` (hierarchy).
    pub kind: Box<str>,
    /// The choice.
    pub value: Value,
}

/// What [`EventKind::ExecutionStarted`] records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionStart {
    /// Workflow name.
    pub workflow: Arc<str>,
    /// Workflow version.
    pub version: Arc<str>,
    /// Correlation id carried through spans and contexts.
    pub correlation_id: Arc<str>,
    /// The execution input.
    pub input: Arc<Value>,
    /// Idempotency key the execution was started with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<Arc<str>>,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Every step id, in plan order; shared by the executions of one
    /// workflow.
    pub steps: Arc<[Arc<str>]>,
}

/// What [`EventKind::CallStarted`] records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStart {
    /// The call's id: its caller's id, the caller's attempt when past the
    /// first (`@2`), and the call's index within that attempt.
    pub call: Arc<str>,
    /// The caller: a step's id, or another call's.
    pub parent: Arc<str>,
    /// The agent called.
    pub agent: Arc<str>,
    /// A digest of the input (the input itself is the caller's to keep).
    pub digest: u64,
    /// Calls between the step and this one: 1 for a step's own calls.
    pub depth: u32,
    /// The label the caller gave the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Box<str>>,
    /// The budget the call was given out of its caller's (see
    /// [`budget`](crate::budget)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
}

/// Why a step was skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SkipReason {
    /// Its condition was false.
    Condition,
    /// A step it depends on failed or was skipped.
    Upstream {
        /// That step.
        step: Arc<str>,
    },
}

/// The status of an execution, as projected from its journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Created; no event yet.
    Pending,
    /// Steps are running.
    Running,
    /// Every step succeeded or was skipped by a condition or upstream skip.
    Succeeded,
    /// Finished, but some steps failed under `on_error: continue`.
    PartiallySucceeded,
    /// A step failed under `on_error: fail` (or the store failed).
    Failed,
    /// Cancelled by request.
    Cancelled,
    /// Waiting for decisions on interrupted steps; not finished.
    Parked,
}

impl ExecutionStatus {
    /// Every status.
    pub const ALL: [ExecutionStatus; 7] = [
        ExecutionStatus::Pending,
        ExecutionStatus::Running,
        ExecutionStatus::Succeeded,
        ExecutionStatus::PartiallySucceeded,
        ExecutionStatus::Failed,
        ExecutionStatus::Cancelled,
        ExecutionStatus::Parked,
    ];

    /// The status as serialised and stored (`"running"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "pending",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::PartiallySucceeded => "partially_succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
            ExecutionStatus::Parked => "parked",
        }
    }

    /// The status named by `text` (as [`as_str`](Self::as_str) writes it).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the execution has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            ExecutionStatus::Pending | ExecutionStatus::Running | ExecutionStatus::Parked
        )
    }
}

/// The status of one step, as projected from the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Waiting for its dependencies.
    Pending,
    /// Dependencies done; waiting for a concurrency slot.
    Scheduled,
    /// Its agent is running.
    Running,
    /// Waiting for an external decision.
    Interrupted,
    /// Produced an output (possibly a fallback).
    Succeeded,
    /// Failed.
    Failed,
    /// Did not run.
    Skipped,
    /// Cancelled.
    Cancelled,
}

impl StepStatus {
    /// Whether the step has reached a final state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Cancelled
        )
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_serde_writes_them() {
        for status in ExecutionStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json.as_str(), Some(status.as_str()));
            assert_eq!(ExecutionStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(ExecutionStatus::parse("done"), None);
    }

    /// Every event of every journal is this large: the rare big payloads
    /// stay boxed.
    #[test]
    fn an_event_stays_small() {
        assert!(std::mem::size_of::<EventKind>() <= 48);
        assert!(std::mem::size_of::<Event>() <= 80);
    }
}
