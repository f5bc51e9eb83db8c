//! Hierarchical budgets: integer amounts of one unit (tokens, cents) that
//! an execution starts with, that calls are given out of their caller's,
//! and that agents consume.
//!
//! Every node (the execution, its steps, their calls) has an account:
//!
//! - **allocated**: what it was given (`None`: it draws on its nearest
//!   ancestor that has an allocation, its *bank*);
//! - **consumed**: what it and everything below it consumed;
//! - **held**: what its running children were given and have not
//!   consumed yet, reserved for them;
//! - **available**: `allocated − consumed − held` for a node with an
//!   allocation; its bank's for one without.
//!
//! The conservation law, at every running node with an allocation, after
//! every operation: `allocated = consumed + held + available`, with
//! `available ≥ 0`. An allocation or a consumption that would make any
//! bank's available amount negative is refused, and changes nothing. When
//! a child ends, what it did not consume returns to its parent's bank:
//! `held` drops by the child's remainder, `consumed` keeps what it used.
//! An ended node's available amount reads 0; what its calls still running
//! hold stays reserved, and returns as they end (an ended node is no bank:
//! a call that outlives its caller draws on the caller's bank).
//!
//! The ledger is folded from the journal (calls' starts and ends,
//! `BudgetSet`, `BudgetConsumed`), so budgets survive a restart exactly.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::fast_map::FastMap;

/// The id of the execution's own account: the root of every budget.
pub const ROOT: &str = "";

/// The default thresholds, in percent of an allocation, each reported once
/// per account when its consumption reaches it.
pub const DEFAULT_THRESHOLDS: [u8; 3] = [50, 80, 100];

/// An execution's budget: an amount of one unit (see
/// [`RunOptions::budget`](crate::RunOptions::budget)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The amount.
    pub amount: u64,
    /// Its unit, for people reading the journal (`tokens`, `cents`).
    pub unit: String,
}

impl Budget {
    /// `amount` of `unit`.
    pub fn new(amount: u64, unit: impl Into<String>) -> Self {
        Self {
            amount,
            unit: unit.into(),
        }
    }
}

/// One account's balance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// What it was given (`None`: it draws on an ancestor's).
    pub allocated: Option<u64>,
    /// What it and its descendants consumed.
    pub consumed: u64,
    /// What its running children hold and have not consumed.
    pub held: u64,
    /// What it may still consume or give out (`None`: no budget applies).
    pub available: Option<u64>,
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.allocated {
            Some(a) => write!(f, "{}/{a} used", self.consumed)?,
            None => write!(f, "{} used", self.consumed)?,
        }
        if self.held > 0 {
            write!(f, ", {} held", self.held)?;
        }
        if let Some(left) = self.available {
            write!(f, ", {left} left")?;
        }
        Ok(())
    }
}

/// Why a budget operation was refused: what
/// [`Error::BudgetExceeded`](crate::Error::BudgetExceeded) carries, and what
/// the journal keeps of it (so that a replayed refusal reads the same).
///
/// It may gain fields: outside this crate it is built with
/// [`new`](Self::new).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("`{node}` asks for {asked}, `{bank}` has {available} available")]
#[non_exhaustive]
pub struct Overrun {
    /// The account that asked.
    pub node: Arc<str>,
    /// The account that would be overrun.
    pub bank: Arc<str>,
    /// The amount asked.
    pub asked: u64,
    /// What the bank has.
    pub available: u64,
}

impl Overrun {
    /// `node` asking for `asked` where `bank` has `available`.
    pub fn new(
        node: impl Into<Arc<str>>,
        bank: impl Into<Arc<str>>,
        asked: u64,
        available: u64,
    ) -> Self {
        Self {
            node: node.into(),
            bank: bank.into(),
            asked,
            available,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Account {
    parent: Option<Arc<str>>,
    allocated: Option<u64>,
    consumed: u64,
    held: u64,
    open: bool,
    /// Thresholds reached so far (a count, in order).
    reached: u8,
}

/// The accounts of one execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetLedger {
    accounts: FastMap<Arc<str>, Account>,
    thresholds: Vec<u8>,
}

impl Default for BudgetLedger {
    fn default() -> Self {
        Self::new(&DEFAULT_THRESHOLDS)
    }
}

impl BudgetLedger {
    /// An empty ledger reporting `thresholds` (percent, ascending).
    pub fn new(thresholds: &[u8]) -> Self {
        let mut thresholds = thresholds.to_vec();
        thresholds.sort_unstable();
        thresholds.dedup();
        let root = Account {
            parent: None,
            allocated: None,
            consumed: 0,
            held: 0,
            open: true,
            reached: 0,
        };
        Self {
            accounts: [(Arc::<str>::from(ROOT), root)].into_iter().collect(),
            thresholds,
        }
    }

    /// Gives the execution `amount` to start with.
    pub fn set_root(&mut self, amount: u64) {
        if let Some(root) = self.accounts.get_mut(ROOT) {
            root.allocated = Some(amount);
        }
    }

    /// The parent of `node` when it has no account yet: a step's is the
    /// execution, a call's the id before its last `/`.
    fn implicit_parent(node: &str) -> Arc<str> {
        match node.rfind('/') {
            Some(i) => {
                let parent = &node[..i];
                // `s/0@2/1`: the caller is `s/0`, in its second attempt.
                match parent.rfind('@') {
                    Some(at) if !parent[at..].contains('/') => parent[..at].into(),
                    _ => parent.into(),
                }
            }
            None => ROOT.into(),
        }
    }

    /// Makes `node`'s account, and its ancestors', if missing (a step, or
    /// a call seen before its start).
    fn ensure(&mut self, node: &str) {
        let mut missing = Vec::new();
        let mut at: Arc<str> = node.into();
        while !self.accounts.contains_key(&at) {
            let parent = Self::implicit_parent(&at);
            missing.push((at.clone(), parent.clone()));
            at = parent;
        }
        for (id, parent) in missing {
            self.accounts.insert(
                id,
                Account {
                    parent: Some(parent),
                    allocated: None,
                    consumed: 0,
                    held: 0,
                    open: true,
                    reached: 0,
                },
            );
        }
    }

    /// `node` and its ancestors, nearest first, whether or not their
    /// accounts exist yet (missing ones by their implicit parents).
    fn chain_of(&self, node: &str) -> Vec<Arc<str>> {
        let mut missing = Vec::new();
        let mut at: Arc<str> = node.into();
        while !self.accounts.contains_key(&at) {
            let parent = Self::implicit_parent(&at);
            missing.push(at);
            at = parent;
        }
        missing.extend(self.chain(&at));
        missing
    }

    /// `node` and its ancestors, nearest first.
    fn chain(&self, node: &str) -> Vec<Arc<str>> {
        let mut out = Vec::new();
        let mut at = self.accounts.get_key_value(node).map(|(k, _)| k.clone());
        while let Some(id) = at {
            at = self.accounts.get(&id).and_then(|a| a.parent.clone());
            out.push(id);
        }
        out
    }

    fn available_of(account: &Account) -> Option<u64> {
        account
            .allocated
            .map(|a| a.saturating_sub(account.consumed + account.held))
    }

    /// The nearest node of `chain` with an allocation, and its position.
    /// An ended account is no bank: what it did not use went back to its
    /// own, and a call that outlives it draws on that.
    fn bank<'a>(&self, chain: &'a [Arc<str>]) -> Option<(usize, &'a Arc<str>)> {
        chain.iter().enumerate().find(|(_, id)| {
            self.accounts
                .get(*id)
                .is_some_and(|a| a.allocated.is_some() && a.open)
        })
    }

    /// Checks that `amount` fits in the nearest bank of `chain`.
    fn check(&self, node: &str, chain: &[Arc<str>], amount: u64) -> Result<(), Overrun> {
        let Some((_, bank)) = self.bank(chain) else {
            return Ok(());
        };
        let available = self
            .accounts
            .get(bank)
            .and_then(Self::available_of)
            .unwrap_or(0);
        if amount > available {
            return Err(Overrun {
                node: node.into(),
                bank: bank.clone(),
                asked: amount,
                available,
            });
        }
        Ok(())
    }

    /// Opens call `node` under `parent`, given `allocated` out of the
    /// parent's bank (`None`: it draws on it).
    ///
    /// # Errors
    ///
    /// [`Overrun`] when the bank has less available; nothing changes.
    pub fn open(
        &mut self,
        node: &str,
        parent: &str,
        allocated: Option<u64>,
    ) -> Result<(), Overrun> {
        let chain = self.chain_of(parent);
        if let Some(amount) = allocated {
            self.check(node, &chain, amount)?;
        }
        self.record_open(node, parent, allocated);
        Ok(())
    }

    /// Opens call `node` as the journal says it was, without checking.
    pub(crate) fn record_open(&mut self, node: &str, parent: &str, allocated: Option<u64>) {
        self.ensure(parent);
        let chain = self.chain(parent);
        if let Some(amount) = allocated {
            // Reserved at every node from the parent up to its bank.
            let upto = self.bank(&chain).map_or(chain.len(), |(i, _)| i + 1);
            for id in &chain[..upto] {
                if let Some(a) = self.accounts.get_mut(id) {
                    a.held += amount;
                }
            }
        }
        self.accounts.insert(
            node.into(),
            Account {
                parent: Some(parent.into()),
                allocated,
                consumed: 0,
                held: 0,
                open: true,
                reached: 0,
            },
        );
    }

    /// Consumes `amount` at `node`: at once, in it and every ancestor.
    /// Returns the thresholds this reached, as `(account, percent)`.
    ///
    /// # Errors
    ///
    /// [`Overrun`] when `node`'s bank has less available; nothing changes.
    pub fn consume(&mut self, node: &str, amount: u64) -> Result<Vec<(Arc<str>, u8)>, Overrun> {
        let chain = self.chain_of(node);
        self.check(node, &chain, amount)?;
        Ok(self.record_consume(node, amount))
    }

    /// Consumes as the journal says it happened, without checking; the
    /// thresholds this reached.
    pub(crate) fn record_consume(&mut self, node: &str, amount: u64) -> Vec<(Arc<str>, u8)> {
        self.ensure(node);
        let chain = self.chain(node);
        let first_bank = self.bank(&chain).map(|(i, _)| i);
        let mut reached = Vec::new();
        for (i, id) in chain.iter().enumerate() {
            let Some(a) = self.accounts.get_mut(id) else {
                continue;
            };
            a.consumed += amount;
            // Above the first bank, the amount was inside a child's
            // reservation: it moves from held to consumed.
            if first_bank.is_some_and(|b| i > b) {
                a.held = a.held.saturating_sub(amount);
            }
            if let Some(allocated) = a.allocated.filter(|&x| x > 0) {
                while let Some(&t) = self.thresholds.get(usize::from(a.reached)) {
                    if a.consumed.saturating_mul(100) < u64::from(t) * allocated {
                        break;
                    }
                    a.reached += 1;
                    reached.push((id.clone(), t));
                }
            }
        }
        reached
    }

    /// Closes `node` (its call ended): what it was given and did not
    /// consume returns to its parent's bank.
    pub fn close(&mut self, node: &str) {
        // Only the root's account (no budget given or used): no id to hash
        // at each call's end.
        if self.accounts.len() == 1 && node != ROOT {
            debug_assert!(
                self.accounts.contains_key(ROOT),
                "the root's account is made first"
            );
            return;
        }
        let Some(account) = self.accounts.get_mut(node) else {
            return;
        };
        if !account.open {
            return;
        }
        account.open = false;
        let Some(allocated) = account.allocated else {
            return;
        };
        // What its calls still running hold stays reserved until they end.
        let remainder = allocated.saturating_sub(account.consumed + account.held);
        let Some(parent) = account.parent.clone() else {
            return;
        };
        let chain = self.chain(&parent);
        let upto = self.bank(&chain).map_or(chain.len(), |(i, _)| i + 1);
        for id in &chain[..upto] {
            if let Some(a) = self.accounts.get_mut(id) {
                a.held = a.held.saturating_sub(remainder);
            }
        }
    }

    /// The balance of `node`'s account.
    pub fn balance(&self, node: &str) -> Option<Balance> {
        let Some(account) = self.accounts.get(node) else {
            // No account yet: nothing given, nothing consumed; it draws on
            // its bank.
            let chain = self.chain_of(node);
            let available = self
                .bank(&chain)
                .and_then(|(_, bank)| self.accounts.get(bank))
                .and_then(Self::available_of);
            return Some(Balance {
                available,
                ..Balance::default()
            });
        };
        let available = match account.allocated {
            // Ended: what it did not use went back.
            Some(_) if !account.open => Some(0),
            Some(_) => Self::available_of(account),
            None => {
                let chain = self.chain(node);
                self.bank(&chain)
                    .and_then(|(_, bank)| self.accounts.get(bank))
                    .and_then(Self::available_of)
            }
        };
        Some(Balance {
            allocated: account.allocated,
            consumed: account.consumed,
            held: account.held,
            available,
        })
    }

    /// Whether `node` has an account of its own (one made when it was
    /// given an allocation or first consumed).
    pub fn has_account(&self, node: &str) -> bool {
        self.accounts.contains_key(node)
    }

    /// Whether any account has an allocation (budgets are in use).
    pub fn is_budgeted(&self) -> bool {
        self.accounts.values().any(|a| a.allocated.is_some())
    }

    /// Every account's id and balance.
    pub fn balances(&self) -> impl Iterator<Item = (&str, Balance)> + '_ {
        self.accounts
            .keys()
            .filter_map(move |id| Some((&**id, self.balance(id)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_hold_consumption_bubbles_and_remainders_return() {
        let mut l = BudgetLedger::default();
        l.set_root(1_000);
        l.open("s/0", "s", Some(300)).unwrap();
        l.open("s/0/0", "s/0", Some(100)).unwrap();
        assert_eq!(l.balance(ROOT).unwrap().held, 300);
        assert_eq!(l.balance("s").unwrap().held, 300);
        assert_eq!(l.balance("s/0").unwrap().available, Some(200));
        l.consume("s/0/0", 60).unwrap();
        assert_eq!(
            l.balance("s/0/0").unwrap(),
            Balance {
                allocated: Some(100),
                consumed: 60,
                held: 0,
                available: Some(40)
            }
        );
        assert_eq!(
            l.balance("s/0").unwrap(),
            Balance {
                allocated: Some(300),
                consumed: 60,
                held: 40,
                available: Some(200)
            }
        );
        assert_eq!(
            l.balance(ROOT).unwrap(),
            Balance {
                allocated: Some(1_000),
                consumed: 60,
                held: 240,
                available: Some(700)
            }
        );
        let refused = l.consume("s/0/0", 41).unwrap_err();
        assert_eq!(
            (refused.asked, refused.available, &*refused.bank),
            (41, 40, "s/0/0")
        );
        assert!(l.open("s/1", "s", Some(701)).is_err());
        l.close("s/0/0");
        assert_eq!(l.balance("s/0").unwrap().available, Some(240));
        l.close("s/0");
        assert_eq!(
            l.balance(ROOT).unwrap(),
            Balance {
                allocated: Some(1_000),
                consumed: 60,
                held: 0,
                available: Some(940)
            }
        );
        // A step without an allocation draws on the execution's.
        assert_eq!(l.balance("s").unwrap().available, Some(940));
    }

    #[test]
    fn thresholds_are_reached_once_each() {
        let mut l = BudgetLedger::default();
        l.open("s/0", "s", Some(10)).unwrap();
        assert_eq!(l.consume("s/0", 4).unwrap(), []);
        assert_eq!(l.consume("s/0", 1).unwrap(), [("s/0".into(), 50)]);
        assert_eq!(
            l.consume("s/0", 5).unwrap(),
            [("s/0".into(), 80), ("s/0".into(), 100)]
        );
        assert!(l.consume("s/0", 1).is_err());
    }

    #[test]
    fn without_any_allocation_nothing_is_refused() {
        let mut l = BudgetLedger::default();
        l.consume("s/0", 1 << 40).unwrap();
        assert_eq!(l.balance("s").unwrap().consumed, 1 << 40);
        assert_eq!(l.balance("s/0").unwrap().available, None);
        assert_eq!(BudgetLedger::implicit_parent("s/0@2/1"), "s/0".into());
        assert_eq!(BudgetLedger::implicit_parent("s@3/0"), "s".into());
    }
}
