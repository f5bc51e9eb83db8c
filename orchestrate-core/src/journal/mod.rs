//! The journal: events, projections and export.

mod call_index;
mod call_tree;
mod event;
mod export;
mod projection;

pub(crate) use call_tree::apply_to_budgets;
pub use call_tree::{CallNode, CallStatus, CallTree};
pub use event::{
    BreakerState, CallStart, Decision, Event, EventKind, ExecutionStart, ExecutionStatus,
    SkipReason, StepStatus,
};
pub use export::{export_json, ExportOptions, REDACTED, TRUNCATED};
pub use projection::{ExecutionView, StepView};
