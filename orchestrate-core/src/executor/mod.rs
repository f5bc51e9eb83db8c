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
mod calls;
mod inbox;
mod input;
mod resume;
mod sub_workflow;
mod tasks;

pub(crate) use calls::{CallTarget, CallTargets, ReplayLog};
pub(crate) use resume::Decision;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use orchestrate_graph::template::Scope;
use orchestrate_graph::OnError;
use orchestrate_resilience::PolicyEvent;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument;

use crate::context::{Context, ExecutionScope};
use crate::error::{Error, ErrorInfo};
use crate::execution::Shared;
use crate::journal::{Event, EventKind, ExecutionStart, ExecutionStatus, SkipReason};
use crate::orchestrator::Bound;
use crate::orchestrator::{Limits, Registry};
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
    /// A call's start or end, with, for its end, whom to tell once the
    /// journal holds it.
    Call(EventKind, Option<oneshot::Sender<()>>),
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
    /// Calls whose end is in the batch being made: told once it is
    /// appended.
    acks: Vec<oneshot::Sender<()>>,
    /// The execution's budgets, shared with its host.
    budgets: Arc<std::sync::Mutex<crate::budget::BudgetLedger>>,
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
        let budgets = Arc::new(std::sync::Mutex::new(std::mem::take(&mut replay.budgets)));
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
            live: Arc::default(),
            grace: limits.cancel_grace,
            strict: limits.strict_replay,
            budgets: budgets.clone(),
        };
        let _ = shared.calls.set(host.live.clone());
        let scope = Arc::new(ExecutionScope::new(
            shared.id.clone(),
            correlation_id.clone(),
            shared.cancel.clone(),
            Arc::new(host),
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
            acks: Vec::new(),
            budgets,
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
            self.budgets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .set_root(budget.amount);
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

    fn record(&mut self, kind: EventKind) {
        // One clock read per batch: its events are all recorded in one turn.
        if self.pending.is_empty() {
            self.batch_at_us = self.started.elapsed().as_micros() as u64;
        }
        self.pending.push(Event {
            execution_id: self.shared.id.clone(),
            seq: self.seq,
            at_us: self.batch_at_us,
            kind,
        });
        self.seq += 1;
    }

    /// Applies pending events to the live view, appends them to the store in
    /// one batch, then publishes them.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.shared.apply(&self.pending);
        if !self.journal_broken {
            let store = &self.shared.store;
            let appended = match store.append_now(&self.shared.id, &self.pending) {
                Some(done) => done,
                None => store.append(&self.shared.id, &self.pending).await,
            };
            if let Err(e) = appended {
                tracing::error!(error = %e, "journal append failed; failing the execution");
                self.journal_broken = true;
                if self.failure.is_none() {
                    self.failure = Some(e.into());
                }
                self.shared.cancel.cancel();
                self.cancel_seen = true;
            }
        }
        // Calls whose end this batch holds go on; when it could not be
        // written, dropping their senders tells them so.
        if self.journal_broken {
            self.acks.clear();
        }
        for ack in self.acks.drain(..) {
            // A caller that went away needs no answer.
            let _ = ack.send(());
        }
        let bus = &self.shared.bus;
        if bus.has_subscribers(&self.shared.topic) {
            let events: Vec<Arc<Event>> = self.pending.drain(..).map(Arc::new).collect();
            if let Err(e) = bus.publish(&self.shared.topic, &events).await {
                tracing::warn!(error = %e, "publishing execution events failed");
            }
        }
        self.pending.clear();
    }

    fn make_ready(&mut self, i: usize) {
        self.steps[i].phase = Phase::Ready;
        self.ready.push_back(i);
        self.fresh.push(i);
    }

    /// Journals the steps made ready since the last turn that are still
    /// waiting for a slot.
    fn record_waiting(&mut self) {
        let mut fresh = std::mem::take(&mut self.fresh);
        for i in fresh.drain(..) {
            if self.steps[i].phase == Phase::Ready {
                let step = self.wf.plan.id(i).clone();
                self.record(EventKind::StepScheduled { step });
            }
        }
        self.fresh = fresh;
    }

    fn parked(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.phase == Phase::Parked)
            .count()
    }

    fn mark_done(&mut self, i: usize) {
        if self.steps[i].phase == Phase::Running {
            self.running -= 1;
            self.agent_running[self.wf.slot(i)] -= 1;
        }
        self.steps[i].phase = Phase::Done;
        self.unresolved -= 1;
    }

    /// Oldest ready step whose agent has a free slot (FIFO among the eligible).
    fn pop_ready(&mut self) -> Option<usize> {
        if !self.per_agent_limits {
            return self.ready.pop_front();
        }
        let pos = self.ready.iter().position(|&i| {
            let slot = self.wf.slot(i);
            let limit = self.wf.slot_limits[slot];
            limit == 0 || self.agent_running[slot] < limit
        })?;
        self.ready.remove(pos)
    }

    /// Starts ready steps up to the limits. The journal batch (with the
    /// outputs these steps depend on) is written before any of them starts.
    ///
    /// An inline step is polled as it starts, and may finish there: its
    /// successors are then ready, and start in another round, after a batch
    /// holding the output they read.
    async fn dispatch(&mut self) {
        while self.dispatch_round().await {
            if self.shared.cancel.is_cancelled() {
                self.cancel_seen = true;
                return;
            }
            // A long run of steps that never wait would otherwise hold the
            // worker for as long as it lasts.
            tokio::task::consume_budget().await;
        }
    }

    /// One round of [`dispatch`](Self::dispatch): whether a step finished as
    /// it started and more may be ready.
    async fn dispatch_round(&mut self) -> bool {
        let wf = self.wf.clone();
        // Reused across turns: one allocation per execution, not per step.
        let mut starts = std::mem::take(&mut self.start_buf);
        while self.running < self.limits.max_concurrency && !self.cancel_seen {
            let Some(i) = self.pop_ready() else { break };
            let step = &wf.plan.steps()[i];
            let scope = RunScope {
                input: &self.input,
                steps: &self.steps,
            };
            if let Some(condition) = step.condition() {
                if !condition.evaluate(&scope) {
                    self.skip(i, SkipReason::Condition);
                    continue;
                }
            }
            match step.input().evaluate(wf.plan.id(i), &scope) {
                Ok(input) => {
                    self.steps[i].phase = Phase::Running;
                    self.running += 1;
                    self.agent_running[wf.slot(i)] += 1;
                    self.record(EventKind::StepStarted {
                        step: wf.plan.id(i).clone(),
                        agent: wf.plan.agent_of(i).clone(),
                    });
                    starts.push((i, input));
                }
                Err(e) => self.step_failed(i, Error::Interpolation(e), 0),
            }
        }
        self.record_waiting();
        self.flush().await;
        let mut finished = false;
        for (i, input) in starts.drain(..) {
            if self.cancel_seen {
                // A failure in this same turn cancelled the execution: the
                // step never starts.
                self.cancel_step(i);
            } else if let Some((i, result)) = self.start_step(i, input) {
                self.on_joined(i, result);
                finished = true;
            }
        }
        self.start_buf = starts;
        finished && self.unresolved > 0 && !self.cancel_seen
    }

    /// Starts step `i`; its result if it finished at once.
    fn start_step(&mut self, i: usize, input: Value) -> Option<(usize, StepResult)> {
        let step_id = self.wf.plan.id(i);
        let ctx = Context::new(self.scope.clone(), step_id.clone(), i);
        let input = if self.wf.policies[i].retry_config().max_attempts > 1 {
            StepInput::retryable(input, &self.wf, i, &self.steps)
        } else {
            StepInput::once(input)
        };
        let span = crate::spans::traced(|| {
            tracing::info_span!(
                "step",
                step = %step_id,
                agent = %self.wf.plan.agent_of(i),
                correlation_id = %self.correlation_id,
            )
        });
        let step = (self.make_step)(StepArgs {
            index: i,
            wf: self.wf.clone(),
            ctx,
            input,
            span,
        });
        self.tasks.start(step)
    }

    /// Journals what the steps sent, in the order they sent it.
    fn read_inbox(&mut self) {
        let mut messages = std::mem::take(&mut self.inbox_buf);
        self.inbox.take(&mut messages);
        for msg in messages.drain(..) {
            self.on_message(msg);
        }
        self.inbox_buf = messages;
    }

    fn on_message(&mut self, msg: TaskMsg) {
        let wf = self.wf.clone();
        match msg {
            TaskMsg::Custom {
                step,
                name,
                payload,
            } => {
                self.record(EventKind::Custom {
                    step: wf.plan.id(step).clone(),
                    name,
                    payload,
                });
            }
            TaskMsg::Policy { step, event } => {
                let step_id = wf.plan.id(step).clone();
                if let Some(kind) = policy_event(step_id, wf.plan.agent_of(step), *event) {
                    self.record(kind);
                }
            }
            TaskMsg::Call(kind, ack) => {
                self.record(kind);
                self.acks.extend(ack);
            }
        }
    }

    fn on_joined(&mut self, i: usize, result: StepResult) {
        // What the step sent before it returned is journaled before its
        // result, though both may arrive in one turn.
        self.read_inbox();
        match result {
            StepResult::Success { output, attempts } => self.succeed(i, output, attempts, None),
            StepResult::Failure { .. } if self.cancelling => self.cancel_step(i),
            StepResult::Failure { error, attempts } => self.step_failed(i, error, attempts),
            StepResult::Panicked { .. } if self.cancelling => self.cancel_step(i),
            StepResult::Panicked { message } => {
                let error = Error::Panicked {
                    step: self.wf.plan.id(i).clone(),
                    agent: self.wf.plan.agent_of(i).clone(),
                    message,
                };
                self.step_failed(i, error, 1);
            }
            StepResult::Interrupted { .. } if self.cancelling => self.cancel_step(i),
            StepResult::Interrupted { payload } => {
                let step = self.wf.plan.id(i).clone();
                tracing::info!(%step, "step waits for an external decision");
                self.record(EventKind::StepInterrupted { step, payload });
                self.running -= 1;
                self.agent_running[self.wf.slot(i)] -= 1;
                self.steps[i].phase = Phase::Parked;
            }
        }
    }

    fn succeed(
        &mut self,
        i: usize,
        output: Value,
        attempts: u32,
        fallback_from: Option<Box<ErrorInfo>>,
    ) {
        let wf = self.wf.clone();
        let output = Arc::new(output);
        self.record(EventKind::StepSucceeded {
            step: wf.plan.id(i).clone(),
            output: output.clone(),
            attempts,
            fallback_from,
        });
        self.steps[i].output = Some(output);
        self.mark_done(i);
        for &d in wf.plan.dependents(i) {
            self.steps[d].remaining -= 1;
            if self.steps[d].remaining == 0 && !self.cancelling {
                match self.steps[d].blocked_by {
                    Some(b) => self.skip(d, upstream(&wf, b)),
                    None => self.make_ready(d),
                }
            }
        }
    }

    fn step_failed(&mut self, i: usize, error: Error, attempts: u32) {
        let wf = self.wf.clone();
        let step = &wf.plan.steps()[i];
        if let OnError::Fallback(value) = &step.policy().on_error {
            tracing::info!(step = %wf.plan.id(i), error = %error, "step failed; using its fallback value");
            self.succeed(i, value.clone(), attempts, Some(Box::new(error.info())));
            return;
        }
        self.record(EventKind::StepFailed {
            step: wf.plan.id(i).clone(),
            error: Box::new(error.info()),
            attempts,
        });
        self.mark_done(i);
        self.block_dependents(i);
        if step.policy().on_error == OnError::Fail {
            self.failure.get_or_insert(error);
            self.shared.cancel.cancel();
            self.cancel_seen = true;
        } else {
            self.any_failed = true;
        }
    }

    /// Skips `i`, then everything downstream that can no longer run.
    fn skip(&mut self, i: usize, reason: SkipReason) {
        self.record_skip(i, reason);
        self.block_dependents(i);
    }

    fn record_skip(&mut self, i: usize, reason: SkipReason) {
        let step = self.wf.plan.id(i).clone();
        self.record(EventKind::StepSkipped { step, reason });
        self.mark_done(i);
    }

    fn block_dependents(&mut self, i: usize) {
        let wf = self.wf.clone();
        let mut stack = vec![i];
        while let Some(s) = stack.pop() {
            for &d in wf.plan.dependents(s) {
                self.steps[d].blocked_by.get_or_insert(s);
                self.steps[d].remaining -= 1;
                if self.steps[d].remaining == 0 && self.steps[d].phase == Phase::Waiting {
                    self.record_skip(d, upstream(&wf, self.steps[d].blocked_by.unwrap_or(s)));
                    stack.push(d);
                }
            }
        }
    }

    fn cancel_step(&mut self, i: usize) {
        let step = self.wf.plan.id(i).clone();
        self.record(EventKind::StepCancelled { step });
        self.mark_done(i);
    }

    /// Gives running attempts the grace period, then drops them; every step
    /// not finished by then is recorded `Cancelled`.
    async fn cancel_running(&mut self) {
        self.cancelling = true;
        if self.failure.is_none() && !self.cancel_recorded {
            self.record(EventKind::CancelRequested);
        }
        self.flush().await;
        let deadline = Instant::now() + self.limits.cancel_grace;
        while self.running > 0 {
            tokio::select! {
                biased;
                () = self.inbox.arrived() => self.read_inbox(),
                Some((i, result)) = self.tasks.next() => self.on_joined(i, result),
                _ = tokio::time::sleep_until(deadline) => break,
            }
            self.flush().await;
        }
        self.tasks.abort_all();
        // Custom events sent before the abort still belong in the journal.
        self.read_inbox();
        for i in 0..self.steps.len() {
            if self.steps[i].phase != Phase::Done {
                self.cancel_step(i);
            }
        }
        self.ready.clear();
    }

    async fn finish(&mut self) {
        if self.unresolved > 0 && !self.cancelling && self.failure.is_none() {
            return self.park().await;
        }
        let (status, result_error) = match (&self.failure, self.cancelling) {
            (Some(e), _) => (ExecutionStatus::Failed, Some(e.clone())),
            (None, true) => (
                ExecutionStatus::Cancelled,
                Some(Error::Cancelled { step: None }),
            ),
            (None, false) if self.any_failed => (ExecutionStatus::PartiallySucceeded, None),
            (None, false) => (ExecutionStatus::Succeeded, None),
        };
        self.record(EventKind::ExecutionFinished {
            status,
            error: result_error.as_ref().map(|e| Box::new(e.info())),
        });
        self.flush().await;
        let outcome = match result_error {
            Some(e) => Err(e),
            None => Ok(self.shared.view_arc()),
        };
        self.conclude(outcome);
    }

    /// Every step left waits for a decision: journal that, and stop. A
    /// decision resumes the execution from the store, in this process or
    /// another.
    async fn park(&mut self) {
        let steps: Vec<Arc<str>> = (0..self.steps.len())
            .filter(|&i| self.steps[i].phase == Phase::Parked)
            .map(|i| self.wf.plan.id(i).clone())
            .collect();
        let names = steps.iter().map(|s| s.to_string()).collect();
        self.record(EventKind::ExecutionParked { steps });
        self.flush().await;
        let parked = Error::Parked {
            execution: self.shared.id.clone(),
            steps: names,
        };
        self.conclude(Err(parked));
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
            error: Box::new(ErrorInfo {
                code: "agent".into(),
                message: error,
                retryable,
                attempts: Some(attempt),
            }),
        },
        PolicyEvent::TimedOut { attempt, after } => EventKind::AttemptFailed {
            step,
            attempt,
            error: Box::new(ErrorInfo {
                code: "timeout".into(),
                message: format!("attempt timed out after {after:?}"),
                retryable: true,
                attempts: Some(attempt),
            }),
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
