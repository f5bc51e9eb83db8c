//! Step ids to plan indices, keyed by the steps' own ids.

use std::fmt;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::hash_table::{Entry, HashTable};

/// Finds a step's plan index by its id.
///
/// The table holds indices only and compares against the ids where they
/// already live: a map keyed by `Arc<str>` would take a reference count
/// per step to build, and give one back to drop. Indices are `u32`: half
/// the table to bring through the cache (a plan of 2^32 steps would need
/// hundreds of gigabytes before it needed more).
#[derive(Clone)]
pub(crate) struct StepIndex {
    table: HashTable<u32>,
    hasher: RandomState,
}

impl StepIndex {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            table: HashTable::with_capacity(n),
            hasher: RandomState::default(),
        }
    }

    /// Adds step `i`, whose id `id_of(i)` gives; the index of an earlier
    /// step with the same id instead, which stays.
    pub(crate) fn insert<'a>(
        &mut self,
        i: usize,
        id_of: impl Fn(usize) -> &'a str,
    ) -> Option<usize> {
        debug_assert!(u32::try_from(i).is_ok(), "a plan of more than 2^32 steps");
        let id = id_of(i);
        let hasher = &self.hasher;
        let hash = hasher.hash_one(id);
        match self.table.entry(
            hash,
            |&j| id_of(j as usize) == id,
            |&j| hasher.hash_one(id_of(j as usize)),
        ) {
            Entry::Occupied(first) => Some(*first.get() as usize),
            Entry::Vacant(slot) => {
                slot.insert(i as u32);
                None
            }
        }
    }

    /// The index of the step whose id is `id`.
    pub(crate) fn get<'a>(&self, id: &str, id_of: impl Fn(usize) -> &'a str) -> Option<usize> {
        let hash = self.hasher.hash_one(id);
        self.table
            .find(hash, |&j| id_of(j as usize) == id)
            .map(|&j| j as usize)
    }
}

impl fmt::Debug for StepIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepIndex")
            .field("steps", &self.table.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_id_and_keeps_the_first_of_a_duplicate() {
        let ids = ["a", "b", "a", "c"];
        let mut index = StepIndex::with_capacity(ids.len());
        let dupes: Vec<_> = (0..ids.len())
            .map(|i| index.insert(i, |j| ids[j]))
            .collect();
        assert_eq!(dupes, [None, None, Some(0), None]);
        assert_eq!(index.get("a", |j| ids[j]), Some(0));
        assert_eq!(index.get("c", |j| ids[j]), Some(3));
        assert_eq!(index.get("d", |j| ids[j]), None);
    }
}
