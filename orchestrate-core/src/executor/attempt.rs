//! One step's attempts, under the step's resilience policy.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use orchestrate_graph::template::EvalError;
use orchestrate_resilience::{
    CallOptions, ErrorKind, Observer, PolicyError, PolicyEvent, Retryable,
};
use serde_json::Value;

use super::input::StepInput;
use super::StepResult;
use crate::context::Context;
use crate::depth::{exceeds_max_depth, MAX_VALUE_DEPTH};
use crate::error::{AgentError, Error};
use crate::workflow::Bound;

/// How one attempt failed.
pub(super) enum AttemptError {
    Agent(AgentError),
    /// Panics are never retried.
    Panicked(String),
    /// The input could not be evaluated again for a retry (it was for the
    /// first attempt, from the same values: a bug if ever seen).
    Input(EvalError),
    /// The agent produced a value nested too deeply to journal (never
    /// retried: the same agent on the same input produces it again).
    TooDeep(&'static str),
    /// A replayed call of the attempt differed from its record.
    Diverged(Error),
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Agent(e) => e.fmt(f),
            AttemptError::Panicked(m) => write!(f, "panicked: {m}"),
            AttemptError::Input(e) => e.fmt(f),
            AttemptError::TooDeep(what) => write!(
                f,
                "{what} nests deeper than {MAX_VALUE_DEPTH} levels, the most a journal stores"
            ),
            AttemptError::Diverged(e) => e.fmt(f),
        }
    }
}

impl Retryable for AttemptError {
    fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Agent(e) => e.is_retryable(),
            AttemptError::Panicked(_)
            | AttemptError::Input(_)
            | AttemptError::TooDeep(_)
            | AttemptError::Diverged(_) => false,
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            AttemptError::Agent(e) => e.retry_delay(),
            AttemptError::Panicked(_)
            | AttemptError::Input(_)
            | AttemptError::TooDeep(_)
            | AttemptError::Diverged(_) => None,
        }
    }
}

/// Forwards the policy's events to the driver, which journals them in order.
struct JournalObserver<'a> {
    ctx: &'a Context,
}

impl Observer for JournalObserver<'_> {
    fn on_event(&self, event: PolicyEvent) {
        // `StepStarted` already says the first attempt began: no message,
        // no event, no wake-up of the driver on the common path.
        if matches!(event, PolicyEvent::AttemptStarted { attempt: 1 }) {
            return;
        }
        if let Some(host) = self.ctx.host() {
            host.policy_event(self.ctx.step_index(), event);
        }
    }
}

/// What a successful attempt produced: an output, or a request for an
/// external decision (which is not a failure: no retry, no breaker count).
pub(crate) enum Produced {
    Output(Value),
    Interrupt(Arc<Value>),
}

/// Runs step `index` of `wf`: its agent under its policy, until it
/// succeeds or the policy gives up.
///
/// The agent, the policy and the template of a retry are borrowed from
/// `wf`, which the future holds once, rather than each held by a reference
/// count of its own.
///
/// Not an `async fn`: one would hold its arguments twice (as captured, and
/// as the locals they are moved into), 200 bytes more in every step.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run_step(
    wf: Arc<Bound>,
    index: usize,
    ctx: Context,
    mut input: StepInput,
) -> impl Future<Output = StepResult> + Send {
    async move {
        let (agent, policy) = (&wf.agents[index], &wf.policies[index]);
        let observer = JournalObserver { ctx: &ctx };
        let options = CallOptions::new()
            .cancel(ctx.cancellation_token())
            .observe(&observer);
        let mut last_attempt = 0;
        let result = policy
            .call_with(options, |attempt| {
                last_attempt = attempt;
                let this_input = input.next_attempt(&wf, index, ctx.execution_input());
                // Every attempt borrows the step's context; the previous one
                // is over by now, so renumbering it is seen by this one only.
                ctx.set_attempt(attempt);
                let ctx = &ctx;
                async move {
                    let this_input = this_input.map_err(AttemptError::Input)?;
                    let result = AssertUnwindSafe(agent.call(this_input, ctx))
                        .catch_unwind()
                        .await;
                    if let Some(diverged) = ctx.divergence(matches!(result, Ok(Ok(_)))) {
                        return Err(AttemptError::Diverged(diverged));
                    }
                    match result {
                        Ok(Ok(value)) if exceeds_max_depth(&value) => {
                            Err(AttemptError::TooDeep("output"))
                        }
                        Ok(Ok(value)) => Ok(Produced::Output(value)),
                        Ok(Err(e)) => match e.interrupt_payload() {
                            Some(payload) if exceeds_max_depth(payload) => {
                                Err(AttemptError::TooDeep("interrupt payload"))
                            }
                            Some(payload) => Ok(Produced::Interrupt(payload.clone())),
                            None => Err(AttemptError::Agent(e)),
                        },
                        Err(panic) => Err(AttemptError::Panicked(panic_message(&*panic))),
                    }
                }
            })
            .await;
        match result {
            Ok(Produced::Output(output)) => StepResult::Success {
                output,
                attempts: last_attempt,
            },
            Ok(Produced::Interrupt(payload)) => StepResult::Interrupted { payload },
            Err(e) => {
                let attempts = e.attempts();
                StepResult::Failure {
                    error: to_error(e, &ctx, agent.name()),
                    attempts,
                }
            }
        }
    }
}

pub(super) fn to_error(e: PolicyError<AttemptError>, ctx: &Context, agent: &str) -> Error {
    let attempts = e.attempts();
    let step: Arc<str> = ctx.call_id().into();
    match e.into_kind() {
        ErrorKind::Operation(AttemptError::Agent(source)) => Error::Agent {
            step,
            agent: agent.into(),
            attempts,
            source,
        },
        ErrorKind::Operation(AttemptError::Panicked(message)) => Error::Panicked {
            step,
            agent: agent.into(),
            message,
        },
        ErrorKind::Operation(AttemptError::Input(e)) => Error::Interpolation(e),
        ErrorKind::Operation(AttemptError::Diverged(e)) => e,
        ErrorKind::Operation(AttemptError::TooDeep(what)) => Error::ValueTooDeep {
            step: Some(step),
            what,
            limit: MAX_VALUE_DEPTH,
        },
        ErrorKind::Timeout { after } => Error::Timeout {
            step,
            attempts,
            after,
        },
        ErrorKind::CircuitOpen { .. } => Error::CircuitOpen {
            step,
            agent: agent.into(),
        },
        ErrorKind::Cancelled => Error::Cancelled { step: Some(step) },
        other => Error::Rejected {
            step,
            agent: agent.into(),
            reason: other.to_string(),
        },
    }
}

pub(super) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
