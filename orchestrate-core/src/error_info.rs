//! How the journal records an error: a leaf, so that the journal never
//! imports the error taxonomy (which names the store and the bus).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A serialisable summary of an [`Error`](enum@crate::Error), as the journal records it.
///
/// An execution's errors are summarised by
/// [`Error::info`](crate::Error::info); a store or a test builds one with
/// [`new`](Self::new) and the `with_` methods (the struct may gain fields,
/// so it has no literal outside this crate).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorInfo {
    /// [`Error::code`](crate::Error::code).
    pub code: String,
    /// The error's text.
    pub message: String,
    /// [`Error::is_retryable`](crate::Error::is_retryable).
    pub retryable: bool,
    /// [`Error::attempts`](crate::Error::attempts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Where an agent's failure came from, when the agent passed on an
    /// orchestrate error with `?`: that error's code, at the bottom of a
    /// chain of them (`budget_exceeded` for a leaf whose consumption was
    /// refused, under the `agent` failure of its call and the
    /// `call_failed` of its caller's). Lets a caller tell a refused
    /// budget from a failure, in the run and in a replay alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The refused budget operation, for a `budget_exceeded` error or one
    /// that passed such an error on (see [`Error::overrun`](crate::Error::overrun)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrun: Option<Box<crate::budget::Overrun>>,
}

impl ErrorInfo {
    /// An error of code `code` reading `message`, retryable or not, with no
    /// attempts, origin or overrun.
    pub fn new(code: impl Into<String>, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable,
            attempts: None,
            origin: None,
            overrun: None,
        }
    }

    /// With the attempts made.
    #[must_use]
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// With the code of the orchestrate error it came from.
    #[must_use]
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// With the refused budget operation.
    #[must_use]
    pub fn with_overrun(mut self, overrun: crate::budget::Overrun) -> Self {
        self.overrun = Some(Box::new(overrun));
        self
    }
}

impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorInfo;
    use crate::budget::Overrun;

    #[test]
    fn built_from_new_and_its_with_methods_it_is_what_it_says() {
        let overrun = Overrun::new("a/0", "a", 9, 4);
        let built = ErrorInfo::new("agent", "boom", true)
            .with_attempts(3)
            .with_origin("budget_exceeded")
            .with_overrun(overrun.clone());
        assert_eq!(
            built,
            ErrorInfo {
                code: "agent".into(),
                message: "boom".into(),
                retryable: true,
                attempts: Some(3),
                origin: Some("budget_exceeded".into()),
                overrun: Some(Box::new(overrun)),
            }
        );
        assert_eq!(
            built.overrun.as_ref().map(ToString::to_string).as_deref(),
            Some("`a/0` asks for 9, `a` has 4 available")
        );
        let bare = ErrorInfo::new("cancelled", "stopped", false);
        assert_eq!(
            (bare.attempts, bare.origin, bare.overrun),
            (None, None, None)
        );
    }
}
