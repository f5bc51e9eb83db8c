//! The SQLite journal's statements: one integer key per event,
//! `(execution number << 32) | seq`, in a rowid table (schema version 4).
//!
//! An execution's number comes from `orchestrate_journal_ids`, handed out
//! by the append that starts its journal (the one at seq 0). Every other
//! statement finds it there by the execution's id.

use orchestrate_core::journal::Event;
use orchestrate_core::store::StoreError;

use crate::codec::{encode, push_journal_rows, Encoded, SQLITE_RECORD_VERSION};

/// Events one execution's journal can hold: the key keeps seq in its low
/// 32 bits.
pub(super) const MAX_EVENTS: u64 = 1 << 32;

/// The first key of execution number `n`'s run, and the last, as SQL.
macro_rules! run_of {
    ($n:literal) => {
        concat!("(", $n, " << 32) AND (", $n, " << 32) + 4294967295")
    };
}

/// Encodes an event for the SQLite journal, refusing a sequence number
/// past what its key holds.
pub(super) fn encode_event(event: &Event) -> Result<Encoded, StoreError> {
    if event.seq >= MAX_EVENTS {
        return Err(StoreError::InvalidBatch {
            execution: event.execution_id.clone(),
            reason: format!(
                "seq {} is past the {MAX_EVENTS} events a SQLite journal holds per execution",
                event.seq
            ),
        });
    }
    encode(event)
}

/// Hands the execution (`?1`) its number when the append starts its
/// journal (first seq `?2` is 0); any other append finds it there.
pub(super) const NUMBER_SQL: &str = "INSERT INTO orchestrate_journal_ids (execution_id) \
     SELECT ?1 WHERE ?2 = 0 ON CONFLICT(execution_id) DO NOTHING";

/// Inserts `rows` rows of execution `?1` if the journal's next sequence
/// number is `?2`; each row binds five parameters from `?3` on (seq, kind,
/// step, record, checksum).
pub(super) fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO orchestrate_journal (key, kind, step, record, checksum, record_version) \
         SELECT (x.n << 32) | v.column1, v.column2, v.column3, v.column4, v.column5, v.column6 \
         FROM (VALUES ",
    );
    push_journal_rows(&mut sql, rows, '?', "", SQLITE_RECORD_VERSION);
    sql.push_str(concat!(
        ") AS v, (SELECT n FROM orchestrate_journal_ids WHERE execution_id = ?1) AS x \
         WHERE (SELECT COALESCE(MAX(key) - (x.n << 32) + 1, 0) FROM orchestrate_journal \
         WHERE key BETWEEN ",
        run_of!("x.n"),
        ") = ?2"
    ));
    sql
}

/// The journal's next sequence number of execution `?1` (no row when it
/// has no number yet).
pub(super) const NEXT_SEQ_SQL: &str = concat!(
    "SELECT COALESCE((SELECT MAX(j.key) - (i.n << 32) + 1 FROM orchestrate_journal j \
     WHERE j.key BETWEEN ",
    run_of!("i.n"),
    "), 0) AS next FROM orchestrate_journal_ids i WHERE i.execution_id = ?"
);

/// Execution `?1`'s events from seq `?2` on, in order.
pub(super) const LOAD_SQL: &str =
    "SELECT j.key - (i.n << 32) AS seq, j.step, j.record, j.checksum, j.record_version \
     FROM orchestrate_journal_ids i JOIN orchestrate_journal j \
     ON j.key BETWEEN (i.n << 32) + ?2 AND (i.n << 32) + 4294967295 \
     WHERE i.execution_id = ?1 ORDER BY j.key";

/// One row when execution `?` has a journal.
pub(super) const EXISTS_SQL: &str = concat!(
    "SELECT 1 FROM orchestrate_journal_ids i JOIN orchestrate_journal j ON j.key BETWEEN ",
    run_of!("i.n"),
    " WHERE i.execution_id = ? LIMIT 1"
);

/// Executions matching status `?1` and workflow `?2` (either `NULL` for
/// any), most recently started first, at most `?3` (-1 for all), each with
/// its number of events.
pub(super) const LIST_SQL: &str = concat!(
    "SELECT id, workflow, status, idempotency_key, started_at_ms, \
     (SELECT COALESCE(MAX(j.key) - (i.n << 32) + 1, 0) FROM orchestrate_journal_ids i \
     JOIN orchestrate_journal j ON j.key BETWEEN ",
    run_of!("i.n"),
    " WHERE i.execution_id = e.id) AS events \
     FROM orchestrate_executions e \
     WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR workflow = ?2) \
     ORDER BY started_at_ms DESC, id LIMIT ?3"
);

/// Every execution that has a journal number, in the order they started
/// their journals.
pub(super) const JOURNAL_IDS_SQL: &str =
    "SELECT execution_id FROM orchestrate_journal_ids ORDER BY n";

/// Every projection row.
pub(super) const PROJECTION_ROWS_SQL: &str =
    "SELECT id, workflow, status, idempotency_key, started_at_ms FROM orchestrate_executions";

/// Execution `?`'s projection row.
pub(super) const PROJECTION_ROW_SQL: &str =
    "SELECT id, workflow, status, idempotency_key, started_at_ms FROM orchestrate_executions WHERE id = ?";

/// Executions with a journal whose projection row is missing or names a
/// status other than the known ones (spliced in for `{known}`).
pub(super) const DAMAGED_SQL: &str = "SELECT i.execution_id AS id FROM orchestrate_journal_ids i \
     LEFT JOIN orchestrate_executions e ON e.id = i.execution_id \
     WHERE e.id IS NULL OR e.status NOT IN ({known})";

/// Writes execution `?1`'s projection row (workflow `?2`, status `?3`,
/// idempotency key `?4`, start `?5`) over any it has, if its journal's next
/// sequence number is still `?6`.
pub(super) const PUT_PROJECTION_SQL: &str = concat!(
    "INSERT INTO orchestrate_executions (id, workflow, status, idempotency_key, started_at_ms) \
     SELECT ?1, ?2, ?3, ?4, ?5 WHERE (SELECT COALESCE(MAX(j.key) - (i.n << 32) + 1, 0) \
     FROM orchestrate_journal_ids i JOIN orchestrate_journal j ON j.key BETWEEN ",
    run_of!("i.n"),
    " WHERE i.execution_id = ?1) = ?6 \
     ON CONFLICT(id) DO UPDATE SET workflow = excluded.workflow, status = excluded.status, \
     idempotency_key = excluded.idempotency_key, started_at_ms = excluded.started_at_ms"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_insert_binds_five_parameters_a_row_after_the_id_and_first_seq() {
        let sql = insert_sql(2);
        assert!(sql.contains("(?3, ?4, ?5, ?6, ?7, "), "{sql}");
        assert!(sql.contains("(?8, ?9, ?10, ?11, ?12, "), "{sql}");
        assert!(!sql.contains("?13"), "{sql}");
    }

    #[test]
    fn a_sequence_number_past_the_key_is_refused() {
        let event = |seq| Event {
            execution_id: "x".into(),
            seq,
            at_us: 0,
            kind: orchestrate_core::journal::EventKind::CancelRequested,
        };
        assert!(encode_event(&event(MAX_EVENTS - 1)).is_ok());
        assert!(matches!(
            encode_event(&event(MAX_EVENTS)),
            Err(StoreError::InvalidBatch { .. })
        ));
    }
}
