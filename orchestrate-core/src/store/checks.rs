//! The checks every store makes: batches before they are written, values
//! before they are kept, journals as they are read.

use serde_json::Value;

use super::StoreError;
use crate::depth::{exceeds_max_depth, MAX_VALUE_DEPTH};
use crate::ids::ExecutionId;
use crate::journal::Event;

/// Checks that a batch is consecutive and all of `execution`, and that no
/// event's payload nests deeper than
/// [`MAX_VALUE_DEPTH`](crate::depth::MAX_VALUE_DEPTH); every backend calls it
/// before writing.
///
/// # Errors
///
/// [`StoreError::InvalidBatch`] naming the first offending event;
/// [`StoreError::ValueTooDeep`] naming the first event too deep to store.
pub fn check_batch(execution: &ExecutionId, events: &[Event]) -> Result<(), StoreError> {
    let invalid = |reason: String| StoreError::InvalidBatch {
        execution: execution.clone(),
        reason,
    };
    for (i, e) in events.iter().enumerate() {
        if &e.execution_id != execution {
            return Err(invalid(format!(
                "event seq {} belongs to `{}`",
                e.seq, e.execution_id
            )));
        }
        if i > 0 && e.seq != events[i - 1].seq + 1 {
            return Err(invalid(format!(
                "seq {} follows {}",
                e.seq,
                events[i - 1].seq
            )));
        }
        if e.kind.payload().is_some_and(exceeds_max_depth) {
            return Err(StoreError::ValueTooDeep {
                what: format!("execution `{execution}`, seq {} ({})", e.seq, e.kind.name()),
                limit: MAX_VALUE_DEPTH,
            });
        }
    }
    Ok(())
}

/// Checks a value a store is asked to keep outside the journal (a
/// key-value value, a message payload).
///
/// # Errors
///
/// [`StoreError::ValueTooDeep`] naming `what` when the value nests deeper
/// than [`MAX_VALUE_DEPTH`](crate::depth::MAX_VALUE_DEPTH).
pub fn check_value(what: impl FnOnce() -> String, value: &Value) -> Result<(), StoreError> {
    if exceeds_max_depth(value) {
        return Err(StoreError::ValueTooDeep {
            what: what(),
            limit: MAX_VALUE_DEPTH,
        });
    }
    Ok(())
}

/// Checks that `events`, loaded from sequence number `from`, have no gap:
/// the first is `from` (unless the journal ends before it) and each follows
/// the one before. Every backend that stores records apart calls it in
/// `load`, so a record deleted from the middle of a journal is reported,
/// never skipped.
///
/// # Errors
///
/// [`StoreError::Corrupt`] naming the execution and the first missing
/// sequence number.
pub fn check_continuity(
    execution: &ExecutionId,
    from: u64,
    events: &[Event],
) -> Result<(), StoreError> {
    for (expected, e) in (from..).zip(events) {
        if e.seq != expected {
            let reason = if e.seq > expected {
                format!(
                    "seq {expected} is missing: the journal goes on at seq {}",
                    e.seq
                )
            } else {
                format!("seq {} comes again after seq {}", e.seq, expected - 1)
            };
            return Err(StoreError::Corrupt {
                execution: execution.clone(),
                seq: expected,
                step: None,
                reason,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::journal::EventKind;

    fn scheduled(seq: u64) -> Event {
        Event {
            execution_id: "e".into(),
            seq,
            at_us: 0,
            kind: EventKind::StepScheduled { step: "s".into() },
        }
    }

    fn deep(depth: usize) -> Value {
        (0..depth).fold(json!(0), |v, _| Value::Array(vec![v]))
    }

    #[test]
    fn a_gap_names_the_first_missing_sequence_number() {
        let id = ExecutionId::from("e");
        let events: Vec<Event> = [3, 4, 6, 7].into_iter().map(scheduled).collect();
        assert!(check_continuity(&id, 3, &events[..2]).is_ok());
        match check_continuity(&id, 3, &events) {
            Err(StoreError::Corrupt { seq: 5, reason, .. }) => {
                assert!(
                    reason.contains("missing") && reason.contains("seq 6"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        // A load from 2 that starts at 3 lost seq 2.
        assert!(matches!(
            check_continuity(&id, 2, &events[..2]),
            Err(StoreError::Corrupt { seq: 2, .. })
        ));
        let repeated: Vec<Event> = [0, 1, 1].into_iter().map(scheduled).collect();
        assert!(matches!(
            check_continuity(&id, 0, &repeated),
            Err(StoreError::Corrupt { seq: 2, reason, .. }) if reason.contains("again")
        ));
        assert!(check_continuity(&id, 9, &[]).is_ok());
    }

    #[test]
    fn a_batch_with_a_payload_past_the_depth_limit_is_refused() {
        let id = ExecutionId::from("e");
        let mut events = vec![scheduled(0), scheduled(1)];
        events[1].kind = EventKind::StepSucceeded {
            step: "s".into(),
            output: Arc::new(deep(MAX_VALUE_DEPTH)),
            attempts: 1,
            fallback_from: None,
        };
        assert!(check_batch(&id, &events).is_ok());
        events[1].kind = EventKind::Custom {
            step: "s".into(),
            name: "n".into(),
            payload: Box::new(deep(MAX_VALUE_DEPTH + 1)),
        };
        match check_batch(&id, &events) {
            Err(StoreError::ValueTooDeep { what, limit }) => {
                assert_eq!(limit, MAX_VALUE_DEPTH);
                assert!(what.contains("seq 1") && what.contains("custom"), "{what}");
            }
            other => panic!("{other:?}"),
        }
        assert!(check_value(|| "k".into(), &deep(MAX_VALUE_DEPTH)).is_ok());
        assert!(check_value(|| "k".into(), &deep(MAX_VALUE_DEPTH + 1)).is_err());
    }
}
