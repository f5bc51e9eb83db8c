//! The SQLite store: one file, WAL, a single group-committing writer.

mod journal;
mod migrate;
mod txn;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestrate_core::journal::Event;
use orchestrate_core::store::{
    Clock, ExecutionQuery, ExecutionSummary, FetchOptions, Message, MessageQuery, MessageStatus,
    NewMessage, RebuildReport, Store, StoreError, SystemClock, VerifyReport,
};
use orchestrate_core::ExecutionId;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row, SqlitePool};

use crate::audit::{self, stored_row, ProjectionRow, StoredRow, Tables};
use crate::codec::{decode, known_statuses_sql};
use crate::group_commit::{parse_kv, Writer};
pub use migrate::SCHEMA_VERSION;

/// What a committed write survives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// A crash or kill of the process (WAL with `synchronous=NORMAL`): the
    /// default. A power loss may lose the last commits, never corrupt.
    #[default]
    Process,
    /// A power loss as well (`synchronous=FULL`: every commit is fsynced).
    PowerLoss,
}

/// Settings of a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// What commits survive (default [`Durability::Process`]).
    pub durability: Durability,
    /// How long a write waits for another process's write lock (default 5 s).
    pub busy_timeout: Duration,
    /// Connections for reads (default 4).
    pub read_connections: u32,
    /// The clock key-value expiry is measured against (default the system clock).
    pub clock: Arc<dyn Clock>,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Process,
            busy_timeout: Duration::from_secs(5),
            read_connections: 4,
            clock: Arc::new(SystemClock),
        }
    }
}

impl SqliteConfig {
    /// Sets the durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// A [`Store`] in one SQLite file: the embedded, durable default.
///
/// Every journal record is stored once with a record version and a CRC-32,
/// and checked on every read: a corrupt record is an error naming the
/// execution, the sequence number and the step, never data. Writes go
/// through one task that commits whatever is queued in one transaction
/// (group commit); reads use a pool. Several processes may share the file.
///
/// # Examples
///
/// ```
/// use orchestrate_store::sqlite::SqliteStore;
/// use orchestrate_core::store::Store;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), orchestrate_core::store::StoreError> {
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("orchestrate.db")).await?;
/// store.kv_put("greeting", serde_json::json!("hello"), None).await?;
/// assert_eq!(store.kv_get("greeting").await?, Some(serde_json::json!("hello")));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SqliteStore {
    reads: SqlitePool,
    writer: Writer,
    location: String,
}

pub(crate) fn backend_error(e: sqlx::Error) -> StoreError {
    let retryable = match &e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        // SQLITE_BUSY / SQLITE_LOCKED: another process holds the lock.
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("5" | "6" | "517")),
        _ => false,
    };
    StoreError::Backend {
        backend: "sqlite",
        retryable,
        source: Arc::new(e),
    }
}

/// Connects, waiting out a lock another process holds while it creates or
/// switches the file to WAL (that step fails at once instead of honouring
/// the busy timeout).
async fn connect(
    options: &SqliteConnectOptions,
    connections: u32,
    busy_timeout: Duration,
) -> Result<SqlitePool, sqlx::Error> {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        // No ping before handing out a connection: a connection to a local
        // file is not dropped from the other end, and the ping is a round
        // trip to the connection's worker thread on every write. (It also
        // keeps a cancelled acquire from dropping the one write connection.)
        let attempt = SqlitePoolOptions::new()
            .max_connections(connections)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await;
        match attempt {
            Err(sqlx::Error::Database(db))
                if matches!(db.code().as_deref(), Some("5" | "6"))
                    && started.elapsed() < busy_timeout =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with default settings.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unreachable`] when the file cannot be opened or created,
    /// [`StoreError::SchemaTooNew`] when a newer build wrote it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteConfig::default()).await
    }

    /// Opens the database at `path` with `config`, applying migrations.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub async fn open_with(
        path: impl AsRef<Path>,
        config: SqliteConfig,
    ) -> Result<Self, StoreError> {
        let location = path.as_ref().display().to_string();
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match config.durability {
                Durability::Process => SqliteSynchronous::Normal,
                Durability::PowerLoss => SqliteSynchronous::Full,
            })
            .busy_timeout(config.busy_timeout);
        let unreachable = |e: sqlx::Error| StoreError::Unreachable {
            backend: "sqlite",
            location: location.clone(),
            source: Arc::new(e),
        };
        let writes = connect(&options, 1, config.busy_timeout)
            .await
            .map_err(unreachable)?;
        migrate::migrate(&writes, &location).await?;
        let reads = connect(
            &options,
            config.read_connections.max(1),
            config.busy_timeout,
        )
        .await
        .map_err(unreachable)?;
        let writer = Writer::spawn(txn::SqliteWriter(writes), "sqlite", config.clock);
        Ok(Self {
            reads,
            writer,
            location,
        })
    }

    /// Write transactions committed so far. With group commit this grows
    /// slower than the number of writes when many executions write at once.
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    /// Where the database is.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Reads a pragma through the store's connections (diagnostics: e.g.
    /// `synchronous`, `journal_mode`).
    ///
    /// # Errors
    ///
    /// Backend errors; an unknown pragma name is refused.
    pub async fn pragma(&self, name: &str) -> Result<String, StoreError> {
        let sql = match name {
            "synchronous" => "PRAGMA synchronous",
            "journal_mode" => "PRAGMA journal_mode",
            "busy_timeout" => "PRAGMA busy_timeout",
            other => {
                return Err(StoreError::Codec {
                    what: format!("pragma `{other}`"),
                    reason: "not one of synchronous, journal_mode, busy_timeout".into(),
                })
            }
        };
        let row = sqlx::query(sql)
            .fetch_one(&self.reads)
            .await
            .map_err(backend_error)?;
        row.try_get::<i64, _>(0)
            .map(|v| v.to_string())
            .or_else(|_| row.try_get::<String, _>(0))
            .map_err(backend_error)
    }

    /// Finishes the queued writes and closes the database.
    pub async fn close(self) {
        self.writer.close().await;
        self.reads.close().await;
    }
}

/// A message from its row (`payload` as JSON text).
pub(crate) fn message_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Message, StoreError> {
    let id: i64 = row.try_get("id").map_err(backend_error)?;
    let payload: String = row.try_get("payload").map_err(backend_error)?;
    let status: String = row.try_get("status").map_err(backend_error)?;
    let bad = |reason: String| StoreError::Codec {
        what: format!("message {id}"),
        reason,
    };
    Ok(Message {
        id,
        recipient: row.try_get("recipient").map_err(backend_error)?,
        sender: row.try_get("sender").map_err(backend_error)?,
        thread: row.try_get("thread").map_err(backend_error)?,
        priority: row.try_get("priority").map_err(backend_error)?,
        payload: serde_json::from_str(&payload).map_err(|e| bad(e.to_string()))?,
        status: MessageStatus::parse(&status)
            .ok_or_else(|| bad(format!("unknown status `{status}`")))?,
        deliveries: u32::try_from(row.try_get::<i32, _>("deliveries").map_err(backend_error)?)
            .unwrap_or(0),
        created_at_ms: u64::try_from(
            row.try_get::<i64, _>("created_at_ms")
                .map_err(backend_error)?,
        )
        .unwrap_or(0),
    })
}

impl SqliteStore {
    /// The journal's records from `from` on, in order, each checked and
    /// decoded on its own.
    async fn records_from(
        &self,
        execution: &ExecutionId,
        from: u64,
    ) -> Result<Vec<(u64, Result<Event, StoreError>)>, StoreError> {
        let rows = sqlx::query(journal::LOAD_SQL)
            .bind(execution.as_str())
            .bind(i64::try_from(from.min(journal::MAX_EVENTS)).unwrap_or(i64::MAX))
            .fetch_all(&self.reads)
            .await
            .map_err(backend_error)?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get("seq").map_err(backend_error)?;
                // A column that does not read as its type is a damaged
                // record, named like any other.
                let column = |e: sqlx::Error| StoreError::Corrupt {
                    execution: execution.clone(),
                    seq: u64::try_from(seq).unwrap_or(0),
                    step: None,
                    reason: e.to_string(),
                };
                let record = (|| {
                    decode(
                        execution,
                        seq,
                        row.try_get("step").map_err(column)?,
                        row.try_get::<&[u8], _>("record").map_err(column)?,
                        row.try_get("checksum").map_err(column)?,
                        row.try_get("record_version").map_err(column)?,
                    )
                })();
                Ok((u64::try_from(seq).unwrap_or(0), record))
            })
            .collect()
    }
}

#[async_trait]
impl Tables for SqliteStore {
    async fn journal_ids(&self) -> Result<Vec<ExecutionId>, StoreError> {
        let ids = sqlx::query_scalar::<_, String>(journal::JOURNAL_IDS_SQL)
            .fetch_all(&self.reads)
            .await
            .map_err(backend_error)?;
        Ok(ids.into_iter().map(Into::into).collect())
    }

    async fn records(
        &self,
        execution: &ExecutionId,
    ) -> Result<Vec<(u64, Result<Event, StoreError>)>, StoreError> {
        self.records_from(execution, 0).await
    }

    async fn projection_rows(&self) -> Result<Vec<StoredRow>, StoreError> {
        sqlx::query(journal::PROJECTION_ROWS_SQL)
            .fetch_all(&self.reads)
            .await
            .map_err(backend_error)?
            .iter()
            .map(|row| stored_row(row, false, backend_error))
            .collect()
    }

    async fn projection_row(
        &self,
        execution: &ExecutionId,
    ) -> Result<Option<StoredRow>, StoreError> {
        sqlx::query(journal::PROJECTION_ROW_SQL)
            .bind(execution.as_str())
            .fetch_optional(&self.reads)
            .await
            .map_err(backend_error)?
            .map(|row| stored_row(&row, false, backend_error))
            .transpose()
    }

    async fn put_projection(&self, row: ProjectionRow) -> Result<bool, StoreError> {
        self.writer.put_projection(row).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, execution: &ExecutionId, events: &[Event]) -> Result<(), StoreError> {
        self.writer
            .append(execution, events, journal::encode_event)
            .await
    }

    async fn load(&self, execution: &ExecutionId, from: u64) -> Result<Vec<Event>, StoreError> {
        let records = self.records_from(execution, from).await?;
        if records.is_empty() {
            let exists = sqlx::query(journal::EXISTS_SQL)
                .bind(execution.as_str())
                .fetch_optional(&self.reads)
                .await
                .map_err(backend_error)?;
            if exists.is_none() {
                return Err(StoreError::NotFound {
                    execution: execution.clone(),
                });
            }
        }
        audit::journal_of(execution, from, records)
    }

    async fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Vec<ExecutionSummary>, StoreError> {
        let status = query.status.map(crate::codec::status_text);
        let limit = if query.limit == 0 {
            -1
        } else {
            i64::try_from(query.limit).unwrap_or(i64::MAX)
        };
        let rows = sqlx::query(journal::LIST_SQL)
            .bind(status)
            .bind(query.workflow.as_deref())
            .bind(limit)
            .fetch_all(&self.reads)
            .await
            .map_err(backend_error)?
            .iter()
            .map(|row| stored_row(row, true, backend_error))
            .collect::<Result<Vec<_>, _>>()?;
        let damaged = journal::DAMAGED_SQL.replace("{known}", &known_statuses_sql());
        let damaged = sqlx::query_scalar::<_, String>(AssertSqlSafe(damaged))
            .fetch_all(&self.reads)
            .await
            .map_err(backend_error)?;
        Ok(audit::listing(self, rows, damaged, query).await)
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        audit::verify(self).await
    }

    async fn rebuild_projections(&self) -> Result<RebuildReport, StoreError> {
        audit::rebuild(self).await
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query("SELECT value FROM orchestrate_kv WHERE key = ? AND (expires_at_ms IS NULL OR expires_at_ms > ?)")
            .bind(key)
            .bind(self.writer.now_ms())
            .fetch_optional(&self.reads)
            .await
            .map_err(backend_error)?;
        row.map(|r| {
            parse_kv(
                key,
                &r.try_get::<String, _>("value").map_err(backend_error)?,
            )
        })
        .transpose()
    }

    async fn kv_put(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.writer.kv_put(key, &value, ttl).await
    }

    async fn kv_put_if_absent(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<Option<Value>, StoreError> {
        self.writer.kv_put_if_absent(key, &value, ttl).await
    }

    async fn kv_delete(&self, key: &str) -> Result<bool, StoreError> {
        self.writer.kv_delete(key).await
    }

    async fn send_message(&self, message: NewMessage) -> Result<i64, StoreError> {
        self.writer.send_message(message).await
    }

    async fn fetch_messages(
        &self,
        recipient: &str,
        options: &FetchOptions,
    ) -> Result<Vec<Message>, StoreError> {
        self.writer.fetch_messages(recipient, options).await
    }

    async fn ack_message(&self, id: i64) -> Result<(), StoreError> {
        self.writer.settle_message(id, true).await
    }

    async fn release_message(&self, id: i64) -> Result<(), StoreError> {
        self.writer.settle_message(id, false).await
    }

    async fn list_messages(&self, query: &MessageQuery) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, recipient, sender, thread, priority, payload, status, deliveries, created_at_ms
             FROM orchestrate_messages
             WHERE (?1 IS NULL OR recipient = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR thread = ?3)
             ORDER BY id",
        )
        .bind(query.recipient.as_deref())
        .bind(query.status.map(MessageStatus::as_str))
        .bind(query.thread.as_deref())
        .fetch_all(&self.reads)
        .await
        .map_err(backend_error)?;
        rows.iter().map(message_from_row).collect()
    }
}
