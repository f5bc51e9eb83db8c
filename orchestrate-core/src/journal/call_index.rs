//! Call ids to the call tree's node indices.

use std::fmt;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::hash_table::{Entry, HashTable};

/// Finds a call's node by its id.
///
/// The table holds each id's hash beside its node's index and compares
/// against the ids where the nodes keep them: growing rehashes no id (a map
/// keyed by `Arc<str>` hashed every id again at each doubling, and took a
/// reference count per call).
#[derive(Clone, Default)]
pub(super) struct CallIndex {
    table: HashTable<(u64, usize)>,
    hasher: RandomState,
}

impl CallIndex {
    /// Adds node `i` for `id`: `None`, or the node that has that id already
    /// (which stays).
    pub(super) fn insert<'a>(
        &mut self,
        id: &str,
        i: usize,
        id_of: impl Fn(usize) -> &'a str,
    ) -> Option<usize> {
        let hash = self.hasher.hash_one(id);
        match self
            .table
            .entry(hash, |&(h, j)| h == hash && id_of(j) == id, |&(h, _)| h)
        {
            Entry::Occupied(known) => Some(known.get().1),
            Entry::Vacant(slot) => {
                slot.insert((hash, i));
                None
            }
        }
    }

    /// The node whose id is `id`.
    pub(super) fn get<'a>(&self, id: &str, id_of: impl Fn(usize) -> &'a str) -> Option<usize> {
        let hash = self.hasher.hash_one(id);
        self.table
            .find(hash, |&(h, j)| h == hash && id_of(j) == id)
            .map(|&(_, j)| j)
    }
}

impl fmt::Debug for CallIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallIndex")
            .field("calls", &self.table.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_id_through_growth_and_keeps_the_first_of_a_duplicate() {
        let ids: Vec<String> = (0..1_000).map(|i| format!("s/{i}")).collect();
        let mut index = CallIndex::default();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(index.insert(id, i, |j| &ids[j]), None);
        }
        assert_eq!(index.insert("s/7", 1_000, |j| &ids[j]), Some(7));
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(index.get(id, |j| &ids[j]), Some(i));
        }
        assert_eq!(index.get("s/1000", |j| &ids[j]), None);
        assert_eq!(index.get("s", |j| &ids[j]), None);
    }
}
