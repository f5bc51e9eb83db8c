//! [`ParamError`]: a pattern's parameter refused.

use std::fmt;

/// A parameter a [`Pattern`](crate::pattern::Pattern) refuses, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{param}`: {reason}")]
pub struct ParamError {
    /// The parameter's path in the step's `params` (`workers[2]`, `.` for
    /// the whole object).
    pub param: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ParamError {
    /// Parameter `param` is wrong because of `reason`.
    pub fn new(param: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            param: param.into(),
            reason: reason.to_string(),
        }
    }
}
