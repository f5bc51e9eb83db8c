//! How an execution ends: cancellation with its grace period, the final
//! status, or parking until a decision arrives.

#[allow(clippy::wildcard_imports)]
use super::*;

impl<F> Driver<F>
where
    F: Future<Output = (usize, StepResult)> + Send + 'static,
{
    pub(super) fn cancel_step(&mut self, i: usize) {
        let step = self.wf.plan.id(i).clone();
        self.record(EventKind::StepCancelled { step });
        self.mark_done(i);
    }

    /// Gives running attempts the grace period, then drops them; every step
    /// not finished by then is recorded `Cancelled`.
    pub(super) async fn cancel_running(&mut self) {
        self.cancelling = true;
        if self.failure.is_none() && !self.cancel_recorded {
            self.record(EventKind::CancelRequested);
        }
        self.flush().await;
        let deadline = Instant::now() + self.limits.cancel_grace;
        while self.running > 0 {
            tokio::select! {
                biased;
                () = self.inbox.arrived() => self.read_inbox(),
                Some((i, result)) = self.tasks.next() => self.on_joined(i, result),
                _ = tokio::time::sleep_until(deadline) => break,
            }
            self.flush().await;
        }
        self.tasks.abort_all();
        // Custom events sent before the abort still belong in the journal.
        self.read_inbox();
        for i in 0..self.steps.len() {
            if self.steps[i].phase != Phase::Done {
                self.cancel_step(i);
            }
        }
        self.ready.clear();
    }

    pub(super) async fn finish(&mut self) {
        if self.unresolved > 0 && !self.cancelling && self.failure.is_none() {
            return self.park().await;
        }
        let (status, result_error) = match (&self.failure, self.cancelling) {
            (Some(e), _) => (ExecutionStatus::Failed, Some(e.clone())),
            (None, true) => (
                ExecutionStatus::Cancelled,
                Some(Error::Cancelled { step: None }),
            ),
            (None, false) if self.any_failed => (ExecutionStatus::PartiallySucceeded, None),
            (None, false) => (ExecutionStatus::Succeeded, None),
        };
        self.record(EventKind::ExecutionFinished {
            status,
            error: result_error.as_ref().map(|e| Box::new(e.info())),
        });
        self.flush().await;
        let outcome = match result_error {
            Some(e) => Err(e),
            None => Ok(self.shared.view_arc()),
        };
        self.conclude(outcome);
    }

    /// Every step left waits for a decision: journal that, and stop. A
    /// decision resumes the execution from the store, in this process or
    /// another.
    pub(super) async fn park(&mut self) {
        let steps: Vec<Arc<str>> = (0..self.steps.len())
            .filter(|&i| self.steps[i].phase == Phase::Parked)
            .map(|i| self.wf.plan.id(i).clone())
            .collect();
        let names = steps.iter().map(|s| s.to_string()).collect();
        self.record(EventKind::ExecutionParked { steps });
        self.flush().await;
        let parked = Error::Parked {
            execution: self.shared.id.clone(),
            steps: names,
        };
        self.conclude(Err(parked));
    }
}
