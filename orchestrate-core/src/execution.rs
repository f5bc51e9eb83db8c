//! The [`Execution`] handle.

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures::stream::{BoxStream, StreamExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::bus::{execution_topic, EventBus, Subscription};
use crate::error::Error;
use crate::ids::ExecutionId;
use crate::journal::{
    export_json, Event, EventKind, ExecutionStatus, ExecutionView, ExportOptions,
};
use crate::store::{Store, StoreError};

/// How an execution ended. The view is shared with the live one, which no
/// event changes after the end: no copy is made until a waiter takes one.
type Outcome = Option<Result<Arc<ExecutionView>, Error>>;

/// State shared by an execution's driver and all its handles.
pub(crate) struct Shared {
    pub(crate) id: ExecutionId,
    pub(crate) topic: String,
    /// The live projection; only the driver applies events to it.
    pub(crate) view: Mutex<Arc<ExecutionView>>,
    /// How the execution ended, once it has; `ended` wakes the waiters.
    /// (A `watch` channel did this with several `Notify`s per execution.)
    outcome: Mutex<Outcome>,
    ended: Notify,
    pub(crate) cancel: CancellationToken,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bus: Arc<dyn EventBus>,
    /// The running calls, set by the driver that runs the execution here.
    pub(crate) calls: std::sync::OnceLock<Arc<dyn CallControl>>,
    /// Rebuilt from the store: no driver runs it in this process.
    from_store: bool,
}

/// The executions running in this process, by id.
pub(crate) type Registry =
    Arc<std::sync::Mutex<crate::fast_map::FastMap<ExecutionId, Arc<Shared>>>>;

/// How an execution running here stops one of its calls: the executor
/// implements it, so that this module never names the executor.
pub(crate) trait CallControl: Send + Sync {
    /// Terminates call `call` and its subtree; whether it was running.
    fn terminate(&self, call: &str) -> bool;
}

impl Shared {
    pub(crate) fn new(
        id: ExecutionId,
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            topic: execution_topic(&id),
            id,
            view: Mutex::new(Arc::default()),
            outcome: Mutex::new(None),
            ended: Notify::new(),
            cancel,
            store,
            bus,
            calls: std::sync::OnceLock::new(),
            from_store: false,
        }
    }

    /// A handle on an execution known only from its journal.
    pub(crate) fn from_journal(
        id: ExecutionId,
        view: ExecutionView,
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
    ) -> Self {
        let outcome = match view.status() {
            ExecutionStatus::Succeeded | ExecutionStatus::PartiallySucceeded => Ok(()),
            ExecutionStatus::Cancelled => Err(Error::Cancelled { step: None }),
            ExecutionStatus::Failed => Err(Error::Failed {
                execution: id.clone(),
                cause: view.error().cloned(),
            }),
            ExecutionStatus::Parked => Err(Error::Parked {
                execution: id.clone(),
                steps: parked_steps(&view),
            }),
            ExecutionStatus::Pending | ExecutionStatus::Running => Err(Error::Orphaned(id.clone())),
        };
        let mut shared = Self::new(id, store, bus, CancellationToken::new());
        shared.from_store = true;
        shared.set_view(view);
        shared.conclude(outcome.map(|()| shared.view_arc()));
        shared
    }

    /// Records how the execution ended and wakes everyone waiting.
    pub(crate) fn conclude(&self, outcome: Result<Arc<ExecutionView>, Error>) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        self.ended.notify_waiters();
    }

    /// Whether the execution has ended.
    pub(crate) fn has_ended(&self) -> bool {
        self.outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// How the execution ended, once it has.
    pub(crate) async fn outcome(&self) -> Result<ExecutionView, Error> {
        self.shared_outcome()
            .await
            .map(|view| ExecutionView::clone(&view))
    }

    /// How the execution ended, the view still shared.
    async fn shared_outcome(&self) -> Result<Arc<ExecutionView>, Error> {
        loop {
            let ended = self.ended.notified();
            let mut ended = std::pin::pin!(ended);
            // Registered before looking, so that an end between the look
            // and the wait still wakes this waiter.
            ended.as_mut().enable();
            if let Some(outcome) = &*self.outcome.lock().unwrap_or_else(PoisonError::into_inner) {
                return outcome.clone();
            }
            ended.await;
        }
    }

    /// A copy of the live view.
    pub(crate) fn view(&self) -> ExecutionView {
        ExecutionView::clone(&self.view_arc())
    }

    /// The live view itself, shared.
    pub(crate) fn view_arc(&self) -> Arc<ExecutionView> {
        self.view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_view(&self, view: ExecutionView) {
        *self.view.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    }

    /// Applies `events` to the live view.
    pub(crate) fn apply(&self, events: &[Event]) {
        let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        // Unshared while the execution runs: nobody keeps the Arc but the
        // outcome, made at the end.
        let view = Arc::make_mut(&mut view);
        for e in events {
            view.apply(e);
        }
    }
}

/// The steps of `view` waiting for a decision.
pub(crate) fn parked_steps(view: &ExecutionView) -> Vec<String> {
    view.steps()
        .iter()
        .filter(|s| s.status == crate::journal::StepStatus::Interrupted)
        .map(|s| s.id.to_string())
        .collect()
}

/// A handle on one execution: its id and status, its events, cancellation,
/// and (by awaiting it) its result.
///
/// Awaiting gives the final [`ExecutionView`] with every step's output when
/// the execution succeeded (also when some steps failed under
/// `on_error: continue`), and the error that ended it otherwise; the view
/// stays readable through [`view`](Self::view) either way.
#[derive(Clone)]
pub struct Execution {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Execution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Execution")
            .field("id", &self.shared.id)
            .field("status", &self.status())
            .finish()
    }
}

impl Execution {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The execution id.
    pub fn id(&self) -> &ExecutionId {
        &self.shared.id
    }

    /// The current status, projected from the journal.
    pub fn status(&self) -> ExecutionStatus {
        self.shared
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .status()
    }

    /// A snapshot of the status and per-step table.
    pub fn view(&self) -> ExecutionView {
        self.shared.view()
    }

    /// Requests cancellation: running attempts see their token cancelled and
    /// get the orchestrator's grace period to return; then they are dropped,
    /// and the execution ends [`Cancelled`](ExecutionStatus::Cancelled).
    pub fn cancel(&self) {
        self.shared.cancel.cancel();
    }

    /// Waits for the end of the execution.
    ///
    /// # Errors
    ///
    /// The error that failed the execution, or [`Error::Cancelled`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future does not affect the execution.
    pub async fn wait(&self) -> Result<ExecutionView, Error> {
        self.shared.outcome().await
    }

    /// Every event of the execution from the first, then live ones until it
    /// finishes. The stream is complete and in order: events a slow reader
    /// missed on the bus are read back from the store.
    ///
    /// # Errors
    ///
    /// Bus errors while subscribing.
    pub async fn events(&self) -> Result<BoxStream<'static, Arc<Event>>, Error> {
        let sub = self.shared.bus.subscribe(&self.shared.topic).await?;
        // Run by another process, its events reach this process through
        // the store only, unless the bus is shared.
        let poll = (self.shared.from_store
            && !self.shared.bus.crosses_processes()
            && !self.status().is_terminal())
        .then_some(STORE_POLL);
        let state = EventsState {
            poll,
            sub,
            store: self.shared.store.clone(),
            id: self.shared.id.clone(),
            backlog: VecDeque::new(),
            next_seq: 0,
            finished: false,
            loaded_once: false,
        };
        Ok(futures::stream::unfold(state, EventsState::next).boxed())
    }

    /// The journal as JSON, with the caps and redaction of `options`.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn export_json(&self, options: &ExportOptions) -> Result<String, Error> {
        let events = match self.shared.store.load(&self.shared.id, 0).await {
            Ok(events) => events,
            Err(StoreError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(export_json(&events, options))
    }
}

impl IntoFuture for Execution {
    type Output = Result<ExecutionView, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let view = self.shared.shared_outcome().await?;
            // The last handle on an ended execution owns its view: once
            // the handle is gone, the view is taken rather than copied.
            drop(self);
            Ok(Arc::unwrap_or_clone(view))
        })
    }
}

/// How often the event stream of an execution another process runs reads
/// the store, over a bus that keeps to its process.
const STORE_POLL: std::time::Duration = std::time::Duration::from_millis(200);

struct EventsState {
    /// Reads the store this often besides listening to the bus.
    poll: Option<std::time::Duration>,
    sub: Subscription,
    store: Arc<dyn Store>,
    id: ExecutionId,
    backlog: VecDeque<Arc<Event>>,
    next_seq: u64,
    finished: bool,
    loaded_once: bool,
}

impl EventsState {
    async fn fill_from_store(&mut self) {
        self.loaded_once = true;
        if let Ok(events) = self.store.load(&self.id, self.next_seq).await {
            self.backlog.extend(events.into_iter().map(Arc::new));
        }
    }

    async fn next(mut self) -> Option<(Arc<Event>, Self)> {
        if !self.loaded_once {
            // Subscribed first, then read the stored prefix: nothing falls in between.
            self.fill_from_store().await;
        }
        loop {
            while let Some(e) = self.backlog.pop_front() {
                if e.seq < self.next_seq {
                    continue;
                }
                if e.seq > self.next_seq {
                    // A gap: the bus dropped events; read them from the store.
                    self.backlog.clear();
                    self.fill_from_store().await;
                    if self.backlog.front().is_none_or(|f| f.seq != self.next_seq) {
                        return None;
                    }
                    continue;
                }
                self.next_seq = e.seq + 1;
                if matches!(e.kind, EventKind::ExecutionFinished { .. }) {
                    self.finished = true;
                }
                return Some((e, self));
            }
            if self.finished {
                return None;
            }
            let received = match self.poll {
                None => self.sub.recv().await,
                Some(every) => tokio::select! {
                    received = self.sub.recv() => received,
                    () = tokio::time::sleep(every) => {
                        self.fill_from_store().await;
                        continue;
                    }
                },
            };
            match received {
                Some(e) => self.backlog.push_back(e),
                None => {
                    self.fill_from_store().await;
                    if self.backlog.is_empty() {
                        return None;
                    }
                }
            }
        }
    }
}
