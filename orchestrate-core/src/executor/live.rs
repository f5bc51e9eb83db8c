//! What an execution's calls share once it makes one: the calls running
//! here (and those terminated), and the budgets. Made at the first call or
//! budget, so that an execution that uses neither pays nothing for them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::context::CallFrame;
use crate::fast_map::FastMap;

/// The calls of one execution that are running, by id, and those
/// terminated: what [`Orchestrator::terminate`](crate::Orchestrator::terminate)
/// reaches.
pub(crate) struct LiveCalls {
    running: std::sync::Mutex<FastMap<Arc<str>, Arc<CallFrame>>>,
    terminated: std::sync::Mutex<Vec<Arc<str>>>,
    /// Whether `terminated` holds a call: set and read under the running
    /// calls' lock, so that an execution that terminates nothing does not
    /// take a second lock at each call's end.
    any_terminated: AtomicBool,
    /// The execution's token, whose children the steps' calls' are.
    execution: CancellationToken,
}

impl LiveCalls {
    pub(super) fn new(execution: CancellationToken) -> Self {
        Self {
            running: std::sync::Mutex::default(),
            terminated: std::sync::Mutex::default(),
            any_terminated: AtomicBool::new(false),
            execution,
        }
    }

    pub(super) fn lock_running(
        &self,
    ) -> std::sync::MutexGuard<'_, FastMap<Arc<str>, Arc<CallFrame>>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes ending call `call` off the running calls, and tells whether
    /// it was terminated (itself or a call above it). Both under the
    /// running calls' lock, which `terminate` marks a call under: a call
    /// terminated meanwhile is either no longer found by `terminate`, or
    /// found terminated here.
    pub(super) fn leave(&self, call: &str) -> bool {
        let mut running = self.lock_running();
        running.remove(call);
        // Set under this lock: no second lock when nothing was terminated.
        if !self.any_terminated.load(Ordering::Relaxed) {
            return false;
        }
        let terminated = self
            .terminated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        terminated.iter().any(|t| {
            call.strip_prefix(&**t)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '@']))
        })
    }
}

impl crate::execution::CallControl for LiveCalls {
    fn terminate(&self, call: &str) -> bool {
        // Marked terminated under the running calls' lock: a call that
        // ends meanwhile either is no longer found here, or finds itself
        // terminated when it checks after leaving.
        let running = self.lock_running();
        let Some(frame) = running.get(call).cloned() else {
            return false;
        };
        self.terminated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(call.into());
        self.any_terminated.store(true, Ordering::Relaxed);
        drop(running);
        // Its calls' tokens are children of its own (made now, if it had
        // none yet: its calls' are then made from it).
        frame.token(&self.execution).cancel();
        true
    }
}

/// The running calls and the budgets of one execution.
pub(crate) struct CallState {
    pub(crate) live: LiveCalls,
    pub(crate) budgets: std::sync::Mutex<crate::budget::BudgetLedger>,
}

impl CallState {
    pub(crate) fn budgets(&self) -> std::sync::MutexGuard<'_, crate::budget::BudgetLedger> {
        self.budgets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl crate::execution::CallControl for CallState {
    fn terminate(&self, call: &str) -> bool {
        crate::execution::CallControl::terminate(&self.live, call)
    }
}
