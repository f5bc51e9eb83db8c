//! What a store does with damaged data: a store that keeps journal records
//! and projection rows apart (the SQL stores) is damaged through its own
//! tables, then must report every problem, keep listing every execution,
//! never return a damaged journal as data, and rebuild its projections.
//!
//! A backend's test implements [`Damage`] with its own SQL and calls
//! [`damaged_store_is_read_reported_and_rebuilt`].

// A damage case fails by panicking, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use orchestrate_core::journal::{Event, EventKind, ExecutionStart, ExecutionStatus};
use orchestrate_core::store::{ExecutionQuery, Problem, Store, StoreError};
use orchestrate_core::ExecutionId;
use serde_json::json;

/// Damage done to a store's tables behind its back, as a disk error, a
/// bad migration or a hand-edited database would do it.
#[async_trait]
pub trait Damage: Send + Sync {
    /// Deletes record `seq` of `execution`'s journal.
    async fn delete_record(&self, execution: &str, seq: u64);
    /// Changes a byte of record `seq`'s stored JSON, leaving its checksum.
    async fn tamper_record(&self, execution: &str, seq: u64);
    /// Writes `status` (any text) into `execution`'s projection row.
    async fn set_projection_status(&self, execution: &str, status: &str);
    /// Deletes `execution`'s projection row.
    async fn delete_projection(&self, execution: &str);
}

fn event(id: &str, seq: u64, kind: EventKind) -> Event {
    Event {
        execution_id: id.into(),
        seq,
        at_us: seq,
        kind,
    }
}

/// A journal of `steps` succeeded steps, ending with `end` when given.
fn journal(id: &str, started_at_ms: u64, steps: u64, end: Option<ExecutionStatus>) -> Vec<Event> {
    let mut events = vec![event(
        id,
        0,
        EventKind::ExecutionStarted(Arc::new(ExecutionStart {
            workflow: "damaged".into(),
            version: "1".into(),
            correlation_id: id.into(),
            input: Arc::new(json!({"n": steps})),
            idempotency_key: None,
            started_at_ms,
            steps: Arc::from(["s".into()]),
        })),
    )];
    events.extend((1..=steps).map(|seq| {
        event(
            id,
            seq,
            EventKind::StepSucceeded {
                step: "s".into(),
                output: Arc::new(json!({"seq": seq})),
                attempts: 1,
                fallback_from: None,
            },
        )
    }));
    if let Some(status) = end {
        let seq = events.len() as u64;
        events.push(event(
            id,
            seq,
            EventKind::ExecutionFinished {
                status,
                error: None,
            },
        ));
    }
    events
}

async fn listed(store: &dyn Store, query: ExecutionQuery) -> Vec<(String, ExecutionStatus)> {
    let mut found: Vec<_> = store
        .list_executions(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id.as_str().to_owned(), s.status))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Six executions, five of them damaged one way each:
///
/// - `gap`: record 5 of 22 deleted. `load` fails with `Corrupt` naming seq
///   5; its (intact) projection row still lists it.
/// - `tampered`: a record's bytes changed. `load` fails naming that record.
/// - `bad-status`: its projection row says `exploded`. Listed with its
///   journal's status, under a status filter too.
/// - `no-row`: its projection row deleted. Listed from its journal.
/// - `stale`: its projection row says `running`; its journal, `succeeded`.
/// - `intact`: untouched.
///
/// `verify` reports exactly those five problems; `rebuild_projections`
/// rewrites the three rows whose journals are whole and reports the two
/// unreadable journals; afterwards `verify` reports only the journals.
pub async fn damaged_store_is_read_reported_and_rebuilt(
    store: Arc<dyn Store>,
    damage: &dyn Damage,
) {
    use ExecutionStatus::{Failed, Running, Succeeded};
    let journals = [
        ("gap", journal("gap", 6, 20, Some(Succeeded))),
        ("tampered", journal("tampered", 5, 3, Some(Succeeded))),
        ("bad-status", journal("bad-status", 4, 2, Some(Failed))),
        ("no-row", journal("no-row", 3, 2, None)),
        ("stale", journal("stale", 2, 1, Some(Succeeded))),
        ("intact", journal("intact", 1, 1, None)),
    ];
    for (id, events) in &journals {
        store.append(&ExecutionId::from(*id), events).await.unwrap();
    }
    let report = store.verify().await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.executions, 6);
    assert_eq!(
        report.events,
        journals.iter().map(|(_, e)| e.len() as u64).sum::<u64>()
    );
    let before = listed(&*store, ExecutionQuery::all()).await;
    assert_eq!(before.len(), 6);

    damage.delete_record("gap", 5).await;
    damage.tamper_record("tampered", 2).await;
    damage.set_projection_status("bad-status", "exploded").await;
    damage.delete_projection("no-row").await;
    damage.set_projection_status("stale", "running").await;

    // Damaged journals are errors naming the record, never data.
    match store.load(&"gap".into(), 0).await {
        Err(StoreError::Corrupt { seq: 5, reason, .. }) => {
            assert!(reason.contains("missing"), "{reason}")
        }
        other => panic!("expected the gap at seq 5, got {other:?}"),
    }
    assert!(matches!(
        store.load(&"gap".into(), 3).await,
        Err(StoreError::Corrupt { seq: 5, .. })
    ));
    assert_eq!(store.load(&"gap".into(), 6).await.unwrap().len(), 16);
    assert!(matches!(
        store.load(&"tampered".into(), 0).await,
        Err(StoreError::Corrupt { seq: 2, .. })
    ));

    // Every execution is still listed; damaged rows read from the journal.
    let stale_row = ("stale".to_owned(), Running);
    let mut expected = before.clone();
    expected.retain(|(id, _)| id != "stale");
    expected.push(stale_row);
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed(&*store, ExecutionQuery::all()).await, expected);
    let failed = ExecutionQuery {
        status: Some(Failed),
        ..ExecutionQuery::default()
    };
    assert_eq!(
        listed(&*store, failed).await,
        vec![("bad-status".to_owned(), Failed)]
    );
    let unfinished = listed(&*store, ExecutionQuery::unfinished()).await;
    let unfinished: Vec<&str> = unfinished.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(unfinished, ["intact", "no-row", "stale"]);
    // Most recent first, within the limit, damaged rows in their place.
    let first_three = store
        .list_executions(&ExecutionQuery {
            limit: 3,
            ..ExecutionQuery::default()
        })
        .await
        .unwrap();
    let first_three: Vec<&str> = first_three.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(first_three, ["gap", "tampered", "bad-status"]);

    let report = store.verify().await.unwrap();
    let found: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(report.problems.len(), 5, "{report}");
    let has = |id: &str, matches: &dyn Fn(&Problem) -> bool| {
        report.problems_of(&ExecutionId::from(id)).any(matches)
    };
    assert!(
        has("gap", &|p| matches!(
            p,
            Problem::MissingRecords { from: 5, to: 6, .. }
        )),
        "{found:?}"
    );
    assert!(
        has("tampered", &|p| matches!(
            p,
            Problem::UnreadableRecord { seq: 2, .. }
        )),
        "{found:?}"
    );
    assert!(
        has(
            "bad-status",
            &|p| matches!(p, Problem::ProjectionUnreadable { reason, .. } if reason.contains("exploded"))
        ),
        "{found:?}"
    );
    assert!(
        has("no-row", &|p| matches!(
            p,
            Problem::ProjectionMissing { .. }
        )),
        "{found:?}"
    );
    assert!(
        has("stale", &|p| matches!(
            p,
            Problem::ProjectionDisagrees {
                field: "status",
                ..
            }
        )),
        "{found:?}"
    );

    let rebuilt = store.rebuild_projections().await.unwrap();
    // The intact journals' rows are rewritten too: four whole journals.
    assert_eq!(rebuilt.rebuilt, 4, "{rebuilt:?}");
    let mut unreadable: Vec<(String, u64)> = rebuilt
        .unreadable
        .iter()
        .map(|e| match e {
            StoreError::Corrupt { execution, seq, .. } => (execution.as_str().to_owned(), *seq),
            other => panic!("unexpected {other}"),
        })
        .collect();
    unreadable.sort();
    assert_eq!(
        unreadable,
        [("gap".to_owned(), 5), ("tampered".to_owned(), 2)]
    );
    assert!(rebuilt.without_journal.is_empty());

    let report = store.verify().await.unwrap();
    assert_eq!(report.problems.len(), 2, "{report}");
    assert!(report
        .problems
        .iter()
        .all(|p| ["gap", "tampered"].contains(&p.execution().as_str())));
    let mut after = before;
    after.retain(|(id, _)| id != "stale");
    after.push(("stale".to_owned(), Succeeded));
    after.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed(&*store, ExecutionQuery::all()).await, after);

    // A journal whose every record is gone leaves a row with no journal.
    damage.delete_record("intact", 1).await;
    damage.delete_record("intact", 0).await;
    let report = store.verify().await.unwrap();
    assert!(
        report
            .problems_of(&"intact".into())
            .any(|p| matches!(p, Problem::ProjectionWithoutJournal { .. })),
        "{report}"
    );
    let rebuilt = store.rebuild_projections().await.unwrap();
    assert_eq!(rebuilt.without_journal, [ExecutionId::from("intact")]);
}
