//! The executor: one driver task per execution schedules steps by dynamic
//! readiness and is the only writer of the execution's journal.
//!
//! Steps are polled by the driver itself or run in tasks of their own, as
//! [`StepTasks`](crate::StepTasks) says; results come back to the driver as
//! the steps finish, retries and custom events through its [`Inbox`].
//! Events produced in one turn of the driver are appended to the store in
//! one batch, and that batch is written before any step it made ready is
//! started, so a step's output is journaled before its successors run.

mod attempt;
mod call_run;
mod calls;
mod dispatch;
mod ending;
mod inbox;
mod input;
mod journal;
mod live;
mod map;
mod outcomes;
mod replay;
mod resume;
mod sub_workflow;
mod targets;
mod tasks;

pub(crate) use replay::ReplayLog;
pub(crate) use resume::Decision;
pub(crate) use targets::CallTargets;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use orchestrate_graph::template::Scope;
use orchestrate_graph::OnError;
use orchestrate_resilience::PolicyEvent;
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument;

use crate::context::{Context, ExecutionScope};
use crate::error::{Error, ErrorInfo};
use crate::execution::Registry;
use crate::execution::Shared;
use crate::journal::{Event, EventKind, ExecutionStart, ExecutionStatus, SkipReason};
use crate::limits::Limits;
use crate::workflow::Bound;
use attempt::run_step;
use input::StepInput;
use tasks::RunningSteps;

pub(crate) use inbox::Inbox;

/// Messages from running steps to their driver, through its [`Inbox`].
#[derive(Debug)]
pub(crate) enum TaskMsg {
    /// An agent's custom event, boxed as its journal event keeps it.
    Custom {
        step: usize,
        name: Box<str>,
        payload: Box<Value>,
    },
    /// What the step's resilience policy did.
    Policy {
        step: usize,
        event: Box<PolicyEvent>,
    },
    /// A call's start or end, a side effect or a budget's change.
    Call(EventKind),
    /// A call refused before it ran: its start and its end, journaled in
    /// one batch.
    Refused(Arc<crate::journal::CallStart>, EventKind),
}

/// How a step's task ended.
pub(crate) enum StepResult {
    Success {
        output: Value,
        attempts: u32,
    },
    Failure {
        error: Error,
        attempts: u32,
    },
    Interrupted {
        payload: Arc<Value>,
    },
    /// A panic escaped the attempts; the driver names the step and agent.
    Panicked {
        message: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Ready,
    Running,
    /// Interrupted: waits for an external decision.
    Parked,
    Done,
}

/// What the driver knows of one step, in one table by plan index: one
/// allocation per execution, and one place touched per step.
#[derive(Clone)]
struct StepState {
    /// Its output, once it succeeded.
    output: Option<Arc<Value>>,
    /// Upstream steps not yet done.
    remaining: u32,
    phase: Phase,
    /// The first upstream step that failed or was skipped: this one will be
    /// skipped when the rest are done.
    blocked_by: Option<usize>,
}

struct RunScope<'a> {
    input: &'a Value,
    steps: &'a [StepState],
}

impl Scope for RunScope<'_> {
    fn input(&self) -> &Value {
        self.input
    }
    fn step_output(&self, index: usize) -> Option<&Value> {
        self.steps.get(index)?.output.as_deref()
    }
}

/// What starting a step takes.
pub(crate) struct StepArgs {
    index: usize,
    wf: Arc<Bound>,
    ctx: Context,
    input: StepInput,
    span: tracing::Span,
}

/// The future of one step: its attempts under its policy, in its span; a
/// panic that escapes them ends the step as `Panicked`. One function, so
/// that every step's future has one type (see [`Driver::new`]).
pub(crate) fn step_future(
    args: StepArgs,
) -> impl Future<Output = (usize, StepResult)> + Send + 'static {
    let StepArgs {
        index,
        wf,
        ctx,
        input,
        span,
    } = args;
    tasks::guarded(
        index,
        run_step(wf, index, ctx, input).instrument(span),
        |message| StepResult::Panicked { message },
    )
}

/// Drives one execution. `F` is the type of its steps' futures, made by
/// [`step_future`].
pub(crate) struct Driver<F> {
    shared: Arc<Shared>,
    wf: Arc<Bound>,
    limits: Arc<Limits>,
    input: Arc<Value>,
    correlation_id: Arc<str>,
    idempotency_key: Option<Arc<str>>,
    registry: Registry,

    steps: Vec<StepState>,
    ready: VecDeque<usize>,
    /// Steps made ready since the last dispatch: those it leaves waiting for
    /// a slot are journaled `StepScheduled` (a step that starts at once needs
    /// only its `StepStarted`).
    fresh: Vec<usize>,
    /// Steps a dispatch turn starts, kept between turns.
    start_buf: Vec<(usize, Value)>,
    running: usize,
    agent_running: Vec<usize>,
    unresolved: usize,
    per_agent_limits: bool,

    tasks: RunningSteps<F>,
    make_step: fn(StepArgs) -> F,
    inbox: Arc<Inbox>,
    /// Messages taken from the inbox, kept between turns.
    inbox_buf: Vec<TaskMsg>,
    /// The host of the execution's contexts (its calls and budgets).
    host: Arc<calls::ExecutionHost>,
    /// The budget a new execution starts with.
    budget: Option<crate::budget::Budget>,

    seq: u64,
    started: Instant,
    /// When the batch in `pending` began, in µs since `started`.
    batch_at_us: u64,
    /// The batch being made: held by value (the store keeps copies whose
    /// fields share these ones), put in `Arc`s only for a subscriber.
    pending: Vec<Event>,
    journal_broken: bool,
    failure: Option<Error>,
    /// What every step's context shares.
    scope: Arc<ExecutionScope>,
    /// Cancellation was seen (requested, or decided by this driver): checked
    /// without the token's lock on every scheduling decision.
    cancel_seen: bool,
    cancelling: bool,
    /// A resumed execution whose journal already holds `CancelRequested`.
    cancel_recorded: bool,
    any_failed: bool,
}

impl<F> Driver<F>
where
    F: Future<Output = (usize, StepResult)> + Send + 'static,
{
    /// `make_step` is [`step_future`], passed in so that `F` is its return
    /// type: the running steps are then kept unboxed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        wf: Arc<Bound>,
        limits: Arc<Limits>,
        input: Arc<Value>,
        correlation_id: Arc<str>,
        idempotency_key: Option<Arc<str>>,
        registry: Registry,
        calls: (Arc<CallTargets>, ReplayLog),
        make_step: fn(StepArgs) -> F,
    ) -> Self {
        let n = wf.plan.len();
        let inbox = Arc::<Inbox>::default();
        let (targets, mut replay) = calls;
        let restored_budgets = std::sync::Mutex::new(replay.budgets.take());
        let host = calls::ExecutionHost {
            inbox: inbox.clone(),
            custom_limit: limits.max_custom_events,
            workflow: wf.plan.name().clone(),
            targets,
            replay,
            max_depth: limits.max_call_depth,
            steps: n,
            step_calls: std::sync::OnceLock::new(),
            limited: std::sync::Mutex::default(),
            grace: limits.cancel_grace,
            strict: limits.strict_replay,
            limits: limits.clone(),
            restored_budgets,
            shared: shared.clone(),
            state: std::sync::OnceLock::new(),
        };
        let host = Arc::new(host);
        let scope = Arc::new(ExecutionScope::new(
            shared.id.clone(),
            correlation_id.clone(),
            shared.cancel.clone(),
            host.clone(),
            input.clone(),
        ));
        Self {
            steps: (0..wf.plan.len())
                .map(|i| StepState {
                    output: None,
                    remaining: wf.plan.deps(i).len() as u32,
                    phase: Phase::Waiting,
                    blocked_by: None,
                })
                .collect(),
            agent_running: vec![0; wf.slot_limits.len()],
            per_agent_limits: wf.slot_limits.iter().any(|&l| l > 0),
            ready: VecDeque::new(),
            fresh: Vec::new(),
            start_buf: Vec::new(),
            running: 0,
            unresolved: n,
            tasks: RunningSteps::new(limits.step_tasks),
            make_step,
            inbox,
            inbox_buf: Vec::new(),
            host,
            budget: None,
            seq: 0,
            started: Instant::now(),
            batch_at_us: 0,
            pending: Vec::new(),
            journal_broken: false,
            failure: None,
            scope,
            cancel_seen: false,
            cancelling: false,
            cancel_recorded: false,
            any_failed: false,
            shared,
            wf,
            limits,
            input,
            correlation_id,
            idempotency_key,
            registry,
        }
    }

    /// Journals the start and makes the entry steps ready, then returns
    /// the execution's task. Not an `async fn`, which would hold the driver
    /// twice (captured, and moved into a local).
    pub(crate) fn run(mut self) -> impl Future<Output = ()> + Send + 'static {
        let wf = self.wf.clone();
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.record(EventKind::ExecutionStarted(Arc::new(ExecutionStart {
            workflow: wf.plan.name().clone(),
            version: wf.plan.version().clone(),
            correlation_id: self.correlation_id.clone(),
            input: self.input.clone(),
            idempotency_key: self.idempotency_key.clone(),
            started_at_ms,
            steps: wf.step_ids.clone(),
        })));
        if let Some(budget) = self.budget.take() {
            self.host.state().budgets().set_root(budget.amount);
            self.record(EventKind::BudgetSet {
                amount: budget.amount,
                unit: budget.unit.into_boxed_str(),
            });
        }
        for i in wf.plan.entries() {
            self.make_ready(i);
        }
        async move { self.drive().await }
    }

    /// Starts the execution with `budget`.
    pub(crate) fn with_budget(mut self, budget: crate::budget::Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The scheduling loop, from whatever state the driver is in, to the end.
    async fn drive(&mut self) {
        self.dispatch().await;
        // Made once: a fresh `cancelled()` per turn would register with the
        // token's lock every time.
        let mut cancelled = std::pin::pin!(self.shared.cancel.clone().cancelled_owned());
        while self.unresolved > 0 {
            if self.cancel_seen || self.shared.cancel.is_cancelled() {
                self.cancel_seen = true;
                self.cancel_running().await;
                break;
            }
            if self.running == 0 && self.ready.is_empty() && self.parked() > 0 {
                // Everything left waits on a decision: park.
                break;
            }
            if self.running == 0 && self.ready.is_empty() {
                // Unreachable for a validated plan; never hang on a bug.
                tracing::error!(unresolved = self.unresolved, "no runnable step left");
                self.failure.get_or_insert(Error::Cancelled { step: None });
                self.cancel_running().await;
                break;
            }
            tokio::select! {
                biased;
                _ = &mut cancelled => {
                    self.cancel_seen = true;
                    continue;
                }
                () = self.inbox.arrived() => self.read_inbox(),
                Some((i, result)) = self.tasks.next() => self.on_joined(i, result),
            }
            // Steps that finished meanwhile join this turn, and its one
            // journal batch; after a cancellation, what ends is recorded by
            // `cancel_running` instead.
            while !self.cancel_seen {
                let Some((i, result)) = self.tasks.try_next() else {
                    break;
                };
                self.on_joined(i, result);
            }
            if self.unresolved > 0 {
                self.dispatch().await;
            }
            // Otherwise the last results share their batch with the end.
        }
        self.finish().await;
    }
}

impl<F> Driver<F> {
    fn conclude(&mut self, outcome: Result<Arc<crate::journal::ExecutionView>, Error>) {
        self.shared.conclude(outcome);
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.shared.id);
    }
}

impl<F> Drop for Driver<F> {
    fn drop(&mut self) {
        // Agents still holding a context learn that nobody journals their
        // events any more.
        self.inbox.close();
        // Dropped before it concluded (its runtime shut down): whoever waits
        // learns that the execution stopped here, as a restart would find it.
        if !self.shared.has_ended() {
            let orphaned = Error::Orphaned(self.shared.id.clone());
            self.conclude(Err(orphaned));
        }
    }
}

/// The journal entry for what a step's policy did.
fn policy_event(step: Arc<str>, agent: &Arc<str>, event: PolicyEvent) -> Option<EventKind> {
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Some(match event {
        PolicyEvent::AttemptStarted { attempt } => EventKind::AttemptStarted { step, attempt },
        PolicyEvent::AttemptFailed {
            attempt,
            error,
            retryable,
        } => EventKind::AttemptFailed {
            step,
            attempt,
            error: Box::new(ErrorInfo::new("agent", error, retryable).with_attempts(attempt)),
        },
        PolicyEvent::TimedOut { attempt, after } => EventKind::AttemptFailed {
            step,
            attempt,
            error: Box::new(
                ErrorInfo::new(
                    "timeout",
                    format!("attempt timed out after {after:?}"),
                    true,
                )
                .with_attempts(attempt),
            ),
        },
        PolicyEvent::RetryScheduled {
            next_attempt,
            delay,
        } => EventKind::RetryScheduled {
            step,
            next_attempt,
            delay_ms: ms(delay),
        },
        PolicyEvent::Throttled { attempt, delay } => EventKind::Throttled {
            step,
            attempt,
            delay_ms: ms(delay),
        },
        PolicyEvent::Rejected { attempt, reason } => EventKind::AttemptRejected {
            step,
            attempt,
            reason: reason.into_boxed_str(),
        },
        PolicyEvent::BreakerTransition { from, to, .. } => EventKind::BreakerTransition {
            step,
            breaker: agent.clone(),
            from,
            to,
        },
        // Step-level fallbacks are journaled with the step's result.
        _ => return None,
    })
}

fn upstream(wf: &Bound, step: usize) -> SkipReason {
    SkipReason::Upstream {
        step: wf.plan.id(step).clone(),
    }
}
