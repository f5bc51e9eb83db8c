//! The in-memory store: fast, bounded, lost with the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::clock::{expiry_ms, Clock, TokioClock};
use super::message::{FetchOptions, Message, MessageQuery, MessageStatus, NewMessage};
use super::{
    check_batch, check_value, ExecutionQuery, ExecutionSummary, Problem, RebuildReport, Store,
    StoreError, VerifyReport,
};
use crate::fast_map::FastMap;
use crate::ids::ExecutionId;
use crate::journal::{Event, EventKind};

/// Limits of a [`MemoryStore`].
#[derive(Clone, Debug)]
pub struct MemoryStoreConfig {
    /// Finished executions kept; the oldest finished journal is dropped past
    /// this (default 10,000). Running executions are never dropped.
    pub max_finished_executions: usize,
    /// The clock key-value expiry is measured against (default
    /// [`TokioClock`], so paused tokio time moves it).
    pub clock: Arc<dyn Clock>,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self {
            max_finished_executions: 10_000,
            clock: Arc::new(TokioClock::new()),
        }
    }
}

/// An event as a journal keeps it: its execution is the journal's and its
/// sequence number its position, so neither is stored again (56 bytes an
/// event instead of 80, and no reference count to take per event).
struct Entry {
    at_us: u64,
    kind: EventKind,
}

impl Entry {
    fn event(&self, execution: &ExecutionId, seq: usize) -> Event {
        Event {
            execution_id: execution.clone(),
            seq: seq as u64,
            at_us: self.at_us,
            kind: self.kind.clone(),
        }
    }
}

type Journal = Arc<Mutex<Vec<Entry>>>;

struct KvEntry {
    value: Value,
    expires_ms: Option<u64>,
}

impl KvEntry {
    fn live(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|t| t > now_ms)
    }
}

#[derive(Default)]
struct Kv {
    entries: HashMap<String, KvEntry>,
    writes_since_sweep: usize,
}

impl Kv {
    fn put(&mut self, key: &str, value: Value, ttl: Option<Duration>, now: u64) {
        self.writes_since_sweep += 1;
        // Expired keys are dropped on read; a periodic sweep bounds the ones
        // nobody reads again.
        if self.writes_since_sweep >= 1024 {
            self.writes_since_sweep = 0;
            self.entries.retain(|_, e| e.live(now));
        }
        self.entries.insert(
            key.to_owned(),
            KvEntry {
                value,
                expires_ms: expiry_ms(now, ttl),
            },
        );
    }
}

/// Processed messages kept before the oldest are dropped.
const KEEP_PROCESSED: usize = 10_000;

#[derive(Default)]
struct Mailboxes {
    next_id: i64,
    messages: std::collections::BTreeMap<i64, (Message, Option<u64>)>,
    processed: VecDeque<i64>,
}

/// A [`Store`] in process memory: the default of the orchestrator and the
/// reference for the conformance suite. Journals of finished executions are
/// kept up to [`MemoryStoreConfig::max_finished_executions`].
///
/// # Examples
///
/// ```
/// use orchestrate_core::store::{MemoryStore, Store};
/// use std::time::Duration;
///
/// # tokio_test_block(async {
/// let store = MemoryStore::new();
/// store.kv_put("k", serde_json::json!(1), Some(Duration::from_secs(60))).await.unwrap();
/// assert_eq!(store.kv_get("k").await.unwrap(), Some(serde_json::json!(1)));
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
/// # }
/// ```
pub struct MemoryStore {
    /// Journals in shards, so that executions writing at once rarely share
    /// a lock.
    shards: Box<[RwLock<FastMap<ExecutionId, Journal>>]>,
    finished: Mutex<VecDeque<ExecutionId>>,
    kv: Mutex<Kv>,
    mailboxes: Mutex<Mailboxes>,
    config: MemoryStoreConfig,
}

const SHARDS: usize = 32;

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            finished: Mutex::default(),
            kv: Mutex::default(),
            mailboxes: Mutex::default(),
            config: MemoryStoreConfig::default(),
        }
    }
}

/// The shard of an execution: a fixed-seed hash, so that it needs no state.
fn shard_of(id: &ExecutionId) -> usize {
    use std::hash::BuildHasher;
    let h = foldhash::fast::FixedState::with_seed(0x5eed).hash_one(id.as_str());
    (h % SHARDS as u64) as usize
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("executions", &self.execution_count())
            .field("config", &self.config)
            .finish()
    }
}

impl MemoryStore {
    /// An empty store with default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with the given limits.
    pub fn with_config(config: MemoryStoreConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The number of executions whose journal is held.
    pub fn execution_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    fn shard(&self, execution: &ExecutionId) -> &RwLock<FastMap<ExecutionId, Journal>> {
        &self.shards[shard_of(execution)]
    }

    fn journal(&self, execution: &ExecutionId) -> Option<Journal> {
        self.shard(execution)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(execution)
            .cloned()
    }

    fn forget_oldest_finished(&self, just_finished: ExecutionId) {
        let expired = {
            let mut finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
            finished.push_back(just_finished);
            if finished.len() > self.config.max_finished_executions {
                finished.pop_front()
            } else {
                None
            }
        };
        let Some(old) = expired else { return };
        let journal = self
            .shard(&old)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&old);
        // Freeing a journal's events takes a while: not under any lock.
        drop(journal);
    }

    /// Every journal, taken out of the shards so that no shard stays locked
    /// while the journals are read.
    fn journals(&self) -> Vec<(ExecutionId, Journal)> {
        self.shards
            .iter()
            .flat_map(|s| {
                s.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .map(|(id, j)| (id.clone(), j.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Appends at once: the in-memory journal never waits.
    fn append_events(&self, execution: &ExecutionId, events: &[Event]) -> Result<(), StoreError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        check_batch(execution, events)?;
        let journal = match self.journal(execution) {
            Some(j) => j,
            None => self
                .shard(execution)
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(execution.clone())
                .or_insert_with(|| Arc::new(Mutex::new(Vec::with_capacity(first_room(events)))))
                .clone(),
        };
        let finished = {
            let mut journal = journal.lock().unwrap_or_else(PoisonError::into_inner);
            let actual = journal.len() as u64;
            if first.seq != actual {
                return Err(StoreError::Conflict {
                    execution: execution.clone(),
                    expected: first.seq,
                    actual,
                });
            }
            journal.extend(events.iter().map(|e| Entry {
                at_us: e.at_us,
                kind: e.kind.clone(),
            }));
            events
                .iter()
                .any(|e| matches!(e.kind, EventKind::ExecutionFinished { .. }))
        };
        if finished {
            self.forget_oldest_finished(execution.clone());
        }
        Ok(())
    }
}

/// Room for a journal that starts with `first`: a small workflow's whole
/// journal on its happy path (its start, two events per step, its end), so
/// that it is allocated once and no larger than it needs; a larger one's
/// grows as it goes.
fn first_room(first: &[Event]) -> usize {
    const MOST: usize = 64;
    let planned = match first.first().map(|e| &e.kind) {
        Some(EventKind::ExecutionStarted(start)) => 2 * start.steps.len() + 2,
        _ => 16,
    };
    planned.min(MOST).max(first.len())
}

#[async_trait]
impl Store for MemoryStore {
    async fn append(&self, execution: &ExecutionId, events: &[Event]) -> Result<(), StoreError> {
        self.append_events(execution, events)
    }

    fn append_now(
        &self,
        execution: &ExecutionId,
        events: &[Event],
    ) -> Option<Result<(), StoreError>> {
        Some(self.append_events(execution, events))
    }

    async fn load(&self, execution: &ExecutionId, from: u64) -> Result<Vec<Event>, StoreError> {
        let journal = self
            .journal(execution)
            .ok_or_else(|| StoreError::NotFound {
                execution: execution.clone(),
            })?;
        let journal = journal.lock().unwrap_or_else(PoisonError::into_inner);
        let from = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(journal.len());
        Ok(journal[from..]
            .iter()
            .zip(from..)
            .map(|(entry, seq)| entry.event(execution, seq))
            .collect())
    }

    async fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Vec<ExecutionSummary>, StoreError> {
        let journals = self.journals();
        let mut found: Vec<(u64, ExecutionSummary)> = journals
            .iter()
            .filter_map(|(id, j)| {
                let j = j.lock().unwrap_or_else(PoisonError::into_inner);
                let first = j.first()?;
                let mut summary = ExecutionSummary::from_start(&first.event(id, 0))?;
                for (seq, e) in j.iter().enumerate() {
                    summary.apply(&e.event(id, seq));
                }
                let started = match &first.kind {
                    EventKind::ExecutionStarted(start) => start.started_at_ms,
                    _ => 0,
                };
                summary.matches(query).then_some((started, summary))
            })
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        let limit = if query.limit == 0 {
            usize::MAX
        } else {
            query.limit
        };
        Ok(found.into_iter().take(limit).map(|(_, s)| s).collect())
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        // Summaries are folded from the journals on every read and a
        // journal's sequence numbers are its positions: what can be wrong
        // here is a journal that does not begin with its start.
        let mut report = VerifyReport::default();
        for (id, journal) in self.journals() {
            let journal = journal.lock().unwrap_or_else(PoisonError::into_inner);
            report.executions += 1;
            report.events += journal.len() as u64;
            if !matches!(
                journal.first().map(|e| &e.kind),
                Some(EventKind::ExecutionStarted(_))
            ) {
                report.problems.push(Problem::NoStart { execution: id });
            }
        }
        Ok(report)
    }

    async fn rebuild_projections(&self) -> Result<RebuildReport, StoreError> {
        // Nothing to rewrite: every listing derives the summaries afresh.
        Ok(RebuildReport {
            rebuilt: self.execution_count() as u64,
            ..RebuildReport::default()
        })
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let now = self.config.clock.now_ms();
        let mut kv = self.kv.lock().unwrap_or_else(PoisonError::into_inner);
        match kv.entries.get(key) {
            Some(e) if e.live(now) => Ok(Some(e.value.clone())),
            Some(_) => {
                kv.entries.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn kv_put(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        check_value(|| format!("key `{key}`"), &value)?;
        let now = self.config.clock.now_ms();
        self.kv
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(key, value, ttl, now);
        Ok(())
    }

    async fn kv_put_if_absent(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<Option<Value>, StoreError> {
        check_value(|| format!("key `{key}`"), &value)?;
        let now = self.config.clock.now_ms();
        let mut kv = self.kv.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = kv.entries.get(key).filter(|e| e.live(now)) {
            return Ok(Some(e.value.clone()));
        }
        kv.put(key, value, ttl, now);
        Ok(None)
    }

    async fn kv_delete(&self, key: &str) -> Result<bool, StoreError> {
        let now = self.config.clock.now_ms();
        let mut kv = self.kv.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(kv.entries.remove(key).is_some_and(|e| e.live(now)))
    }

    async fn send_message(&self, message: NewMessage) -> Result<i64, StoreError> {
        check_value(
            || format!("message to `{}`", message.recipient),
            &message.payload,
        )?;
        let now = self.config.clock.now_ms();
        let mut boxes = self
            .mailboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        boxes.next_id += 1;
        let id = boxes.next_id;
        let stored = Message {
            id,
            recipient: message.recipient,
            sender: message.sender,
            thread: message.thread,
            priority: message.priority,
            payload: message.payload,
            status: MessageStatus::Pending,
            deliveries: 0,
            created_at_ms: now,
        };
        boxes.messages.insert(id, (stored, None));
        Ok(id)
    }

    async fn fetch_messages(
        &self,
        recipient: &str,
        options: &FetchOptions,
    ) -> Result<Vec<Message>, StoreError> {
        let now = self.config.clock.now_ms();
        let cutoff =
            now.saturating_sub(u64::try_from(options.visibility.as_millis()).unwrap_or(u64::MAX));
        let mut boxes = self
            .mailboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut due: Vec<(i32, i64)> = boxes
            .messages
            .values()
            .filter(|(m, delivered_at)| {
                m.recipient == recipient
                    && match m.status {
                        MessageStatus::Pending => true,
                        MessageStatus::Delivered => delivered_at.is_some_and(|t| t <= cutoff),
                        _ => false,
                    }
            })
            .map(|(m, _)| (m.priority, m.id))
            .collect();
        due.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut out = Vec::new();
        for (_, id) in due {
            if out.len() >= options.limit {
                break;
            }
            if let Some((m, delivered_at)) = boxes.messages.get_mut(&id) {
                if m.deliveries >= options.max_deliveries {
                    m.status = MessageStatus::Dead;
                    continue;
                }
                m.deliveries += 1;
                m.status = MessageStatus::Delivered;
                *delivered_at = Some(now);
                out.push(m.clone());
            }
        }
        Ok(out)
    }

    async fn ack_message(&self, id: i64) -> Result<(), StoreError> {
        let mut boxes = self
            .mailboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (m, _) = boxes
            .messages
            .get_mut(&id)
            .ok_or(StoreError::MessageNotFound { id })?;
        if m.status == MessageStatus::Processed {
            return Ok(());
        }
        m.status = MessageStatus::Processed;
        boxes.processed.push_back(id);
        while boxes.processed.len() > KEEP_PROCESSED {
            if let Some(old) = boxes.processed.pop_front() {
                boxes.messages.remove(&old);
            }
        }
        Ok(())
    }

    async fn release_message(&self, id: i64) -> Result<(), StoreError> {
        let mut boxes = self
            .mailboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (m, delivered_at) = boxes
            .messages
            .get_mut(&id)
            .ok_or(StoreError::MessageNotFound { id })?;
        if m.status == MessageStatus::Delivered {
            m.status = MessageStatus::Pending;
            *delivered_at = None;
        }
        Ok(())
    }

    async fn list_messages(&self, query: &MessageQuery) -> Result<Vec<Message>, StoreError> {
        let boxes = self
            .mailboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(boxes
            .messages
            .values()
            .map(|(m, _)| m)
            .filter(|m| {
                query.recipient.as_ref().is_none_or(|r| *r == m.recipient)
                    && query.status.is_none_or(|s| s == m.status)
                    && query
                        .thread
                        .as_ref()
                        .is_none_or(|t| m.thread.as_ref() == Some(t))
            })
            .cloned()
            .collect())
    }
}
