//! What the built-in agents that wait on the outside world share: a
//! timeout of their own, and an end when their attempt is cancelled.

use std::future::Future;
use std::time::Duration;

use orchestrate_core::{AgentError, Context};

/// `work`'s output, unless `timeout_ms` passes first (a transient
/// failure: "`what` timed out after N ms") or the attempt is cancelled (a
/// permanent one: "`what` cancelled"). Dropped either way, `work` stops.
pub(crate) async fn bounded<T>(
    work: impl Future<Output = T>,
    timeout_ms: Option<u64>,
    ctx: &Context,
    what: &str,
) -> Result<T, AgentError> {
    let timeout = timeout_ms.map_or(Duration::MAX, Duration::from_millis);
    tokio::select! {
        output = work => Ok(output),
        () = tokio::time::sleep(timeout) => Err(AgentError::transient(format!(
            "{what} timed out after {} ms", timeout.as_millis()
        ))),
        () = ctx.cancellation_token().cancelled() => {
            Err(AgentError::permanent(format!("{what} cancelled")))
        }
    }
}
