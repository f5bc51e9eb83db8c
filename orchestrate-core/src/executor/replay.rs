//! What a resumed execution replays: the calls and side effects its
//! journal holds, by id, and the budgets as the journal leaves them.

use crate::fast_map::FastMap;
use std::sync::Arc;

use serde_json::Value;

use crate::budget::BudgetLedger;
use crate::context::Context;
use crate::error::{Error, ErrorInfo};
use crate::journal::{Event, EventKind};

/// A call as the journal recorded it, for replay.
pub(crate) struct CallRecord {
    pub(super) agent: Arc<str>,
    pub(super) digest: u64,
    /// Its result, once it ended.
    pub(super) outcome: Option<Result<Arc<Value>, ErrorInfo>>,
}

/// The calls and side effects of a journal, by id: what a resumed
/// execution replays.
#[derive(Default)]
pub(crate) struct ReplayLog {
    pub(super) calls: FastMap<Arc<str>, CallRecord>,
    pub(super) effects: FastMap<Arc<str>, (Box<str>, Arc<Value>)>,
    /// Decisions by id: their kind and choice.
    pub(super) decisions: FastMap<Arc<str>, (Box<str>, Value)>,
    /// The ids of keyed calls and decisions, in journal order, by the
    /// prefix their caller's attempt gives its children's ids (`pool`
    /// for `pool/t7.0`): what strict replay expects an attempt to take.
    /// Empty unless the replay is strict.
    pub(super) keyed: FastMap<Arc<str>, Vec<Arc<str>>>,
    /// The consumptions the journal holds, by id: a resumed attempt's are
    /// not counted again.
    pub(crate) consumed: std::collections::HashSet<Arc<str>>,
    /// The budgets as the journal leaves them, when it has any.
    pub(crate) budgets: Option<BudgetLedger>,
}

impl ReplayLog {
    /// The calls recorded in `events`; with `strict`, the keyed ones
    /// indexed by caller too.
    pub(crate) fn from_events(events: &[Event], thresholds: &[u8], strict: bool) -> Self {
        let mut calls = FastMap::default();
        let mut effects = FastMap::default();
        let mut decisions = FastMap::default();
        let mut keyed: FastMap<Arc<str>, Vec<Arc<str>>> = FastMap::default();
        let mut budgets: Option<BudgetLedger> = None;
        let mut consumed = std::collections::HashSet::new();
        for e in events {
            if let EventKind::BudgetConsumed { op: Some(op), .. } = &e.kind {
                consumed.insert(op.clone());
            }
            let needs = match &e.kind {
                EventKind::BudgetSet { .. } | EventKind::BudgetConsumed { .. } => true,
                EventKind::CallStarted(start) => start.budget.is_some(),
                _ => false,
            };
            if needs || budgets.is_some() {
                let ledger = budgets.get_or_insert_with(|| BudgetLedger::new(thresholds));
                crate::journal::apply_to_budgets(ledger, e);
            }
            match &e.kind {
                EventKind::CallStarted(start) => {
                    if strict {
                        index_keyed(&mut keyed, &start.call);
                    }
                    calls.insert(
                        start.call.clone(),
                        CallRecord {
                            agent: start.agent.clone(),
                            digest: start.digest,
                            outcome: None,
                        },
                    );
                }
                EventKind::CallCompleted { call, output, .. } => {
                    if let Some(record) = calls.get_mut(call) {
                        record.outcome = Some(Ok(output.clone()));
                    }
                }
                EventKind::CallFailed { call, error, .. } => {
                    if let Some(record) = calls.get_mut(call) {
                        record.outcome = Some(Err(ErrorInfo::clone(error)));
                    }
                }
                EventKind::SideEffect { call, name, value } => {
                    effects.insert(call.clone(), (name.clone(), value.clone()));
                }
                EventKind::Decision(decision) => {
                    if strict {
                        index_keyed(&mut keyed, &decision.id);
                    }
                    decisions.insert(
                        decision.id.clone(),
                        (decision.kind.clone(), decision.value.clone()),
                    );
                }
                _ => {}
            }
        }
        Self {
            calls,
            effects,
            decisions,
            keyed,
            consumed,
            budgets,
        }
    }

    /// What the journal holds under id `call`, said for a divergence.
    pub(super) fn describe(&self, call: &str) -> Option<String> {
        if let Some(record) = self.calls.get(call) {
            return Some(format!(
                "agent `{}`, input digest {:016x}",
                record.agent, record.digest
            ));
        }
        if let Some((kind, _)) = self.decisions.get(call) {
            return Some(format!("decision `{kind}`"));
        }
        self.effects
            .get(call)
            .map(|(name, _)| format!("side effect `{name}`"))
    }
}

/// The prefix of keyed id `id` (`pool` for `pool/t7.0` or
/// `pool/assign:t7.0`); `None` for a numbered one (`pool/7`).
///
/// A sub-workflow's steps are named, not keyed, and index here too: the
/// attempts that make them ([`Context::call_named`]) are not checked.
pub(super) fn keyed_prefix(id: &str) -> Option<&str> {
    let (prefix, last) = id.rsplit_once('/')?;
    (!last.bytes().all(|b| b.is_ascii_digit())).then_some(prefix)
}

/// Adds `id` to `keyed` when it is keyed.
fn index_keyed(keyed: &mut FastMap<Arc<str>, Vec<Arc<str>>>, id: &Arc<str>) {
    let Some(prefix) = keyed_prefix(id) else {
        return;
    };
    // One prefix per caller, not per id: looked up before it is copied.
    match keyed.get_mut(prefix) {
        Some(ids) => ids.push(id.clone()),
        None => {
            keyed.insert(Arc::from(prefix), vec![id.clone()]);
        }
    }
}

/// The error of a replayed call or side effect that is not what the
/// journal recorded; the caller's attempt fails with it.
pub(super) fn diverged(caller: &Context, call: Arc<str>, recorded: String, now: String) -> Error {
    let error = Error::NonDeterministic {
        call,
        recorded,
        now,
    };
    caller.diverged(error.clone());
    error
}
