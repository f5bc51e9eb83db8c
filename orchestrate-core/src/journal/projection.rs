//! Status views projected from the journal (the query side of CQRS).
//!
//! Nothing mutates a view except [`ExecutionView::apply`]: the executor's live
//! view and a view rebuilt from a stored journal are the same fold.

use std::sync::{Arc, LazyLock};

use serde_json::Value;

use super::call_tree::CallTree;
use super::event::{Event, EventKind, ExecutionStatus, SkipReason, StepStatus};
use crate::error_info::ErrorInfo;
use crate::fast_map::FastMap;
use crate::ids::ExecutionId;

/// The state of one step, as the journal tells it.
#[derive(Clone, Debug, PartialEq)]
pub struct StepView {
    /// Step id.
    pub id: Arc<str>,
    /// Current status.
    pub status: StepStatus,
    /// Attempts started.
    pub attempts: u32,
    /// Output, once succeeded.
    pub output: Option<Arc<Value>>,
    /// Last error (final for failed steps; a replaced failure for fallbacks).
    pub error: Option<ErrorInfo>,
    /// Why it was skipped.
    pub skip_reason: Option<SkipReason>,
    /// Whether the output is the fallback value.
    pub fallback: bool,
    /// What an interrupted step asks, until it is decided.
    pub interrupt: Option<Arc<Value>>,
    /// When it started, µs since the execution started.
    pub started_us: Option<u64>,
    /// When it reached a final state, µs since the execution started.
    pub finished_us: Option<u64>,
}

impl StepView {
    fn new(id: Arc<str>) -> Self {
        Self {
            id,
            status: StepStatus::Pending,
            attempts: 0,
            output: None,
            error: None,
            skip_reason: None,
            fallback: false,
            interrupt: None,
            started_us: None,
            finished_us: None,
        }
    }
}

/// An execution's status and per-step table, folded from its events.
///
/// # Examples
///
/// ```
/// use orchestrate_core::journal::{
///     ExecutionView, Event, EventKind, ExecutionStart, ExecutionStatus,
/// };
/// use std::sync::Arc;
///
/// let id = orchestrate_core::ExecutionId::from("x");
/// let events = [
///     EventKind::ExecutionStarted(Arc::new(ExecutionStart {
///         workflow: "w".into(), version: "1".into(), correlation_id: "c".into(),
///         input: Arc::new(serde_json::Value::Null), idempotency_key: None,
///         started_at_ms: 0, steps: Arc::from(["a".into()]),
///     })),
///     EventKind::StepSucceeded {
///         step: "a".into(), output: Arc::new(serde_json::json!(1)), attempts: 1, fallback_from: None,
///     },
///     EventKind::ExecutionFinished { status: ExecutionStatus::Succeeded, error: None },
/// ];
/// let view = ExecutionView::from_events(events.into_iter().enumerate().map(|(i, kind)| Event {
///     execution_id: id.clone(), seq: i as u64, at_us: 0, kind,
/// }));
/// assert_eq!(view.status(), ExecutionStatus::Succeeded);
/// assert_eq!(view.output("a"), Some(&serde_json::json!(1)));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionView {
    id: Option<ExecutionId>,
    workflow: Arc<str>,
    correlation_id: Arc<str>,
    input: Arc<Value>,
    idempotency_key: Option<Arc<str>>,
    status: ExecutionStatus,
    error: Option<ErrorInfo>,
    steps: Vec<StepView>,
    index: FastMap<Arc<str>, usize>,
    next_seq: u64,
    custom_events: u64,
    cancel_requested: bool,
    /// Made by the first call: most executions make none.
    calls: Option<Box<CallTree>>,
    /// The step the last event was about: a journal mostly names the same
    /// step again next, or the one after it.
    near: Near,
}

/// A lookup hint, not part of what a view says: equal to any other.
#[derive(Clone, Copy, Default)]
struct Near(usize);

impl PartialEq for Near {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Near {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("_")
    }
}

/// Up to this many steps, a view finds a step by scanning its table instead
/// of keeping a hash index: every execution makes a view, and most
/// workflows are small.
const SCANNED_STEPS: usize = 16;

/// The fields of a view before its first event, shared: every execution
/// makes a view, and `ExecutionStarted` replaces them at once.
static EMPTY_TEXT: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));
static NULL_INPUT: LazyLock<Arc<Value>> = LazyLock::new(|| Arc::new(Value::Null));

impl Default for ExecutionView {
    fn default() -> Self {
        Self {
            id: None,
            workflow: EMPTY_TEXT.clone(),
            correlation_id: EMPTY_TEXT.clone(),
            input: NULL_INPUT.clone(),
            idempotency_key: None,
            status: ExecutionStatus::Pending,
            error: None,
            steps: Vec::new(),
            index: FastMap::default(),
            next_seq: 0,
            near: Near::default(),
            custom_events: 0,
            cancel_requested: false,
            calls: None,
        }
    }
}

impl ExecutionView {
    /// Folds a whole journal.
    pub fn from_events<E: std::borrow::Borrow<Event>>(events: impl IntoIterator<Item = E>) -> Self {
        let mut view = Self::default();
        for e in events {
            view.apply(e.borrow());
        }
        view
    }

    /// Applies one event. This is the only way a view changes.
    pub fn apply(&mut self, event: &Event) {
        self.next_seq = event.seq + 1;
        let at = event.at_us;
        match &event.kind {
            EventKind::ExecutionStarted(start) => {
                self.id = Some(event.execution_id.clone());
                self.workflow = start.workflow.clone();
                self.correlation_id = start.correlation_id.clone();
                self.input = start.input.clone();
                self.idempotency_key = start.idempotency_key.clone();
                self.status = ExecutionStatus::Running;
                self.steps = start.steps.iter().cloned().map(StepView::new).collect();
                self.index = if self.steps.len() > SCANNED_STEPS {
                    start
                        .steps
                        .iter()
                        .cloned()
                        .enumerate()
                        .map(|(i, s)| (s, i))
                        .collect()
                } else {
                    FastMap::default()
                };
            }
            EventKind::ExecutionResumed { rerun } => {
                self.status = ExecutionStatus::Running;
                for step in rerun {
                    self.with_step(step, |s| s.status = StepStatus::Pending);
                }
            }
            EventKind::StepScheduled { step } => {
                self.with_step(step, |s| s.status = StepStatus::Scheduled);
            }
            EventKind::StepStarted { step, .. } => self.with_step(step, |s| {
                s.status = StepStatus::Running;
                s.attempts = 1;
                s.started_us = Some(at);
            }),
            EventKind::AttemptStarted { step, attempt } => {
                self.with_step(step, |s| s.attempts = *attempt)
            }
            EventKind::AttemptFailed { step, error, .. } => {
                self.with_step(step, |s| s.error = Some(ErrorInfo::clone(error)))
            }
            EventKind::StepSucceeded {
                step,
                output,
                fallback_from,
                ..
            } => self.with_step(step, |s| {
                s.status = StepStatus::Succeeded;
                s.output = Some(output.clone());
                s.fallback = fallback_from.is_some();
                s.error = fallback_from.as_deref().cloned();
                s.finished_us = Some(at);
            }),
            EventKind::StepInterrupted { step, payload } => self.with_step(step, |s| {
                s.status = StepStatus::Interrupted;
                s.interrupt = Some(payload.clone());
            }),
            EventKind::StepDecided { step, .. } => self.with_step(step, |s| s.interrupt = None),
            EventKind::ExecutionParked { .. } => self.status = ExecutionStatus::Parked,
            EventKind::StepFailed { step, error, .. } => self.with_step(step, |s| {
                s.status = StepStatus::Failed;
                s.error = Some(ErrorInfo::clone(error));
                s.finished_us = Some(at);
            }),
            EventKind::StepSkipped { step, reason } => self.with_step(step, |s| {
                s.status = StepStatus::Skipped;
                s.skip_reason = Some(reason.clone());
                s.finished_us = Some(at);
            }),
            EventKind::StepCancelled { step } => self.with_step(step, |s| {
                s.status = StepStatus::Cancelled;
                s.finished_us = Some(at);
            }),
            EventKind::AttemptRejected { step, reason, .. } => self.with_step(step, |s| {
                s.error = Some(ErrorInfo::new("rejected", reason.to_string(), false))
            }),
            EventKind::RetryScheduled { .. }
            | EventKind::Throttled { .. }
            | EventKind::BreakerTransition { .. } => {}
            EventKind::CallStarted(_) => self.calls.get_or_insert_with(Box::default).apply(event),
            EventKind::CallCompleted { .. } | EventKind::CallFailed { .. } => {
                if let Some(calls) = &mut self.calls {
                    calls.apply(event);
                }
            }
            EventKind::BudgetSet { .. }
            | EventKind::BudgetConsumed { .. }
            | EventKind::Decision(_) => self.calls.get_or_insert_with(Box::default).apply(event),
            EventKind::SideEffect { .. } | EventKind::BudgetThreshold { .. } => {}
            EventKind::Custom { .. } => self.custom_events += 1,
            EventKind::CancelRequested => self.cancel_requested = true,
            EventKind::ExecutionFinished { status, error } => {
                self.status = *status;
                self.error = error.as_deref().cloned();
                if let Some(calls) = &mut self.calls {
                    calls.apply(event);
                }
            }
        }
    }

    /// Every call the execution's agents made (see [`call`](crate::call)).
    pub fn calls(&self) -> &CallTree {
        static NONE: std::sync::OnceLock<CallTree> = std::sync::OnceLock::new();
        match &self.calls {
            Some(calls) => calls,
            None => NONE.get_or_init(CallTree::default),
        }
    }

    pub(crate) fn input_arc(&self) -> &Arc<Value> {
        &self.input
    }

    pub(crate) fn correlation_arc(&self) -> &Arc<str> {
        &self.correlation_id
    }

    pub(crate) fn idempotency_arc(&self) -> Option<&Arc<str>> {
        self.idempotency_key.as_ref()
    }

    fn with_step(&mut self, step: &str, f: impl FnOnce(&mut StepView)) {
        // The events of a live execution name its steps with the very
        // strings the view holds: the step near the last one is found by
        // address, before any hashing or scanning.
        let Near(last) = self.near;
        let near = (last..last + 2).find(|&i| {
            self.steps
                .get(i)
                .is_some_and(|s| std::ptr::eq(&*s.id, step))
        });
        if let Some(i) = near.or_else(|| self.position(step)) {
            self.near = Near(i);
            f(&mut self.steps[i]);
        }
    }

    /// Where step `id` is in `steps`. A small workflow's steps are scanned,
    /// its events' ids mostly being the very strings the view holds; a
    /// larger one's are looked up in `index`.
    fn position(&self, id: &str) -> Option<usize> {
        if self.steps.len() > SCANNED_STEPS {
            return self.index.get(id).copied();
        }
        self.steps
            .iter()
            .position(|s| std::ptr::eq(&*s.id, id))
            .or_else(|| self.steps.iter().position(|s| &*s.id == id))
    }

    /// The execution id (`None` before the first event).
    pub fn id(&self) -> Option<&ExecutionId> {
        self.id.as_ref()
    }

    /// The workflow name.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// The correlation id.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// The execution input.
    pub fn input(&self) -> &Value {
        &self.input
    }

    /// The idempotency key, if the execution was started with one.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// The execution status.
    pub fn status(&self) -> ExecutionStatus {
        self.status
    }

    /// The error that ended the execution, if it failed.
    pub fn error(&self) -> Option<&ErrorInfo> {
        self.error.as_ref()
    }

    /// Every step, in plan order.
    pub fn steps(&self) -> &[StepView] {
        &self.steps
    }

    /// One step by id.
    pub fn step(&self, id: &str) -> Option<&StepView> {
        self.position(id).map(|i| &self.steps[i])
    }

    /// The output of step `id`, if it succeeded.
    pub fn output(&self, id: &str) -> Option<&Value> {
        self.step(id)?.output.as_deref()
    }

    /// The sequence number the next event will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Custom events recorded so far.
    pub fn custom_events(&self) -> u64 {
        self.custom_events
    }

    /// Whether cancellation was requested.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested
    }

    /// Steps in a given status.
    pub fn count(&self, status: StepStatus) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};

    use super::{ExecutionView, SCANNED_STEPS};
    use crate::journal::{Event, EventKind, ExecutionStart, StepStatus};

    /// A view of a workflow of `steps`, each succeeded with its position as
    /// output; the events name each step with a string of their own.
    fn succeeded(steps: &[Arc<str>]) -> ExecutionView {
        let start = started(steps);
        let done = steps
            .iter()
            .enumerate()
            .map(|(i, id)| EventKind::StepSucceeded {
                step: Arc::from(&**id),
                output: Arc::new(json!(i)),
                attempts: 1,
                fallback_from: None,
            });
        ExecutionView::from_events(std::iter::once(start).chain(done).enumerate().map(
            |(seq, kind)| Event {
                execution_id: "x".into(),
                seq: seq as u64,
                at_us: 0,
                kind,
            },
        ))
    }

    /// The start of an execution of a workflow of `steps`.
    fn started(steps: &[Arc<str>]) -> EventKind {
        EventKind::ExecutionStarted(Arc::new(ExecutionStart {
            workflow: "w".into(),
            version: "1".into(),
            correlation_id: "c".into(),
            input: Arc::new(Value::Null),
            idempotency_key: None,
            started_at_ms: 0,
            steps: steps.iter().cloned().collect(),
        }))
    }

    fn ids(n: usize) -> Vec<Arc<str>> {
        (0..n).map(|i| Arc::from(format!("s{i}"))).collect()
    }

    #[test]
    fn small_and_large_views_find_every_step_by_its_text() {
        for n in [1, SCANNED_STEPS, SCANNED_STEPS + 1, 100] {
            let view = succeeded(&ids(n));
            for i in 0..n {
                let step = view.step(&format!("s{i}")).expect("known step");
                assert_eq!(step.status, StepStatus::Succeeded, "{n} steps, s{i}");
                assert_eq!(step.output.as_deref(), Some(&json!(i)), "{n} steps, s{i}");
            }
            assert!(view.step("missing").is_none(), "{n} steps");
        }
    }

    #[test]
    fn events_naming_steps_with_the_views_own_strings_find_them_in_any_order() {
        for n in [3, SCANNED_STEPS + 24] {
            let steps = ids(n);
            let mut view = ExecutionView::default();
            view.apply(&Event {
                execution_id: "x".into(),
                seq: 0,
                at_us: 0,
                kind: started(&steps),
            });
            // Forward, then backward, then every third: near and far.
            let order: Vec<usize> = (0..n)
                .chain((0..n).rev())
                .chain((0..n).step_by(3))
                .collect();
            for (seq, &i) in order.iter().enumerate() {
                view.apply(&Event {
                    execution_id: "x".into(),
                    seq: seq as u64 + 1,
                    at_us: 0,
                    kind: EventKind::StepSucceeded {
                        step: steps[i].clone(),
                        output: Arc::new(json!(seq)),
                        attempts: 1,
                        fallback_from: None,
                    },
                });
                assert_eq!(view.output(&steps[i]), Some(&json!(seq)), "{n} steps, s{i}");
            }
            let untouched = view.steps().iter().filter(|s| s.output.is_none()).count();
            assert_eq!(untouched, 0, "{n} steps");
        }
    }

    #[test]
    fn an_event_for_a_step_the_workflow_lacks_changes_nothing() {
        let steps = ids(3);
        let mut view = succeeded(&steps);
        let before = view.clone();
        view.apply(&Event {
            execution_id: "x".into(),
            seq: 4,
            at_us: 0,
            kind: EventKind::StepStarted {
                step: "elsewhere".into(),
                agent: "a".into(),
            },
        });
        assert_eq!(view.steps(), before.steps());
    }
}
