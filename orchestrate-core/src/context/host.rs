//! What a context reaches of the execution running it.

use std::future::Future;
use std::pin::Pin;

use orchestrate_resilience::PolicyEvent;
use serde_json::Value;

use super::{AttemptCalls, Context};
use crate::call::CallOptions;
use crate::error::Error;

/// A call on its way: `'static`, so that it may be polled anywhere.
pub(crate) type CallFuture = Pin<Box<dyn Future<Output = Result<Value, Error>> + Send + 'static>>;

/// The calls of a `map` on their way, in input order.
pub(crate) type MapFuture<'a> =
    Pin<Box<dyn Future<Output = Vec<Result<Value, Error>>> + Send + 'a>>;

/// The execution a context belongs to, as the context sees it: where its
/// events go and how its calls run. The executor implements it; the
/// context never names the executor, so the layering stays one-way.
pub(crate) trait Host: Send + Sync {
    /// Journals a custom event of the caller's step.
    ///
    /// # Errors
    ///
    /// [`Error::JournalLimit`] past the execution's limit of custom events,
    /// [`Error::Cancelled`] when the execution has ended.
    fn emit(&self, ctx: &Context, name: Box<str>, payload: Box<Value>) -> Result<(), Error>;

    /// The calls of step `step`'s current attempt; with `make`, made if the
    /// step had none yet.
    fn step_calls(&self, step: usize, make: bool) -> Option<&AttemptCalls>;

    /// Consumes `amount` of the budget of `ctx`'s step or call, at once.
    ///
    /// # Errors
    ///
    /// [`Error::BudgetExceeded`] when it would overrun a budget above it;
    /// nothing changes then.
    fn consume(&self, ctx: &Context, amount: u64) -> Result<(), Error>;

    /// The balance of the budget account of `node` (a step's or call's id).
    fn balance(&self, node: &str) -> Option<crate::budget::Balance>;

    /// Journals what a step's resilience policy did.
    fn policy_event(&self, step: usize, event: PolicyEvent);

    /// The value recorded for side effect `call` named `name`, when the
    /// execution replays it.
    ///
    /// # Errors
    ///
    /// [`Error::NonDeterministic`] when the journal holds something else
    /// under that id (the caller is marked as having diverged).
    fn replayed_effect(
        &self,
        caller: &Context,
        call: &str,
        name: &str,
    ) -> Result<Option<Value>, Error>;

    /// In strict replay, the divergence of an attempt that ended having
    /// made fewer calls and side effects than its record: the id of the
    /// first one it did not make is in the journal. Keyed calls and
    /// decisions are checked only when the attempt `succeeded`: one that
    /// failed may have stopped before some that its record went on to take,
    /// as concurrent calls end in any order.
    fn missed_call(&self, _ctx: &Context, _succeeded: bool) -> Option<Error> {
        None
    }

    /// Journals side effect `call` and completes once the journal holds it.
    fn record_effect(&self, call: std::sync::Arc<str>, name: Box<str>, value: Value) -> CallFuture;

    /// The choice recorded for decision `id` of kind `kind`, when the
    /// execution replays it.
    ///
    /// # Errors
    ///
    /// [`Error::NonDeterministic`] when the journal holds something else
    /// under that id, or nothing in strict replay.
    fn replayed_decision(
        &self,
        caller: &Context,
        id: &str,
        kind: &str,
    ) -> Result<Option<Value>, Error>;

    /// Journals decision `id` of `caller`'s, after every event the caller
    /// sent before.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`] when the execution has ended.
    fn record_decision(
        &self,
        caller: &Context,
        id: std::sync::Arc<str>,
        kind: Box<str>,
        value: Value,
    ) -> Result<(), Error>;

    /// [`call`](Self::call) of an agent instance (a `BoxAgent`) rather
    /// than a registered name, under the policy and limit of its name.
    /// Typed `Any`: the context never names the agent module, which names
    /// the context.
    fn call_instance(
        &self,
        caller: &Context,
        call: std::sync::Arc<str>,
        agent: &(dyn std::any::Any + Send + Sync),
        input: Value,
        options: CallOptions,
    ) -> CallFuture;

    /// A snapshot of the circuit breaker of agent `agent`'s policy.
    fn circuit_breaker(&self, agent: &str) -> Option<orchestrate_resilience::BreakerSnapshot>;

    /// Makes call `call` of `caller`'s (its id, taken by the caller in the
    /// order calls are made); the call runs when the future is polled.
    fn call(
        &self,
        caller: &Context,
        call: std::sync::Arc<str>,
        agent: &str,
        input: Value,
        options: CallOptions,
    ) -> CallFuture;

    /// Calls `agent` on every input, as calls of `caller`'s numbered from
    /// `first` in input order, at most `limit` (0: no limit) running or
    /// waiting for the journal at once: [`Context::map`]. Every result is
    /// returned once the journal holds them all.
    fn map<'a>(
        &'a self,
        caller: &'a Context,
        agent: &'a str,
        inputs: Vec<Value>,
        first: u64,
        limit: usize,
    ) -> MapFuture<'a>;

    /// Runs workflow `def` as call `call` of `caller`'s, each of its steps a
    /// call below it, named by the step's id.
    fn run_workflow(
        &self,
        caller: &Context,
        call: std::sync::Arc<str>,
        def: &orchestrate_graph::WorkflowDef,
        input: Value,
    ) -> CallFuture;
}
