//! Helpers shared by the integration tests.
#![allow(dead_code)]

use orchestrate_core::journal::{Event, EventKind};
use orchestrate_core::{Execution, Orchestrator};

/// The stored journal of an execution.
pub(crate) async fn journal(orchestrator: &Orchestrator, execution: &Execution) -> Vec<Event> {
    orchestrator.store().load(execution.id(), 0).await.unwrap()
}

/// `(type, step)` of every event, for order assertions.
pub(crate) fn trace(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.kind.name().to_owned(),
                e.kind.step().map(|s| s.to_string()).unwrap_or_default(),
            )
        })
        .collect()
}

/// Position of the first event of type `kind` about `step`.
pub(crate) fn position(events: &[Event], kind: &str, step: &str) -> usize {
    events
        .iter()
        .position(|e| e.kind.name() == kind && e.kind.step().is_some_and(|s| &**s == step))
        .unwrap_or_else(|| panic!("no {kind} for {step}"))
}

/// Asserts the journal's sequence numbers are 0..n with no gap.
pub(crate) fn assert_contiguous(events: &[Event]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64, "gap or duplicate at {i}");
    }
    assert!(matches!(
        events.last().map(|e| &e.kind),
        Some(EventKind::ExecutionFinished { .. })
    ));
}
