//! The driver's journal: events recorded in a turn, appended as one batch,
//! and the messages steps and calls send through the inbox.

#[allow(clippy::wildcard_imports)]
use super::*;

impl<F> Driver<F>
where
    F: Future<Output = (usize, StepResult)> + Send + 'static,
{
    pub(super) fn record(&mut self, kind: EventKind) {
        // One clock read per batch: its events are all recorded in one turn.
        if self.pending.is_empty() {
            self.batch_at_us = self.started.elapsed().as_micros() as u64;
        }
        self.pending.push(Event {
            execution_id: self.shared.id.clone(),
            seq: self.seq,
            at_us: self.batch_at_us,
            kind,
        });
        self.seq += 1;
    }

    /// Applies pending events to the live view, appends them to the store in
    /// one batch, then publishes them.
    pub(super) async fn flush(&mut self) {
        if self.pending.is_empty() {
            // The messages taken may have made no event: they are as
            // journaled as they will be.
            if !self.journal_broken {
                self.inbox.written();
            }
            return;
        }
        self.shared.apply(&self.pending);
        if !self.journal_broken {
            let store = &self.shared.store;
            let appended = match store.append_now(&self.shared.id, &self.pending) {
                Some(done) => done,
                None => store.append(&self.shared.id, &self.pending).await,
            };
            if let Err(e) = appended {
                tracing::error!(error = %e, "journal append failed; failing the execution");
                self.journal_broken = true;
                if self.failure.is_none() {
                    self.failure = Some(e.into());
                }
                self.shared.cancel.cancel();
                self.cancel_seen = true;
            }
        }
        // Calls whose end this batch holds go on; when it could not be
        // written, they learn that it never will be.
        if self.journal_broken {
            self.inbox.broken();
        } else {
            self.inbox.written();
        }
        let bus = &self.shared.bus;
        if bus.has_subscribers(&self.shared.topic) {
            let events: Vec<Arc<Event>> = self.pending.drain(..).map(Arc::new).collect();
            if let Err(e) = bus.publish(&self.shared.topic, &events).await {
                tracing::warn!(error = %e, "publishing execution events failed");
            }
        }
        self.pending.clear();
    }

    /// Journals what the steps sent, in the order they sent it.
    pub(super) fn read_inbox(&mut self) {
        let mut messages = std::mem::take(&mut self.inbox_buf);
        self.inbox.take(&mut messages);
        for msg in messages.drain(..) {
            self.on_message(msg);
        }
        self.inbox_buf = messages;
    }

    pub(super) fn on_message(&mut self, msg: TaskMsg) {
        let wf = self.wf.clone();
        match msg {
            TaskMsg::Custom {
                step,
                name,
                payload,
            } => {
                self.record(EventKind::Custom {
                    step: wf.plan.id(step).clone(),
                    name,
                    payload,
                });
            }
            TaskMsg::Policy { step, event } => {
                let step_id = wf.plan.id(step).clone();
                if let Some(kind) = policy_event(step_id, wf.plan.agent_of(step), *event) {
                    self.record(kind);
                }
            }
            TaskMsg::Call(kind) => self.record(kind),
            TaskMsg::Refused(start, failed) => {
                self.record(EventKind::CallStarted(start));
                self.record(failed);
            }
        }
    }
}
