//! Conformance cases for `verify` and `rebuild_projections` on a healthy
//! store (damaged ones are in [`store_damage`](crate::store_damage)).

use std::future::Future;

use orchestrate_core::journal::ExecutionStatus;
use orchestrate_core::store::{ExecutionQuery, ManualClock};
use orchestrate_core::ExecutionId;

use super::{every_kind, finished, started, subject, Subject, START_MS};

/// A healthy store verifies clean, counting every journal and record, and
/// rebuilding its projections changes no listing.
pub async fn a_healthy_store_verifies_clean_and_rebuilds_unchanged<F, Fut>(make: F)
where
    F: Fn(ManualClock) -> Fut,
    Fut: Future<Output = Subject>,
{
    let (s, _) = subject(&make).await;
    let report = s.store.verify().await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.executions, report.events), (0, 0));

    let mut records = 0;
    for (i, status) in [ExecutionStatus::Succeeded, ExecutionStatus::Failed]
        .into_iter()
        .enumerate()
    {
        let id = format!("exec-healthy-{i}");
        let mut events = vec![started(&id, "healthy", START_MS + i as u64, Some(&id))];
        events.extend(every_kind(&id).into_iter().skip(1).take(4));
        for (seq, e) in events.iter_mut().enumerate() {
            e.seq = seq as u64;
        }
        let end = events.len() as u64;
        events.push(finished(&id, end, status));
        records += events.len() as u64;
        s.store
            .append(&ExecutionId::from(id.as_str()), &events)
            .await
            .unwrap();
    }
    let report = s.store.verify().await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.executions, report.events), (2, records));
    assert_eq!(
        report.to_string(),
        "2 execution(s), 12 record(s): no problem found"
    );

    let before = s
        .store
        .list_executions(&ExecutionQuery::all())
        .await
        .unwrap();
    let rebuilt = s.store.rebuild_projections().await.unwrap();
    assert_eq!(rebuilt.rebuilt, 2, "{rebuilt:?}");
    assert!(rebuilt.unreadable.is_empty() && rebuilt.without_journal.is_empty());
    assert_eq!(
        s.store
            .list_executions(&ExecutionQuery::all())
            .await
            .unwrap(),
        before
    );
    assert!(s.store.verify().await.unwrap().is_clean());
}
