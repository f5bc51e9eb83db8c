//! What [`Store::verify`](super::Store::verify) and
//! [`Store::rebuild_projections`](super::Store::rebuild_projections) report.

use std::fmt;

use thiserror::Error;

use super::StoreError;
use crate::ids::ExecutionId;

/// The result of [`Store::verify`](super::Store::verify): what was walked
/// and every problem found. On a store in use, an execution's journal and
/// its projection row are read again before a disagreement is reported,
/// so that an append landing between two reads is not taken for damage.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Executions whose journal was walked.
    pub executions: u64,
    /// Journal records read.
    pub events: u64,
    /// Every problem found, by execution.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing is wrong: no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems of one execution.
    pub fn problems_of<'a>(
        &'a self,
        execution: &'a ExecutionId,
    ) -> impl Iterator<Item = &'a Problem> + 'a {
        self.problems
            .iter()
            .filter(move |p| p.execution() == execution)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} execution(s), {} record(s): ",
            self.executions, self.events
        )?;
        if self.is_clean() {
            return f.write_str("no problem found");
        }
        write!(f, "{} problem(s)", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n- {p}")?;
        }
        Ok(())
    }
}

/// One thing [`Store::verify`](super::Store::verify) found wrong.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum Problem {
    /// A journal record cannot be read: its checksum, version or identity
    /// does not match, or it does not decode.
    #[error("execution `{execution}`, seq {seq}: unreadable record: {reason}")]
    UnreadableRecord {
        /// The execution.
        execution: ExecutionId,
        /// The record's sequence number.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Records are missing from a journal: sequence numbers `from` up to,
    /// not including, `to`, where the journal goes on.
    #[error("execution `{execution}`: seq {from}..{to} missing from the journal")]
    MissingRecords {
        /// The execution.
        execution: ExecutionId,
        /// The first missing sequence number.
        from: u64,
        /// The sequence number the journal goes on at.
        to: u64,
    },
    /// The journal's first record is not the execution's start.
    #[error("execution `{execution}`: the journal does not begin with the execution's start")]
    NoStart {
        /// The execution.
        execution: ExecutionId,
    },
    /// An execution has a journal but no projection row.
    #[error("execution `{execution}`: no projection row")]
    ProjectionMissing {
        /// The execution.
        execution: ExecutionId,
    },
    /// A projection row cannot be read.
    #[error("execution `{execution}`: unreadable projection row: {reason}")]
    ProjectionUnreadable {
        /// The execution.
        execution: ExecutionId,
        /// What is wrong with it.
        reason: String,
    },
    /// A projection row says other than the journal.
    #[error("execution `{execution}`: the projection's {field} is `{projection}`, the journal's `{journal}`")]
    ProjectionDisagrees {
        /// The execution.
        execution: ExecutionId,
        /// Which field (`status`, `workflow`, ...).
        field: &'static str,
        /// What the projection says.
        projection: String,
        /// What the journal says.
        journal: String,
    },
    /// A projection row names an execution with no journal.
    #[error("execution `{execution}`: a projection row but no journal")]
    ProjectionWithoutJournal {
        /// The execution.
        execution: ExecutionId,
    },
}

impl Problem {
    /// The execution the problem is in.
    pub fn execution(&self) -> &ExecutionId {
        match self {
            Problem::UnreadableRecord { execution, .. }
            | Problem::MissingRecords { execution, .. }
            | Problem::NoStart { execution }
            | Problem::ProjectionMissing { execution }
            | Problem::ProjectionUnreadable { execution, .. }
            | Problem::ProjectionDisagrees { execution, .. }
            | Problem::ProjectionWithoutJournal { execution } => execution,
        }
    }
}

/// The result of
/// [`Store::rebuild_projections`](super::Store::rebuild_projections).
#[derive(Clone, Debug, Default)]
pub struct RebuildReport {
    /// Executions whose projection was rebuilt from their journal (for a
    /// store that derives projections on every read, every execution).
    pub rebuilt: u64,
    /// Journals that could not be read, whose projection was left as it
    /// was: each error names the execution and the record.
    pub unreadable: Vec<StoreError>,
    /// Projection rows with no journal to rebuild them from, left as they
    /// were.
    pub without_journal: Vec<ExecutionId>,
    /// Executions whose journal grew each time their projection was about
    /// to be written (they are running elsewhere), left as they were:
    /// rebuild again once they are idle.
    pub growing: Vec<ExecutionId>,
}
