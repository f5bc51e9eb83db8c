//! Property test of hierarchical budgets: for arbitrary trees and arbitrary
//! interleavings of allocate / consume / finish / terminate, no balance goes
//! negative, the conservation law holds at every account after every
//! operation, a refused operation changes nothing, and folding the journal
//! of what happened (as after a crash) gives the same balances.

use std::sync::Arc;

use orchestrate_core::budget::{Balance, BudgetLedger, ROOT};
use orchestrate_core::journal::{CallStart, Event, EventKind, ExecutionStart};
use orchestrate_core::ErrorInfo;
use proptest::prelude::*;
use serde_json::json;

/// One operation, on nodes named by their position in the tree.
#[derive(Clone, Debug)]
enum Op {
    /// Opens a call under an open node, perhaps with an allocation.
    Allocate { parent: usize, amount: Option<u64> },
    /// Consumes at an open node.
    Consume { node: usize, amount: u64 },
    /// Ends an open call, whose calls may go on running.
    Finish { node: usize },
    /// Ends an open call and everything open below it, deepest first.
    Terminate { node: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), prop::option::weighted(0.7, 0u64..400))
            .prop_map(|(p, amount)| Op::Allocate { parent: p.index(1 << 16), amount }),
        5 => (any::<prop::sample::Index>(), 0u64..120)
            .prop_map(|(n, amount)| Op::Consume { node: n.index(1 << 16), amount }),
        2 => any::<prop::sample::Index>().prop_map(|n| Op::Finish { node: n.index(1 << 16) }),
        1 => any::<prop::sample::Index>().prop_map(|n| Op::Terminate { node: n.index(1 << 16) }),
    ]
}

/// The model: every node's id, parent, allocation, own consumption, and
/// whether it is open. Node 0 is the step `s`; the execution is the root.
struct Model {
    ids: Vec<Arc<str>>,
    parent: Vec<Option<usize>>,
    allocated: Vec<Option<u64>>,
    own: Vec<u64>,
    open: Vec<bool>,
    children: Vec<u32>,
}

impl Model {
    fn new() -> Self {
        Self {
            ids: vec!["s".into()],
            parent: vec![None],
            allocated: vec![None],
            own: vec![0],
            open: vec![true],
            children: vec![0],
        }
    }

    fn open_nodes(&self) -> Vec<usize> {
        (0..self.ids.len()).filter(|&i| self.open[i]).collect()
    }

    fn descendants(&self, node: usize) -> Vec<usize> {
        let mut out: Vec<usize> = (0..self.ids.len())
            .filter(|&i| {
                let mut at = self.parent[i];
                while let Some(p) = at {
                    if p == node {
                        return true;
                    }
                    at = self.parent[p];
                }
                false
            })
            .collect();
        // Deepest first: a larger index is never an ancestor of a smaller.
        out.sort_unstable_by(|a, b| b.cmp(a));
        out
    }

    fn subtree_consumed(&self, node: usize) -> u64 {
        self.own[node]
            + self
                .descendants(node)
                .iter()
                .map(|&d| self.own[d])
                .sum::<u64>()
    }
}

fn event(seq: u64, kind: EventKind) -> Event {
    Event {
        execution_id: "e".into(),
        seq,
        at_us: seq,
        kind,
    }
}

fn checks(ledger: &BudgetLedger, model: &Model, root_budget: u64) -> Result<(), TestCaseError> {
    let root = ledger.balance(ROOT).unwrap();
    let all: u64 = model.own.iter().sum();
    prop_assert_eq!(root.consumed, all, "the root counts every consumption");
    for (i, id) in model.ids.iter().enumerate() {
        let Some(b) = ledger.balance(id) else {
            continue;
        };
        // Consumption bubbles up: an account counts its whole subtree's.
        prop_assert_eq!(b.consumed, model.subtree_consumed(i), "consumed at {}", id);
        if let Some(a) = b.allocated {
            if model.open[i] {
                // allocated = consumed + held + available, available ≥ 0.
                prop_assert!(b.consumed + b.held <= a, "overrun at {id}: {b:?}");
                prop_assert_eq!(b.available, Some(a - b.consumed - b.held));
            } else {
                // Ended: the rest went back.
                prop_assert_eq!(b.available, Some(0), "ended {}", id);
            }
        }
    }
    prop_assert!(root.consumed + root.held <= root_budget, "{root:?}");
    Ok(())
}

proptest! {
    #[test]
    fn budgets_conserve_refuse_whole_and_replay_exactly(
        root_budget in 100u64..2_000,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut ledger = BudgetLedger::default();
        ledger.set_root(root_budget);
        let mut model = Model::new();
        let mut journal = vec![
            event(0, EventKind::ExecutionStarted(Arc::new(ExecutionStart {
                workflow: "w".into(),
                version: "1".into(),
                correlation_id: "e".into(),
                input: Arc::new(json!(null)),
                idempotency_key: None,
                started_at_ms: 0,
                steps: Arc::from(["s".into()]),
            }))),
            event(1, EventKind::BudgetSet { amount: root_budget, unit: "tokens".into() }),
        ];
        let record = |kind: EventKind, journal: &mut Vec<Event>| {
            let seq = journal.len() as u64;
            journal.push(event(seq, kind));
        };
        for op in ops {
            let open = model.open_nodes();
            if open.is_empty() {
                break;
            }
            let before = ledger.clone();
            match op {
                Op::Allocate { parent, amount } => {
                    let parent = open[parent % open.len()];
                    let index = model.children[parent];
                    let id: Arc<str> = format!("{}/{index}", model.ids[parent]).into();
                    match ledger.open(&id, &model.ids[parent], amount) {
                        Ok(()) => {
                            model.children[parent] += 1;
                            model.ids.push(id.clone());
                            model.parent.push(Some(parent));
                            model.allocated.push(amount);
                            model.own.push(0);
                            model.open.push(true);
                            model.children.push(0);
                            record(EventKind::CallStarted(std::sync::Arc::new(CallStart {
                                call: id,
                                parent: model.ids[parent].clone(),
                                agent: "a".into(),
                                digest: 0,
                                depth: 1,
                                label: None,
                                budget: amount,
                            })), &mut journal);
                        }
                        Err(_) => prop_assert_eq!(&ledger, &before, "a refused allocation changed nothing"),
                    }
                }
                Op::Consume { node, amount } => {
                    let node = open[node % open.len()];
                    match ledger.consume(&model.ids[node], amount) {
                        Ok(_) => {
                            model.own[node] += amount;
                            record(EventKind::BudgetConsumed {
                                call: model.ids[node].clone(),
                                amount,
                                op: None,
                            }, &mut journal);
                        }
                        Err(_) => prop_assert_eq!(&ledger, &before, "a refused consumption changed nothing"),
                    }
                }
                Op::Finish { node } | Op::Terminate { node } => {
                    let node = open[node % open.len()];
                    if node == 0 {
                        continue;
                    }
                    let mut ending: Vec<usize> = model
                        .descendants(node)
                        .into_iter()
                        .filter(|&d| model.open[d])
                        .collect();
                    // A finish ends the call alone: its calls still running
                    // outlive it (a spawned call may). A terminate ends
                    // them first.
                    if matches!(op, Op::Finish { .. }) {
                        ending.clear();
                    }
                    ending.push(node);
                    for n in ending {
                        ledger.close(&model.ids[n]);
                        model.open[n] = false;
                        let kind = if matches!(op, Op::Finish { .. }) {
                            EventKind::CallCompleted {
                                call: model.ids[n].clone(),
                                output: Arc::new(json!(null)),
                                attempts: 1,
                            }
                        } else {
                            EventKind::CallFailed {
                                call: model.ids[n].clone(),
                                error: Box::new(ErrorInfo::new(
                                    "terminated",
                                    "terminated",
                                    false,
                                )),
                                attempts: 0,
                            }
                        };
                        record(kind, &mut journal);
                    }
                }
            }
            checks(&ledger, &model, root_budget)?;
            // After a crash, the journal folds to the same balances.
            let folded = orchestrate_core::journal::CallTree::from_events(&journal);
            for id in &model.ids {
                prop_assert_eq!(folded.budget(id), ledger.balance(id), "replayed balance of {}", id);
            }
            prop_assert_eq!(folded.budget(ROOT), ledger.balance(ROOT));
        }
        // With every call ended, nothing is held anywhere.
        let mut open: Vec<usize> = model.open_nodes().into_iter().filter(|&n| n != 0).collect();
        open.sort_unstable_by(|a, b| b.cmp(a));
        for n in open {
            ledger.close(&model.ids[n]);
        }
        let root: Balance = ledger.balance(ROOT).unwrap();
        prop_assert_eq!(root.held, 0);
        prop_assert_eq!(root.available, Some(root_budget - root.consumed));
    }
}
