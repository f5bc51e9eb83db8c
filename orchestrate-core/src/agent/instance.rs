//! Calling an agent instance rather than a registered name: what patterns
//! do with the workers they make. Here rather than in `context`, which
//! never names the agent module (agents name the context).

use std::future::Future;

use serde_json::Value;

use super::BoxAgent;
use crate::call::CallOptions;
use crate::context::{detached_call, CallFuture, Context};
use crate::error::Error;

impl Context {
    /// [`call_with`](Self::call_with) for an agent instance that need not
    /// be registered: a worker a pattern made from its factory (and makes
    /// again to restart it). The call runs under the policy and
    /// concurrency limit of the agent's [`name`](crate::Agent::name)
    /// (the default policy when the name has none), is journaled under
    /// that name, and is replayed like any call.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), except that no agent is unknown.
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Self::call).
    pub fn call_agent(
        &self,
        agent: &BoxAgent,
        input: Value,
        options: CallOptions,
    ) -> impl Future<Output = Result<Value, Error>> + Send + 'static {
        let call = match self.next_call_id(&options) {
            Ok(call) => call,
            Err(error) => return Box::pin(std::future::ready(Err(error))) as CallFuture,
        };
        match self.host() {
            Some(host) => host.call_instance(self, call, agent, input, options),
            None => detached_call(call, agent.name()),
        }
    }
}
