//! What a step's end does: its output recorded, its dependents made ready
//! or skipped, a failure handled by its `on_error` policy.

#[allow(clippy::wildcard_imports)]
use super::*;

impl<F> Driver<F>
where
    F: Future<Output = (usize, StepResult)> + Send + 'static,
{
    pub(super) fn parked(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.phase == Phase::Parked)
            .count()
    }

    pub(super) fn mark_done(&mut self, i: usize) {
        if self.steps[i].phase == Phase::Running {
            self.running -= 1;
            self.agent_running[self.wf.slot(i)] -= 1;
        }
        self.steps[i].phase = Phase::Done;
        self.unresolved -= 1;
    }

    pub(super) fn on_joined(&mut self, i: usize, result: StepResult) {
        // What the step sent before it returned is journaled before its
        // result, though both may arrive in one turn.
        self.read_inbox();
        match result {
            StepResult::Success { output, attempts } => self.succeed(i, output, attempts, None),
            StepResult::Failure { .. } if self.cancelling => self.cancel_step(i),
            StepResult::Failure { error, attempts } => self.step_failed(i, error, attempts),
            StepResult::Panicked { .. } if self.cancelling => self.cancel_step(i),
            StepResult::Panicked { message } => {
                let error = Error::Panicked {
                    step: self.wf.plan.id(i).clone(),
                    agent: self.wf.plan.agent_of(i).clone(),
                    message,
                };
                self.step_failed(i, error, 1);
            }
            StepResult::Interrupted { .. } if self.cancelling => self.cancel_step(i),
            StepResult::Interrupted { payload } => {
                let step = self.wf.plan.id(i).clone();
                tracing::info!(%step, "step waits for an external decision");
                self.record(EventKind::StepInterrupted { step, payload });
                self.running -= 1;
                self.agent_running[self.wf.slot(i)] -= 1;
                self.steps[i].phase = Phase::Parked;
            }
        }
    }

    pub(super) fn succeed(
        &mut self,
        i: usize,
        output: Value,
        attempts: u32,
        fallback_from: Option<Box<ErrorInfo>>,
    ) {
        let wf = self.wf.clone();
        let output = Arc::new(output);
        self.record(EventKind::StepSucceeded {
            step: wf.plan.id(i).clone(),
            output: output.clone(),
            attempts,
            fallback_from,
        });
        self.steps[i].output = Some(output);
        self.mark_done(i);
        for &d in wf.plan.dependents(i) {
            self.steps[d].remaining -= 1;
            if self.steps[d].remaining == 0 && !self.cancelling {
                match self.steps[d].blocked_by {
                    Some(b) => self.skip(d, upstream(&wf, b)),
                    None => self.make_ready(d),
                }
            }
        }
    }

    pub(super) fn step_failed(&mut self, i: usize, error: Error, attempts: u32) {
        let wf = self.wf.clone();
        let step = &wf.plan.steps()[i];
        if let OnError::Fallback(value) = &step.policy().on_error {
            tracing::info!(step = %wf.plan.id(i), error = %error, "step failed; using its fallback value");
            self.succeed(i, value.clone(), attempts, Some(Box::new(error.info())));
            return;
        }
        self.record(EventKind::StepFailed {
            step: wf.plan.id(i).clone(),
            error: Box::new(error.info()),
            attempts,
        });
        self.mark_done(i);
        self.block_dependents(i);
        if step.policy().on_error == OnError::Fail {
            self.failure.get_or_insert(error);
            self.shared.cancel.cancel();
            self.cancel_seen = true;
        } else {
            self.any_failed = true;
        }
    }

    /// Skips `i`, then everything downstream that can no longer run.
    pub(super) fn skip(&mut self, i: usize, reason: SkipReason) {
        self.record_skip(i, reason);
        self.block_dependents(i);
    }

    pub(super) fn record_skip(&mut self, i: usize, reason: SkipReason) {
        let step = self.wf.plan.id(i).clone();
        self.record(EventKind::StepSkipped { step, reason });
        self.mark_done(i);
    }

    pub(super) fn block_dependents(&mut self, i: usize) {
        let wf = self.wf.clone();
        let mut stack = vec![i];
        while let Some(s) = stack.pop() {
            for &d in wf.plan.dependents(s) {
                self.steps[d].blocked_by.get_or_insert(s);
                self.steps[d].remaining -= 1;
                if self.steps[d].remaining == 0 && self.steps[d].phase == Phase::Waiting {
                    self.record_skip(d, upstream(&wf, self.steps[d].blocked_by.unwrap_or(s)));
                    stack.push(d);
                }
            }
        }
    }
}
