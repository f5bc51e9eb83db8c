//! Calls and decisions identified by a key of the caller's choosing rather
//! than by their order: what work queues need, whose calls are made in an
//! order timing decides.

use std::fmt;
use std::sync::{Arc, PoisonError};

use super::Context;
use crate::error::Error;

/// Why `key` cannot name a call (`digits`: whether a key of digits alone
/// is refused, as it would look like a numbered call's).
pub(crate) fn check_key(key: &str, digits: bool) -> Result<(), &'static str> {
    if key.is_empty() {
        Err("is empty")
    } else if key.contains(['/', ':', '@', '#']) {
        Err("holds `/`, `:`, `@` or `#`, which call ids are made of")
    } else if digits && key.bytes().all(|b| b.is_ascii_digit()) {
        Err("is digits only, as numbered calls' ids are")
    } else {
        Ok(())
    }
}

impl Context {
    /// The id of this attempt's call or decision keyed `key` (checked by
    /// the caller), taken once per attempt.
    ///
    /// # Errors
    ///
    /// [`Error::CallKey`] when the attempt took this key already.
    pub(crate) fn keyed_id(&self, key: impl fmt::Display) -> Result<Arc<str>, Error> {
        let id = self.child_call_id_named(&key);
        let Some(calls) = self.attempt_calls(true) else {
            return Ok(id);
        };
        let mut keys = calls.keys.lock().unwrap_or_else(PoisonError::into_inner);
        // The id stands for its key: one attempt's ids differ only there.
        let fresh = keys.get_or_insert_with(Default::default).insert(id.clone());
        if fresh {
            Ok(id)
        } else {
            Err(Error::CallKey {
                call: id,
                reason: "is taken twice in one attempt",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_that_would_read_as_other_ids_are_refused() {
        assert!(check_key("task-7.0", true).is_ok());
        assert!(check_key("7", false).is_ok());
        assert_eq!(
            check_key("7", true),
            Err("is digits only, as numbered calls' ids are")
        );
        assert!(check_key("", true).is_err());
        for bad in ["a/b", "a:b", "a@2", "a#1"] {
            assert!(check_key(bad, true).is_err(), "{bad}");
        }
    }
}
