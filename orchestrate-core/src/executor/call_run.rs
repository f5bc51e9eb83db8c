//! One call, from its check to its journaled end: what
//! the execution's host prepares, and the future
//! that runs it (its start journaled, its attempts under its policy, its
//! end journaled before its caller goes on).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use orchestrate_resilience::{CallOptions as PolicyOptions, Policy};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::attempt::{panic_message, to_error, AttemptError};
use super::live::CallState;
use super::{Inbox, TaskMsg};
use crate::agent::BoxAgent;
use crate::budget::Overrun;
use crate::context::{CallFuture, Context};
use crate::depth::exceeds_max_depth;
use crate::error::{AgentError, Error};
use crate::journal::{CallStart, EventKind};

/// The error of a refused budget operation.
pub(super) fn overrun(error: Overrun) -> Error {
    Error::BudgetExceeded(Box::new(error))
}

/// A checked call: its record's result, or what running it takes.
pub(super) enum Prepared {
    Replayed(Result<Value, Error>),
    Run(Run),
}

/// A call about to run.
pub(super) struct Run {
    /// Its start, to journal (`None` when the journal has it already).
    pub(super) start: Option<Arc<CallStart>>,
    pub(super) call: Arc<str>,
    pub(super) agent: Arc<str>,
    pub(super) target: BoxAgent,
    pub(super) policy: Policy,
    pub(super) semaphore: Option<Arc<Semaphore>>,
    pub(super) input: Value,
    pub(super) child: Context,
    pub(super) inbox: Arc<Inbox>,
    pub(super) state: Arc<CallState>,
    pub(super) grace: std::time::Duration,
}

/// A call run up to its end's message: its result, which its caller may use
/// once the journal holds message `end`.
pub(super) struct Settled {
    pub(super) result: Result<Arc<Value>, Error>,
    pub(super) end: u64,
}

/// A call's output for its caller: the journal's copy is shared until the
/// journal lets go of it.
pub(super) fn into_value(output: Arc<Value>) -> Value {
    Arc::try_unwrap(output).unwrap_or_else(|shared| Value::clone(&shared))
}

impl Run {
    /// Runs the call and returns its output once the journal holds it.
    fn run(self) -> impl Future<Output = Result<Value, Error>> + Send + 'static {
        self.settle(true)
            .map(|settled| settled.and_then(|settled| settled.result.map(into_value)))
    }

    /// Runs the call until its end is sent to the journal, and with
    /// `acknowledged` until the journal holds it; an error when it was
    /// stopped before (the execution ended). One state machine for both:
    /// awaiting a settling future from another would poll two at every
    /// wake-up of a call that waits.
    pub(super) fn settle(
        self,
        acknowledged: bool,
    ) -> impl Future<Output = Result<Settled, Error>> + Send + 'static {
        // Taken apart before the future is made: an `async fn` would keep
        // the whole call as its argument beside the parts it moved out.
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
        } = self;
        async move {
            let live = &state.live;
            let cancelled = || Error::Cancelled {
                step: Some(call.clone()),
            };
            let permit = match semaphore {
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
                    let end = inbox
                        .send(TaskMsg::Refused(start, failed))
                        .map_err(|_| cancelled())?;
                    drop(permit);
                    if acknowledged {
                        inbox.journaled(end).await.map_err(|_| cancelled())?;
                    }
                    return Ok(Settled {
                        result: Err(error),
                        end,
                    });
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
            let stopped = async {
                // Its token is made here, once its agent waits: a call
                // that ends as it starts never makes one.
                child.cancellation_token().cancelled().await;
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
            let terminated = live.leave(&call);
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
                    let cause = Box::new(error.info());
                    let event = EventKind::CallFailed {
                        call: call.clone(),
                        error: cause.clone(),
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
            let end = inbox.send(TaskMsg::Call(event)).map_err(|_| cancelled())?;
            // The agent is done: its place under its concurrency limit is
            // not held while the journal writes (one call per write, on a
            // slow store).
            drop(permit);
            if acknowledged {
                // The caller goes on only once the journal holds the result:
                // a resumed execution then replays it instead of running it
                // again.
                inbox.journaled(end).await.map_err(|_| cancelled())?;
            }
            Ok(Settled { result, end })
        }
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
    let options = PolicyOptions::new().cancel_with(ctx);
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
                if let Some(diverged) = ctx.divergence(matches!(result, Ok(Ok(_)))) {
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

/// The span of a call, which its attempts' spans and its agent's nest in
/// (none without a subscriber).
pub(super) fn call_span(run: &Run) -> tracing::Span {
    crate::spans::traced(|| {
        tracing::info_span!(
            "call",
            call_id = %run.call,
            agent = %run.agent,
            correlation_id = %run.child.correlation_id(),
        )
    })
}

/// The future of a prepared call.
pub(super) fn started(prepared: Result<Prepared, Error>) -> CallFuture {
    match prepared {
        Ok(Prepared::Run(run)) => {
            let span = call_span(&run);
            let future = run.run();
            #[cfg(test)]
            tests::LARGEST_CALL_FUTURE.fetch_max(
                std::mem::size_of_val(&future),
                std::sync::atomic::Ordering::Relaxed,
            );
            // Its attempts' spans, and its agent's, nest in it; without a
            // subscriber there is nothing to enter at each poll.
            if span.is_none() {
                Box::pin(future)
            } else {
                Box::pin(tracing::Instrument::instrument(future, span))
            }
        }
        Ok(Prepared::Replayed(result)) => Box::pin(std::future::ready(result)),
        Err(error) => Box::pin(std::future::ready(Err(error))),
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
    /// past it, every call's future went through the slower bins: `map`,
    /// when it still boxed each of its calls, took half as long again per
    /// child (BENCHMARKS.md). `call`, `call_all` and the patterns' calls
    /// still box theirs.
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
