//! Durable calls, executor side: the [`Host`] an execution's contexts
//! reach, which checks, replays, runs and journals their calls.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use futures::FutureExt;
use orchestrate_resilience::{CallOptions as PolicyOptions, Policy, PolicyEvent};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::attempt::{panic_message, to_error, AttemptError};
use super::live::{CallState, LiveCalls};
use super::replay::{diverged, ReplayLog};
use super::{Inbox, TaskMsg};
use crate::agent::BoxAgent;
use crate::budget::{BudgetLedger, Overrun};
use crate::call::{digest, CallOptions};
use crate::context::{AttemptCalls, CallFrame, CallFuture, Context, Host};
use crate::depth::exceeds_max_depth;
use crate::error::{AgentError, Error};
use crate::fast_map::FastMap;
use crate::journal::{CallStart, EventKind};

/// What a call may run: a registered agent with its policy and its
/// per-execution concurrency limit (0: none). Made once per orchestrator.
pub(crate) struct CallTarget {
    /// The agent's name, shared by every call's events.
    pub(crate) name: Arc<str>,
    pub(crate) agent: BoxAgent,
    pub(crate) policy: Policy,
    pub(crate) limit: usize,
}

/// Every registered agent, by name, as calls find them.
pub(crate) type CallTargets = FastMap<String, CallTarget>;

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
                live: LiveCalls::default(),
                budgets: std::sync::Mutex::new(
                    restored.unwrap_or_else(|| BudgetLedger::new(&self.limits.budget_thresholds)),
                ),
            });
            let _ = self.shared.calls.set(state.clone());
            state
        })
    }
}

/// The error of a refused budget operation.
fn overrun(error: Overrun) -> Error {
    Error::BudgetExceeded {
        step: error.node.clone(),
        detail: error.to_string(),
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
            return Err(Error::UnknownAgent {
                workflow: self.workflow.clone(),
                step: call,
                agent: agent.into(),
            });
        };
        self.prepare_target(caller, call, target, input, options)
    }

    /// [`prepare`](Self::prepare) for `target`.
    fn prepare_target(
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
        if self.replay.effects.contains_key(&call) {
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
                    let error = match cause.code.as_str() {
                        "terminated" => Error::Terminated { call },
                        "cancelled" => Error::Cancelled { step: Some(call) },
                        // Refused before it ran.
                        "budget_exceeded" if cause.attempts.is_none() => Error::BudgetExceeded {
                            step: call,
                            detail: cause
                                .message
                                .split_once("budget exceeded: ")
                                .map_or(cause.message.as_str(), |(_, detail)| detail)
                                .to_owned(),
                        },
                        _ => Error::CallFailed {
                            call,
                            agent,
                            cause: cause.clone(),
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
            CallFrame {
                id: call.clone(),
                parent: parent.clone(),
                depth,
                token: caller.cancellation_token().child_token(),
                calls: AttemptCalls::default(),
            },
        );
        let semaphore = self.semaphore(&agent, target.limit);
        Ok(Prepared::Run(Box::new(Run {
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
        })))
    }
}

enum Prepared {
    Replayed(Result<Value, Error>),
    Run(Box<Run>),
}

/// A call about to run.
struct Run {
    /// Its start, to journal (`None` when the journal has it already).
    start: Option<Arc<CallStart>>,
    call: Arc<str>,
    agent: Arc<str>,
    target: BoxAgent,
    policy: Policy,
    semaphore: Option<Arc<Semaphore>>,
    input: Value,
    child: Context,
    inbox: Arc<Inbox>,
    state: Arc<CallState>,
    grace: std::time::Duration,
}

impl Run {
    async fn run(self: Box<Self>) -> Result<Value, Error> {
        // Moved out of its box: the future keeps a pointer, not a second
        // copy of the call beside its locals.
        let Run {
            start,
            call,
            agent,
            target,
            policy,
            semaphore,
            input,
            child,
            inbox,
            state,
            grace,
        } = *self;
        let live = &state.live;
        let cancelled = || Error::Cancelled {
            step: Some(call.clone()),
        };
        let _permit = match semaphore {
            Some(s) => Some(s.acquire_owned().await.map_err(|_| cancelled())?),
            None => None,
        };
        // A call run again after a restart may have been given a budget by
        // the journal: it is closed like one that was.
        let budgeted = start.as_ref().is_none_or(|s| s.budget.is_some());
        if let Some(start) = start {
            // Given its budget before it runs, or refused before it runs. A
            // call without one has an account only once it consumes.
            let refused = match start.budget {
                Some(_) => state
                    .budgets()
                    .open(&start.call, &start.parent, start.budget)
                    .err(),
                None => None,
            };
            if let Some(refused) = refused {
                // Journaled, start and refusal in one message (so in one
                // batch), so that a replay refuses it too, whatever the
                // budgets then hold; as never given, its start records no
                // allocation.
                let error = overrun(refused);
                let start = Arc::new(CallStart {
                    budget: None,
                    ..CallStart::clone(&start)
                });
                let failed = EventKind::CallFailed {
                    call: call.clone(),
                    error: Box::new(error.info()),
                    attempts: 0,
                };
                let number = inbox
                    .send(TaskMsg::Refused(start, failed))
                    .map_err(|_| cancelled())?;
                inbox.journaled(number).await.map_err(|_| cancelled())?;
                return Err(error);
            }
            inbox
                .send(TaskMsg::Call(EventKind::CallStarted(start)))
                .map_err(|_| cancelled())?;
        }
        // The frame, not a clone of its token: a token's clone locks its
        // tree, an Arc's is one increment.
        if let Some(frame) = child.frame() {
            live.lock_running().insert(call.clone(), frame.clone());
        }
        let mut unfinished = Unfinished {
            call: &call,
            state: &state,
            inbox: &inbox,
            budgeted,
            armed: true,
        };
        let token = child.cancellation_token();
        let stopped = async {
            token.cancelled().await;
            // Boxed: a timer is large, and only a stopped call needs one.
            Box::pin(tokio::time::sleep(grace)).await;
        };
        // Cancelled or terminated, a call gets the grace period to return,
        // then it is dropped.
        // Biased, the call first: one that ends as it starts never
        // registers with its token.
        let (result, attempts) = tokio::select! {
            biased;
            done = attempts(&target, &policy, input, &child) => done,
            () = stopped => (Err(cancelled()), 0),
        };
        unfinished.armed = false;
        // Left and checked under the running calls' lock, which terminate
        // takes to mark a call.
        let terminated = {
            let mut running = live.lock_running();
            running.remove(&call);
            live.is_terminated(&call)
        };
        if budgeted {
            state.budgets().close(&call);
        }
        // Whatever a terminated call returned, it ends terminated.
        let result = if terminated {
            Err(Error::Terminated { call: call.clone() })
        } else {
            result
        };
        let (event, result) = match result {
            Ok(output) => {
                let output = Arc::new(output);
                let event = EventKind::CallCompleted {
                    call: call.clone(),
                    output: output.clone(),
                    attempts,
                };
                (event, Ok(output))
            }
            Err(error) => {
                let cause = error.info();
                let event = EventKind::CallFailed {
                    call: call.clone(),
                    error: Box::new(cause.clone()),
                    attempts,
                };
                let error = match error {
                    // Not the child's failure but the caller's (or the
                    // terminator's): it stays what it is.
                    Error::Cancelled { .. } | Error::Terminated { .. } => error,
                    _ => Error::CallFailed {
                        call: call.clone(),
                        agent,
                        cause,
                    },
                };
                (event, Err(error))
            }
        };
        // The caller goes on only once the journal holds the result: a
        // resumed execution then replays it instead of running it again.
        let number = inbox.send(TaskMsg::Call(event)).map_err(|_| cancelled())?;
        inbox.journaled(number).await.map_err(|_| cancelled())?;
        result.map(|output| Arc::try_unwrap(output).unwrap_or_else(|shared| Value::clone(&shared)))
    }
}

/// A running call whose future may be dropped before it ends (its caller
/// gave up on it, a sibling's failure ended a sub-workflow): it then leaves
/// the running calls, gives back what its budget did not use, and is
/// journaled cancelled.
struct Unfinished<'a> {
    call: &'a Arc<str>,
    state: &'a CallState,
    inbox: &'a Inbox,
    budgeted: bool,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.state.live.lock_running().remove(self.call);
        if self.budgeted {
            self.state.budgets().close(self.call);
        }
        let cancelled = Error::Cancelled {
            step: Some(self.call.clone()),
        };
        let failed = EventKind::CallFailed {
            call: self.call.clone(),
            error: Box::new(cancelled.info()),
            attempts: 0,
        };
        // Nobody waits for it; an ended execution journals nothing more.
        let _ = self.inbox.send(TaskMsg::Call(failed));
    }
}

/// A call's attempts under its policy: its result and the attempts made.
async fn attempts(
    agent: &BoxAgent,
    policy: &Policy,
    input: Value,
    ctx: &Context,
) -> (Result<Value, Error>, u32) {
    let options = PolicyOptions::new().cancel(ctx.cancellation_token());
    let retried = policy.retry_config().max_attempts > 1;
    let mut first = Some(input);
    let mut kept = None;
    let mut last_attempt = 0;
    let result = policy
        .call_with(options, |attempt| {
            last_attempt = attempt;
            ctx.set_attempt(attempt);
            // The input is moved into the first attempt, and copied only
            // when later attempts may need it.
            let input = match first.take() {
                Some(input) => {
                    if retried {
                        kept = Some(input.clone());
                    }
                    input
                }
                None => kept.clone().unwrap_or(Value::Null),
            };
            async move {
                let result = AssertUnwindSafe(agent.call(input, ctx)).catch_unwind().await;
                if let Some(diverged) = ctx.divergence() {
                    return Err(AttemptError::Diverged(diverged));
                }
                match result {
                    Ok(Ok(value)) if exceeds_max_depth(&value) => Err(AttemptError::TooDeep("output")),
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(e)) if e.is_interrupt() => Err(AttemptError::Agent(AgentError::permanent(
                        "a call cannot wait for an external decision: only a step can interrupt",
                    ))),
                    Ok(Err(e)) => Err(AttemptError::Agent(e)),
                    Err(panic) => Err(AttemptError::Panicked(panic_message(&*panic))),
                }
            }
        })
        .await;
    match result {
        Ok(value) => (Ok(value), last_attempt),
        Err(e) => {
            let attempts = e.attempts();
            (Err(to_error(e, ctx, agent.name())), attempts)
        }
    }
}

/// The future of a prepared call.
fn started(prepared: Result<Prepared, Error>) -> CallFuture {
    match prepared {
        Ok(Prepared::Run(run)) => {
            let future = run.run();
            #[cfg(test)]
            tests::LARGEST_CALL_FUTURE.fetch_max(std::mem::size_of_val(&future), Ordering::Relaxed);
            Box::pin(future)
        }
        Ok(Prepared::Replayed(result)) => Box::pin(std::future::ready(result)),
        Err(error) => Box::pin(std::future::ready(Err(error))),
    }
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

    fn missed_call(&self, ctx: &Context) -> Option<Error> {
        if !self.strict {
            return None;
        }
        // An attempt's calls are numbered from 0 without gaps: if the
        // record holds the next number, the recorded attempt went on.
        let next = ctx.child_call_id(ctx.calls_made());
        let recorded = self.replay.describe(&next)?;
        Some(diverged(
            ctx,
            next,
            recorded,
            "no such call: the attempt ended first".into(),
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use orchestrate_graph::{StepDef, WorkflowDef};
    use serde_json::{json, Value};

    use crate::{agent_fn, Orchestrator};

    /// The largest call future made by this crate's tests.
    pub(super) static LARGEST_CALL_FUTURE: AtomicUsize = AtomicUsize::new(0);

    /// glibc serves allocations up to this size from a thread's cache;
    /// past it, every call's future went through the slower bins, and
    /// `map` took half as long again per child (BENCHMARKS.md).
    const THREAD_CACHE_LIMIT: usize = 1032;

    #[tokio::test]
    async fn a_call_future_fits_the_allocator_thread_cache() {
        let orchestrator = Orchestrator::builder()
            .agent(agent_fn("caller", |_, ctx| async move {
                Ok(ctx.call("noop", Value::Null).await?)
            }))
            .agent(agent_fn("noop", |_, _| async move { Ok(json!(1)) }))
            .build()
            .unwrap();
        let wf = orchestrator
            .bind(
                &WorkflowDef::builder("w")
                    .step(StepDef::new("s", "caller"))
                    .build(),
            )
            .unwrap();
        let done = orchestrator
            .run(&wf, Value::Null)
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(done.output("s"), Some(&json!(1)));
        let largest = LARGEST_CALL_FUTURE.load(Ordering::Relaxed);
        assert!(largest > 0, "no call future was made");
        assert!(
            largest <= THREAD_CACHE_LIMIT,
            "a call's future is {largest} bytes, past {THREAD_CACHE_LIMIT}: \
             box what it carries (see `Run`)"
        );
    }
}
