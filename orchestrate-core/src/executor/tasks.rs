//! The running steps of one execution, polled by its driver or spawned,
//! and the futures polled inline by their owner (a driver's steps, a
//! `map`'s calls).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::task::JoinSet;

use super::StepResult;
use crate::limits::StepTasks;

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

/// Boxes of finished steps kept for the next ones to start in. A few are
/// enough: a step that finishes on its first poll gives its box back before
/// the next step starts.
const SPARE_BOXES: usize = 8;

/// Futures polled by their owner in its own task: the steps of a driver,
/// the calls of a `map`.
///
/// A future is polled once as it starts, in a box taken from the spares:
/// most steps and calls whose agent does not wait (a tool, a cached answer,
/// a pure function) finish right there, give their box back, and cost no
/// allocation of their own. One still waiting goes, box and all, to a
/// [`FuturesUnordered`] made when first needed, which wakes the owner for it
/// alone.
pub(super) struct InlineFutures<F> {
    waiting: Option<FuturesUnordered<Boxed<F>>>,
    spare: Vec<Pin<Box<F>>>,
}

/// A waiting future, which hands its box back with its result.
struct Boxed<F>(Option<Pin<Box<F>>>);

impl<F: Future> Future for Boxed<F> {
    type Output = (F::Output, Option<Pin<Box<F>>>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(step) = self.0.as_mut() else {
            // Never polled again after it finished: `FuturesUnordered`
            // drops what it has seen complete.
            return Poll::Pending;
        };
        let done = std::task::ready!(step.as_mut().poll(cx));
        Poll::Ready((done, self.0.take()))
    }
}

impl<F: Future> InlineFutures<F> {
    /// None running, no spare box yet.
    pub(super) fn new() -> Self {
        Self {
            waiting: None,
            spare: Vec::new(),
        }
    }

    /// Starts `step` and polls it once; its result if it finished.
    ///
    /// The poll has no waker of its own (a no-op one): a future that waits
    /// is then pushed to the set, which polls it again with the set's
    /// waker before its owner next waits (its owner always polls
    /// [`poll_next`](Self::poll_next) before it waits).
    pub(super) fn start(&mut self, step: F) -> Option<F::Output> {
        let mut boxed = match self.spare.pop() {
            Some(mut spare) => {
                spare.set(step);
                spare
            }
            None => Box::pin(step),
        };
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        match boxed.as_mut().poll(&mut cx) {
            Poll::Ready(done) => {
                self.give_back(boxed);
                Some(done)
            }
            Poll::Pending => {
                self.waiting
                    .get_or_insert_with(FuturesUnordered::new)
                    .push(Boxed(Some(boxed)));
                None
            }
        }
    }

    fn give_back(&mut self, boxed: Pin<Box<F>>) {
        if self.spare.len() < SPARE_BOXES {
            self.spare.push(boxed);
        }
    }

    /// The next waiting future to finish; `None` when none waits.
    pub(super) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let Some(waiting) = self.waiting.as_mut() else {
            return Poll::Ready(None);
        };
        match std::task::ready!(waiting.poll_next_unpin(cx)) {
            Some((done, boxed)) => {
                if let Some(boxed) = boxed {
                    self.give_back(boxed);
                }
                Poll::Ready(Some(done))
            }
            None => Poll::Ready(None),
        }
    }

    fn clear(&mut self) {
        if let Some(waiting) = &mut self.waiting {
            waiting.clear();
        }
    }
}

/// The steps an execution is running, in the form [`StepTasks`] chose.
/// `F` is the one type of every step's future, so that inline steps need
/// no box per step.
pub(super) enum RunningSteps<F> {
    /// Polled by the driver in its own task.
    Inline(InlineFutures<F>),
    /// One tokio task per step.
    Spawned(JoinSet<(usize, StepResult)>),
}

impl<F> RunningSteps<F>
where
    F: Future<Output = (usize, StepResult)> + Send + 'static,
{
    pub(super) fn new(tasks: StepTasks) -> Self {
        match tasks {
            StepTasks::Inline => Self::Inline(InlineFutures::new()),
            StepTasks::Spawned => Self::Spawned(JoinSet::new()),
        }
    }

    /// Starts a step made by [`guarded`]; its result if it finished at
    /// once (only an inline step can).
    pub(super) fn start(&mut self, step: F) -> Option<(usize, StepResult)> {
        match self {
            Self::Inline(steps) => steps.start(step),
            Self::Spawned(set) => {
                set.spawn(step);
                None
            }
        }
    }

    /// The next step to finish; `None` when none is running. Cancel-safe.
    pub(super) async fn next(&mut self) -> Option<(usize, StepResult)> {
        match self {
            Self::Inline(steps) => std::future::poll_fn(|cx| steps.poll_next(cx)).await,
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
            Self::Inline(steps) => std::future::poll_fn(|cx| steps.poll_next(cx))
                .now_or_never()
                .flatten(),
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
        let ended = match steps.start(guarded(7, panicking_step(), panicked)) {
            Some(ended) => Some(ended),
            None => steps.next().await,
        };
        let Some((index, StepResult::Failure { error, .. })) = ended else {
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
            assert!(steps
                .start(guarded(0, std::future::pending(), panicked))
                .is_none());
            steps.abort_all();
            assert!(steps.next().await.is_none(), "{tasks:?}");
        }
    }

    fn succeeded(n: i64) -> StepResult {
        StepResult::Success {
            output: serde_json::json!(n),
            attempts: 1,
        }
    }

    fn output(result: &StepResult) -> Option<i64> {
        match result {
            StepResult::Success { output, .. } => output.as_i64(),
            _ => None,
        }
    }

    /// A step whose future is `F` for every test step below: it either
    /// finishes at once or waits for its sender.
    async fn step(n: i64, wait: Option<tokio::sync::oneshot::Receiver<()>>) -> StepResult {
        if let Some(wait) = wait {
            let _ = wait.await;
        }
        succeeded(n)
    }

    #[tokio::test]
    async fn steps_that_never_wait_finish_as_they_start_in_one_reused_box() {
        let mut steps = InlineFutures::new();
        for n in 0..5 {
            let (index, result) = steps
                .start(guarded(n as usize, step(n, None), panicked))
                .expect("a step that never waits finishes on its first poll");
            assert_eq!((index, output(&result)), (n as usize, Some(n)));
        }
        assert_eq!(steps.spare.len(), 1, "every step reused the first box");
        assert!(steps.waiting.is_none(), "no set was made for them");
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert!(matches!(steps.poll_next(&mut cx), Poll::Ready(None)));
    }

    #[tokio::test]
    async fn waiting_steps_come_back_as_they_finish_and_return_their_boxes() {
        let mut steps = InlineFutures::new();
        let mut senders = Vec::new();
        for n in 0..3 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            senders.push(Some(tx));
            assert!(steps
                .start(guarded(n as usize, step(n, Some(rx)), panicked))
                .is_none());
        }
        // One that never waits, while the others do.
        let (index, _) = steps
            .start(guarded(9, step(9, None), panicked))
            .expect("finishes at once");
        assert_eq!(index, 9);
        // Finished in another order than started.
        for n in [2usize, 0, 1] {
            if let Some(tx) = senders[n].take() {
                let _ = tx.send(());
            }
            let (index, result) = std::future::poll_fn(|cx| steps.poll_next(cx))
                .await
                .expect("a step is still running");
            assert_eq!((index, output(&result)), (n, Some(n as i64)));
        }
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert!(matches!(steps.poll_next(&mut cx), Poll::Ready(None)));
        assert_eq!(steps.spare.len(), 4, "every box came back");
    }
}
