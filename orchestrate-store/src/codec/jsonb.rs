//! Reading back PostgreSQL's version 1 records, stored as JSONB before
//! schema 4. JSONB normalised their numbers: a float such as `1e17` came
//! back as the integer `100000000000000000`, `-0.0` as `0.0`. The checksum
//! covers the canonical form of the value as written, so such a record no
//! longer matched it. Each number that JSONB may have respelled is tried
//! both ways, and the record is read back if one spelling matches its
//! checksum: its data was accepted and is not lost.

use serde_json::{Number, Value};

/// Numbers tried both ways at the most: 2^12 checksums of one record.
const MAX_AMBIGUOUS: u32 = 12;

/// The value as written, when respelling some of its numbers matches
/// `stored` (the canonical checksum of what was written).
pub(super) fn recover(value: &Value, stored: i64) -> Option<Value> {
    let ambiguous = count(value);
    if ambiguous == 0 || ambiguous > MAX_AMBIGUOUS {
        return None;
    }
    (1..1u32 << ambiguous).find_map(|mask| {
        let mut candidate = value.clone();
        respell(&mut candidate, mask, &mut 0);
        (super::canonical_checksum_of(&candidate) == stored).then_some(candidate)
    })
}

/// The other spelling of a number JSONB may have changed: an integer that
/// was a float written with an exponent, a zero that was negative.
fn other_spelling(n: &Number) -> Option<Value> {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        return (f == 0.0 && f.is_sign_positive()).then(|| Value::from(-0.0));
    }
    let as_float = n.as_f64()?;
    let exact = n
        .as_i64()
        .map(|i| as_float as i64 == i && as_float.abs() < 9.2e18)
        .or_else(|| {
            n.as_u64()
                .map(|u| as_float < 1.8e19 && as_float as u64 == u)
        })?;
    let written = Number::from_f64(as_float)?.to_string();
    (exact && written.contains('e')).then(|| Value::from(as_float))
}

fn count(value: &Value) -> u32 {
    match value {
        Value::Number(n) => u32::from(other_spelling(n).is_some()),
        Value::Array(items) => items.iter().map(count).sum(),
        Value::Object(map) => map.values().map(count).sum(),
        _ => 0,
    }
}

/// Respells the ambiguous numbers whose bit is set in `mask`, numbering
/// them in walk order from `next`.
fn respell(value: &mut Value, mask: u32, next: &mut u32) {
    match value {
        Value::Number(n) => {
            if let Some(other) = other_spelling(n) {
                if mask & (1 << *next) != 0 {
                    *value = other;
                }
                *next += 1;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| respell(v, mask, next)),
        Value::Object(map) => map.values_mut().for_each(|v| respell(v, mask, next)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use orchestrate_core::journal::{Event, EventKind};
    use serde_json::json;

    use super::super::{canonical_checksum, decode_postgres, NORMALISED_RECORD_VERSION};

    /// A version 1 record as JSONB gave its text back: integral floats
    /// written out, negative zero made positive.
    #[test]
    fn a_record_whose_numbers_jsonb_respelled_is_read_back() {
        let event = Event {
            execution_id: "x".into(),
            seq: 1,
            at_us: 1,
            kind: EventKind::StepSucceeded {
                step: "s".into(),
                output: Arc::new(json!({"big": 1e17, "zero": -0.0, "n": 7, "f": 2.5, "m": 1e15})),
                attempts: 1,
                fallback_from: None,
            },
        };
        let written = serde_json::to_string(&event).unwrap();
        let jsonb = written
            .replace("1e17", "100000000000000000")
            .replace("-0.0", "0.0")
            .replace("1e15", "1000000000000000");
        assert_ne!(written, jsonb);
        let checksum = canonical_checksum(&event).unwrap();
        let read = decode_postgres(
            &"x".into(),
            1,
            None,
            &jsonb,
            checksum,
            NORMALISED_RECORD_VERSION,
        )
        .unwrap();
        assert_eq!(serde_json::to_string(&read).unwrap(), written);
        // A record changed otherwise is still corrupt.
        let tampered = jsonb.replace("2.5", "3.5");
        assert!(decode_postgres(
            &"x".into(),
            1,
            None,
            &tampered,
            checksum,
            NORMALISED_RECORD_VERSION
        )
        .is_err());
    }
}
