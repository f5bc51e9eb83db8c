//! The queue from an execution's running steps to its driver.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Poll;

use futures::task::AtomicWaker;

use super::TaskMsg;

/// Messages from the steps of one execution to its driver: an unbounded
/// queue that, unlike a channel, allocates nothing until the first message,
/// since most executions never send one. Bounded in practice, like the
/// journal: custom events by a per-execution limit, policy events by the
/// attempts of each step.
#[derive(Default)]
pub(crate) struct Inbox {
    messages: Mutex<Vec<TaskMsg>>,
    /// Set with each message, cleared when the driver takes them: lets the
    /// driver look without the lock.
    waiting: AtomicBool,
    /// Set when the driver has ended; later messages are refused.
    closed: AtomicBool,
    driver: AtomicWaker,
    /// Custom events sent so far, counted against the execution's limit.
    pub(crate) emitted: AtomicU32,
}

impl Inbox {
    /// Queues `msg` and wakes the driver; gives it back if the driver has
    /// ended.
    pub(crate) fn send(&self, msg: TaskMsg) -> Result<(), TaskMsg> {
        {
            let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
            // Checked under the lock: `close` takes the lock too, so no
            // message slips in after the driver's last look.
            if self.closed.load(Ordering::Acquire) {
                return Err(msg);
            }
            messages.push(msg);
            self.waiting.store(true, Ordering::Release);
        }
        self.driver.wake();
        Ok(())
    }

    /// Completes when a message waits. Cancel-safe: it takes nothing.
    pub(crate) async fn arrived(&self) {
        poll_fn(|cx| {
            if self.waiting.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.driver.register(cx.waker());
            // A message sent between the check and the registration woke
            // nobody: look again.
            if self.waiting.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// Moves the waiting messages, oldest first, into `into`.
    pub(crate) fn take(&self, into: &mut Vec<TaskMsg>) {
        if !self.waiting.load(Ordering::Acquire) {
            return;
        }
        let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        into.append(&mut messages);
        self.waiting.store(false, Ordering::Release);
    }

    /// Refuses every later message.
    pub(crate) fn close(&self) {
        let _messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        self.closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrate_resilience::PolicyEvent;

    fn msg(step: usize) -> TaskMsg {
        TaskMsg::Policy {
            step,
            event: Box::new(PolicyEvent::AttemptStarted { attempt: 2 }),
        }
    }

    fn steps(messages: &[TaskMsg]) -> Vec<usize> {
        messages
            .iter()
            .map(|m| match m {
                TaskMsg::Policy { step, .. } | TaskMsg::Custom { step, .. } => *step,
                TaskMsg::Call(..) | TaskMsg::Refused(..) => usize::MAX,
            })
            .collect()
    }

    #[tokio::test]
    async fn messages_arrive_in_order_and_wake_the_driver() {
        let inbox = std::sync::Arc::new(Inbox::default());
        let sender = inbox.clone();
        let waiting = tokio::spawn(async move {
            inbox.arrived().await;
            let mut got = Vec::new();
            inbox.take(&mut got);
            got
        });
        tokio::task::yield_now().await;
        assert!(sender.send(msg(1)).is_ok());
        assert!(sender.send(msg(2)).is_ok());
        // One thread: the driver runs only once both are queued.
        assert_eq!(steps(&waiting.await.unwrap()), [1, 2]);
    }

    #[tokio::test]
    async fn nothing_waits_until_sent_and_take_empties() {
        let inbox = Inbox::default();
        let mut got = Vec::new();
        inbox.take(&mut got);
        assert!(got.is_empty());
        assert!(futures::FutureExt::now_or_never(inbox.arrived()).is_none());
        inbox.send(msg(3)).map_err(|_| "closed").unwrap();
        assert!(futures::FutureExt::now_or_never(inbox.arrived()).is_some());
        inbox.take(&mut got);
        assert_eq!(steps(&got), [3]);
        assert!(futures::FutureExt::now_or_never(inbox.arrived()).is_none());
    }

    #[test]
    fn a_closed_inbox_refuses_messages() {
        let inbox = Inbox::default();
        inbox.close();
        assert!(inbox.send(msg(4)).is_err());
        let mut got = Vec::new();
        inbox.take(&mut got);
        assert!(got.is_empty());
    }
}
