//! Values an agent's decisions depend on, read once and replayed: the
//! clock, randomness, anything read from outside.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Context;
use crate::error::Error;

impl Context {
    /// Runs `read` once and journals its value; when a resumed execution
    /// runs this attempt again, returns the journaled value instead of
    /// running `read`. Whatever an agent's calls depend on besides its
    /// input and its children's results (the clock, a random number, a
    /// file, a web page) must come through here, or replay cannot
    /// reproduce its decisions. The side effect takes an id among the
    /// attempt's calls, in order.
    ///
    /// Outside an execution, `read` runs and nothing is journaled.
    ///
    /// # Errors
    ///
    /// [`Error::SideEffect`] when the value does not convert to or from
    /// JSON, [`Error::ValueTooDeep`] past the depth limit,
    /// [`Error::NonDeterministic`] when the journal holds something else
    /// under this id (another name, or a call), [`Error::Cancelled`] when
    /// the execution ends first.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the journal holds the value leaves
    /// nothing recorded: a resumed execution runs `read` again.
    ///
    /// # Examples
    ///
    /// ```
    /// use orchestrate_core::{agent_fn, Orchestrator};
    /// use orchestrate_graph::{StepDef, WorkflowDef};
    /// use serde_json::json;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), orchestrate_core::Error> {
    /// let pick = agent_fn("pick", |_, ctx| async move {
    ///     let stock: u32 = ctx.side_effect("stock level", async { 12 }).await?;
    ///     let agent = if stock > 10 { "sell" } else { "buy" };
    ///     Ok(ctx.call(agent, json!(stock)).await?)
    /// });
    /// let sell = agent_fn("sell", |_, _| async move { Ok(json!("selling")) });
    /// let buy = agent_fn("buy", |_, _| async move { Ok(json!("buying")) });
    /// let orchestrator = Orchestrator::builder().agent(pick).agent(sell).agent(buy).build()?;
    /// let wf = orchestrator.bind(&WorkflowDef::builder("trade").step(StepDef::new("s", "pick")).build())?;
    /// let done = orchestrator.run(&wf, json!(null)).await?.await?;
    /// assert_eq!(done.output("s"), Some(&json!("selling")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn side_effect<'a, T, F>(
        &'a self,
        name: &'a str,
        read: F,
    ) -> impl Future<Output = Result<T, Error>> + 'a
    where
        F: Future<Output = T> + 'a,
        T: Serialize + DeserializeOwned + 'a,
    {
        // Its id is taken now, as a call's is, not when first polled: two
        // side effects polled in either order keep their ids.
        let call = self
            .host()
            .is_some()
            .then(|| self.child_call_id(self.next_call_index()));
        self.record_side_effect(call, name, read)
    }

    async fn record_side_effect<T, F>(
        &self,
        call: Option<Arc<str>>,
        name: &str,
        read: F,
    ) -> Result<T, Error>
    where
        F: Future<Output = T>,
        T: Serialize + DeserializeOwned,
    {
        let (Some(host), Some(call)) = (self.host().cloned(), call) else {
            return Ok(read.await);
        };
        let failed = |reason: String| Error::SideEffect {
            call: call.clone(),
            name: name.into(),
            reason,
        };
        if let Some(value) = host.replayed_effect(self, &call, name)? {
            return serde_json::from_value(value).map_err(|e| failed(e.to_string()));
        }
        let value = read.await;
        let json = serde_json::to_value(&value).map_err(|e| failed(e.to_string()))?;
        if crate::depth::exceeds_max_depth(&json) {
            return Err(Error::ValueTooDeep {
                step: Some(call),
                what: "side effect",
                limit: crate::depth::MAX_VALUE_DEPTH,
            });
        }
        host.record_effect(Arc::clone(&call), name.into(), json)
            .await?;
        Ok(value)
    }

    /// The wall-clock time, read once and replayed (see
    /// [`side_effect`](Self::side_effect)), to the microsecond.
    ///
    /// # Errors
    ///
    /// As [`side_effect`](Self::side_effect).
    pub fn now(&self) -> impl Future<Output = Result<SystemTime, Error>> + '_ {
        let micros = self.side_effect("now", async {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        });
        async move { Ok(UNIX_EPOCH + Duration::from_micros(micros.await?)) }
    }

    /// Consumes `amount` of this step's or call's budget (see
    /// [`budget`](crate::budget)), at once: the consumption counts in every
    /// account above, and is journaled. Outside an execution it is a no-op.
    ///
    /// # Errors
    ///
    /// [`Error::BudgetExceeded`] when it would overrun the budget of this
    /// call or of any call or step above it; nothing is consumed then.
    pub fn consume(&self, amount: u64) -> Result<(), Error> {
        match self.host() {
            Some(host) => host.consume(self, amount),
            None => Ok(()),
        }
    }

    /// The balance of this step's or call's budget account: allocated,
    /// consumed, held by running children, available (`None` outside an
    /// execution).
    pub fn budget(&self) -> Option<crate::budget::Balance> {
        self.host()?.balance(self.call_id())
    }

    /// A random number, drawn once and replayed (see
    /// [`side_effect`](Self::side_effect)).
    ///
    /// # Errors
    ///
    /// As [`side_effect`](Self::side_effect).
    pub fn random_u64(&self) -> impl Future<Output = Result<u64, Error>> + '_ {
        self.side_effect("random", async { uuid::Uuid::new_v4().as_u64_pair().0 })
    }
}
