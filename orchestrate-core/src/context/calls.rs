//! Calling agents from an agent: see [`call`](crate::call).

use std::future::Future;

use serde_json::Value;

use super::{CallFuture, Context};
use crate::call::{Call, CallOptions};
use crate::error::Error;

impl Context {
    /// Calls agent `agent` on `input` as a child of this attempt, under the
    /// agent's resilience policy and concurrency limit, and returns its
    /// output once the journal holds it. See [`call`](crate::call) for ids,
    /// replay and determinism.
    ///
    /// The call's id is taken when `call` is called, not when the future is
    /// first polled: calls made in one order keep their ids whatever order
    /// they run in.
    ///
    /// # Errors
    ///
    /// [`Error::CallFailed`] when the child fails for good (its error is
    /// the cause), [`Error::UnknownAgent`] naming an agent that is not
    /// registered, [`Error::CallTooDeep`] past
    /// [`Limits::max_call_depth`](crate::Limits::max_call_depth),
    /// [`Error::NonDeterministic`] when a replayed call differs from its
    /// record (the calling attempt then fails whatever it returns),
    /// [`Error::ValueTooDeep`] for an output past the depth limit,
    /// [`Error::Cancelled`] when the execution ends first.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the child; its end is not journaled, so a
    /// resumed execution would run it again.
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
    /// let router = agent_fn("router", |question, ctx| async move {
    ///     // Decided at run time, from the input: the journal can replay it.
    ///     let expert = if question.as_str().unwrap_or("").contains("tax") { "accountant" } else { "generalist" };
    ///     Ok(ctx.call(expert, question).await?)
    /// });
    /// let accountant = agent_fn("accountant", |_, _| async move { Ok(json!("file by April")) });
    /// let generalist = agent_fn("generalist", |_, _| async move { Ok(json!("it depends")) });
    /// let orchestrator = Orchestrator::builder().agent(router).agent(accountant).agent(generalist).build()?;
    /// let wf = orchestrator.bind(&WorkflowDef::builder("ask")
    ///     .step(StepDef::new("answer", "router").input(json!("${input}")))
    ///     .build())?;
    /// let done = orchestrator.run(&wf, json!("when are taxes due?")).await?.await?;
    /// assert_eq!(done.output("answer"), Some(&json!("file by April")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn call(
        &self,
        agent: &str,
        input: Value,
    ) -> impl Future<Output = Result<Value, Error>> + Send + 'static {
        self.call_with(agent, input, CallOptions::default())
    }

    /// [`call`](Self::call) with a label or a policy of the caller's
    /// choosing.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Self::call).
    pub fn call_with(
        &self,
        agent: &str,
        input: Value,
        options: CallOptions,
    ) -> impl Future<Output = Result<Value, Error>> + Send + 'static {
        self.start_call(agent, input, options)
    }

    /// A snapshot of the circuit breaker of agent `agent`'s policy (`None`
    /// outside an execution, or when the policy has none): what a router
    /// or a supervisor reads to keep work away from a failing agent.
    /// Breakers change with timing; a choice made from one should go
    /// through [`decide`](Self::decide).
    pub fn circuit_breaker(&self, agent: &str) -> Option<orchestrate_resilience::BreakerSnapshot> {
        self.host()?.circuit_breaker(agent)
    }

    /// Makes every call at once (ids in the order given) and returns their
    /// results in that order, one `Result` each.
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Self::call), for every call not finished.
    pub async fn call_all(
        &self,
        calls: impl IntoIterator<Item = Call>,
    ) -> Vec<Result<Value, Error>> {
        let calls: Vec<CallFuture> = calls
            .into_iter()
            .map(|c| self.start_call(&c.agent, c.input, c.options))
            .collect();
        futures::future::join_all(calls).await
    }

    /// Calls `agent` on every input, at most `limit` running at once (0: no
    /// limit, as for an agent's concurrency limit), and returns the results
    /// in input order, one `Result` each.
    /// Ids are taken in input order before any call runs.
    ///
    /// The calls are polled in the caller's task, and a call whose agent
    /// ends without waiting costs no task and no allocation of its own
    /// future. A call keeps its place until the journal holds its end, so
    /// that a crash runs at most `limit` of them again; the map waits for
    /// the journal once for all the ends it has sent, not once per call,
    /// and returns once the journal holds every one. When the journal can
    /// take no more (the execution ended, its store failed), the results it
    /// did not take, and the calls not made, are [`Error::Cancelled`].
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Self::call), for every call not finished.
    pub async fn map(
        &self,
        agent: &str,
        inputs: impl IntoIterator<Item = Value>,
        limit: usize,
    ) -> Vec<Result<Value, Error>> {
        let inputs: Vec<Value> = inputs.into_iter().collect();
        // Every id taken now, in input order; each call is made only when a
        // place among the `limit` running frees up.
        let first = self.reserve_call_indices(inputs.len());
        match self.host() {
            Some(host) => host.map(self, agent, inputs, first, limit).await,
            None => (first..)
                .take(inputs.len())
                .map(|index| Err(detached_error(self.child_call_id(index), agent)))
                .collect(),
        }
    }

    /// Runs workflow `def` on `input` as a child of this attempt: its steps
    /// run as they become ready, each a call below this one named by the
    /// step's id (`plan/0/fetch`), so that they are journaled, replayed and
    /// shown in the call tree like any call, under the agents' policies.
    /// Conditions, input templates and `on_error` apply as in a top-level
    /// run. Returns an object of the succeeded steps' outputs by step id.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for an invalid definition, [`Error::CallFailed`]
    /// when a step fails under `on_error: fail` (its error is the cause),
    /// and the errors of [`call`](Self::call).
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Self::call).
    pub fn run_workflow(
        &self,
        def: &orchestrate_graph::WorkflowDef,
        input: Value,
    ) -> impl Future<Output = Result<Value, Error>> + Send + 'static {
        let call = self.child_call_id(self.next_call_index());
        match self.host() {
            Some(host) => host.run_workflow(self, call, def, input),
            None => detached(call, &def.name),
        }
    }

    /// A call named `name` rather than numbered (the steps of a workflow a
    /// call runs).
    pub(crate) fn call_named(
        &self,
        name: &str,
        agent: &str,
        input: Value,
        options: CallOptions,
    ) -> CallFuture {
        self.mark_named_calls();
        let call = self.child_call_id_named(name);
        match self.host() {
            Some(host) => host.call(self, call, agent, input, options),
            None => detached(call, agent),
        }
    }

    fn start_call(&self, agent: &str, input: Value, options: CallOptions) -> CallFuture {
        match self.next_call_id(&options) {
            Ok(call) => self.start_call_as(call, agent, input, options),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    /// The id of the attempt's next call: keyed by `options.key`, or
    /// numbered.
    pub(crate) fn next_call_id(&self, options: &CallOptions) -> Result<std::sync::Arc<str>, Error> {
        match &options.key {
            None => Ok(self.child_call_id(self.next_call_index())),
            Some(key) => self.call_key(key),
        }
    }

    /// The id of the attempt's call keyed `key`.
    fn call_key(&self, key: &str) -> Result<std::sync::Arc<str>, Error> {
        match super::keys::check_key(key, true) {
            Ok(()) => self.keyed_id(key),
            Err(reason) => Err(Error::CallKey {
                call: self.child_call_id_named(key),
                reason,
            }),
        }
    }

    fn start_call_as(
        &self,
        call: std::sync::Arc<str>,
        agent: &str,
        input: Value,
        options: CallOptions,
    ) -> CallFuture {
        match self.host() {
            Some(host) => host.call(self, call, agent, input, options),
            None => detached(call, agent),
        }
    }
}

/// Outside an execution there is no agent to call, and no journal to keep
/// the call in.
pub(crate) fn detached(call: std::sync::Arc<str>, agent: &str) -> CallFuture {
    Box::pin(std::future::ready(Err(detached_error(call, agent))))
}

fn detached_error(call: std::sync::Arc<str>, agent: &str) -> Error {
    Error::UnknownAgent {
        workflow: "(no execution)".into(),
        step: call,
        agent: agent.into(),
    }
}
