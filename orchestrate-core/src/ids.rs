//! Identifiers.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The id of one execution: a UUID v4 unless the host chose one. Cheap to
/// clone (a reference-counted string).
///
/// # Examples
///
/// ```
/// use orchestrate_core::ExecutionId;
///
/// let a = ExecutionId::new();
/// let b = ExecutionId::new();
/// assert_ne!(a, b);
/// assert_eq!(ExecutionId::from("run-1").as_str(), "run-1");
/// ```
#[derive(Clone, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecutionId(Arc<str>);

impl PartialEq for ExecutionId {
    fn eq(&self, other: &Self) -> bool {
        // An execution's events, handles and journal share one string:
        // most comparisons are of it with itself.
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl std::hash::Hash for ExecutionId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As the text hashes, so that equal ids hash alike however made.
        self.0.hash(state);
    }
}

impl ExecutionId {
    /// A new random id.
    pub fn new() -> Self {
        // Formatted on the stack: one allocation (the shared text), not two.
        let mut buf = uuid::Uuid::encode_buffer();
        Self(Arc::from(
            &*uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf),
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn as_arc(&self) -> &Arc<str> {
        &self.0
    }
}

impl Default for ExecutionId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<&str> for ExecutionId {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}

impl From<String> for ExecutionId {
    fn from(s: String) -> Self {
        Self(s.into())
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExecutionId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::ExecutionId;

    #[test]
    fn a_new_id_is_a_lowercase_hyphenated_uuid_v4() {
        let id = ExecutionId::new();
        let parsed = uuid::Uuid::parse_str(id.as_str()).expect("a uuid");
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(id.as_str(), parsed.hyphenated().to_string());
        assert_eq!(id.as_str().len(), 36);
    }

    #[test]
    fn ids_are_equal_by_text_whether_shared_or_not() {
        use std::hash::BuildHasher;
        let a = ExecutionId::from("run-1");
        let shared = a.clone();
        let apart = ExecutionId::from(String::from("run-1"));
        assert_eq!(a, shared);
        assert_eq!(a, apart);
        assert_ne!(a, ExecutionId::from("run-2"));
        let h = std::collections::hash_map::RandomState::new();
        assert_eq!(h.hash_one(&a), h.hash_one(&apart));
        assert_eq!(h.hash_one(&a), h.hash_one("run-1"));
    }
}
