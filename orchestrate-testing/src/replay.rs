//! The replay checker: runs a finished execution's agents again against
//! that execution's own journal, and reports the first call that goes
//! another way.
//!
//! Durable calls rely on agents being deterministic: a resumed execution
//! runs its callers again and hands them their children's recorded
//! results, so a caller must make the same calls, in the same order, on
//! the same inputs. An agent that reads the clock, a random number or the
//! outside world other than through its [`Context`](orchestrate_core::Context)
//! (`now`, `random_u64`, `side_effect`) breaks that, and the break shows
//! only after a crash. [`check_replay`] shows it now: every step runs
//! again with its journal as it was just before the step ended, in replay
//! only mode (a call the journal does not hold fails instead of running),
//! and must make the recorded calls, no more and no fewer, and produce the
//! recorded output.
//!
//! What runs again is what a resume would run again: the steps' attempts,
//! and the calls that had not ended when the steps did. A call that ended
//! is replayed from its record, as on resume, so the agents below it are
//! not run and not checked.
//!
//! # Examples
//!
//! ```
//! use orchestrate_core::{agent_fn, Orchestrator};
//! use orchestrate_graph::{StepDef, WorkflowDef};
//! use orchestrate_testing::replay::check_replay;
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let builder = || {
//!     Orchestrator::builder()
//!         .agent(agent_fn("pick", |_, ctx| async move {
//!             let dice = ctx.random_u64().await?;
//!             let agent = if dice % 2 == 0 { "even" } else { "odd" };
//!             Ok(ctx.call(agent, json!(null)).await?)
//!         }))
//!         .agent(agent_fn("even", |_, _| async move { Ok(json!("even")) }))
//!         .agent(agent_fn("odd", |_, _| async move { Ok(json!("odd")) }))
//!         .workflow(WorkflowDef::builder("w").step(StepDef::new("s", "pick")).build())
//! };
//! let orchestrator = builder().build().unwrap();
//! let run = orchestrator.run(&orchestrator.workflow("w").unwrap(), json!(null)).await.unwrap();
//! run.clone().await.unwrap();
//! let checked = check_replay(&**orchestrator.store(), run.id(), builder()).await.unwrap();
//! assert_eq!(checked.calls, 2);
//! # }
//! ```

use std::sync::Arc;

use orchestrate_core::journal::{Event, EventKind, ExecutionView};
use orchestrate_core::store::{MemoryStore, Store};
use orchestrate_core::{Error, ExecutionId, OrchestratorBuilder};
use serde_json::Value;

/// What a replay that matched its journal went through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayCheck {
    /// Steps run again.
    pub steps: usize,
    /// Calls, side effects and decisions the journal holds: every one
    /// made again as recorded, or below a call replayed from its record.
    pub calls: usize,
}

/// How a replay went another way than its journal.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Divergence {
    /// A call or side effect is not the one recorded under its id.
    #[error("step `{step}`: call `{call}` diverges: recorded {recorded}, now {now}")]
    Call {
        /// The step whose agent made it.
        step: String,
        /// The call's id.
        call: String,
        /// What the journal holds.
        recorded: String,
        /// What the replay did.
        now: String,
    },
    /// A step's output is not the recorded one.
    #[error("step `{step}`: output {now:?} instead of the recorded {recorded}")]
    Output {
        /// The step.
        step: String,
        /// The recorded output.
        recorded: Value,
        /// The replay's (none when it did not succeed).
        now: Option<Value>,
    },
    /// The replay could not be set up or did not finish.
    #[error("replay failed: {0}")]
    Failed(Error),
}

/// Runs finished execution `id` of `source` again against its own journal,
/// on an orchestrator built from `builder` (its agents and the execution's
/// workflow registered; its store and replay mode are set here), and
/// reports the first divergence.
///
/// # Errors
///
/// The first [`Divergence`] found.
pub async fn check_replay(
    source: &dyn Store,
    id: &ExecutionId,
    builder: OrchestratorBuilder,
) -> Result<ReplayCheck, Divergence> {
    let events = source
        .load(id, 0)
        .await
        .map_err(|e| Divergence::Failed(e.into()))?;
    let recorded = ExecutionView::from_events(&events);
    let (journal, steps) = before_the_steps_ended(&events);
    let calls = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::CallStarted(_) | EventKind::SideEffect { .. } | EventKind::Decision(_)
            )
        })
        .count();
    let store = Arc::new(MemoryStore::new());
    store
        .append(id, &journal)
        .await
        .map_err(|e| Divergence::Failed(e.into()))?;
    let orchestrator = builder
        .store(store)
        .strict_replay(true)
        .build()
        .map_err(Divergence::Failed)?;
    let replayed = orchestrator.resume(id).await.map_err(Divergence::Failed)?;
    let outcome = replayed.clone().await;
    let view = replayed.view();
    let diverged = |step: &str| {
        view.step(step)
            .and_then(|s| s.error.as_ref())
            .is_some_and(|e| e.code == "non_deterministic")
    };
    if let Err(Error::NonDeterministic {
        call,
        recorded,
        now,
    }) = &outcome
    {
        let step = recorded_step(&view, diverged);
        return Err(Divergence::Call {
            step,
            call: call.to_string(),
            recorded: recorded.clone(),
            now: now.clone(),
        });
    }
    for (was, now) in recorded.steps().iter().zip(view.steps()) {
        if let Some(error) = now.error.as_ref().filter(|e| e.code == "non_deterministic") {
            return Err(divergence(&was.id, &error.message));
        }
        if was.output != now.output {
            return Err(Divergence::Output {
                step: was.id.to_string(),
                recorded: was.output.as_deref().cloned().unwrap_or(Value::Null),
                now: now.output.as_deref().cloned(),
            });
        }
    }
    Ok(ReplayCheck { steps, calls })
}

/// The journal as it was just before its steps ended: their results and
/// the end taken out, everything they did (calls, side effects, budget
/// consumptions, custom events) kept, renumbered; and how many steps
/// ended.
fn before_the_steps_ended(events: &[Event]) -> (Vec<Event>, usize) {
    let mut steps = 0;
    let kept: Vec<Event> = events
        .iter()
        .filter(|e| {
            let step_ended = matches!(
                e.kind,
                EventKind::StepSucceeded { .. }
                    | EventKind::StepFailed { .. }
                    | EventKind::StepInterrupted { .. }
            );
            steps += usize::from(step_ended);
            !step_ended && !matches!(e.kind, EventKind::ExecutionFinished { .. })
        })
        .cloned()
        .collect();
    let journal = kept
        .into_iter()
        .enumerate()
        .map(|(seq, mut e)| {
            e.seq = seq as u64;
            e
        })
        .collect();
    (journal, steps)
}

/// The first step that failed as non-deterministic.
fn recorded_step(view: &ExecutionView, diverged: impl Fn(&str) -> bool) -> String {
    view.steps()
        .iter()
        .find(|s| diverged(&s.id))
        .map(|s| s.id.to_string())
        .unwrap_or_default()
}

/// A step's non-deterministic failure, taken apart from its journaled text
/// (a step under `on_error: continue`, whose error did not end the run): the error's text is
/// `call `<id>` is not the call the journal recorded: recorded <r>, now <n>`.
fn divergence(step: &str, message: &str) -> Divergence {
    let call = message.split('`').nth(1).unwrap_or_default().to_owned();
    let (recorded, now) = message
        .split_once("recorded ")
        .and_then(|(_, rest)| rest.rsplit_once(", now "))
        .map(|(r, n)| (r.to_owned(), n.to_owned()))
        .unwrap_or_else(|| (message.to_owned(), String::new()));
    Divergence::Call {
        step: step.to_owned(),
        call,
        recorded,
        now,
    }
}
