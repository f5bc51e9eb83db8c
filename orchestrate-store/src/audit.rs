//! Projections as derived data, for the SQL stores: listing executions whose
//! projection row is missing or damaged from their journals, checking
//! journals and rows against each other ([`verify`]) and rewriting rows from
//! journals ([`rebuild`]).

use std::collections::HashSet;

use async_trait::async_trait;
use orchestrate_core::journal::{Event, EventKind, ExecutionStatus};
use orchestrate_core::store::{
    check_continuity, ExecutionQuery, ExecutionSummary, Problem, RebuildReport, Store, StoreError,
    VerifyReport,
};
use orchestrate_core::ExecutionId;

/// What an execution's projection row holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProjectionRow {
    pub(crate) id: ExecutionId,
    pub(crate) workflow: String,
    pub(crate) status: ExecutionStatus,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) started_at_ms: i64,
    /// Events in the journal (read beside a listed row; not stored).
    pub(crate) events: u64,
}

impl ProjectionRow {
    /// The row a journal implies; `None` when it does not begin with the
    /// execution's start.
    pub(crate) fn from_journal(events: &[Event]) -> Option<Self> {
        let first = events.first()?;
        let EventKind::ExecutionStarted(start) = &first.kind else {
            return None;
        };
        let mut summary = ExecutionSummary::from_start(first)?;
        for e in events {
            summary.apply(e);
        }
        Some(Self {
            id: summary.id,
            workflow: summary.workflow,
            status: summary.status,
            idempotency_key: summary.idempotency_key,
            started_at_ms: i64::try_from(start.started_at_ms).unwrap_or(i64::MAX),
            events: summary.events,
        })
    }

    fn summary(self) -> ExecutionSummary {
        ExecutionSummary {
            id: self.id,
            workflow: self.workflow,
            status: self.status,
            idempotency_key: self.idempotency_key,
            events: self.events,
        }
    }
}

/// A projection row as stored, read field by field before it is trusted:
/// the reason it cannot be read, when it cannot.
pub(crate) struct StoredRow {
    pub(crate) id: ExecutionId,
    pub(crate) read: Result<ProjectionRow, String>,
}

/// Reads a projection row's columns (`id`, `workflow`, `status`,
/// `idempotency_key`, `started_at_ms`, and `events` when `with_events`),
/// each on its own, so that one damaged field makes that row unreadable and
/// nothing else.
///
/// # Errors
///
/// Only when the row's id itself cannot be read.
pub(crate) fn stored_row<'r, R>(
    row: &'r R,
    with_events: bool,
    backend_error: fn(sqlx::Error) -> StoreError,
) -> Result<StoredRow, StoreError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id").map_err(backend_error)?;
    let id = ExecutionId::from(id);
    let field = |name: &str, e: sqlx::Error| format!("column `{name}`: {e}");
    let read = (|| {
        let status: String = row.try_get("status").map_err(|e| field("status", e))?;
        Ok(ProjectionRow {
            id: id.clone(),
            workflow: row.try_get("workflow").map_err(|e| field("workflow", e))?,
            status: ExecutionStatus::parse(&status)
                .ok_or_else(|| format!("unknown status `{status}`"))?,
            idempotency_key: row
                .try_get("idempotency_key")
                .map_err(|e| field("idempotency_key", e))?,
            started_at_ms: row
                .try_get("started_at_ms")
                .map_err(|e| field("started_at_ms", e))?,
            events: if with_events {
                u64::try_from(
                    row.try_get::<i64, _>("events")
                        .map_err(|e| field("events", e))?,
                )
                .unwrap_or(0)
            } else {
                0
            },
        })
    })();
    Ok(StoredRow { id, read })
}

/// The summaries of a listing: the rows the store's query returned (at most
/// `query.limit`, in its order), with the executions whose row is damaged
/// or missing (`damaged`, plus the listed rows that cannot be read) summed
/// up from their journals instead, in the same order and within the same
/// limit.
pub(crate) async fn listing(
    store: &dyn Store,
    rows: Vec<StoredRow>,
    damaged: Vec<String>,
    query: &ExecutionQuery,
) -> Vec<ExecutionSummary> {
    let mut found = Vec::with_capacity(rows.len());
    let mut derive: Vec<ExecutionId> = damaged.into_iter().map(Into::into).collect();
    for row in rows {
        match row.read {
            Ok(row) => found.push(row),
            Err(_) => derive.push(row.id),
        }
    }
    let mut seen = HashSet::new();
    for id in derive {
        if !seen.insert(id.clone()) {
            continue;
        }
        let derived = store
            .load(&id, 0)
            .await
            .and_then(|events| ProjectionRow::from_journal(&events).ok_or_else(|| no_start(&id)));
        match derived {
            Ok(row) => {
                let summary = row.clone().summary();
                if summary.matches(query) {
                    found.push(row);
                }
            }
            // No journal at all: nothing was ever accepted for it.
            Err(StoreError::NotFound { .. }) => {}
            Err(error) => tracing::warn!(
                execution = %id,
                %error,
                "execution left out of the listing: its projection row and its journal are both unreadable"
            ),
        }
    }
    found.sort_by(|a, b| {
        b.started_at_ms
            .cmp(&a.started_at_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    if query.limit > 0 {
        found.truncate(query.limit);
    }
    found.into_iter().map(ProjectionRow::summary).collect()
}

fn no_start(execution: &ExecutionId) -> StoreError {
    StoreError::Corrupt {
        execution: execution.clone(),
        seq: 0,
        step: None,
        reason: "the journal does not begin with the execution's start".into(),
    }
}

/// What [`verify`] and [`rebuild`] read and write in a SQL store.
#[async_trait]
pub(crate) trait Tables: Send + Sync {
    /// Every execution with a journal (possibly some with no record left).
    async fn journal_ids(&self) -> Result<Vec<ExecutionId>, StoreError>;
    /// Every record of a journal, in order, each checked and decoded on its
    /// own: `(seq, record)`.
    async fn records(
        &self,
        execution: &ExecutionId,
    ) -> Result<Vec<(u64, Result<Event, StoreError>)>, StoreError>;
    /// Every projection row.
    async fn projection_rows(&self) -> Result<Vec<StoredRow>, StoreError>;
    /// The projection row of one execution.
    async fn projection_row(
        &self,
        execution: &ExecutionId,
    ) -> Result<Option<StoredRow>, StoreError>;
    /// Writes `row` over whatever projection row its execution has, unless
    /// the journal has grown past `row.events` since; whether it was written.
    async fn put_projection(&self, row: ProjectionRow) -> Result<bool, StoreError>;
}

/// Times [`verify`] reads an execution again before it reports its
/// projection disagreeing with its journal: on a store in use, an append
/// may land between the two reads.
const VERIFY_TRIES: u32 = 3;

/// Walks every journal and every projection row; see
/// [`Store::verify`](orchestrate_core::store::Store::verify).
///
/// Each execution's journal is read, then its row; a row that seems not to
/// match is read again with its journal, and reported only when it still
/// does not, so that appends made meanwhile on a store in use are not
/// taken for damage.
pub(crate) async fn verify(tables: &dyn Tables) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let mut journals = HashSet::new();
    for id in tables.journal_ids().await? {
        let mut problems = Vec::new();
        for attempt in 1..=VERIFY_TRIES {
            problems.clear();
            let records = tables.records(&id).await?;
            if records.is_empty() {
                break;
            }
            if attempt == 1 {
                report.executions += 1;
                report.events += records.len() as u64;
                journals.insert(id.clone());
            }
            let length = records.len();
            let journal = walk(&id, records, &mut problems);
            let journal_problems = problems.len();
            match tables.projection_row(&id).await?.map(|r| r.read) {
                None => problems.push(Problem::ProjectionMissing {
                    execution: id.clone(),
                }),
                Some(Err(reason)) => problems.push(Problem::ProjectionUnreadable {
                    execution: id.clone(),
                    reason,
                }),
                // A journal that cannot be read whole has been reported; a
                // projection compared with part of it would be noise.
                Some(Ok(row)) => {
                    if let Some(journal) = journal {
                        compare(&row, &journal, &mut problems);
                    }
                }
            }
            let settled =
                problems.len() == journal_problems || tables.records(&id).await?.len() == length;
            if settled {
                break;
            }
        }
        report.problems.append(&mut problems);
    }
    let mut orphans = Vec::new();
    for row in tables.projection_rows().await? {
        // A journal begun since the walk is no orphan.
        if !journals.contains(&row.id) && tables.records(&row.id).await?.is_empty() {
            orphans.push(row.id);
        }
    }
    orphans.sort();
    report.problems.extend(
        orphans
            .into_iter()
            .map(|execution| Problem::ProjectionWithoutJournal { execution }),
    );
    Ok(report)
}

/// Reports every problem of one journal's records; the row the journal
/// implies when it can be read whole.
fn walk(
    id: &ExecutionId,
    records: Vec<(u64, Result<Event, StoreError>)>,
    problems: &mut Vec<Problem>,
) -> Option<ProjectionRow> {
    let before = problems.len();
    let mut expected = 0;
    let mut events = Vec::with_capacity(records.len());
    for (seq, record) in records {
        if seq > expected {
            problems.push(Problem::MissingRecords {
                execution: id.clone(),
                from: expected,
                to: seq,
            });
        }
        expected = seq + 1;
        match record {
            Ok(event) => events.push(event),
            Err(error) => problems.push(Problem::UnreadableRecord {
                execution: id.clone(),
                seq,
                reason: match error {
                    StoreError::Corrupt { reason, .. } => reason,
                    other => other.to_string(),
                },
            }),
        }
    }
    let row = ProjectionRow::from_journal(&events);
    let starts = events.first().is_some_and(|e| e.seq == 0);
    if row.is_none() && starts {
        problems.push(Problem::NoStart {
            execution: id.clone(),
        });
    }
    row.filter(|_| problems.len() == before)
}

fn compare(row: &ProjectionRow, journal: &ProjectionRow, problems: &mut Vec<Problem>) {
    let mut differs = |field: &'static str, projection: String, journal: String| {
        if projection != journal {
            problems.push(Problem::ProjectionDisagrees {
                execution: row.id.clone(),
                field,
                projection,
                journal,
            });
        }
    };
    differs("workflow", row.workflow.clone(), journal.workflow.clone());
    differs(
        "status",
        row.status.as_str().to_owned(),
        journal.status.as_str().to_owned(),
    );
    differs(
        "idempotency key",
        format!("{:?}", row.idempotency_key),
        format!("{:?}", journal.idempotency_key),
    );
    differs(
        "start time",
        row.started_at_ms.to_string(),
        journal.started_at_ms.to_string(),
    );
}

/// Times [`rebuild`] reads a journal that keeps growing before it leaves
/// that execution's projection to the appends.
const REBUILD_TRIES: u32 = 8;

/// Rewrites every projection row from its journal; see
/// [`Store::rebuild_projections`](orchestrate_core::store::Store::rebuild_projections).
pub(crate) async fn rebuild(tables: &dyn Tables) -> Result<RebuildReport, StoreError> {
    let mut report = RebuildReport::default();
    let mut rows: HashSet<ExecutionId> = tables
        .projection_rows()
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    for id in tables.journal_ids().await? {
        let records = tables.records(&id).await?;
        if records.is_empty() {
            continue;
        }
        rows.remove(&id);
        let mut records = records;
        // A running execution may append between the read and the write;
        // the write then does nothing and the journal is read again.
        for attempt in 1.. {
            match whole_journal(&id, records) {
                Ok(row) => {
                    if tables.put_projection(row).await? {
                        report.rebuilt += 1;
                        break;
                    }
                }
                Err(error) => {
                    report.unreadable.push(error);
                    break;
                }
            }
            if attempt == REBUILD_TRIES {
                tracing::warn!(execution = %id, "projection not rebuilt: its journal kept growing");
                report.growing.push(id.clone());
                break;
            }
            records = tables.records(&id).await?;
        }
    }
    report.without_journal = rows.into_iter().collect();
    report.without_journal.sort();
    Ok(report)
}

/// A journal loaded from sequence number `from`, from its records: the
/// first record that cannot be read, or the first sequence number missing,
/// is the error.
pub(crate) fn journal_of(
    execution: &ExecutionId,
    from: u64,
    records: Vec<(u64, Result<Event, StoreError>)>,
) -> Result<Vec<Event>, StoreError> {
    let events = records
        .into_iter()
        .map(|(_, record)| record)
        .collect::<Result<Vec<_>, _>>()?;
    check_continuity(execution, from, &events)?;
    Ok(events)
}

/// The row a journal implies, or the first reason it cannot be read whole.
fn whole_journal(
    id: &ExecutionId,
    records: Vec<(u64, Result<Event, StoreError>)>,
) -> Result<ProjectionRow, StoreError> {
    let events = journal_of(id, 0, records)?;
    ProjectionRow::from_journal(&events).ok_or_else(|| no_start(id))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use orchestrate_core::journal::ExecutionStart;
    use serde_json::json;

    use super::*;

    fn journal(id: &str, finished: bool) -> Vec<Event> {
        let mut events = vec![Event {
            execution_id: id.into(),
            seq: 0,
            at_us: 0,
            kind: EventKind::ExecutionStarted(Arc::new(ExecutionStart {
                workflow: "w".into(),
                version: "1".into(),
                correlation_id: id.into(),
                input: Arc::new(json!(null)),
                idempotency_key: Some("k".into()),
                started_at_ms: 42,
                steps: Arc::from([]),
            })),
        }];
        if finished {
            events.push(Event {
                execution_id: id.into(),
                seq: 1,
                at_us: 1,
                kind: EventKind::ExecutionFinished {
                    status: ExecutionStatus::Succeeded,
                    error: None,
                },
            });
        }
        events
    }

    #[test]
    fn a_journal_implies_its_row() {
        let row = ProjectionRow::from_journal(&journal("e", true)).unwrap();
        assert_eq!(row.status, ExecutionStatus::Succeeded);
        assert_eq!(row.started_at_ms, 42);
        assert_eq!(row.events, 2);
        assert_eq!(row.idempotency_key.as_deref(), Some("k"));
        assert!(ProjectionRow::from_journal(&journal("e", true)[1..]).is_none());
    }

    #[test]
    fn a_walk_reports_gaps_and_unreadable_records_and_keeps_going() {
        let events = journal("e", true);
        let corrupt = StoreError::Corrupt {
            execution: "e".into(),
            seq: 3,
            step: None,
            reason: "checksum mismatch".into(),
        };
        let records = vec![
            (0, Ok(events[0].clone())),
            (3, Err(corrupt)),
            (5, Ok(events[1].clone())),
        ];
        let mut problems = Vec::new();
        assert!(walk(&"e".into(), records, &mut problems).is_none());
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].contains("seq 1..3 missing"), "{text:?}");
        assert!(
            text[1].contains("seq 3") && text[1].contains("checksum"),
            "{text:?}"
        );
        assert!(text[2].contains("seq 4..5 missing"), "{text:?}");
    }

    /// A journal that has grown by its end between `verify`'s read of it and
    /// its read of the row (which the end's commit updated).
    struct Racing {
        reads: std::sync::atomic::AtomicU32,
    }

    #[async_trait]
    impl Tables for Racing {
        async fn journal_ids(&self) -> Result<Vec<ExecutionId>, StoreError> {
            Ok(vec!["e".into()])
        }

        async fn records(
            &self,
            _: &ExecutionId,
        ) -> Result<Vec<(u64, Result<Event, StoreError>)>, StoreError> {
            let read = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let events = journal("e", read > 0);
            Ok(events.into_iter().map(|e| (e.seq, Ok(e))).collect())
        }

        async fn projection_rows(&self) -> Result<Vec<StoredRow>, StoreError> {
            Ok(self
                .projection_row(&"e".into())
                .await?
                .into_iter()
                .collect())
        }

        async fn projection_row(&self, id: &ExecutionId) -> Result<Option<StoredRow>, StoreError> {
            let row = ProjectionRow::from_journal(&journal("e", true)).unwrap();
            Ok(Some(StoredRow {
                id: id.clone(),
                read: Ok(row),
            }))
        }

        async fn put_projection(&self, _: ProjectionRow) -> Result<bool, StoreError> {
            Ok(true)
        }
    }

    #[tokio::test]
    async fn an_append_between_two_reads_is_not_reported_as_damage() {
        let tables = Racing {
            reads: Default::default(),
        };
        let report = verify(&tables).await.unwrap();
        assert!(report.is_clean(), "{report}");
        assert_eq!(report.executions, 1);
    }

    #[test]
    fn a_row_is_compared_field_by_field() {
        let journal = ProjectionRow::from_journal(&journal("e", true)).unwrap();
        let mut row = journal.clone();
        let mut problems = Vec::new();
        compare(&row, &journal, &mut problems);
        assert!(problems.is_empty());
        row.status = ExecutionStatus::Running;
        row.workflow = "other".into();
        compare(&row, &journal, &mut problems);
        assert_eq!(problems.len(), 2);
    }
}
