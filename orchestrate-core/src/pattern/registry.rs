//! The patterns an orchestrator knows by name, and the factories of the
//! agents registered with one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::{AgentFactory, Pattern};

/// Patterns by name, with the built-in ones; the agent factories.
#[derive(Clone)]
pub(crate) struct Patterns {
    by_name: HashMap<String, Arc<dyn Pattern>>,
    pub(crate) factories: HashMap<String, AgentFactory>,
    /// The first name registered twice, reported by `build`.
    pub(crate) duplicate: Option<String>,
}

impl Default for Patterns {
    fn default() -> Self {
        let mut patterns = Self {
            by_name: HashMap::new(),
            factories: HashMap::new(),
            duplicate: None,
        };
        patterns.add(Arc::new(super::supervisor::SupervisorPattern));
        patterns.add(Arc::new(super::handoff::HandoffPattern));
        patterns.add(Arc::new(super::hierarchy::HierarchyPattern));
        patterns
    }
}

impl Patterns {
    pub(crate) fn add(&mut self, pattern: Arc<dyn Pattern>) {
        let name = pattern.name().to_owned();
        if self.by_name.insert(name.clone(), pattern).is_some() && self.duplicate.is_none() {
            self.duplicate = Some(name);
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn Pattern>> {
        self.by_name.get(name)
    }
}

impl fmt::Debug for Patterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("Patterns")
            .field("patterns", &names)
            .field("factories", &self.factories.len())
            .finish()
    }
}
