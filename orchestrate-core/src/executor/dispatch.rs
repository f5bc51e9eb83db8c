//! Starting steps: readiness, the concurrency limits, and the journal batch
//! written before any step it made ready starts.

#[allow(clippy::wildcard_imports)]
use super::*;

impl<F> Driver<F>
where
    F: Future<Output = (usize, StepResult)> + Send + 'static,
{
    pub(super) fn make_ready(&mut self, i: usize) {
        self.steps[i].phase = Phase::Ready;
        self.ready.push_back(i);
        self.fresh.push(i);
    }

    /// Journals the steps made ready since the last turn that are still
    /// waiting for a slot.
    pub(super) fn record_waiting(&mut self) {
        let mut fresh = std::mem::take(&mut self.fresh);
        for i in fresh.drain(..) {
            if self.steps[i].phase == Phase::Ready {
                let step = self.wf.plan.id(i).clone();
                self.record(EventKind::StepScheduled { step });
            }
        }
        self.fresh = fresh;
    }

    /// Oldest ready step whose agent has a free slot (FIFO among the eligible).
    pub(super) fn pop_ready(&mut self) -> Option<usize> {
        if !self.per_agent_limits {
            return self.ready.pop_front();
        }
        let pos = self.ready.iter().position(|&i| {
            let slot = self.wf.slot(i);
            let limit = self.wf.slot_limits[slot];
            limit == 0 || self.agent_running[slot] < limit
        })?;
        self.ready.remove(pos)
    }

    /// Starts ready steps up to the limits. The journal batch (with the
    /// outputs these steps depend on) is written before any of them starts.
    ///
    /// An inline step is polled as it starts, and may finish there: its
    /// successors are then ready, and start in another round, after a batch
    /// holding the output they read.
    pub(super) async fn dispatch(&mut self) {
        while self.dispatch_round().await {
            if self.shared.cancel.is_cancelled() {
                self.cancel_seen = true;
                return;
            }
            // A long run of steps that never wait would otherwise hold the
            // worker for as long as it lasts.
            tokio::task::consume_budget().await;
        }
    }

    /// One round of [`dispatch`](Self::dispatch): whether a step finished as
    /// it started and more may be ready.
    pub(super) async fn dispatch_round(&mut self) -> bool {
        let wf = self.wf.clone();
        // Reused across turns: one allocation per execution, not per step.
        let mut starts = std::mem::take(&mut self.start_buf);
        while self.running < self.limits.max_concurrency && !self.cancel_seen {
            let Some(i) = self.pop_ready() else { break };
            let step = &wf.plan.steps()[i];
            let scope = RunScope {
                input: &self.input,
                steps: &self.steps,
            };
            if let Some(condition) = step.condition() {
                if !condition.evaluate(&scope) {
                    self.skip(i, SkipReason::Condition);
                    continue;
                }
            }
            match step.input().evaluate(wf.plan.id(i), &scope) {
                Ok(input) => {
                    self.steps[i].phase = Phase::Running;
                    self.running += 1;
                    self.agent_running[wf.slot(i)] += 1;
                    self.record(EventKind::StepStarted {
                        step: wf.plan.id(i).clone(),
                        agent: wf.plan.agent_of(i).clone(),
                    });
                    starts.push((i, input));
                }
                Err(e) => self.step_failed(i, Error::Interpolation(e), 0),
            }
        }
        self.record_waiting();
        self.flush().await;
        let mut finished = false;
        for (i, input) in starts.drain(..) {
            if self.cancel_seen {
                // A failure in this same turn cancelled the execution: the
                // step never starts.
                self.cancel_step(i);
            } else if let Some((i, result)) = self.start_step(i, input) {
                self.on_joined(i, result);
                finished = true;
            }
        }
        self.start_buf = starts;
        finished && self.unresolved > 0 && !self.cancel_seen
    }

    /// Starts step `i`; its result if it finished at once.
    pub(super) fn start_step(&mut self, i: usize, input: Value) -> Option<(usize, StepResult)> {
        let step_id = self.wf.plan.id(i);
        let ctx = Context::new(self.scope.clone(), step_id.clone(), i);
        let input = if self.wf.policies[i].retry_config().max_attempts > 1 {
            StepInput::retryable(input, &self.wf, i, &self.steps)
        } else {
            StepInput::once(input)
        };
        let span = crate::spans::traced(|| {
            tracing::info_span!(
                "step",
                step = %step_id,
                agent = %self.wf.plan.agent_of(i),
                correlation_id = %self.correlation_id,
            )
        });
        let step = (self.make_step)(StepArgs {
            index: i,
            wf: self.wf.clone(),
            ctx,
            input,
            span,
        });
        self.tasks.start(step)
    }
}
