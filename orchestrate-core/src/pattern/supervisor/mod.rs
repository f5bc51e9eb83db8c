//! The supervisor: tasks distributed over a pool of workers, monitored,
//! reassigned when they fail, with unhealthy workers restarted or
//! quarantined, one for one, as OTP supervisors do.
//!
//! A [`Supervisor`] is an [`Agent`]: its input is a JSON array of tasks
//! (or `{"tasks": [..]}`), its output the array of the tasks' outputs, in
//! task order. It runs up to [`limit`](SupervisorBuilder::limit) tasks at
//! once, each a call of the worker its [`Strategy`] picks, keyed by the
//! task and its attempt (`pool/t7.0`), so that a resumed execution replays
//! every task that had finished whatever order they finish in. Every
//! choice is a journal [`Decision`](crate::journal::Decision) of the
//! supervisor's: `assign` (`t7.0` → the worker), `reassign` (a failed
//! task's next attempt, on another worker when there is one), `recover`
//! (taken at every failed call and keyed by it, `t7.0`: `null` while the
//! worker is healthy, else, once it failed
//! [`after_failures`](RestartPolicy::after_failures) times in a row,
//! `restart`, `quarantine`, or `give_up` past the restart intensity).
//! Keyed by calls, not by counts, the decisions a resumed run replays do
//! not depend on the order its calls end in.
//!
//! # Examples
//!
//! ```
//! use orchestrate_core::pattern::supervisor::{Strategy, Supervisor, Worker};
//! use orchestrate_core::{agent_fn, AgentError, Orchestrator};
//! use orchestrate_graph::{StepDef, WorkflowDef};
//! use serde_json::{json, Value};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let double = |name: &'static str| agent_fn(name, |n: Value, _| async move {
//!     Ok(json!(n.as_i64().unwrap_or(0) * 2))
//! });
//! let broken = agent_fn("broken", |_, _| async move {
//!     Err::<Value, _>(AgentError::permanent("out of order"))
//! });
//! let pool = Supervisor::builder("pool")
//!     .worker(Worker::new(double("a")))
//!     .worker(Worker::new(broken))
//!     .worker(Worker::new(double("b")))
//!     .strategy(Strategy::RoundRobin)
//!     .limit(2)
//!     .build()?;
//! let orchestrator = Orchestrator::builder().agent(pool.clone()).build()?;
//! let wf = orchestrator.bind(&WorkflowDef::builder("w")
//!     .step(StepDef::new("pool", "pool").input(json!("${input}")))
//!     .build())?;
//! let done = orchestrator.run(&wf, json!([1, 2, 3, 4, 5])).await?.await?;
//! // The tasks the broken worker failed were reassigned.
//! assert_eq!(done.output("pool"), Some(&json!([2, 4, 6, 8, 10])));
//! let health = pool.health();
//! assert_eq!(health[1].name.as_ref(), "broken");
//! assert!(health[1].failures > 0 && health[1].successes == 0);
//! # Ok(())
//! # }
//! ```

mod health;
mod params;
mod run;
mod strategy;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::router::Router;
use super::{AgentFactory, ParamError};
use crate::agent::{Agent, BoxAgent};
use crate::context::Context;
use crate::error::{AgentError, Error};

pub use health::{WorkerHealth, WorkerState};
pub(crate) use params::SupervisorPattern;
pub use strategy::Strategy;

use health::Pool;

/// A worker of a [`Supervisor`]: an agent, and how to make a fresh one
/// when the supervisor restarts it.
#[derive(Clone)]
pub struct Worker {
    first: BoxAgent,
    /// `None`: a restart keeps the instance (and starts its count of
    /// failures afresh).
    factory: Option<AgentFactory>,
}

impl Worker {
    /// A worker that restarts as the same instance: its failures in a row
    /// are forgotten and it is called again.
    pub fn new(agent: impl Agent) -> Self {
        Self::shared(Arc::new(agent))
    }

    /// [`new`](Self::new) for a shared agent.
    pub fn shared(agent: BoxAgent) -> Self {
        Self {
            first: agent,
            factory: None,
        }
    }

    /// A worker made by `factory`, and made again by it on every restart.
    pub fn from_factory<A, F>(factory: F) -> Self
    where
        A: Agent,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let first: BoxAgent = Arc::new(factory());
        Self {
            first,
            factory: Some(Arc::new(move || Arc::new(factory()) as BoxAgent)),
        }
    }

    /// A worker made by a shared `factory`, and made again by it on every
    /// restart.
    pub fn with_factory(factory: AgentFactory) -> Self {
        Self {
            first: factory(),
            factory: Some(factory),
        }
    }

    /// The worker's agent name.
    pub fn name(&self) -> &str {
        self.first.name()
    }

    /// A fresh instance, or the first one when there is no factory.
    fn restart(&self) -> BoxAgent {
        match &self.factory {
            Some(factory) => factory(),
            None => self.first.clone(),
        }
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name())
            .field("factory", &self.factory.is_some())
            .finish()
    }
}

/// When a worker counts as unhealthy and what is done about it.
///
/// A worker that failed `after_failures` tasks in a row is restarted,
/// up to `restarts_per_worker` times, then quarantined (given no more
/// tasks). Across all its workers the supervisor restarts at most
/// `max_restarts` times within `period` (OTP's restart intensity); the
/// restart past that fails the supervisor with
/// [`SupervisorError::RestartIntensity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestartPolicy {
    /// Failures in a row that make a worker unhealthy (at least 1).
    pub after_failures: u32,
    /// Restarts of one worker before it is quarantined (0: quarantined at
    /// once).
    pub restarts_per_worker: u32,
    /// Restarts allowed within `period`, across the workers.
    pub max_restarts: u32,
    /// The restart intensity's period.
    pub period: Duration,
}

impl Default for RestartPolicy {
    /// 3 failures in a row; 1 restart per worker; 5 restarts in 60 s.
    fn default() -> Self {
        Self {
            after_failures: 3,
            restarts_per_worker: 1,
            max_restarts: 5,
            period: Duration::from_secs(60),
        }
    }
}

impl RestartPolicy {
    /// Sets the failures in a row that make a worker unhealthy.
    pub fn after_failures(mut self, n: u32) -> Self {
        self.after_failures = n.max(1);
        self
    }

    /// Sets the restarts of one worker before it is quarantined.
    pub fn restarts_per_worker(mut self, n: u32) -> Self {
        self.restarts_per_worker = n;
        self
    }

    /// Sets the restart intensity: at most `max` restarts within `period`.
    pub fn intensity(mut self, max: u32, period: Duration) -> Self {
        self.max_restarts = max;
        self.period = period;
        self
    }
}

/// Why a supervisor failed. It is the [source](std::error::Error::source)
/// of the [`AgentError`] the supervisor fails with. When it runs as a step, the
/// step's error holds it; called from another agent, the caller sees a
/// [`CallFailed`](crate::Error::CallFailed) whose journaled
/// [`ErrorInfo`](crate::ErrorInfo) keeps its text, as every call's does.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// A task failed on every worker it was given to.
    #[error("supervisor `{supervisor}`: task {task} failed {attempts} times; the last: {cause}")]
    TaskFailed {
        /// The supervisor.
        supervisor: Arc<str>,
        /// The task's index in the input.
        task: usize,
        /// Attempts made, each on a worker.
        attempts: u32,
        /// The last attempt's error.
        cause: Error,
    },
    /// Restarting one more worker would pass the restart intensity.
    #[error("supervisor `{supervisor}`: {restarts} restarts within {period:?} reach its restart intensity")]
    RestartIntensity {
        /// The supervisor.
        supervisor: Arc<str>,
        /// Restarts made within the period.
        restarts: u32,
        /// The period.
        period: Duration,
    },
    /// No active worker can take a task: every worker is quarantined, or
    /// the router found none fit.
    #[error("supervisor `{supervisor}`: no active worker can take task {task}")]
    NoWorkers {
        /// The supervisor.
        supervisor: Arc<str>,
        /// The task left.
        task: usize,
    },
    /// The input is not an array of tasks.
    #[error(
        "supervisor `{supervisor}`: the input must be an array of tasks or {{\"tasks\": [..]}}"
    )]
    Input {
        /// The supervisor.
        supervisor: Arc<str>,
    },
    /// The journal holds an assignment to a worker the supervisor does
    /// not have (its workers changed since the execution started).
    #[error("supervisor `{supervisor}`: the journal assigns a task to `{worker}`, which is not one of its workers")]
    UnknownWorker {
        /// The supervisor.
        supervisor: Arc<str>,
        /// The worker recorded.
        worker: String,
    },
}

/// A supervisor over a pool of workers; see the [module](self) docs.
/// Cheap to clone: clones share the configuration and the
/// [`health`](Self::health) of the latest run.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Config>,
}

struct Config {
    name: Arc<str>,
    workers: Vec<Worker>,
    strategy: Strategy,
    limit: usize,
    max_reassign: u32,
    restart: RestartPolicy,
    /// What [`Strategy::Capability`] asks.
    router: Option<Arc<dyn Router>>,
    /// The pool of the run started last, for [`Supervisor::health`].
    last: Mutex<Option<Arc<Mutex<Pool>>>>,
}

impl Supervisor {
    /// Starts a supervisor registered as agent `name`.
    pub fn builder(name: impl Into<String>) -> SupervisorBuilder {
        SupervisorBuilder {
            name: name.into(),
            workers: Vec::new(),
            strategy: Strategy::default(),
            limit: 16,
            max_reassign: 2,
            restart: RestartPolicy::default(),
            router: None,
        }
    }

    /// The workers' health in the run started last (of this supervisor
    /// and its clones), in worker order; before any run, every worker
    /// idle and active.
    pub fn health(&self) -> Vec<WorkerHealth> {
        let last = self
            .inner
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match last {
            Some(pool) => pool.lock().unwrap_or_else(PoisonError::into_inner).health(),
            None => Pool::new(&self.inner.workers, 0).health(),
        }
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("name", &self.inner.name)
            .field("workers", &self.inner.workers)
            .field("strategy", &self.inner.strategy)
            .field("limit", &self.inner.limit)
            .field("max_reassign", &self.inner.max_reassign)
            .field("restart", &self.inner.restart)
            .finish()
    }
}

#[async_trait]
impl Agent for Supervisor {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn orchestrates(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, ctx: &Context) -> Result<Value, AgentError> {
        run::supervise(&self.inner, input, ctx).await
    }
}

/// Configures a [`Supervisor`]; made by [`Supervisor::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct SupervisorBuilder {
    name: String,
    workers: Vec<Worker>,
    strategy: Strategy,
    limit: usize,
    max_reassign: u32,
    restart: RestartPolicy,
    router: Option<Arc<dyn Router>>,
}

impl fmt::Debug for SupervisorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorBuilder")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .field("strategy", &self.strategy)
            .field("router", &self.router.is_some())
            .finish_non_exhaustive()
    }
}

impl SupervisorBuilder {
    /// Adds a worker.
    pub fn worker(mut self, worker: Worker) -> Self {
        self.workers.push(worker);
        self
    }

    /// Adds workers.
    pub fn workers(mut self, workers: impl IntoIterator<Item = Worker>) -> Self {
        self.workers.extend(workers);
        self
    }

    /// How a task's worker is picked (default round robin).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Tasks running at once (default 16, at least 1).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }

    /// Times a failed task is given to another worker before the
    /// supervisor fails with [`SupervisorError::TaskFailed`] (default 2).
    pub fn max_reassign(mut self, n: u32) -> Self {
        self.max_reassign = n;
        self
    }

    /// When workers are restarted or quarantined.
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = policy;
        self
    }

    /// Picks workers with `router` ([`Strategy::Capability`]): each task
    /// goes to the worker it scores best among the active ones, given
    /// their loads and breakers.
    pub fn router(mut self, router: impl Router) -> Self {
        self.router = Some(Arc::new(router));
        self.strategy = Strategy::Capability;
        self
    }

    /// Builds the supervisor.
    ///
    /// # Errors
    ///
    /// A [`ParamError`] on `workers` when there is none, or two share a
    /// name (their calls, journal records and health would be one); on
    /// `strategy` for [`Strategy::Capability`] without a router.
    pub fn build(self) -> Result<Supervisor, ParamError> {
        if self.strategy == Strategy::Capability && self.router.is_none() {
            return Err(ParamError::new(
                "strategy",
                "the capability strategy needs a router",
            ));
        }
        if self.workers.is_empty() {
            return Err(ParamError::new("workers", "a supervisor needs a worker"));
        }
        let mut names = std::collections::HashSet::with_capacity(self.workers.len());
        for (i, worker) in self.workers.iter().enumerate() {
            if !names.insert(worker.name()) {
                return Err(ParamError::new(
                    format!("workers[{i}]"),
                    format!("two workers are named `{}`", worker.name()),
                ));
            }
        }
        Ok(Supervisor {
            inner: Arc::new(Config {
                name: self.name.into(),
                workers: self.workers,
                strategy: self.strategy,
                limit: self.limit,
                max_reassign: self.max_reassign,
                restart: RestartPolicy {
                    after_failures: self.restart.after_failures.max(1),
                    ..self.restart
                },
                router: self.router,
                last: Mutex::new(None),
            }),
        })
    }
}
