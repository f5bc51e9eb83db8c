//! Every step's dependencies and dependents, in one flat array.

/// The dependency lists of a plan as compressed rows: the dependencies of
/// every step, then the dependents of every step, back to back in one
/// array, with one array of where each list starts.
///
/// Two allocations for the whole plan where a list per step would take one
/// for each step with more than a few: planning 100,000 steps spent a
/// sixth of its time freeing those lists, each free a cache miss.
#[derive(Clone, Debug)]
pub(crate) struct Links {
    /// The deps of step 0, of step 1, …, then the dependents of step 0, ….
    edges: Vec<usize>,
    /// `2n + 1` offsets into `edges`: step `i`'s deps are
    /// `edges[at[i]..at[i + 1]]`, its dependents
    /// `edges[at[n + i]..at[n + i + 1]]`.
    at: Vec<usize>,
}

impl Links {
    /// Links for `n` steps whose deps are pushed in step order with
    /// [`push_dep`](Self::push_dep) and [`end_step`](Self::end_step),
    /// then [`finish`](Self::finish)ed.
    pub(crate) fn with_capacity(n: usize, deps: usize) -> Self {
        let mut at = Vec::with_capacity(2 * n + 1);
        at.push(0);
        Self {
            edges: Vec::with_capacity(2 * deps),
            at,
        }
    }

    /// Adds `dep` to the deps of the step being pushed.
    pub(crate) fn push_dep(&mut self, dep: usize) {
        self.edges.push(dep);
    }

    /// Ends the deps of the step being pushed.
    pub(crate) fn end_step(&mut self) {
        self.at.push(self.edges.len());
    }

    /// Derives the dependents from the deps of all `n` steps (a counting
    /// sort: each step's dependents come in step order).
    pub(crate) fn finish(mut self) -> Self {
        let n = self.at.len() - 1;
        let deps = self.edges.len();
        // Count each step's dependents into the slot after its own, then
        // turn the counts into starts.
        self.at.resize(2 * n + 1, 0);
        for &d in &self.edges[..deps] {
            self.at[n + d + 1] += 1;
        }
        self.at[n] = deps;
        for i in n + 1..=2 * n {
            self.at[i] += self.at[i - 1];
        }
        self.edges.resize(2 * deps, 0);
        // Where the next dependent of each step goes.
        let mut next: Vec<usize> = self.at[n..2 * n].to_vec();
        for i in 0..n {
            for k in self.at[i]..self.at[i + 1] {
                let d = self.edges[k];
                self.edges[next[d]] = i;
                next[d] += 1;
            }
        }
        self
    }

    /// The number of steps.
    pub(crate) fn len(&self) -> usize {
        (self.at.len() - 1) / 2
    }

    /// The number of dependency edges.
    pub(crate) fn edge_count(&self) -> usize {
        self.edges.len() / 2
    }

    /// Plan indices of the steps step `i` depends on (also while the
    /// deps are being pushed, for the steps pushed so far).
    pub(crate) fn deps(&self, i: usize) -> &[usize] {
        &self.edges[self.at[i]..self.at[i + 1]]
    }

    /// Plan indices of the steps that depend on step `i`.
    pub(crate) fn dependents(&self, i: usize) -> &[usize] {
        let n = self.len();
        &self.edges[self.at[n + i]..self.at[n + i + 1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(deps: &[&[usize]]) -> Links {
        let mut l = Links::with_capacity(deps.len(), 0);
        for own in deps {
            own.iter().for_each(|&d| l.push_dep(d));
            l.end_step();
        }
        l.finish()
    }

    #[test]
    fn dependents_are_the_deps_reversed_in_step_order() {
        // 0 → 1, 0 → 2, 1 → 3, 2 → 3, 0 → 3
        let l = links(&[&[], &[0], &[0], &[2, 1, 0]]);
        assert_eq!(l.len(), 4);
        assert_eq!(l.edge_count(), 5);
        let deps: Vec<&[usize]> = (0..4).map(|i| l.deps(i)).collect();
        assert_eq!(deps, [&[][..], &[0], &[0], &[2, 1, 0]]);
        let dependents: Vec<&[usize]> = (0..4).map(|i| l.dependents(i)).collect();
        assert_eq!(dependents, [&[1, 2, 3][..], &[3], &[3], &[]]);
    }

    #[test]
    fn steps_without_links_have_empty_lists() {
        let l = links(&[&[], &[]]);
        assert_eq!(l.edge_count(), 0);
        assert!(l.deps(1).is_empty() && l.dependents(0).is_empty());
    }
}
