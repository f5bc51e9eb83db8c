//! Cancellation asked for by another process.
//!
//! An execution's journal has one writer, the process that runs it, so a
//! second process cannot end it by writing there. It leaves a request in
//! the store's mailbox [`CANCEL_MAILBOX`] instead; every orchestrator that
//! [watches](super::OrchestratorBuilder::watch_cancel_requests) looks at
//! that mailbox while it runs executions, and the one running the
//! requested execution cancels it as [`Execution::cancel`] does and marks
//! the request processed. One query per look, however many executions
//! run, and none while none runs.
//!
//! A request for an execution no process runs stays until one takes the
//! execution up ([`resume`](super::Orchestrator::resume)), which then ends
//! it cancelled without running anything, or until
//! [`cancel`](super::Orchestrator::cancel) ends it. One that arrives too
//! late for the look of the process running it is settled there when the
//! execution's run ends: moot if it finished, carried out if it parked.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Inner, Orchestrator, Restart};
use crate::error::Error;
use crate::execution::{Execution, Shared};
use crate::ids::ExecutionId;
use crate::journal::ExecutionStatus;
use crate::store::{Message, MessageQuery, MessageStatus, NewMessage, Store, StoreError};
use crate::workflow::Workflow;

/// The mailbox that holds cancellation requests; each message's thread is
/// the execution's id.
pub const CANCEL_MAILBOX: &str = "orchestrate/cancel";

/// What [`Orchestrator::request_cancel`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum CancelRequest {
    /// The execution ran or was parked here, and is being cancelled here:
    /// its handle tells when it has ended.
    Here(Execution),
    /// The execution had already finished; nothing was asked.
    Finished(Execution),
    /// The execution is not running in this process: the request is kept
    /// in the store for the process that runs it, or will.
    Requested,
}

impl Orchestrator {
    /// Asks for execution `id` to be cancelled, wherever it runs. One
    /// running here is cancelled at once, as [`Execution::cancel`] does; a
    /// parked one is ended here, as [`cancel`](Self::cancel) does; for any
    /// other unfinished one a request is kept in the store, which the
    /// orchestrator running it takes within its
    /// [watch interval](super::OrchestratorBuilder::watch_cancel_requests).
    ///
    /// Whether a process takes the request cannot be told from here: one
    /// whose process stopped is not running anywhere. A caller that must
    /// see the execution end waits for its journal to say so, and after a
    /// while of nothing may take it over with [`cancel`](Self::cancel).
    ///
    /// # Errors
    ///
    /// [`Error::ExecutionNotFound`], [`Error::UnknownWorkflow`] for a
    /// parked execution whose workflow is not registered, store errors.
    pub async fn request_cancel(&self, id: &ExecutionId) -> Result<CancelRequest, Error> {
        let (_, view) = match self.load_unfinished(id).await? {
            Ok(loaded) => loaded,
            Err(execution) if execution.status().is_terminal() => {
                return Ok(CancelRequest::Finished(execution))
            }
            Err(running_here) => {
                running_here.cancel();
                return Ok(CancelRequest::Here(running_here));
            }
        };
        if view.status() == ExecutionStatus::Parked {
            return self.cancel(id).await.map(CancelRequest::Here);
        }
        let request = NewMessage::new(CANCEL_MAILBOX, json!({ "execution": id.as_str() }))
            .in_thread(id.as_str());
        self.inner.store.send_message(request).await?;
        // It may have ended between the look above and the request, and
        // settled its requests before this one came: then nobody would.
        let now = self.execution(id).await?;
        if now.status().is_terminal() {
            self.settle_cancel_requests(id).await?;
            return Ok(CancelRequest::Finished(now));
        }
        Ok(CancelRequest::Requested)
    }

    /// Whether a request to cancel `id` waits for a process to take it:
    /// `false` once the process running the execution has (or once the
    /// execution was cancelled here).
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn cancel_pending(&self, id: &ExecutionId) -> Result<bool, Error> {
        let pending = self
            .inner
            .store
            .list_messages(&pending_for(Some(id)))
            .await?;
        Ok(!pending.is_empty())
    }

    /// Spawns the driver of execution `shared`; when this orchestrator
    /// watches for requests, starts the watch, and settles the requests
    /// for the execution once its driver is done.
    pub(super) fn spawn_driver(
        &self,
        shared: &Arc<Shared>,
        workflow: &Workflow,
        driver: impl Future<Output = ()> + Send + 'static,
    ) {
        let Some(every) = self.inner.limits.cancel_requests else {
            self.inner.tracker.spawn(driver);
            return;
        };
        self.watch(every);
        let orchestrator = self.clone();
        let execution = Execution::new(shared.clone());
        // The workflow it ran, registered or only bound.
        let workflow = workflow.clone();
        self.inner.tracker.spawn(async move {
            driver.await;
            if let Err(e) = orchestrator.settle_after_run(&execution, &workflow).await {
                tracing::warn!(
                    execution_id = %execution.id(),
                    error = %e,
                    "could not settle the execution's cancellation requests"
                );
            }
        });
    }

    /// A request that arrived while `execution` ran but was not taken in
    /// time: the execution ended, and it is moot; or it parked, and it is
    /// cancelled now rather than when a decision wakes it up.
    async fn settle_after_run(
        &self,
        execution: &Execution,
        workflow: &Workflow,
    ) -> Result<(), Error> {
        let id = execution.id();
        if !self.cancel_pending(id).await? {
            return Ok(());
        }
        if execution.status() != ExecutionStatus::Parked {
            self.settle_cancel_requests(id).await?;
            return Ok(());
        }
        // Parked when it left here; as the store has it now, since another
        // process may have taken it up with a decision meanwhile (and that
        // one takes the request, if it watches).
        let (events, view) = match self.load_unfinished(id).await? {
            Ok(loaded) => loaded,
            Err(_) => return Ok(()),
        };
        if view.status() != ExecutionStatus::Parked {
            return Ok(());
        }
        tracing::info!(execution_id = %id, "parked execution cancelled at another process's request");
        self.start_restored(workflow, id, &events, view, Restart::Cancel)?;
        self.settle_cancel_requests(id).await?;
        Ok(())
    }

    /// Starts this orchestrator's look at the cancellation mailbox, once.
    fn watch(&self, every: Duration) {
        let watching = &self.inner.watching_cancel_requests;
        if watching.swap(true, Ordering::AcqRel) {
            return;
        }
        // Holds no strong reference: a dropped orchestrator ends the watch
        // at its next look.
        let inner = Arc::downgrade(&self.inner);
        let shutdown = self.inner.shutdown.clone();
        self.inner.tracker.spawn(async move {
            // Dropped with its runtime, the watch lets the next execution
            // on another runtime start it again.
            let _unset = Unset(inner.clone());
            watch(inner, shutdown, every.max(MIN_LOOK)).await;
        });
    }

    /// Marks every pending request to cancel `id` processed: it is being
    /// cancelled here.
    pub(super) async fn settle_cancel_requests(&self, id: &ExecutionId) -> Result<(), StoreError> {
        let store = &self.inner.store;
        for request in store.list_messages(&pending_for(Some(id))).await? {
            store.ack_message(request.id).await?;
        }
        Ok(())
    }
}

/// The pending requests to cancel `id`, or every pending request.
fn pending_for(id: Option<&ExecutionId>) -> MessageQuery {
    MessageQuery {
        recipient: Some(CANCEL_MAILBOX.to_owned()),
        status: Some(MessageStatus::Pending),
        thread: id.map(|id| id.as_str().to_owned()),
    }
}

/// Looks closer together than this are taken as this.
const MIN_LOOK: Duration = Duration::from_millis(10);

/// Clears the orchestrator's watching flag when its watch ends.
struct Unset(Weak<Inner>);

impl Drop for Unset {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner
                .watching_cancel_requests
                .store(false, Ordering::Release);
        }
    }
}

async fn watch(inner: Weak<Inner>, shutdown: CancellationToken, every: Duration) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        if let Err(e) = take_requests(&inner).await {
            // The next look tries again; a store that stays down shows in
            // the executions' own writes.
            tracing::warn!(error = %e, "could not read the cancellation requests");
        }
    }
}

/// Cancels the executions running here that a pending request names, and
/// marks those requests processed.
async fn take_requests(inner: &Inner) -> Result<(), StoreError> {
    let idle = inner
        .running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_empty();
    if idle {
        return Ok(());
    }
    for request in inner.store.list_messages(&pending_for(None)).await? {
        let Some(id) = requested_execution(&request) else {
            // Not a request this library wrote: left for whoever did.
            continue;
        };
        let running = inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&ExecutionId::from(id.to_owned()))
            .cloned();
        if let Some(shared) = running {
            tracing::info!(execution_id = id, "cancelled at another process's request");
            shared.cancel.cancel();
            inner.store.ack_message(request.id).await?;
        }
    }
    Ok(())
}

/// The execution a request names: its thread, which is what
/// [`Orchestrator::cancel_pending`] and the settling look up, and its
/// payload, which must agree.
fn requested_execution(request: &Message) -> Option<&str> {
    let thread = request.thread.as_deref()?;
    let named = request.payload.get("execution")?.as_str()?;
    (thread == named).then_some(thread)
}
