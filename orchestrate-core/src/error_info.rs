//! How the journal records an error: a leaf, so that the journal never
//! imports the error taxonomy (which names the store and the bus).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A serialisable summary of an [`Error`](enum@crate::Error), as the journal records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)
    }
}
