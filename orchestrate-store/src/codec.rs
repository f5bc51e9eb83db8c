//! How journal events are stored: JSON with a record version and a CRC-32.

use orchestrate_core::journal::{Event, EventKind, ExecutionStatus};
use orchestrate_core::store::StoreError;
use orchestrate_core::ExecutionId;

/// The newest record format this build reads: the event as JSON, its
/// checksum over the stored bytes exactly. SQLite writes version 1, which
/// has always meant that there (so that an older build still reads a file
/// this one wrote); PostgreSQL writes version 2, since its version 1 records
/// were JSONB, whose checksum covers a canonical form (see
/// `decode_normalised`).
pub(crate) const RECORD_VERSION: i64 = 2;

/// The record version SQLite writes.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE_RECORD_VERSION: i64 = 1;

/// The record version of PostgreSQL's JSONB records, written before its
/// schema 4.
#[cfg(feature = "postgres")]
pub(crate) const NORMALISED_RECORD_VERSION: i64 = 1;

/// One event ready to be written.
pub(crate) struct Encoded {
    pub(crate) seq: i64,
    pub(crate) kind: &'static str,
    pub(crate) step: Option<String>,
    pub(crate) record: Vec<u8>,
    pub(crate) checksum: i64,
}

pub(crate) fn checksum(record: &[u8]) -> i64 {
    i64::from(crc32fast::hash(record))
}

/// Encodes an event; the checksum covers the record's bytes.
pub(crate) fn encode(event: &Event) -> Result<Encoded, StoreError> {
    let record = serde_json::to_vec(event).map_err(|e| codec_error(event, e.to_string()))?;
    Ok(Encoded {
        seq: i64::try_from(event.seq).unwrap_or(i64::MAX),
        kind: event.kind.name(),
        step: event.kind.step().map(|s| s.to_string()),
        checksum: checksum(&record),
        record,
    })
}

fn codec_error(event: &Event, reason: String) -> StoreError {
    StoreError::Codec {
        what: format!("execution `{}`, seq {}", event.execution_id, event.seq),
        reason,
    }
}

/// Where a stored record sits, to check it and to name it in errors.
pub(crate) struct Place<'a> {
    pub(crate) execution: &'a ExecutionId,
    pub(crate) seq: i64,
    pub(crate) step: Option<String>,
}

impl Place<'_> {
    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            execution: self.execution.clone(),
            seq: u64::try_from(self.seq).unwrap_or(0),
            step: self.step.clone(),
            reason,
        }
    }

    /// Checks the version, lets `read` decode and checksum the record, then
    /// checks the checksum and that the record belongs here.
    fn verify(
        &self,
        version: i64,
        stored_checksum: i64,
        read: impl FnOnce() -> Result<(Event, i64), String>,
    ) -> Result<Event, StoreError> {
        if version > RECORD_VERSION {
            return Err(self.corrupt(format!(
                "record version {version} is newer than the {RECORD_VERSION} this build reads"
            )));
        }
        let (event, actual) = read().map_err(|r| self.corrupt(r))?;
        if actual != stored_checksum {
            return Err(self.corrupt(format!(
                "checksum mismatch (stored {stored_checksum:08x}, computed {actual:08x})"
            )));
        }
        if &event.execution_id != self.execution || i64::try_from(event.seq).ok() != Some(self.seq)
        {
            return Err(self.corrupt(format!(
                "record belongs to `{}` seq {}",
                event.execution_id, event.seq
            )));
        }
        Ok(event)
    }
}

/// Decodes a stored row whose checksum covers its exact bytes, refusing
/// anything whose checksum, version or identity does not match.
pub(crate) fn decode(
    execution: &ExecutionId,
    seq: i64,
    step: Option<String>,
    record: &[u8],
    stored_checksum: i64,
    version: i64,
) -> Result<Event, StoreError> {
    let place = Place {
        execution,
        seq,
        step,
    };
    place.verify(version, stored_checksum, || {
        let actual = checksum(record);
        if actual != stored_checksum {
            // Do not even try to parse bytes that fail their checksum.
            return Err(format!(
                "checksum mismatch (stored {stored_checksum:08x}, computed {actual:08x})"
            ));
        }
        let event = serde_json::from_slice(record).map_err(|e| format!("undecodable: {e}"))?;
        Ok((event, actual))
    })
}

/// Decodes a PostgreSQL record: one written as JSONB (version 1) by
/// [`decode_normalised`], a later one by its exact text.
#[cfg(feature = "postgres")]
pub(crate) fn decode_postgres(
    execution: &ExecutionId,
    seq: i64,
    step: Option<String>,
    text: &str,
    stored_checksum: i64,
    version: i64,
) -> Result<Event, StoreError> {
    if version == NORMALISED_RECORD_VERSION {
        decode_normalised(execution, seq, step, text, stored_checksum, version)
    } else {
        decode(
            execution,
            seq,
            step,
            text.as_bytes(),
            stored_checksum,
            version,
        )
    }
}

/// Decodes a record stored as JSONB, whose text comes back normalised (key
/// order, spacing, number spelling): the checksum covers a canonical form
/// (keys sorted, serde's spelling), recomputed from the decoded event.
#[cfg(feature = "postgres")]
fn decode_normalised(
    execution: &ExecutionId,
    seq: i64,
    step: Option<String>,
    text: &str,
    stored_checksum: i64,
    version: i64,
) -> Result<Event, StoreError> {
    let place = Place {
        execution,
        seq,
        step,
    };
    place.verify(version, stored_checksum, || {
        let event: Event = serde_json::from_str(text).map_err(|e| format!("undecodable: {e}"))?;
        let value = serde_json::to_value(&event).map_err(|e| e.to_string())?;
        let actual = canonical_checksum_of(&value);
        if actual == stored_checksum {
            return Ok((event, actual));
        }
        // JSONB may have respelled its numbers: read it as it was written.
        match jsonb::recover(&value, stored_checksum) {
            Some(written) => {
                let event =
                    serde_json::from_value(written).map_err(|e| format!("undecodable: {e}"))?;
                Ok((event, stored_checksum))
            }
            None => Ok((event, actual)),
        }
    })
}

/// CRC-32 of the event as JSON with every object's keys sorted: the
/// checksum PostgreSQL's version 1 records carry (written by tests that
/// make such records).
#[cfg(all(feature = "postgres", test))]
pub(crate) fn canonical_checksum(event: &Event) -> Result<i64, String> {
    let value = serde_json::to_value(event).map_err(|e| e.to_string())?;
    Ok(canonical_checksum_of(&value))
}

/// CRC-32 of a value as JSON with every object's keys sorted.
#[cfg(feature = "postgres")]
fn canonical_checksum_of(value: &serde_json::Value) -> i64 {
    fn write(v: &serde_json::Value, out: &mut Vec<u8>) {
        use serde_json::Value;
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                    out.push(b':');
                    write(&map[k], out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
        }
    }
    let mut out = Vec::new();
    write(value, &mut out);
    checksum(&out)
}

/// The stored text of a status.
pub(crate) fn status_text(status: ExecutionStatus) -> &'static str {
    status.as_str()
}

/// Every status's stored text, quoted and separated by commas, for an SQL
/// `IN (...)` that finds the projection rows whose status is unknown.
pub(crate) fn known_statuses_sql() -> String {
    ExecutionStatus::ALL
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statement that inserts `rows` journal rows (of record version
/// `RECORD_VERSION`, PostgreSQL's) of one execution if, and
/// only if, the journal's next sequence number is the one expected: the
/// sequence check and the insert in one round trip. Parameters (`mark`
/// followed by the position: `?1` for SQLite, `$1` for PostgreSQL): 1 the
/// execution, 2 the expected next sequence number, then per row its seq,
/// kind, step, record (followed by `record_cast`) and checksum.
#[cfg(feature = "postgres")]
pub(crate) fn journal_insert_sql(rows: usize, mark: char, record_cast: &str) -> String {
    use std::fmt::Write as _;
    let mut sql = format!(
        "INSERT INTO orchestrate_journal (execution_id, seq, kind, step, record, checksum, record_version) \
         SELECT {mark}1, v.* FROM (VALUES "
    );
    push_journal_rows(&mut sql, rows, mark, record_cast, RECORD_VERSION);
    let _ = write!(
        sql,
        ") AS v WHERE (SELECT COALESCE(MAX(seq) + 1, 0) FROM orchestrate_journal \
         WHERE execution_id = {mark}1) = {mark}2"
    );
    sql
}

/// Appends the `VALUES` tuples of `rows` journal rows, each binding five
/// parameters from the third on (seq, kind, step, record followed by
/// `record_cast`, checksum) and ending with record version `version`.
pub(crate) fn push_journal_rows(
    sql: &mut String,
    rows: usize,
    mark: char,
    record_cast: &str,
    version: i64,
) {
    use std::fmt::Write as _;
    for row in 0..rows {
        let p = 3 + row * 5;
        let sep = if row == 0 { "" } else { ", " };
        // Writing to a String cannot fail.
        let _ = write!(
            sql,
            "{sep}({mark}{}, {mark}{}, {mark}{}, {mark}{}{record_cast}, {mark}{}, {version})",
            p,
            p + 1,
            p + 2,
            p + 3,
            p + 4
        );
    }
}

/// What a batch of events changes in the executions projection.
pub(crate) struct ProjectionChange<'a> {
    /// `(workflow, idempotency key, started at)` when the batch starts the execution.
    pub(crate) started: Option<(&'a str, Option<&'a str>, i64)>,
    /// The status the batch leaves the execution in, when it changes it
    /// (finished, parked, resumed).
    pub(crate) finished: Option<ExecutionStatus>,
}

pub(crate) fn projection_change(events: &[Event]) -> ProjectionChange<'_> {
    let mut change = ProjectionChange {
        started: None,
        finished: None,
    };
    for e in events {
        match &e.kind {
            EventKind::ExecutionStarted(start) => {
                change.started = Some((
                    &start.workflow,
                    start.idempotency_key.as_deref(),
                    i64::try_from(start.started_at_ms).unwrap_or(i64::MAX),
                ))
            }
            EventKind::ExecutionResumed { .. } => change.finished = Some(ExecutionStatus::Running),
            EventKind::ExecutionParked { .. } => change.finished = Some(ExecutionStatus::Parked),
            EventKind::ExecutionFinished { status, .. } => change.finished = Some(*status),
            _ => {}
        }
    }
    change
}

#[cfg(test)]
mod fuzz;
#[cfg(feature = "postgres")]
mod jsonb;

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            execution_id: "e".into(),
            seq: 3,
            at_us: 7,
            kind: EventKind::StepScheduled { step: "s".into() },
        }
    }

    #[test]
    fn round_trips_and_detects_any_flipped_bit() {
        let enc = encode(&event()).unwrap();
        let back = decode(
            &"e".into(),
            3,
            enc.step.clone(),
            &enc.record,
            enc.checksum,
            RECORD_VERSION,
        )
        .unwrap();
        assert_eq!(back, event());
        for i in 0..enc.record.len() {
            let mut bad = enc.record.clone();
            bad[i] ^= 0x10;
            let err = decode(
                &"e".into(),
                3,
                Some("s".into()),
                &bad,
                enc.checksum,
                RECORD_VERSION,
            )
            .unwrap_err();
            assert!(
                matches!(err, StoreError::Corrupt { seq: 3, ref step, .. } if step.as_deref() == Some("s"))
            );
        }
    }

    #[test]
    fn refuses_newer_versions_and_misplaced_records() {
        let enc = encode(&event()).unwrap();
        assert!(decode(
            &"e".into(),
            3,
            None,
            &enc.record,
            enc.checksum,
            RECORD_VERSION + 1
        )
        .is_err());
        assert!(decode(
            &"other".into(),
            3,
            None,
            &enc.record,
            enc.checksum,
            RECORD_VERSION
        )
        .is_err());
        assert!(decode(
            &"e".into(),
            4,
            None,
            &enc.record,
            enc.checksum,
            RECORD_VERSION
        )
        .is_err());
    }
}
