//! Fuzzing the SQL stores' record decoders with proptest: arbitrary bytes,
//! arbitrary bytes that pass their checksum (so that the parser itself is
//! reached), and valid records with a byte changed and the checksum made
//! to match. Never a panic, never a hang; every failure is
//! `StoreError::Corrupt` naming the execution and sequence number.
//!
//! A bounded number of cases runs with `cargo test`; set
//! `ORCHESTRATE_FUZZ_CASES` for more.

use std::sync::Arc;

use orchestrate_core::journal::{Event, EventKind, ExecutionStart};
use orchestrate_core::store::StoreError;
use proptest::prelude::*;
use serde_json::json;

use super::{checksum, decode, encode, RECORD_VERSION};

fn config() -> ProptestConfig {
    let cases = orchestrate_testing::store_conformance::fuzz_cases(512);
    ProptestConfig {
        timeout: 10_000,
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// A valid record to damage: a start with a nested input, or a step's output.
fn record() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), "[a-z\"\\\\{}\\[\\]]{0,12}", 0u64..1_000).prop_map(|(start, text, n)| {
        let kind = if start {
            EventKind::ExecutionStarted(Arc::new(ExecutionStart {
                workflow: "w".into(),
                version: "1".into(),
                correlation_id: "c".into(),
                input: Arc::new(json!({"text": text, "n": [n, {"deep": [[n]]}]})),
                idempotency_key: Some("k".into()),
                started_at_ms: n,
                steps: Arc::from(["a".into()]),
            }))
        } else {
            EventKind::StepSucceeded {
                step: "a".into(),
                output: Arc::new(json!([text, n, null, 1.5])),
                attempts: 1,
                fallback_from: None,
            }
        };
        let event = Event {
            execution_id: "e".into(),
            seq: 3,
            at_us: n,
            kind,
        };
        encode(&event).map(|e| e.record).unwrap_or_default()
    })
}

/// Decodes `bytes` as record 3 of `e`, with `stored` as its checksum, the
/// way each backend does; checks that a failure is typed and placed.
fn check(bytes: &[u8], stored: i64) {
    let results = [
        decode(
            &"e".into(),
            3,
            Some("a".into()),
            bytes,
            stored,
            RECORD_VERSION,
        ),
        decode(&"e".into(), 3, None, bytes, stored, 1),
        #[cfg(feature = "postgres")]
        super::decode_postgres(
            &"e".into(),
            3,
            None,
            &String::from_utf8_lossy(bytes),
            stored,
            super::NORMALISED_RECORD_VERSION,
        ),
    ];
    for result in results {
        match result {
            Ok(event) => assert_eq!((event.execution_id.as_str(), event.seq), ("e", 3)),
            Err(StoreError::Corrupt { execution, seq, .. }) => {
                assert_eq!((execution.as_str(), seq), ("e", 3))
            }
            Err(other) => panic!("untyped failure: {other}"),
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), stored in any::<i64>()) {
        check(&bytes, stored);
    }

    #[test]
    fn arbitrary_bytes_that_pass_their_checksum(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes, checksum(&bytes));
    }

    #[test]
    fn damaged_records_that_pass_their_checksum(
        record in record(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let mut bytes = record;
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            if cut {
                bytes.truncate(i);
            } else {
                bytes[i] = byte;
            }
        }
        check(&bytes, checksum(&bytes));
    }

    #[test]
    fn documents_nested_past_what_the_decoder_reads(depth in 100usize..5_000) {
        let text = format!(
            "{{\"execution_id\":\"e\",\"seq\":3,\"at_us\":0,\"type\":\"step_succeeded\",\"step\":\"a\",\"attempts\":1,\"output\":{}0{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        check(text.as_bytes(), checksum(text.as_bytes()));
    }
}
