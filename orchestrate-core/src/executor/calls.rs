//! Durable calls, executor side: the [`Host`] an execution's contexts
//! reach, which checks, replays, runs and journals their calls.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use orchestrate_resilience::PolicyEvent;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::call_run::{overrun, started, Prepared, Run};
use super::live::{CallState, LiveCalls};
use super::replay::{diverged, ReplayLog};
use super::targets::{CallTarget, CallTargets};
use super::{Inbox, TaskMsg};
use crate::budget::BudgetLedger;
use crate::call::{digest, CallOptions};
use crate::context::{AttemptCalls, CallFrame, CallFuture, Context, Host, MapFuture};
use crate::error::Error;
use crate::journal::{CallStart, Decision, EventKind};

/// The [`Host`] of one execution.
pub(crate) struct ExecutionHost {
    pub(crate) inbox: Arc<Inbox>,
    /// Custom events one execution may emit.
    pub(crate) custom_limit: u32,
    pub(crate) workflow: Arc<str>,
    pub(crate) targets: Arc<CallTargets>,
    pub(crate) replay: ReplayLog,
    pub(crate) max_depth: u32,
    /// The execution's steps, for their calls' numbering.
    pub(crate) steps: usize,
    /// Made at the first call of any step.
    pub(crate) step_calls: OnceLock<Box<[AttemptCalls]>>,
    /// Per-agent limits of this execution's calls, made at the first call
    /// of a limited agent.
    pub(crate) limited: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    /// How long a terminated call gets to return before it is dropped.
    pub(crate) grace: std::time::Duration,
    /// A call or side effect the journal does not hold is a divergence.
    pub(crate) strict: bool,
    /// The limits (the thresholds of the budgets' accounts among them).
    pub(crate) limits: Arc<crate::limits::Limits>,
    /// The budgets the journal left, until the state is made.
    pub(crate) restored_budgets: std::sync::Mutex<Option<BudgetLedger>>,
    /// The execution, which terminate finds the running calls through.
    pub(crate) shared: Arc<crate::execution::Shared>,
    /// Made at the first call or budget.
    pub(crate) state: OnceLock<Arc<CallState>>,
}

impl ExecutionHost {
    /// The calls' and budgets' state, made at its first use.
    pub(crate) fn state(&self) -> &Arc<CallState> {
        self.state.get_or_init(|| {
            let restored = self
                .restored_budgets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            let state = Arc::new(CallState {
                live: LiveCalls::new(self.shared.cancel.clone()),
                budgets: std::sync::Mutex::new(
                    restored.unwrap_or_else(|| BudgetLedger::new(&self.limits.budget_thresholds)),
                ),
            });
            let _ = self.shared.calls.set(state.clone());
            state
        })
    }
}

impl ExecutionHost {
    fn semaphore(&self, agent: &str, limit: usize) -> Option<Arc<Semaphore>> {
        if limit == 0 {
            return None;
        }
        let mut limited = self
            .limited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(
            limited
                .entry(agent.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(limit)))
                .clone(),
        )
    }

    /// Checks a call and finds its record: the result to replay, or what
    /// running it takes.
    fn prepare(
        &self,
        caller: &Context,
        call: Arc<str>,
        agent: &str,
        input: Value,
        options: CallOptions,
    ) -> Result<Prepared, Error> {
        let Some(target) = self.targets.get(agent) else {
            return Err(self.unknown_agent(call, agent));
        };
        self.prepare_target(caller, call, target, input, options)
    }

    /// The error of call `call` of an agent not registered.
    pub(super) fn unknown_agent(&self, call: Arc<str>, agent: &str) -> Error {
        Error::UnknownAgent {
            workflow: self.workflow.clone(),
            step: call,
            agent: agent.into(),
        }
    }

    /// [`prepare`](Self::prepare) for `target`.
    pub(super) fn prepare_target(
        &self,
        caller: &Context,
        call: Arc<str>,
        target: &CallTarget,
        input: Value,
        options: CallOptions,
    ) -> Result<Prepared, Error> {
        let depth = caller.depth() + 1;
        if depth > self.max_depth {
            return Err(Error::CallTooDeep {
                call,
                limit: self.max_depth,
            });
        }
        let digest = digest(&input);
        let agent = target.name.clone();
        let mut started = true;
        let now = || format!("agent `{agent}`, input digest {digest:016x}");
        if self.replay.effects.contains_key(&call) || self.replay.decisions.contains_key(&call) {
            let recorded = self.replay.describe(&call).unwrap_or_default();
            return Err(diverged(caller, call, recorded, now()));
        }
        if let Some(record) = self.replay.calls.get(&call) {
            if record.agent != agent || record.digest != digest {
                let recorded = self.replay.describe(&call).unwrap_or_default();
                return Err(diverged(caller, call, recorded, now()));
            }
            match &record.outcome {
                Some(Ok(output)) => return Ok(Prepared::Replayed(Ok(Value::clone(output)))),
                // The error the caller saw live, so that it decides alike.
                Some(Err(cause)) => {
                    let error = match (cause.code.as_str(), recorded_refusal(cause)) {
                        ("terminated", _) => Error::Terminated { call },
                        ("cancelled", _) => Error::Cancelled { step: Some(call) },
                        (_, Some(overrun)) => Error::BudgetExceeded(overrun),
                        _ => Error::CallFailed {
                            call,
                            agent,
                            cause: Box::new(cause.clone()),
                        },
                    };
                    return Ok(Prepared::Replayed(Err(error)));
                }
                // It was running when the process stopped: it runs again,
                // and its start is in the journal already.
                None => started = false,
            }
        } else if self.strict {
            return Err(diverged(caller, call, "no such call".into(), now()));
        }
        let parent = caller.call_id_arc();
        let start = started.then(|| {
            Arc::new(CallStart {
                call: call.clone(),
                parent: parent.clone(),
                agent: agent.clone(),
                digest,
                depth,
                label: options.label.map(String::into_boxed_str),
                budget: options.budget,
            })
        });
        let child = Context::for_call(
            caller,
            CallFrame::new(call.clone(), parent.clone(), depth, caller.frame().cloned()),
        );
        let semaphore = self.semaphore(&agent, target.limit);
        Ok(Prepared::Run(Run {
            start,
            call,
            agent,
            target: target.agent.clone(),
            policy: options.policy.unwrap_or_else(|| target.policy.clone()),
            semaphore,
            input,
            child,
            inbox: self.inbox.clone(),
            state: self.state().clone(),
            grace: self.grace,
        }))
    }
}

/// The refusal a journal recorded for a call refused before it ran: typed
/// since the journal keeps it so, read back from its text in journals
/// written before.
fn recorded_refusal(cause: &crate::error::ErrorInfo) -> Option<Box<crate::budget::Overrun>> {
    if cause.code != "budget_exceeded" || cause.attempts.is_some() {
        return None;
    }
    if let Some(overrun) = &cause.overrun {
        return Some(overrun.clone());
    }
    // "… budget exceeded: `node` asks for 5, `bank` has 3 available"
    let (_, detail) = cause.message.split_once("budget exceeded: `")?;
    let (node, rest) = detail.split_once("` asks for ")?;
    let (asked, rest) = rest.split_once(", `")?;
    let (bank, available) = rest.rsplit_once("` has ")?;
    Some(Box::new(crate::budget::Overrun::new(
        node,
        bank,
        asked.parse().ok()?,
        available.strip_suffix(" available")?.parse().ok()?,
    )))
}

impl Host for ExecutionHost {
    fn consume(&self, ctx: &Context, amount: u64) -> Result<(), Error> {
        let op = ctx.next_consume_id();
        if self.replay.consumed.contains(&op) {
            // Counted already: the journal holds it, and the budgets were
            // restored from the journal.
            return Ok(());
        }
        let node: Arc<str> = ctx.call_id_arc();
        // Checked and applied at once, under the ledger's lock; journaled
        // in the same order (the inbox keeps it).
        let mut budgets = self.state().budgets();
        let reached = budgets.consume(&node, amount).map_err(overrun)?;
        let consumed = EventKind::BudgetConsumed {
            call: node.clone(),
            amount,
            op: Some(op),
        };
        let cancelled = || Error::Cancelled {
            step: Some(node.clone()),
        };
        self.inbox
            .send(TaskMsg::Call(consumed))
            .map_err(|_| cancelled())?;
        for (call, percent) in reached {
            let event = EventKind::BudgetThreshold { call, percent };
            self.inbox
                .send(TaskMsg::Call(event))
                .map_err(|_| cancelled())?;
        }
        Ok(())
    }

    fn balance(&self, node: &str) -> Option<crate::budget::Balance> {
        self.state().budgets().balance(node)
    }

    fn emit(&self, ctx: &Context, name: Box<str>, payload: Box<Value>) -> Result<(), Error> {
        if self.inbox.emitted.fetch_add(1, Ordering::Relaxed) >= self.custom_limit {
            return Err(Error::JournalLimit {
                step: ctx.step_arc().clone(),
                limit: self.custom_limit,
            });
        }
        self.inbox
            .send(TaskMsg::Custom {
                step: ctx.step_index(),
                name,
                payload,
            })
            .map(drop)
            .map_err(|_| Error::Cancelled {
                step: Some(ctx.step_arc().clone()),
            })
    }

    fn step_calls(&self, step: usize, make: bool) -> Option<&AttemptCalls> {
        let calls = if make {
            self.step_calls
                .get_or_init(|| (0..self.steps).map(|_| AttemptCalls::default()).collect())
        } else {
            self.step_calls.get()?
        };
        calls.get(step)
    }

    fn policy_event(&self, step: usize, event: PolicyEvent) {
        // The driver outlives its tasks; a closed inbox means the execution
        // is over and nobody reads the journal any more.
        let _ = self.inbox.send(TaskMsg::Policy {
            step,
            event: Box::new(event),
        });
    }

    fn replayed_effect(
        &self,
        caller: &Context,
        call: &str,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        if let Some((recorded, value)) = self.replay.effects.get(call) {
            if &**recorded == name {
                return Ok(Some(Value::clone(value)));
            }
        }
        match self.replay.describe(call) {
            Some(recorded) => Err(diverged(
                caller,
                call.into(),
                recorded,
                format!("side effect `{name}`"),
            )),
            None if self.strict => Err(diverged(
                caller,
                call.into(),
                "no such side effect".into(),
                format!("side effect `{name}`"),
            )),
            None => Ok(None),
        }
    }

    fn missed_call(&self, ctx: &Context, succeeded: bool) -> Option<Error> {
        if !self.strict {
            return None;
        }
        // An attempt's calls are numbered from 0: if the record holds the
        // next number, the recorded attempt went on. (A number taken by a
        // call that was never journaled leaves a gap, past which this
        // sees nothing.) Named calls (a sub-workflow's steps, whose names
        // may be digits) are not numbered, and not checked here.
        let made = ctx.calls_made()?;
        let next = ctx.child_call_id(made);
        if let Some(recorded) = self.replay.describe(&next) {
            return Some(diverged(
                ctx,
                next,
                recorded,
                "no such call: the attempt ended first".into(),
            ));
        }
        if !succeeded {
            return None;
        }
        // Keyed calls and decisions are taken in no set order: the record
        // names each one the attempt must have taken.
        let children = ctx.child_call_id_named("");
        let prefix = children.strip_suffix('/')?;
        let missed = self
            .replay
            .keyed
            .get(prefix)?
            .iter()
            .find(|id| !ctx.took_key(id))?;
        let recorded = self.replay.describe(missed)?;
        Some(diverged(
            ctx,
            missed.clone(),
            recorded,
            "not taken: the attempt ended without it".into(),
        ))
    }

    fn record_effect(&self, call: Arc<str>, name: Box<str>, value: Value) -> CallFuture {
        let event = EventKind::SideEffect {
            call: call.clone(),
            name,
            value: Arc::new(value),
        };
        let sent = self.inbox.send(TaskMsg::Call(event));
        let inbox = self.inbox.clone();
        Box::pin(async move {
            let cancelled = || Error::Cancelled {
                step: Some(call.clone()),
            };
            let number = sent.map_err(|_| cancelled())?;
            inbox.journaled(number).await.map_err(|_| cancelled())?;
            Ok(Value::Null)
        })
    }

    fn replayed_decision(
        &self,
        caller: &Context,
        id: &str,
        kind: &str,
    ) -> Result<Option<Value>, Error> {
        if let Some((recorded, value)) = self.replay.decisions.get(id) {
            if &**recorded == kind {
                return Ok(Some(value.clone()));
            }
        }
        match self.replay.describe(id) {
            Some(recorded) => Err(diverged(
                caller,
                id.into(),
                recorded,
                format!("decision `{kind}`"),
            )),
            None if self.strict => Err(diverged(
                caller,
                id.into(),
                "no such decision".into(),
                format!("decision `{kind}`"),
            )),
            None => Ok(None),
        }
    }

    fn record_decision(
        &self,
        caller: &Context,
        id: Arc<str>,
        kind: Box<str>,
        value: Value,
    ) -> Result<(), Error> {
        let event = EventKind::Decision(Arc::new(Decision {
            id: id.clone(),
            by: caller.call_id_arc(),
            kind,
            value,
        }));
        self.inbox
            .send(TaskMsg::Call(event))
            .map(drop)
            .map_err(|_| Error::Cancelled { step: Some(id) })
    }

    fn call_instance(
        &self,
        caller: &Context,
        call: Arc<str>,
        agent: &(dyn std::any::Any + Send + Sync),
        input: Value,
        options: CallOptions,
    ) -> CallFuture {
        let Some(agent) = agent.downcast_ref::<crate::agent::BoxAgent>() else {
            // Only `Context::call_agent` calls this, with a `BoxAgent`.
            let error = Error::UnknownAgent {
                workflow: self.workflow.clone(),
                step: call,
                agent: "(not an agent)".into(),
            };
            return Box::pin(std::future::ready(Err(error)));
        };
        let target = self.targets.instance(agent);
        started(self.prepare_target(caller, call, &target, input, options))
    }

    fn circuit_breaker(&self, agent: &str) -> Option<orchestrate_resilience::BreakerSnapshot> {
        self.targets.breaker(agent)
    }

    fn call(
        &self,
        caller: &Context,
        call: Arc<str>,
        agent: &str,
        input: Value,
        options: CallOptions,
    ) -> CallFuture {
        started(self.prepare(caller, call, agent, input, options))
    }

    fn map<'a>(
        &'a self,
        caller: &'a Context,
        agent: &'a str,
        inputs: Vec<Value>,
        first: u64,
        limit: usize,
    ) -> MapFuture<'a> {
        Box::pin(self.map_calls(caller, agent, inputs, first, limit))
    }

    fn run_workflow(
        &self,
        caller: &Context,
        call: Arc<str>,
        def: &orchestrate_graph::WorkflowDef,
        input: Value,
    ) -> CallFuture {
        let target = match super::sub_workflow::target(def) {
            Ok(target) => target,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        let options = CallOptions::new().label(format!("workflow {}", def.name));
        started(self.prepare_target(caller, call, &target, input, options))
    }
}

#[cfg(test)]
mod tests {
    use super::recorded_refusal;
    use crate::budget::Overrun;
    use crate::error::ErrorInfo;

    fn refusal(message: &str, overrun: Option<Overrun>) -> ErrorInfo {
        let info = ErrorInfo::new("budget_exceeded", message, false);
        match overrun {
            Some(overrun) => info.with_overrun(overrun),
            None => info,
        }
    }

    #[test]
    fn a_recorded_refusal_reads_back_typed_from_old_and_new_journals() {
        let typed = Overrun {
            node: "plan/4".into(),
            bank: "".into(),
            asked: 600,
            available: 500,
        };
        // Written since refusals are kept typed.
        let info = refusal("anything", Some(typed.clone()));
        assert_eq!(recorded_refusal(&info).as_deref(), Some(&typed));
        // Written before: only the text, which reads as it did then.
        let old = crate::Error::BudgetExceeded(Box::new(typed.clone())).to_string();
        assert_eq!(
            old,
            "step `plan/4`: budget exceeded: `plan/4` asks for 600, `` has 500 available"
        );
        assert_eq!(
            recorded_refusal(&refusal(&old, None)).as_deref(),
            Some(&typed)
        );
        let odd = Overrun {
            node: "a/b, `c".into(),
            bank: "a".into(),
            asked: 1,
            available: 0,
        };
        let old = format!("step `x`: budget exceeded: {odd}");
        assert_eq!(
            recorded_refusal(&refusal(&old, None)).as_deref(),
            Some(&odd)
        );
        // Unreadable: no typed refusal (the caller gets the call's failure).
        assert_eq!(recorded_refusal(&refusal("budget exceeded", None)), None);
    }
}
