//! The PostgreSQL store: verbatim JSON records, many processes, group commit.

mod migrate;
mod txn;

use std::str::FromStr;
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
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Row};

use crate::audit::{self, stored_row, ProjectionRow, StoredRow, Tables};
use crate::codec::{decode_postgres, encode, known_statuses_sql, status_text};
use crate::group_commit::{parse_kv, Writer};
pub use migrate::SCHEMA_VERSION;

/// Settings of a [`PostgresStore`].
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// The schema holding the tables (created if missing); `None` uses the
    /// connection's default (`public`). Tests give each run its own.
    pub schema: Option<String>,
    /// Connections for reads (default 8); writes use one more.
    pub read_connections: u32,
    /// How long to wait for a connection (default 10 s).
    pub connect_timeout: Duration,
    /// The clock key-value expiry is measured against (default the system clock).
    pub clock: Arc<dyn Clock>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            schema: None,
            read_connections: 8,
            connect_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
        }
    }
}

impl PostgresConfig {
    /// Uses `schema`.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Sets the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// A [`Store`] in PostgreSQL, for many processes and machines.
///
/// Journal records, key-value values and message payloads are `JSON`
/// columns, which keep the text exactly as written (`JSONB` would rewrite
/// numbers and refuses U+0000); records are checksummed and versioned. The
/// primary key
/// `(execution_id, seq)` makes appends optimistic: of two writers appending
/// sequence N, one gets [`StoreError::Conflict`]. Commits are synchronous
/// (`synchronous_commit=on` is set on every connection, so a server default
/// cannot weaken it silently), and one writer task per store group-commits
/// the writes that are ready together.
#[derive(Debug)]
pub struct PostgresStore {
    reads: PgPool,
    writer: Writer,
    location: String,
}

pub(crate) fn backend_error(e: sqlx::Error) -> StoreError {
    let retryable = match &e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        // serialization_failure, deadlock_detected, connection exceptions
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c == "40001" || c == "40P01" || c.starts_with("08")),
        _ => false,
    };
    StoreError::Backend {
        backend: "postgres",
        retryable,
        source: Arc::new(e),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn valid_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 63
        && schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        // PostgreSQL reserves `pg_` for itself.
        && !schema.to_ascii_lowercase().starts_with("pg_")
}

impl PostgresStore {
    /// Connects to `url` with default settings, applying migrations.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unreachable`] (the URL without its password) when the
    /// server cannot be reached, [`StoreError::SchemaTooNew`] when a newer
    /// build migrated the database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresConfig::default()).await
    }

    /// Connects with `config`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); [`StoreError::Codec`] for a schema name
    /// that is not a plain identifier.
    pub async fn connect_with(url: &str, config: PostgresConfig) -> Result<Self, StoreError> {
        let location = redact(url);
        let unreachable = |e: sqlx::Error| StoreError::Unreachable {
            backend: "postgres",
            location: location.clone(),
            source: Arc::new(e),
        };
        let mut options = PgConnectOptions::from_str(url)
            .map_err(unreachable)?
            .options([("synchronous_commit", "on")]);
        if let Some(schema) = &config.schema {
            if !valid_schema(schema) {
                return Err(StoreError::Codec {
                    what: format!("schema `{schema}`"),
                    reason: "use letters, digits and `_`, not starting with a digit or `pg_`"
                        .into(),
                });
            }
            let bootstrap = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(config.connect_timeout)
                .connect_with(options.clone())
                .await
                .map_err(unreachable)?;
            // `IF NOT EXISTS` still races between two sessions: serialise
            // creators with an advisory lock. The name was checked above to
            // be a plain identifier.
            let mut tx = bootstrap.begin().await.map_err(backend_error)?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('orchestrate_create_schema'))")
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
            let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
            sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
            tx.commit().await.map_err(backend_error)?;
            bootstrap.close().await;
            options = options.options([("search_path", schema.as_str())]);
        }
        let location = match &config.schema {
            Some(schema) => format!("{location} (schema {schema})"),
            None => location.clone(),
        };
        let connect = |n: u32| {
            PgPoolOptions::new()
                .max_connections(n)
                .acquire_timeout(config.connect_timeout)
                .connect_with(options.clone())
        };
        let writes = connect(1).await.map_err(unreachable)?;
        migrate::migrate(&writes, &location).await?;
        let reads = connect(config.read_connections.max(1))
            .await
            .map_err(unreachable)?;
        let writer = Writer::spawn(txn::PgWriter(writes), "postgres", config.clock);
        Ok(Self {
            reads,
            writer,
            location,
        })
    }

    /// Where the database is (without the password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Write transactions committed so far (see group commit).
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    /// Finishes the queued writes and closes the connections.
    pub async fn close(self) {
        self.writer.close().await;
        self.reads.close().await;
    }

    /// Drops `schema` and everything in it (for tests that made their own).
    ///
    /// # Errors
    ///
    /// Backend errors; [`StoreError::Codec`] for an invalid name.
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        if !valid_schema(schema) {
            return Err(StoreError::Codec {
                what: format!("schema `{schema}`"),
                reason: "not a plain identifier".into(),
            });
        }
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .map_err(backend_error)?;
        let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .map_err(backend_error)?;
        pool.close().await;
        Ok(())
    }
}

/// A message from its row (`payload` as JSON text).
pub(crate) fn message_from_row(row: &sqlx::postgres::PgRow) -> Result<Message, StoreError> {
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

impl PostgresStore {
    /// The journal's records from `from` on, in order, each checked and
    /// decoded on its own.
    async fn records_from(
        &self,
        execution: &ExecutionId,
        from: u64,
    ) -> Result<Vec<(u64, Result<Event, StoreError>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, step, record::text AS record, checksum, record_version FROM orchestrate_journal
             WHERE execution_id = $1 AND seq >= $2 ORDER BY seq",
        )
        .bind(execution.as_str())
        .bind(i64::try_from(from).unwrap_or(i64::MAX))
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
                    decode_postgres(
                        execution,
                        seq,
                        row.try_get("step").map_err(column)?,
                        row.try_get::<&str, _>("record").map_err(column)?,
                        row.try_get("checksum").map_err(column)?,
                        i64::from(row.try_get::<i32, _>("record_version").map_err(column)?),
                    )
                })();
                Ok((u64::try_from(seq).unwrap_or(0), record))
            })
            .collect()
    }
}

#[async_trait]
impl Tables for PostgresStore {
    async fn journal_ids(&self) -> Result<Vec<ExecutionId>, StoreError> {
        let ids = sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT execution_id FROM orchestrate_journal ORDER BY execution_id",
        )
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
        sqlx::query(
            "SELECT id, workflow, status, idempotency_key, started_at_ms FROM orchestrate_executions",
        )
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
        sqlx::query(
            "SELECT id, workflow, status, idempotency_key, started_at_ms FROM orchestrate_executions WHERE id = $1",
        )
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
impl Store for PostgresStore {
    async fn append(&self, execution: &ExecutionId, events: &[Event]) -> Result<(), StoreError> {
        self.writer.append(execution, events, encode).await
    }

    async fn load(&self, execution: &ExecutionId, from: u64) -> Result<Vec<Event>, StoreError> {
        let records = self.records_from(execution, from).await?;
        if records.is_empty() {
            let exists =
                sqlx::query("SELECT 1 FROM orchestrate_journal WHERE execution_id = $1 LIMIT 1")
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
        let limit = if query.limit == 0 {
            i64::MAX
        } else {
            i64::try_from(query.limit).unwrap_or(i64::MAX)
        };
        let rows = sqlx::query(
            "SELECT id, workflow, status, idempotency_key, started_at_ms,
                    (SELECT COALESCE(MAX(j.seq) + 1, 0) FROM orchestrate_journal j WHERE j.execution_id = e.id) AS events
             FROM orchestrate_executions e
             WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR workflow = $2)
             ORDER BY started_at_ms DESC, id LIMIT $3",
        )
        .bind(query.status.map(status_text))
        .bind(query.workflow.as_deref())
        .bind(limit)
        .fetch_all(&self.reads)
        .await
        .map_err(backend_error)?
        .iter()
        .map(|row| stored_row(row, true, backend_error))
        .collect::<Result<Vec<_>, _>>()?;
        // The journals' starts (a partial index) whose row is missing or
        // names an unknown status.
        let damaged = format!(
            "SELECT j.execution_id FROM orchestrate_journal j
             LEFT JOIN orchestrate_executions e ON e.id = j.execution_id
             WHERE j.seq = 0 AND (e.id IS NULL OR e.status NOT IN ({}))",
            known_statuses_sql()
        );
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
        let row = sqlx::query(
            "SELECT value::text AS value FROM orchestrate_kv
             WHERE key = $1 AND (expires_at_ms IS NULL OR expires_at_ms > $2)",
        )
        .bind(key)
        .bind(self.writer.now_ms())
        .fetch_optional(&self.reads)
        .await
        .map_err(backend_error)?;
        row.map(|r| parse_kv(key, r.try_get::<&str, _>("value").map_err(backend_error)?))
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
            "SELECT id, recipient, sender, thread, priority, payload::text AS payload, status, deliveries, created_at_ms
             FROM orchestrate_messages
             WHERE ($1::text IS NULL OR recipient = $1) AND ($2::text IS NULL OR status = $2)
               AND ($3::text IS NULL OR thread = $3)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db?x=@"), "postgres://h/db?x=@");
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema("test_run_42"));
        assert!(!valid_schema("x\"; DROP TABLE y; --"));
        assert!(!valid_schema("1abc"));
        assert!(!valid_schema(""));
        assert!(!valid_schema("pg_mine"));
    }
}

#[cfg(test)]
mod rebuild_race {
    use std::sync::Arc;
    use std::time::Duration;

    use orchestrate_core::journal::{Event, EventKind, ExecutionStart, ExecutionStatus};
    use orchestrate_core::store::{ExecutionQuery, Store};
    use serde_json::json;
    use sqlx::postgres::PgPoolOptions;

    use super::{PostgresConfig, PostgresStore};
    use crate::codec::encode;

    fn ev(seq: u64, kind: EventKind) -> Event {
        Event {
            execution_id: "x".into(),
            seq,
            at_us: seq,
            kind,
        }
    }

    /// Another process's append that finishes the execution commits while
    /// `rebuild_projections` is writing the row: the rebuild waits for it
    /// and reads the journal again, never writing the older status over it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rebuild_never_writes_a_stale_status_over_another_process_append() {
        let Ok(url) = std::env::var("ORCHESTRATE_TEST_POSTGRES_URL") else {
            eprintln!("skipped: ORCHESTRATE_TEST_POSTGRES_URL is not set");
            return;
        };
        let schema = format!("rebuild_race_{}", std::process::id());
        let store = Arc::new(
            PostgresStore::connect_with(&url, PostgresConfig::default().with_schema(&schema))
                .await
                .unwrap(),
        );
        let start = ExecutionStart {
            workflow: "w".into(),
            version: "1".into(),
            correlation_id: "x".into(),
            input: Arc::new(json!(1)),
            idempotency_key: None,
            started_at_ms: 1,
            steps: Arc::from(["s".into()]),
        };
        let events = vec![
            ev(0, EventKind::ExecutionStarted(Arc::new(start))),
            ev(
                1,
                EventKind::StepSucceeded {
                    step: "s".into(),
                    output: Arc::new(json!(2)),
                    attempts: 1,
                    fallback_from: None,
                },
            ),
        ];
        store.append(&"x".into(), &events).await.unwrap();
        let finished = encode(&ev(
            2,
            EventKind::ExecutionFinished {
                status: ExecutionStatus::Succeeded,
                error: None,
            },
        ))
        .unwrap();

        // The other process: its append of seq 2, with the row's update,
        // is in flight.
        let other = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let mut tx = other.begin().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET LOCAL search_path TO \"{schema}\""
        )))
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO orchestrate_journal (execution_id, seq, kind, step, record, checksum, record_version)
             VALUES ('x', 2, $1, NULL, $2::json, $3, 2)",
        )
        .bind(finished.kind)
        .bind(std::str::from_utf8(&finished.record).unwrap())
        .bind(finished.checksum)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query("UPDATE orchestrate_executions SET status = 'succeeded' WHERE id = 'x'")
            .execute(&mut *tx)
            .await
            .unwrap();

        let rebuilding = store.clone();
        let rebuild = tokio::spawn(async move { rebuilding.rebuild_projections().await });
        // Long enough for the rebuild to read the two events and reach the row.
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.commit().await.unwrap();
        let report = rebuild.await.unwrap().unwrap();

        let unfinished = store
            .list_executions(&ExecutionQuery::unfinished())
            .await
            .unwrap();
        let verify = store.verify().await.unwrap();
        other.close().await;
        PostgresStore::drop_schema(&url, &schema).await.unwrap();
        assert_eq!(report.rebuilt, 1, "{report:?}");
        assert!(unfinished.is_empty(), "{unfinished:?}");
        assert!(verify.is_clean(), "{verify}");
    }
}
