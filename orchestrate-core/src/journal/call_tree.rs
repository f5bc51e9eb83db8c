//! The call tree: every call of an execution, projected from its journal.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::call_index::CallIndex;
use super::{Decision, Event, EventKind};
use crate::budget::{Balance, BudgetLedger};
use crate::error_info::ErrorInfo;
use crate::fast_map::FastMap;

/// Where a call is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallStatus {
    /// Made, not started (waiting for a concurrency slot).
    Pending,
    /// Its agent is running.
    Running,
    /// It produced its output.
    Completed,
    /// It failed for good.
    Failed,
    /// Its execution ended (cancelled, or failed elsewhere) while it ran.
    Cancelled,
    /// It was terminated, with its subtree.
    Terminated,
}

impl CallStatus {
    /// Whether the call has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, CallStatus::Pending | CallStatus::Running)
    }

    /// The status as the tree's text rendering writes it (`completed`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Pending => "pending",
            CallStatus::Running => "running",
            CallStatus::Completed => "completed",
            CallStatus::Failed => "failed",
            CallStatus::Cancelled => "cancelled",
            CallStatus::Terminated => "terminated",
        }
    }
}

/// One call of the tree.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CallNode {
    /// The call's id (`research/0/2`).
    pub id: Arc<str>,
    /// Its caller: a step's id, or another call's.
    pub parent: Arc<str>,
    /// The agent called.
    pub agent: Arc<str>,
    /// The caller's label for it.
    pub label: Option<Box<str>>,
    /// Calls between its step and it: 1 for a step's own calls.
    pub depth: u32,
    /// Where it is.
    pub status: CallStatus,
    /// When it started, in µs since the execution started.
    pub started_us: u64,
    /// When it ended.
    pub finished_us: Option<u64>,
    /// Attempts made, once it ended.
    pub attempts: u32,
    /// Why it failed (boxed: most calls do not fail, and a tree of many
    /// calls is brought through the cache node by node).
    pub error: Option<Box<ErrorInfo>>,
    /// The calls it made, in the order they started.
    pub children: Vec<Arc<str>>,
}

/// Applies a journal event to an execution's budgets (other events change
/// nothing).
pub(crate) fn apply_to_budgets(budgets: &mut BudgetLedger, event: &Event) {
    match &event.kind {
        EventKind::BudgetSet { amount, .. } => budgets.set_root(*amount),
        // A call run again after a restart keeps its account.
        EventKind::CallStarted(start)
            if start.budget.is_some() && !budgets.has_account(&start.call) =>
        {
            budgets.record_open(&start.call, &start.parent, start.budget);
        }
        EventKind::BudgetConsumed { call, amount, .. } => {
            budgets.record_consume(call, *amount);
        }
        EventKind::CallCompleted { call, .. } | EventKind::CallFailed { call, .. } => {
            budgets.close(call)
        }
        _ => {}
    }
}

/// Every call of one execution: a forest whose roots are the calls steps
/// made. Folded from the journal, live (an execution's
/// [`view`](crate::Execution::view)) or after a restart
/// ([`Orchestrator::execution`](crate::Orchestrator::execution)).
#[derive(Clone, Debug, Default)]
pub struct CallTree {
    nodes: Vec<CallNode>,
    index: CallIndex,
    budgets: BudgetLedger,
    /// Every decision, in journal order (shared with the events).
    decisions: Vec<Arc<Decision>>,
}

/// Two trees are equal when their calls, budgets and decisions are (the
/// index follows the calls).
impl PartialEq for CallTree {
    fn eq(&self, other: &Self) -> bool {
        self.nodes == other.nodes
            && self.budgets == other.budgets
            && self.decisions == other.decisions
    }
}

impl CallTree {
    /// Folds a journal's call events.
    pub fn from_events<E: std::borrow::Borrow<Event>>(events: impl IntoIterator<Item = E>) -> Self {
        let mut tree = Self::default();
        for e in events {
            tree.apply(e.borrow());
        }
        tree
    }

    /// Applies one event (other events change nothing).
    pub fn apply(&mut self, event: &Event) {
        apply_to_budgets(&mut self.budgets, event);
        let at = event.at_us;
        match &event.kind {
            EventKind::CallStarted(start) => {
                // Found before the call is indexed: a call that names
                // itself its parent (a damaged journal) is not its own child.
                let parent = self.position(&start.parent);
                let nodes = &self.nodes;
                if let Some(known) = self
                    .index
                    .insert(&start.call, nodes.len(), |i| &nodes[i].id)
                {
                    // A call in flight when the process stopped, run again.
                    if let Some(node) = self.nodes.get_mut(known) {
                        node.status = CallStatus::Running;
                    }
                    return;
                }
                if let Some(parent) = parent {
                    self.nodes[parent].children.push(start.call.clone());
                }
                self.nodes.push(CallNode {
                    id: start.call.clone(),
                    parent: start.parent.clone(),
                    agent: start.agent.clone(),
                    label: start.label.clone(),
                    depth: start.depth,
                    status: CallStatus::Running,
                    started_us: at,
                    finished_us: None,
                    attempts: 0,
                    error: None,
                    children: Vec::new(),
                });
            }
            EventKind::CallCompleted { call, attempts, .. } => {
                if let Some(node) = self.node_mut(call) {
                    node.status = CallStatus::Completed;
                    node.attempts = *attempts;
                    node.finished_us = Some(at);
                }
            }
            EventKind::CallFailed {
                call,
                error,
                attempts,
            } => {
                if let Some(node) = self.node_mut(call) {
                    node.status = match error.code.as_str() {
                        "cancelled" => CallStatus::Cancelled,
                        "terminated" => CallStatus::Terminated,
                        _ => CallStatus::Failed,
                    };
                    node.error = Some(error.clone());
                    node.attempts = *attempts;
                    node.finished_us = Some(at);
                }
            }
            EventKind::Decision(decision) => self.decisions.push(decision.clone()),
            EventKind::ExecutionFinished { .. } => {
                for node in &mut self.nodes {
                    if !node.status.is_terminal() {
                        node.status = CallStatus::Cancelled;
                        node.finished_us = Some(at);
                    }
                }
            }
            _ => {}
        }
    }

    /// The node of call `id`: the last one started first, which a call
    /// that ends as it starts is.
    fn node_mut(&mut self, id: &str) -> Option<&mut CallNode> {
        let i = match self.nodes.last() {
            Some(last) if *last.id == *id => self.nodes.len() - 1,
            _ => self.position(id)?,
        };
        self.nodes.get_mut(i)
    }

    /// The index of call `id`'s node.
    fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id, |i| &self.nodes[i].id)
    }

    /// The budget of `id` (a call, a step, or [`ROOT`](crate::budget::ROOT)
    /// for the execution), when it has an account.
    pub fn budget(&self, id: &str) -> Option<Balance> {
        self.budgets.balance(id)
    }

    /// Every account of the execution's budgets.
    pub fn budgets(&self) -> &BudgetLedger {
        &self.budgets
    }

    /// Every decision made through
    /// [`Context::decide`](crate::Context::decide), in the order they were
    /// journaled.
    pub fn decisions(&self) -> &[Arc<Decision>] {
        &self.decisions
    }

    /// The decisions `id` (a step's or a call's id) made, in order.
    pub fn decisions_by<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Decision> + 'a {
        self.decisions
            .iter()
            .filter(move |d| &*d.by == id)
            .map(|d| &**d)
    }

    /// Whether no call was made.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The number of calls.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Every call, in the order they started.
    pub fn calls(&self) -> &[CallNode] {
        &self.nodes
    }

    /// The call with this id.
    pub fn get(&self, id: &str) -> Option<&CallNode> {
        self.nodes.get(self.position(id)?)
    }

    /// The calls steps made (each the root of a subtree), in start order.
    pub fn roots(&self) -> impl Iterator<Item = &CallNode> {
        self.nodes
            .iter()
            .filter(|n| self.position(&n.parent).is_none())
    }

    /// The calls `id` made (a step's id gives the step's own calls).
    pub fn subordinates(&self, id: &str) -> Vec<&CallNode> {
        match self.get(id) {
            Some(node) => node.children.iter().filter_map(|c| self.get(c)).collect(),
            None => self.roots().filter(|n| &*n.parent == id).collect(),
        }
    }

    /// The calls above `id`, its caller first, up to the one its step made.
    pub fn ancestors(&self, id: &str) -> Vec<&CallNode> {
        let mut out = Vec::new();
        let mut at = self.get(id);
        while let Some(node) = at {
            at = self.get(&node.parent);
            out.extend(at);
        }
        out
    }

    /// Every call below `id`, depth first, in start order.
    pub fn descendants(&self, id: &str) -> Vec<&CallNode> {
        let mut out = Vec::new();
        let mut stack: Vec<&CallNode> = self.subordinates(id);
        stack.reverse();
        while let Some(node) = stack.pop() {
            out.push(node);
            let mut children: Vec<&CallNode> =
                node.children.iter().filter_map(|c| self.get(c)).collect();
            children.reverse();
            stack.extend(children);
        }
        out
    }

    /// The tree as indented text, one call a line: id, agent, status,
    /// attempts and duration; below each call (and before a step's first
    /// call), one line per decision it made: `◆ kind key = choice`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut by: FastMap<&str, Vec<&Decision>> = FastMap::default();
        for d in &self.decisions {
            by.entry(&*d.by).or_default().push(d);
        }
        let mut steps_done = std::collections::HashSet::new();
        for root in self.roots() {
            if steps_done.insert(&*root.parent) {
                write_decisions(&mut out, "", by.get(&*root.parent));
            }
            for node in std::iter::once(root).chain(self.descendants(&root.id)) {
                let indent = "  ".repeat(node.depth.saturating_sub(1) as usize);
                let _ = write!(
                    out,
                    "{indent}{} → {} [{}",
                    node.id,
                    node.agent,
                    node.status.as_str()
                );
                if node.attempts > 1 {
                    let _ = write!(out, ", {} attempts", node.attempts);
                }
                if let Some(end) = node.finished_us {
                    let _ = write!(out, ", {} µs", end.saturating_sub(node.started_us));
                }
                out.push(']');
                if let Some(balance) = self.budget(&node.id).filter(|b| b.allocated.is_some()) {
                    let _ = write!(out, " budget {balance}");
                }
                if let Some(label) = &node.label {
                    let _ = write!(out, " {label}");
                }
                out.push('\n');
                write_decisions(&mut out, &format!("{indent}  "), by.get(&*node.id));
            }
        }
        // Steps that decided without calling.
        for d in &self.decisions {
            if self.position(&d.by).is_none() && steps_done.insert(&*d.by) {
                write_decisions(&mut out, "", by.get(&*d.by));
            }
        }
        out
    }

    /// The tree as a Mermaid flowchart: each step that made calls, and
    /// each call, a node labelled with its agent and status.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        let node_id = |id: &str| {
            let mut s = String::from("c_");
            for c in id.chars() {
                s.push(if c.is_ascii_alphanumeric() { c } else { '_' });
            }
            s
        };
        let mut seen = std::collections::HashSet::new();
        let steps = self.roots().map(|n| &*n.parent).filter(|s| seen.insert(*s));
        for step in steps {
            let _ = writeln!(out, "    {}[\"{}\"]", node_id(step), escape(step));
        }
        for node in &self.nodes {
            let _ = writeln!(
                out,
                "    {}(\"{}<br/>{} · {}\")",
                node_id(&node.id),
                escape(&node.id),
                escape(&node.agent),
                node.status.as_str()
            );
            let _ = writeln!(
                out,
                "    {} --> {}",
                node_id(&node.parent),
                node_id(&node.id)
            );
        }
        out
    }
}

/// One line per decision: `◆ kind key = choice` (the choice cut at 80
/// characters).
fn write_decisions(out: &mut String, indent: &str, decisions: Option<&Vec<&Decision>>) {
    for d in decisions.into_iter().flatten() {
        let key =
            d.id.rsplit_once('/')
                .and_then(|(_, last)| last.split_once(':'))
                .map_or(&*d.id, |(_, key)| key);
        let mut choice = d.value.to_string();
        if choice.len() > 80 {
            let cut = (0..=77)
                .rev()
                .find(|&i| choice.is_char_boundary(i))
                .unwrap_or(0);
            choice.truncate(cut);
            choice.push_str("...");
        }
        let _ = writeln!(out, "{indent}◆ {} {key} = {choice}", d.kind);
    }
}

fn escape(text: &str) -> String {
    text.replace('"', "#quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::CallStart;
    use serde_json::json;

    fn started(seq: u64, call: &str, parent: &str, depth: u32) -> Event {
        Event {
            execution_id: "e".into(),
            seq,
            at_us: seq * 10,
            kind: EventKind::CallStarted(std::sync::Arc::new(CallStart {
                call: call.into(),
                parent: parent.into(),
                agent: "a".into(),
                digest: 0,
                depth,
                label: None,
                budget: None,
            })),
        }
    }

    fn completed(seq: u64, call: &str) -> Event {
        Event {
            execution_id: "e".into(),
            seq,
            at_us: seq * 10,
            kind: EventKind::CallCompleted {
                call: call.into(),
                output: Arc::new(json!(null)),
                attempts: 1,
            },
        }
    }

    fn tree() -> CallTree {
        CallTree::from_events([
            started(0, "s/0", "s", 1),
            started(1, "s/0/0", "s/0", 2),
            started(2, "s/0/0/0", "s/0/0", 3),
            completed(3, "s/0/0/0"),
            started(4, "s/0/1", "s/0", 2),
            started(5, "t/0", "t", 1),
            completed(6, "s/0/0"),
        ])
    }

    #[test]
    fn queries_walk_the_tree() {
        let tree = tree();
        let ids =
            |nodes: Vec<&CallNode>| nodes.iter().map(|n| n.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(tree.subordinates("s")), ["s/0"]);
        assert_eq!(ids(tree.subordinates("s/0")), ["s/0/0", "s/0/1"]);
        assert_eq!(ids(tree.ancestors("s/0/0/0")), ["s/0/0", "s/0"]);
        assert_eq!(ids(tree.descendants("s/0")), ["s/0/0", "s/0/0/0", "s/0/1"]);
        assert_eq!(
            ids(tree.descendants("s")),
            ["s/0", "s/0/0", "s/0/0/0", "s/0/1"]
        );
        assert_eq!(tree.roots().count(), 2);
        assert_eq!(tree.get("s/0/0").unwrap().status, CallStatus::Completed);
        assert_eq!(tree.get("s/0/1").unwrap().status, CallStatus::Running);
        assert_eq!(tree.get("s/0/0").unwrap().finished_us, Some(60));
    }

    #[test]
    fn renders_as_text_and_mermaid() {
        let tree = tree();
        let text = tree.to_text();
        assert!(
            text.starts_with("s/0 → a [running]\n  s/0/0 → a [completed, 50 µs]\n    s/0/0/0"),
            "{text}"
        );
        let mermaid = tree.to_mermaid();
        assert!(mermaid.contains("c_s_0 --> c_s_0_0"), "{mermaid}");
        assert!(mermaid.contains(r#"c_t["t"]"#), "{mermaid}");
    }

    #[test]
    fn a_damaged_journal_folds_without_panicking() {
        // A call named its own parent, a call started twice, an end of a
        // call never started.
        let tree = CallTree::from_events([
            started(0, "s/0", "s/0", 2),
            started(1, "s/1", "s", 1),
            completed(2, "s/1"),
            started(3, "s/1", "s", 1),
            completed(4, "s/9"),
        ]);
        assert_eq!(tree.len(), 2);
        assert!(tree.get("s/0").unwrap().children.is_empty());
        assert_eq!(tree.get("s/1").unwrap().status, CallStatus::Running);
        assert!(tree.get("s/9").is_none());
    }

    #[test]
    fn what_runs_when_the_execution_ends_is_cancelled() {
        let mut tree = tree();
        tree.apply(&Event {
            execution_id: "e".into(),
            seq: 7,
            at_us: 70,
            kind: EventKind::ExecutionFinished {
                status: crate::journal::ExecutionStatus::Cancelled,
                error: None,
            },
        });
        assert_eq!(tree.get("s/0/1").unwrap().status, CallStatus::Cancelled);
        assert_eq!(tree.get("s/0/0").unwrap().status, CallStatus::Completed);
    }
}
