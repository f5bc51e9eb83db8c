//! The queue from an execution's running steps to its driver.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Poll;

use futures::task::AtomicWaker;
use tokio::sync::Notify;

use super::TaskMsg;

/// Messages from the steps of one execution to its driver: an unbounded
/// queue that, unlike a channel, allocates nothing until the first message,
/// since most executions never send one. Bounded in practice, like the
/// journal: custom events by a per-execution limit, policy events by the
/// attempts of each step.
///
/// A sender that must not go on before the journal holds its message (a
/// call's end) waits for [`journaled`](Self::journaled): messages are
/// numbered as they are sent, and the driver tells, after each batch it
/// wrote, up to which number the journal holds them, waking every waiter
/// at once. No channel per message.
#[derive(Default)]
pub(crate) struct Inbox {
    messages: Mutex<Queue>,
    /// The number of the last message the driver took.
    taken: AtomicU64,
    /// The number of the last message the journal holds.
    journaled: AtomicU64,
    /// Set when the journal could not be written: no later message will
    /// be journaled.
    broken: AtomicBool,
    /// Wakes the senders waiting for the journal.
    written: Notify,
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
    /// Queues `msg`, waking the driver at the first message since it last
    /// took them; gives it back if the driver has ended. Returns the
    /// message's number, for [`journaled`](Self::journaled).
    pub(crate) fn send(&self, msg: TaskMsg) -> Result<u64, TaskMsg> {
        let (number, first) = {
            let mut queue = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
            // Checked under the lock: `close` takes the lock too, so no
            // message slips in after the driver's last look.
            if self.closed.load(Ordering::Acquire) {
                return Err(msg);
            }
            queue.messages.push(msg);
            queue.sent += 1;
            // Under the lock, which `take` clears it under too.
            let first = !self.waiting.load(Ordering::Relaxed);
            self.waiting.store(true, Ordering::Release);
            (queue.sent, first)
        };
        // The first message since the driver last took them wakes it; the
        // others find it woken already (a call sends two).
        if first {
            self.driver.wake();
        }
        Ok(number)
    }

    /// Completes once the journal holds message `number`; fails when it
    /// never will (the journal could not be written, or the driver ended
    /// first).
    pub(crate) async fn journaled(&self, number: u64) -> Result<(), NotJournaled> {
        loop {
            // Looked at before registering: once woken, a sender finds its
            // message written without registering again (two fewer locks of
            // the waiters' list per wait).
            if let Some(done) = self.settled(number) {
                return done;
            }
            let written = self.written.notified();
            tokio::pin!(written);
            // Registered before looking again, so that a batch written
            // between the look and the wait still wakes this one.
            written.as_mut().enable();
            if let Some(done) = self.settled(number) {
                return done;
            }
            written.await;
        }
    }

    /// Whether the journal holds message `number`.
    pub(crate) fn holds(&self, number: u64) -> bool {
        self.journaled.load(Ordering::Acquire) >= number
    }

    /// Whether message `number` is journaled, or never will be; `None`
    /// while it may still be.
    fn settled(&self, number: u64) -> Option<Result<(), NotJournaled>> {
        if self.holds(number) {
            return Some(Ok(()));
        }
        if self.broken.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire) {
            return Some(Err(NotJournaled));
        }
        None
    }

    /// Called by the driver once the journal holds every message it took.
    pub(crate) fn written(&self) {
        let taken = self.taken.load(Ordering::Relaxed);
        if self.journaled.load(Ordering::Relaxed) < taken {
            self.journaled.store(taken, Ordering::Release);
            self.written.notify_waiters();
        }
    }

    /// Called by the driver when the journal cannot be written: every
    /// waiting sender learns it.
    pub(crate) fn broken(&self) {
        self.broken.store(true, Ordering::Release);
        self.written.notify_waiters();
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
        let mut queue = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        into.append(&mut queue.messages);
        self.taken.store(queue.sent, Ordering::Relaxed);
        self.waiting.store(false, Ordering::Release);
    }

    /// Refuses every later message; senders still waiting for the journal
    /// learn that it will not hold theirs.
    pub(crate) fn close(&self) {
        {
            let _queue = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
            self.closed.store(true, Ordering::Release);
        }
        self.written.notify_waiters();
    }
}

/// The queued messages and how many were ever sent.
#[derive(Default)]
struct Queue {
    messages: Vec<TaskMsg>,
    sent: u64,
}

/// A message the journal will not hold: its execution's journal could not
/// be written, or its driver ended.
#[derive(Debug)]
pub(crate) struct NotJournaled;

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrate_resilience::PolicyEvent;
    use std::future::Future;

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

    #[tokio::test]
    async fn a_sender_waits_until_the_journal_holds_its_message() {
        let inbox = Inbox::default();
        let first = inbox.send(msg(1)).map_err(|_| "closed").unwrap();
        let second = inbox.send(msg(2)).map_err(|_| "closed").unwrap();
        let waiting = inbox.journaled(second);
        tokio::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        let mut got = Vec::new();
        inbox.take(&mut got);
        // Taken is not written: still waiting.
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        inbox.written();
        assert!(matches!(
            futures::poll!(waiting.as_mut()),
            Poll::Ready(Ok(()))
        ));
        assert!(inbox.journaled(first).await.is_ok());
        // Sent after the batch: not written by it.
        let third = inbox.send(msg(3)).map_err(|_| "closed").unwrap();
        inbox.written();
        let late = inbox.journaled(third);
        tokio::pin!(late);
        assert!(futures::poll!(late.as_mut()).is_pending());
    }

    #[tokio::test]
    async fn a_sender_learns_that_its_message_will_never_be_journaled() {
        let broken = Inbox::default();
        let number = broken.send(msg(1)).map_err(|_| "closed").unwrap();
        let waiting = broken.journaled(number);
        tokio::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        broken.broken();
        assert!(matches!(
            futures::poll!(waiting.as_mut()),
            Poll::Ready(Err(_))
        ));

        let closed = Inbox::default();
        let number = closed.send(msg(1)).map_err(|_| "closed").unwrap();
        let waiting = closed.journaled(number);
        tokio::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        closed.close();
        assert!(matches!(
            futures::poll!(waiting.as_mut()),
            Poll::Ready(Err(_))
        ));
    }

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl futures::task::ArcWake for Counting {
        fn wake_by_ref(this: &std::sync::Arc<Self>) {
            this.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_first_message_since_the_driver_took_the_last_wakes_it() {
        let inbox = Inbox::default();
        let count = std::sync::Arc::new(Counting::default());
        let waker = futures::task::waker(count.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let wakes = || count.0.load(Ordering::SeqCst);
        let mut arrived = Box::pin(inbox.arrived());
        assert!(arrived.as_mut().poll(&mut cx).is_pending());
        assert!(inbox.send(msg(1)).is_ok());
        assert_eq!(wakes(), 1);
        // Woken already, and not yet taken: no second wake.
        assert!(inbox.send(msg(2)).is_ok());
        assert_eq!(wakes(), 1);
        let mut got = Vec::new();
        inbox.take(&mut got);
        assert_eq!(steps(&got), [1, 2]);
        let mut arrived = Box::pin(inbox.arrived());
        assert!(arrived.as_mut().poll(&mut cx).is_pending());
        assert!(inbox.send(msg(3)).is_ok());
        assert_eq!(wakes(), 2);
    }

    #[test]
    fn senders_on_many_threads_never_leave_the_driver_asleep() {
        const THREADS: usize = 4;
        const EACH: usize = 20_000;
        let inbox = std::sync::Arc::new(Inbox::default());
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let inbox = inbox.clone();
                std::thread::spawn(move || {
                    for _ in 0..EACH {
                        assert!(inbox.send(msg(t)).is_ok());
                    }
                })
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let got = runtime.block_on(async {
            let mut got = Vec::new();
            while got.len() < THREADS * EACH {
                // A lost wake-up leaves the driver asleep for good: fail,
                // rather than hang.
                tokio::time::timeout(std::time::Duration::from_secs(60), inbox.arrived())
                    .await
                    .expect("a message was sent and the driver not woken");
                inbox.take(&mut got);
            }
            got
        });
        for sender in senders {
            sender.join().unwrap();
        }
        let mut per_thread = [0; THREADS];
        for step in steps(&got) {
            per_thread[step] += 1;
        }
        assert_eq!(per_thread, [EACH; THREADS]);
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
