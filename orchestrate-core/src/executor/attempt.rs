//! One step's attempts, run in its own task.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use serde_json::Value;
use tracing::Instrument;

use super::{StepResult, TaskMsg};
use crate::agent::BoxAgent;
use crate::context::Context;
use crate::error::Error;

/// What one step does with its attempts.
pub(crate) struct AttemptPolicy {
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_attempts: u32,
}

/// Runs attempts until one succeeds, a failure is not retryable, attempts run
/// out, or the execution is cancelled.
pub(crate) async fn run_step(
    agent: BoxAgent,
    ctx: Context,
    mut input: Value,
    policy: AttemptPolicy,
) -> StepResult {
    let mut attempt = 1u32;
    loop {
        let actx = if attempt == 1 {
            ctx.clone()
        } else {
            ctx.with_attempt(attempt)
        };
        // The input is only copied when another attempt may need it.
        let this_input = if attempt < policy.max_attempts {
            input.clone()
        } else {
            std::mem::take(&mut input)
        };
        let span = tracing::info_span!("attempt", attempt);
        let result = call_once(&agent, this_input, &actx, policy.timeout, attempt)
            .instrument(span)
            .await;
        let error = match result {
            Ok(output) => {
                return StepResult::Success {
                    output,
                    attempts: attempt,
                }
            }
            Err(e) => e,
        };
        let retry = error.is_retryable() && attempt < policy.max_attempts && !ctx.is_cancelled();
        if !retry {
            return StepResult::Failure {
                error,
                attempts: attempt,
            };
        }
        tracing::info!(attempt, error = %error, "attempt failed; retrying");
        if let Some(sink) = ctx.sink() {
            let msg = TaskMsg::AttemptFailed {
                step: ctx.step_index(),
                attempt,
                error: error.info(),
            };
            if sink.tx.send(msg).await.is_err() {
                return StepResult::Failure {
                    error,
                    attempts: attempt,
                };
            }
        }
        if let Error::Agent { source, .. } = &error {
            if let Some(delay) = source.retry_delay() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = ctx.cancelled() => return StepResult::Failure {
                        error: Error::Cancelled { step: Some(ctx.step_id().into()) },
                        attempts: attempt,
                    },
                }
            }
        }
        attempt += 1;
    }
}

async fn call_once(
    agent: &BoxAgent,
    input: Value,
    ctx: &Context,
    timeout: Option<Duration>,
    attempt: u32,
) -> Result<Value, Error> {
    let call = AssertUnwindSafe(agent.call(input, ctx)).catch_unwind();
    let outcome = match timeout {
        Some(after) => match tokio::time::timeout(after, call).await {
            Ok(outcome) => outcome,
            Err(_) => {
                return Err(Error::Timeout {
                    step: ctx.step_id().into(),
                    attempts: attempt,
                    after,
                })
            }
        },
        None => call.await,
    };
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(Error::Agent {
            step: ctx.step_id().into(),
            agent: agent.name().into(),
            attempts: attempt,
            source,
        }),
        Err(panic) => Err(Error::Panicked {
            step: ctx.step_id().into(),
            agent: agent.name().into(),
            message: panic_message(&*panic),
        }),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
