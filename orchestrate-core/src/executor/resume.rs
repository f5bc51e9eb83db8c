//! Rebuilding a driver from an execution's journal after its process stopped.

use std::sync::Arc;
use std::time::Duration;

use orchestrate_graph::OnError;
use tokio::time::Instant;

use super::{Driver, Phase};

/// An external decision on an interrupted step.
pub(crate) enum Decision {
    Approve(serde_json::Value),
    Reject(String),
}
use crate::error::Error;
use crate::journal::{EventKind, ExecutionView, SkipReason, StepStatus};

impl<F> Driver<F>
where
    F: std::future::Future<Output = (usize, super::StepResult)> + Send + 'static,
{
    /// Restores the state the journal describes: completed steps keep their
    /// outputs and are never run again; steps that were scheduled or running
    /// when the process stopped are scheduled anew.
    ///
    /// `view` must be the fold of the whole journal and its step ids must be
    /// the plan's (checked by the caller); `last_at_us` is the last event's
    /// timestamp, so that timestamps stay monotonic.
    pub(crate) fn restore(mut self, view: &ExecutionView, last_at_us: u64) -> Self {
        let wf = self.wf.clone();
        self.seq = view.next_seq();
        self.started = Instant::now()
            .checked_sub(Duration::from_micros(last_at_us))
            .unwrap_or_else(Instant::now);
        self.cancel_recorded = view.cancel_requested();
        let mut rerun = Vec::new();
        for (i, step) in view.steps().iter().enumerate() {
            match step.status {
                StepStatus::Succeeded => self.steps[i].output = step.output.clone(),
                StepStatus::Failed => {
                    self.any_failed = true;
                    if wf.plan.steps()[i].policy().on_error == OnError::Fail {
                        // The process stopped between the failure and the end.
                        self.failure.get_or_insert(Error::Failed {
                            execution: self.shared.id.clone(),
                            cause: step.error.clone(),
                        });
                    }
                }
                StepStatus::Skipped | StepStatus::Cancelled => {}
                StepStatus::Scheduled | StepStatus::Running => {
                    rerun.push(step.id.clone());
                    continue;
                }
                StepStatus::Interrupted => {
                    self.steps[i].phase = Phase::Parked;
                    continue;
                }
                StepStatus::Pending => continue,
            }
            self.steps[i].phase = Phase::Done;
            self.unresolved -= 1;
        }
        self.record(EventKind::ExecutionResumed { rerun });
        if self.failure.is_some() || self.cancel_recorded {
            self.shared.cancel.cancel();
            self.cancel_seen = true;
        }
        // Readiness of what is left, from the finished steps.
        let succeeded = |i: usize| view.steps()[i].status == StepStatus::Succeeded;
        for i in 0..wf.plan.len() {
            if self.steps[i].phase == Phase::Done {
                continue;
            }
            let deps = wf.plan.deps(i);
            self.steps[i].remaining = deps
                .iter()
                .filter(|&&d| self.steps[d].phase != Phase::Done)
                .count() as u32;
            self.steps[i].blocked_by = deps
                .iter()
                .copied()
                .find(|&d| self.steps[d].phase == Phase::Done && !succeeded(d));
        }
        for i in 0..wf.plan.len() {
            if self.steps[i].phase != Phase::Waiting || self.steps[i].remaining != 0 {
                continue;
            }
            match self.steps[i].blocked_by {
                Some(b) => self.skip(
                    i,
                    SkipReason::Upstream {
                        step: Arc::clone(wf.plan.id(b)),
                    },
                ),
                None => self.make_ready(i),
            }
        }
        self
    }

    /// Cancels a restored execution before anything runs: it ends
    /// `Cancelled`, every step not finished recorded cancelled.
    pub(crate) fn request_cancel(&mut self) {
        self.shared.cancel.cancel();
        self.cancel_seen = true;
    }

    /// Applies an external decision to interrupted step `i` of a restored
    /// execution: approval makes `value` its output; rejection fails it
    /// (under its `on_error` policy).
    pub(crate) fn decide(&mut self, i: usize, decision: Decision) {
        let wf = self.wf.clone();
        let step = wf.plan.id(i).clone();
        self.steps[i].phase = Phase::Running;
        // `succeed` and `step_failed` release a running slot.
        self.running += 1;
        self.agent_running[wf.slot(i)] += 1;
        match decision {
            Decision::Approve(value) => {
                let value = Arc::new(value);
                self.record(EventKind::StepDecided {
                    step,
                    approved: true,
                    value: Some(value.clone()),
                    reason: None,
                });
                self.succeed(i, Arc::unwrap_or_clone(value), 1, None);
            }
            Decision::Reject(reason) => {
                self.record(EventKind::StepDecided {
                    step: step.clone(),
                    approved: false,
                    value: None,
                    reason: Some(reason.as_str().into()),
                });
                let error = Error::Agent {
                    step,
                    agent: wf.plan.agent_of(i).clone(),
                    attempts: 1,
                    source: crate::AgentError::permanent(format!("rejected: {reason}")),
                };
                self.step_failed(i, error, 1);
            }
        }
    }

    /// Continues a restored execution to its end.
    /// The restored execution's task (not an `async fn`: see `run`).
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn run_restored(mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        async move { self.drive().await }
    }
}
