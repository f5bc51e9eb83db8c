//! The running steps of one execution, polled by its driver or spawned.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::task::JoinSet;

use super::StepResult;
use crate::orchestrator::StepTasks;

/// Ends step `index` with `step`'s result. A panic that escapes `step` (the
/// agent's own are caught per attempt) still ends the step, as `on_panic`
/// says, instead of leaving it running forever or taking the driver down
/// with it.
pub(super) fn guarded<S, P>(
    index: usize,
    step: S,
    on_panic: P,
) -> impl Future<Output = (usize, StepResult)> + Send + 'static
where
    S: Future<Output = StepResult> + Send + 'static,
    P: FnOnce(String) -> StepResult + Send + 'static,
{
    // A combinator, not an `async` block: the block would hold `step` twice
    // (once captured, once being awaited), doubling every step.
    AssertUnwindSafe(step).catch_unwind().map(move |ended| {
        let result = match ended {
            Ok(result) => result,
            Err(panic) => on_panic(super::attempt::panic_message(&*panic)),
        };
        (index, result)
    })
}

/// The steps an execution is running, in the form [`StepTasks`] chose.
/// `F` is the one type of every step's future, so that inline steps live
/// in the set's own nodes, with no box of their own.
pub(super) enum RunningSteps<F> {
    /// Polled by the driver in its own task.
    Inline(FuturesUnordered<F>),
    /// One tokio task per step.
    Spawned(JoinSet<(usize, StepResult)>),
}

impl<F> RunningSteps<F>
where
    F: Future<Output = (usize, StepResult)> + Send + 'static,
{
    pub(super) fn new(tasks: StepTasks) -> Self {
        match tasks {
            StepTasks::Inline => Self::Inline(FuturesUnordered::new()),
            StepTasks::Spawned => Self::Spawned(JoinSet::new()),
        }
    }

    /// Starts a step made by [`guarded`].
    pub(super) fn start(&mut self, step: F) {
        match self {
            Self::Inline(steps) => steps.push(step),
            Self::Spawned(set) => {
                set.spawn(step);
            }
        }
    }

    /// The next step to finish; `None` when none is running. Cancel-safe.
    pub(super) async fn next(&mut self) -> Option<(usize, StepResult)> {
        match self {
            Self::Inline(steps) => steps.next().await,
            Self::Spawned(set) => loop {
                // Panics are caught inside the task: an error is an abort,
                // whose step the driver records as cancelled.
                if let Ok(done) = set.join_next().await? {
                    return Some(done);
                }
            },
        }
    }

    /// A step that has already finished, without waiting for one.
    pub(super) fn try_next(&mut self) -> Option<(usize, StepResult)> {
        match self {
            // Polled without the driver's waker: the driver always polls
            // `next` again before it waits, which registers its waker anew.
            Self::Inline(steps) => steps.next().now_or_never().flatten(),
            Self::Spawned(set) => loop {
                if let Ok(done) = set.try_join_next()? {
                    return Some(done);
                }
            },
        }
    }

    /// Drops every running step.
    pub(super) fn abort_all(&mut self) {
        match self {
            Self::Inline(steps) => steps.clear(),
            Self::Spawned(set) => set.abort_all(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn panicked(message: String) -> StepResult {
        StepResult::Failure {
            error: Error::Panicked {
                step: "s".into(),
                agent: "a".into(),
                message,
            },
            attempts: 1,
        }
    }

    async fn panicking_step() -> StepResult {
        panic!("escaped the attempt")
    }

    async fn finishes_with_the_panic(tasks: StepTasks) {
        let mut steps = RunningSteps::new(tasks);
        steps.start(guarded(7, panicking_step(), panicked));
        let Some((index, StepResult::Failure { error, .. })) = steps.next().await else {
            panic!("the step did not end as a failure");
        };
        assert_eq!(index, 7);
        assert!(
            matches!(&error, Error::Panicked { message, .. } if message == "escaped the attempt"),
            "{error:?}"
        );
        assert!(steps.next().await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_ends_the_step_inline() {
        finishes_with_the_panic(StepTasks::Inline).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_ends_the_step_spawned() {
        finishes_with_the_panic(StepTasks::Spawned).await;
    }

    #[tokio::test]
    async fn abort_all_drops_running_steps() {
        for tasks in [StepTasks::Inline, StepTasks::Spawned] {
            let mut steps = RunningSteps::new(tasks);
            steps.start(guarded(0, std::future::pending(), panicked));
            steps.abort_all();
            assert!(steps.next().await.is_none(), "{tasks:?}");
        }
    }
}
