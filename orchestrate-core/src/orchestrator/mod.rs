//! The [`Orchestrator`]: built once, runs many executions.

mod builder;
mod cancel_requests;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use orchestrate_graph::WorkflowDef;
use orchestrate_resilience::BreakerSnapshot;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use builder::OrchestratorBuilder;
pub use cancel_requests::{CancelRequest, CANCEL_MAILBOX};

use crate::limits::Limits;
use crate::pattern::Patterns;
use crate::policies::Policies;
use crate::workflow::{Binder, Workflow};

use crate::agent::BoxAgent;
use crate::bus::EventBus;
use crate::error::Error;
use crate::execution::{Execution, Registry, Shared};
use crate::executor::{step_future, CallTargets, Decision, Driver, ReplayLog};
use crate::fast_map::FastMap;
use crate::ids::ExecutionId;
use crate::journal::ExecutionView;
use crate::store::{Store, StoreError};

/// Options of one run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Returns the existing execution when one was started with this key
    /// within [`Limits::idempotency_ttl`].
    pub idempotency_key: Option<String>,
    /// Correlation id for spans and contexts; the execution id when `None`.
    pub correlation_id: Option<String>,
    /// The execution's budget, which its steps and calls draw on (see
    /// [`budget`](crate::budget)); none when `None`.
    pub budget: Option<crate::budget::Budget>,
}

impl RunOptions {
    /// Sets the idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Gives the execution a budget of `amount` `unit`s.
    pub fn budget(mut self, amount: u64, unit: impl Into<String>) -> Self {
        self.budget = Some(crate::budget::Budget::new(amount, unit));
        self
    }
}

/// What a driver restored from a journal does first.
enum Restart {
    /// Goes on where the journal stopped.
    Resume,
    /// Applies a decision on an interrupted step.
    Decide(usize, Decision),
    /// Ends the execution cancelled, running nothing.
    Cancel,
}

pub(crate) struct Inner {
    pub(crate) agents: HashMap<String, BoxAgent>,
    /// The agents as calls find them, with their policies and limits.
    pub(crate) targets: Arc<CallTargets>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) workflows: HashMap<String, Workflow>,
    pub(crate) limits: Arc<Limits>,
    pub(crate) policies: Policies,
    pub(crate) patterns: Patterns,
    pub(crate) running: Registry,
    pub(crate) tracker: TaskTracker,
    pub(crate) shutdown: CancellationToken,
    /// Set once the look for other processes' cancellation requests has
    /// started.
    pub(crate) watching_cancel_requests: std::sync::atomic::AtomicBool,
}

impl Inner {
    pub(crate) fn new(
        agents: HashMap<String, BoxAgent>,
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        workflows: HashMap<String, Workflow>,
        limits: Limits,
        policies: Policies,
        patterns: Patterns,
    ) -> Self {
        let targets = CallTargets::new(&agents, &policies, &limits);
        Self {
            targets: Arc::new(targets),
            agents,
            store,
            bus,
            workflows,
            limits: Arc::new(limits),
            policies,
            patterns,
            running: Arc::default(),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            watching_cancel_requests: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// Runs workflows: binds them to agents, starts executions, and finds them
/// again by id or idempotency key.
///
/// Cheap to clone; clones share everything.
///
/// # Examples
///
/// ```
/// use orchestrate_core::{agent_fn, Orchestrator};
/// use orchestrate_graph::{StepDef, WorkflowDef};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), orchestrate_core::Error> {
/// let def = WorkflowDef::builder("double")
///     .step(StepDef::new("twice", "double").input(json!("${input.n}")))
///     .build();
/// let orchestrator = Orchestrator::builder()
///     .agent(agent_fn("double", |n, _ctx| async move { Ok(json!(n.as_i64().unwrap_or(0) * 2)) }))
///     .workflow(def)
///     .build()?;
/// let workflow = orchestrator.workflow("double").unwrap();
/// let done = orchestrator.run(&workflow, json!({"n": 21})).await?.await?;
/// assert_eq!(done.output("twice"), Some(&json!(42)));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Orchestrator {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("agents", &self.inner.agents.len())
            .field("workflows", &self.inner.workflows.len())
            .field("running", &self.running_count())
            .finish_non_exhaustive()
    }
}

impl Orchestrator {
    /// Starts configuring an orchestrator.
    pub fn builder() -> OrchestratorBuilder {
        OrchestratorBuilder::new()
    }

    /// A workflow registered with [`OrchestratorBuilder::workflow`].
    pub fn workflow(&self, name: &str) -> Option<Workflow> {
        self.inner.workflows.get(name).cloned()
    }

    /// The names of the workflows registered with
    /// [`OrchestratorBuilder::workflow`], sorted.
    pub fn workflow_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.inner.workflows.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Validates, plans and binds a workflow definition.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`], [`Error::UnknownAgent`], or
    /// [`Error::ValueTooDeep`] for a step's fallback value nested deeper than
    /// [`MAX_VALUE_DEPTH`](crate::depth::MAX_VALUE_DEPTH).
    pub fn bind(&self, def: &WorkflowDef) -> Result<Workflow, Error> {
        Workflow::bind(
            def,
            &Binder {
                agents: &self.inner.agents,
                agent_limits: &self.inner.limits.agent_concurrency,
                policies: &self.inner.policies,
                patterns: &self.inner.patterns,
            },
        )
    }

    /// The names of the registered agents, sorted: what a tool checking a
    /// workflow before binding it compares its steps' agents with.
    pub fn agent_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.inner.agents.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// A snapshot of agent `agent`'s circuit breaker (health monitoring);
    /// `None` until a workflow using the agent is bound, or when its policy
    /// has no breaker.
    pub fn circuit_breaker(&self, agent: &str) -> Option<BreakerSnapshot> {
        self.inner.policies.breaker(agent)
    }

    /// Snapshots of every agent's circuit breaker, sorted by agent.
    pub fn circuit_breakers(&self) -> Vec<BreakerSnapshot> {
        self.inner.policies.registry.breaker_snapshots()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The event bus.
    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.inner.bus
    }

    /// Executions currently running in this process.
    pub fn running_count(&self) -> usize {
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Starts an execution of `workflow` on `input` and returns its handle
    /// at once; await the handle for the result.
    ///
    /// # Errors
    ///
    /// [`Error::ValueTooDeep`] when `input` nests deeper than
    /// [`MAX_VALUE_DEPTH`](crate::depth::MAX_VALUE_DEPTH); store errors from
    /// idempotency look-ups (see [`run_with`](Self::run_with)).
    pub async fn run(&self, workflow: &Workflow, input: Value) -> Result<Execution, Error> {
        self.run_with(workflow, input, RunOptions::default()).await
    }

    /// Like [`run`](Self::run), but returns the execution already started
    /// with `key` within the idempotency TTL, whether running or finished.
    ///
    /// # Errors
    ///
    /// [`Error::ValueTooDeep`] for too deep an input, store errors, and
    /// [`Error::ExecutionNotFound`] when the key names an execution the store
    /// no longer holds.
    pub async fn run_with_key(
        &self,
        key: impl Into<String>,
        workflow: &Workflow,
        input: Value,
    ) -> Result<Execution, Error> {
        let options = RunOptions {
            idempotency_key: Some(key.into()),
            ..RunOptions::default()
        };
        self.run_with(workflow, input, options).await
    }

    /// Starts an execution with explicit [`RunOptions`].
    ///
    /// # Errors
    ///
    /// As [`run_with_key`](Self::run_with_key).
    pub async fn run_with(
        &self,
        workflow: &Workflow,
        input: Value,
        options: RunOptions,
    ) -> Result<Execution, Error> {
        crate::error::refuse_too_deep(None, "execution input", &input)?;
        let inner = &self.inner;
        let id = ExecutionId::new();
        // Without one of its own, an execution is its own correlation id:
        // the same text, shared.
        let correlation: Arc<str> = match options.correlation_id.as_deref() {
            Some(c) => c.into(),
            None => id.as_arc().clone(),
        };
        let shared = Arc::new(Shared::new(
            id.clone(),
            inner.store.clone(),
            inner.bus.clone(),
            inner.shutdown.child_token(),
        ));
        // Registered before the key is claimed, so a concurrent caller that
        // loses the claim always finds the winner here or in the store.
        self.registry().insert(id.clone(), shared.clone());
        let key: Option<Arc<str>> = options.idempotency_key.map(Into::into);
        if let Some(key) = &key {
            let claim = inner
                .store
                .kv_put_if_absent(
                    &idempotency_slot(key),
                    Value::String(id.as_str().to_owned()),
                    Some(inner.limits.idempotency_ttl),
                )
                .await;
            let existing = match claim {
                Ok(existing) => existing,
                Err(e) => {
                    self.registry().remove(&id);
                    return Err(e.into());
                }
            };
            if let Some(existing) = existing {
                self.registry().remove(&id);
                let existing = existing.as_str().unwrap_or_default().to_owned();
                return self.execution(&ExecutionId::from(existing)).await;
            }
        }
        let span = crate::spans::traced(|| {
            tracing::info_span!(
                "execution",
                execution_id = %id,
                workflow = %workflow.name(),
                correlation_id = %correlation,
            )
        });
        let driver = Driver::new(
            shared.clone(),
            workflow.inner.clone(),
            inner.limits.clone(),
            Arc::new(input),
            correlation,
            key,
            inner.running.clone(),
            (
                inner.targets.clone(),
                ReplayLog::from_events(&[], &inner.limits.budget_thresholds, false),
            ),
            step_future,
        );
        let driver = match options.budget {
            Some(budget) => driver.with_budget(budget),
            None => driver,
        };
        self.spawn_driver(&shared, workflow, driver.run().instrument(span));
        Ok(Execution::new(shared))
    }

    /// A handle to execution `id`: live if it runs in this process,
    /// otherwise rebuilt from the store's journal.
    ///
    /// # Errors
    ///
    /// [`Error::ExecutionNotFound`] when neither knows it; store errors.
    pub async fn execution(&self, id: &ExecutionId) -> Result<Execution, Error> {
        if let Some(shared) = self.registry().get(id).cloned() {
            return Ok(Execution::new(shared));
        }
        let events = match self.inner.store.load(id, 0).await {
            Ok(events) => events,
            Err(StoreError::NotFound { .. }) => return Err(Error::ExecutionNotFound(id.clone())),
            Err(e) => return Err(e.into()),
        };
        // It may have finished between the registry look-up and the load.
        if let Some(shared) = self.registry().get(id).cloned() {
            return Ok(Execution::new(shared));
        }
        let view = ExecutionView::from_events(&events);
        Ok(Execution::new(Arc::new(Shared::from_journal(
            id.clone(),
            view,
            self.inner.store.clone(),
            self.inner.bus.clone(),
        ))))
    }

    /// Takes over an execution whose process stopped before it finished:
    /// rebuilds it from the store's journal, keeps the outputs of completed
    /// steps (they are never run again), re-runs the steps that were in
    /// flight, and continues. The workflow is the registered one of the name
    /// the journal records.
    ///
    /// A running or finished execution is returned as it is. One whose
    /// cancellation was asked for ([`request_cancel`](Self::request_cancel))
    /// and not carried out is ended cancelled instead, running nothing.
    ///
    /// # Errors
    ///
    /// [`Error::ExecutionNotFound`], [`Error::UnknownWorkflow`] when its
    /// workflow is not registered, [`Error::WorkflowMismatch`] when the
    /// registered workflow's steps differ from the journal's, store errors.
    pub async fn resume(&self, id: &ExecutionId) -> Result<Execution, Error> {
        let (events, view) = match self.load_unfinished(id).await? {
            Ok(view) => view,
            Err(execution) => return Ok(execution),
        };
        let workflow = self.registered(view.workflow())?;
        self.restore(&workflow, id, &events, view).await
    }

    /// Like [`resume`](Self::resume) with an explicit workflow (e.g. one bound
    /// with [`bind`](Self::bind) rather than registered).
    ///
    /// # Errors
    ///
    /// As [`resume`](Self::resume).
    pub async fn resume_with(
        &self,
        workflow: &Workflow,
        id: &ExecutionId,
    ) -> Result<Execution, Error> {
        match self.load_unfinished(id).await? {
            Ok((events, view)) => self.restore(workflow, id, &events, view).await,
            Err(execution) => Ok(execution),
        }
    }

    /// The journal and view of an unfinished execution no process here is
    /// running, or the handle to use instead.
    async fn load_unfinished(
        &self,
        id: &ExecutionId,
    ) -> Result<Result<(Vec<crate::journal::Event>, ExecutionView), Execution>, Error> {
        if let Some(shared) = self.registry().get(id).cloned() {
            return Ok(Err(Execution::new(shared)));
        }
        let events = match self.inner.store.load(id, 0).await {
            Ok(events) if !events.is_empty() => events,
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                return Err(Error::ExecutionNotFound(id.clone()))
            }
            Err(e) => return Err(e.into()),
        };
        let view = ExecutionView::from_events(&events);
        if view.status().is_terminal() {
            return Ok(Err(self.execution(id).await?));
        }
        Ok(Ok((events, view)))
    }

    /// Cancels execution `id`, wherever it is: a running one as
    /// [`Execution::cancel`] does (its attempts get the grace period, then
    /// are dropped); a parked one, or one whose process stopped, is taken
    /// up here from its journal and ended `Cancelled` without running
    /// anything. A finished one is returned as it is.
    ///
    /// # Errors
    ///
    /// [`Error::ExecutionNotFound`], [`Error::UnknownWorkflow`] when an
    /// execution to take up has no registered workflow, store errors.
    pub async fn cancel(&self, id: &ExecutionId) -> Result<Execution, Error> {
        if let Some(shared) = self.registry().get(id).cloned() {
            shared.cancel.cancel();
            return Ok(Execution::new(shared));
        }
        let (events, view) = match self.load_unfinished(id).await? {
            Ok(loaded) => loaded,
            Err(execution) => {
                // Started here meanwhile, or finished.
                execution.cancel();
                if execution.status().is_terminal() {
                    // Nothing left to cancel: neither is any request.
                    self.settle_cancel_requests(id).await?;
                }
                return Ok(execution);
            }
        };
        let workflow = self.registered(view.workflow())?;
        let execution = self.start_restored(&workflow, id, &events, view, Restart::Cancel)?;
        self.settle_cancel_requests(id).await?;
        Ok(execution)
    }

    /// Terminates call `call` of execution `id` and its whole subtree: their
    /// tokens are cancelled, they get the grace period to return, then are
    /// dropped, and each is journaled `terminated`. The caller's
    /// [`call`](crate::Context::call) returns [`Error::Terminated`], which it
    /// may handle; its other calls go on.
    ///
    /// # Errors
    ///
    /// [`Error::CallNotRunning`] when the execution does not run here or the
    /// call is not running, saying which ([`CallLookup`](crate::CallLookup)).
    pub fn terminate(&self, id: &ExecutionId, call: &str) -> Result<(), Error> {
        let shared = self.registry().get(id).cloned();
        let terminated = shared
            .as_ref()
            .and_then(|s| s.calls.get())
            .is_some_and(|calls| calls.terminate(call));
        if terminated {
            return Ok(());
        }
        let found = match shared {
            None => crate::CallLookup::ExecutionNotHere,
            Some(shared) => match shared.view_arc().calls().get(call) {
                Some(node) => crate::CallLookup::Status(node.status),
                None => crate::CallLookup::NoSuchCall,
            },
        };
        Err(Error::CallNotRunning {
            execution: id.clone(),
            call: call.to_owned(),
            found,
        })
    }

    /// Approves interrupted step `step` of a parked execution: `value`
    /// becomes its output and the execution continues from the store, in
    /// this process, whichever process parked it.
    ///
    /// # Errors
    ///
    /// [`Error::NotInterrupted`] when the step is not waiting for a decision
    /// (or the execution is not parked yet), [`Error::ExecutionNotFound`],
    /// [`Error::UnknownWorkflow`], [`Error::ValueTooDeep`] when `value` nests
    /// deeper than [`MAX_VALUE_DEPTH`](crate::depth::MAX_VALUE_DEPTH), store
    /// errors.
    pub async fn approve(
        &self,
        id: &ExecutionId,
        step: &str,
        value: Value,
    ) -> Result<Execution, Error> {
        crate::error::refuse_too_deep(Some(step), "decision", &value)?;
        self.decide(id, step, Decision::Approve(value)).await
    }

    /// Rejects interrupted step `step` of a parked execution: it fails with
    /// `reason`, and its `on_error` policy decides what follows.
    ///
    /// # Errors
    ///
    /// As [`approve`](Self::approve).
    pub async fn reject(
        &self,
        id: &ExecutionId,
        step: &str,
        reason: impl Into<String>,
    ) -> Result<Execution, Error> {
        self.decide(id, step, Decision::Reject(reason.into())).await
    }

    async fn decide(
        &self,
        id: &ExecutionId,
        step: &str,
        decision: Decision,
    ) -> Result<Execution, Error> {
        let not_interrupted = || Error::NotInterrupted {
            execution: id.clone(),
            step: step.to_owned(),
        };
        let (events, view) = match self.load_unfinished(id).await? {
            Ok(loaded) => loaded,
            Err(_) => return Err(not_interrupted()),
        };
        let waiting = view
            .step(step)
            .is_some_and(|s| s.status == crate::journal::StepStatus::Interrupted);
        if view.status() != crate::journal::ExecutionStatus::Parked || !waiting {
            return Err(not_interrupted());
        }
        let workflow = self.registered(view.workflow())?;
        let index = workflow.plan().index_of(step).ok_or_else(not_interrupted)?;
        self.start_restored(
            &workflow,
            id,
            &events,
            view,
            Restart::Decide(index, decision),
        )
    }

    /// Starts an execution taken up from its journal: ended cancelled if
    /// another process asked for that meanwhile, otherwise going on.
    async fn restore(
        &self,
        workflow: &Workflow,
        id: &ExecutionId,
        events: &[crate::journal::Event],
        view: ExecutionView,
    ) -> Result<Execution, Error> {
        let parked = view.status() == crate::journal::ExecutionStatus::Parked;
        if parked && !self.cancel_pending(id).await? {
            // Nothing to run until a decision arrives.
            return Ok(Execution::new(Arc::new(Shared::from_journal(
                id.clone(),
                view,
                self.inner.store.clone(),
                self.inner.bus.clone(),
            ))));
        }
        if !parked && !self.cancel_pending(id).await? {
            return self.start_restored(workflow, id, events, view, Restart::Resume);
        }
        let execution = self.start_restored(workflow, id, events, view, Restart::Cancel)?;
        self.settle_cancel_requests(id).await?;
        Ok(execution)
    }

    fn start_restored(
        &self,
        workflow: &Workflow,
        id: &ExecutionId,
        events: &[crate::journal::Event],
        view: ExecutionView,
        restart: Restart,
    ) -> Result<Execution, Error> {
        let plan = workflow.plan();
        let same_steps = view.steps().len() == plan.len()
            && view
                .steps()
                .iter()
                .zip(plan.ids())
                .all(|(v, id)| v.id == *id);
        if !same_steps {
            return Err(Error::WorkflowMismatch {
                workflow: plan.name().clone(),
                execution: id.clone(),
            });
        }
        let inner = &self.inner;
        let shared = Arc::new(Shared::new(
            id.clone(),
            inner.store.clone(),
            inner.bus.clone(),
            inner.shutdown.child_token(),
        ));
        {
            let mut registry = self.registry();
            if let Some(live) = registry.get(id) {
                return Ok(Execution::new(live.clone()));
            }
            registry.insert(id.clone(), shared.clone());
        }
        shared.set_view(view.clone());
        let span = tracing::info_span!(
            "execution",
            execution_id = %id,
            workflow = %workflow.name(),
            correlation_id = %view.correlation_id(),
            resumed = true,
        );
        let last_at_us = events.last().map_or(0, |e| e.at_us);
        let mut driver = Driver::new(
            shared.clone(),
            workflow.inner.clone(),
            inner.limits.clone(),
            view.input_arc().clone(),
            view.correlation_arc().clone(),
            view.idempotency_arc().cloned(),
            inner.running.clone(),
            (
                inner.targets.clone(),
                ReplayLog::from_events(
                    events,
                    &inner.limits.budget_thresholds,
                    inner.limits.strict_replay,
                ),
            ),
            step_future,
        )
        .restore(&view, last_at_us);
        match restart {
            Restart::Resume => {}
            Restart::Decide(index, decision) => driver.decide(index, decision),
            Restart::Cancel => driver.request_cancel(),
        }
        self.spawn_driver(&shared, workflow, driver.run_restored().instrument(span));
        Ok(Execution::new(shared))
    }

    /// Cancels every running execution and waits for them to finish
    /// (each gets its cancellation grace period).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// The registered workflow an execution's journal names.
    fn registered(&self, name: &str) -> Result<Workflow, Error> {
        self.inner
            .workflows
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownWorkflow {
                workflow: name.into(),
            })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, FastMap<ExecutionId, Arc<Shared>>> {
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn idempotency_slot(key: &str) -> String {
    format!("idempotency/{key}")
}
