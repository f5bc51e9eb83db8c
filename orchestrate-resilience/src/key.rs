//! Keys of shared policy state.

use std::fmt;
use std::sync::Arc;

/// What breakers, bulkheads and rate limiters are keyed by: a name (an agent,
/// a service) and an optional target (a host, a model). Cheap to clone.
///
/// # Examples
///
/// ```
/// use orchestrate_resilience::Key;
/// assert_eq!(Key::new("search").to_string(), "search");
/// assert_eq!(Key::new("search").with_target("api.example.com").to_string(), "search@api.example.com");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    name: Arc<str>,
    target: Option<Arc<str>>,
}

impl Key {
    /// A key for `name` with no target.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            target: None,
        }
    }

    /// The same name, narrowed to `target`.
    pub fn with_target(mut self, target: impl Into<Arc<str>>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The target, if any.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Some(t) => write!(f, "{}@{}", self.name, t),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

impl From<&str> for Key {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}
