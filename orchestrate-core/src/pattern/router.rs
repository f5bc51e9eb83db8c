//! Routing: picking the agent for a task among candidates, by what they
//! can do, how busy they are and whether their breaker lets calls
//! through.
//!
//! A [`Router`] is consulted by the patterns that choose an agent per
//! task (a [`Supervisor`](super::Supervisor) with
//! [`Strategy::Capability`](super::supervisor::Strategy::Capability), a
//! handoff whose agents name no next one) and by agents of your own. Its
//! pick depends on load, breakers and a cache with a TTL, which change
//! with time: take it through [`Context::decide`](crate::Context::decide)
//! (the patterns do), so that a resumed run replays it.
//!
//! # Examples
//!
//! ```
//! use orchestrate_core::pattern::router::{Candidate, CapabilityRouter, Router};
//! use orchestrate_core::journal::BreakerState;
//! use serde_json::json;
//!
//! let router = CapabilityRouter::new()
//!     .agent("ocr-1", ["ocr", "pdf"])
//!     .agent("ocr-2", ["ocr"])
//!     .agent("translator", ["translate"]);
//! let candidates = [
//!     Candidate::new("ocr-1").load(3),
//!     Candidate::new("ocr-2").load(0),
//!     Candidate::new("translator"),
//! ];
//! // Both read text; the idle one wins.
//! let pick = router.route(&json!({"capability": "ocr"}), &candidates).unwrap();
//! assert_eq!(pick.agent, "ocr-2");
//! // Only one reads PDFs, busy or not; an open breaker excludes it.
//! let pdf = json!({"capabilities": ["ocr", "pdf"]});
//! assert_eq!(router.route(&pdf, &candidates).unwrap().agent, "ocr-1");
//! let broken = [Candidate::new("ocr-1").breaker(BreakerState::Open), Candidate::new("ocr-2")];
//! assert_eq!(router.route(&pdf, &broken).unwrap().agent, "ocr-2"); // a partial match
//! assert!(router.route(&json!({"capability": "sing"}), &candidates).is_none());
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use orchestrate_resilience::BreakerState;
use serde_json::Value;

/// An agent a router may pick, with what the caller knows of it now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Candidate<'a> {
    /// The agent's name.
    pub name: &'a str,
    /// Tasks it runs now.
    pub load: u32,
    /// Its breaker's state, when known.
    pub breaker: Option<BreakerState>,
}

impl<'a> Candidate<'a> {
    /// Agent `name`, idle, breaker unknown.
    pub fn new(name: &'a str) -> Self {
        Self {
            name,
            load: 0,
            breaker: None,
        }
    }

    /// Sets the tasks it runs now.
    pub fn load(mut self, load: u32) -> Self {
        self.load = load;
        self
    }

    /// Sets its breaker's state.
    pub fn breaker(mut self, state: BreakerState) -> Self {
        self.breaker = Some(state);
        self
    }
}

/// A router's pick.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Routed {
    /// The agent picked.
    pub agent: String,
    /// Its score (higher is better; the router's own scale).
    pub score: f64,
    /// Whether the pick came from the router's cache.
    pub cached: bool,
}

/// Picks the agent for a task among candidates.
pub trait Router: Send + Sync + 'static {
    /// The agent for `task` among `candidates`, or `None` when none fits.
    fn route(&self, task: &Value, candidates: &[Candidate<'_>]) -> Option<Routed>;
}

/// A router's cache counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Picks served from the cache.
    pub hits: u64,
    /// Picks computed (nothing cached for the signature, expired, or the
    /// cached agent no longer fit or got busier).
    pub misses: u64,
}

/// What a task requires, read from it: its `capability` (a string) or
/// `capabilities` (an array of strings), when it is an object.
fn required_by_default(task: &Value) -> Vec<String> {
    let Some(fields) = task.as_object() else {
        return Vec::new();
    };
    if let Some(one) = fields.get("capability").and_then(Value::as_str) {
        return vec![one.to_owned()];
    }
    fields
        .get("capabilities")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

type Requires = Arc<dyn Fn(&Value) -> Vec<String> + Send + Sync>;

/// A cached pick: the agent, when it was picked and its load then.
#[derive(Clone, Debug)]
struct CachedPick {
    agent: String,
    at: Instant,
    load: u32,
}

/// Routes by declared capabilities: a candidate's score is
/// `match + 0.5 / (1 + load)`, less `0.25` when its breaker is half open,
/// where `match` is the share of the task's required capabilities it
/// has. A candidate with an open breaker, or none of the required
/// capabilities, is excluded; a task requiring nothing fits every agent.
/// Ties go to the candidate listed first.
///
/// Picks are cached by the task's signature (its required capabilities,
/// sorted) for a TTL (default 60 s): a cached pick is used while its
/// agent is still a candidate that fits, no busier than when it was
/// picked. A pick that made its agent busier (as a supervisor's does,
/// giving it the task) is made afresh next time, so that tasks spread
/// over the agents that fit rather than pile on the first one.
#[derive(Clone)]
pub struct CapabilityRouter {
    capabilities: HashMap<String, Vec<String>>,
    requires: Requires,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<String, CachedPick>>>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl Default for CapabilityRouter {
    fn default() -> Self {
        Self::new()
    }
}

impl CapabilityRouter {
    /// A router that knows no agent yet.
    pub fn new() -> Self {
        Self {
            capabilities: HashMap::new(),
            requires: Arc::new(required_by_default),
            ttl: Duration::from_secs(60),
            cache: Arc::default(),
            hits: Arc::default(),
            misses: Arc::default(),
        }
    }

    /// Declares what agent `name` can do.
    pub fn agent<I, S>(mut self, name: impl Into<String>, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities.insert(
            name.into(),
            capabilities.into_iter().map(Into::into).collect(),
        );
        self
    }

    /// Reads a task's required capabilities with `requires` instead of
    /// its `capability` / `capabilities` field.
    pub fn requires(
        mut self,
        requires: impl Fn(&Value) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        self.requires = Arc::new(requires);
        self
    }

    /// How long a pick stays cached (zero: never cached).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// What agent `name` declared it can do.
    pub fn capabilities_of(&self, name: &str) -> Option<&[String]> {
        self.capabilities.get(name).map(Vec::as_slice)
    }

    /// The cache's counts so far (shared by clones).
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// `candidate`'s score for `required`, or `None` when excluded.
    fn score(&self, required: &[String], candidate: &Candidate<'_>) -> Option<f64> {
        if candidate.breaker == Some(BreakerState::Open) {
            return None;
        }
        let has = self.capabilities.get(candidate.name);
        let share = if required.is_empty() {
            1.0
        } else {
            let matched = required
                .iter()
                .filter(|r| has.is_some_and(|caps| caps.contains(r)))
                .count();
            if matched == 0 {
                return None;
            }
            matched as f64 / required.len() as f64
        };
        let half_open = if candidate.breaker == Some(BreakerState::HalfOpen) {
            0.25
        } else {
            0.0
        };
        Some(share + 0.5 / (1.0 + f64::from(candidate.load)) - half_open)
    }
}

impl Router for CapabilityRouter {
    fn route(&self, task: &Value, candidates: &[Candidate<'_>]) -> Option<Routed> {
        let mut required = (self.requires)(task);
        required.sort();
        required.dedup();
        let signature = required.join("\u{1f}");
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = cache.get(&signature) {
            let fresh = now.duration_since(cached.at) < self.ttl;
            let fits = candidates
                .iter()
                .find(|c| c.name == cached.agent && c.load <= cached.load)
                .and_then(|c| self.score(&required, c));
            if let (true, Some(score)) = (fresh, fits) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Some(Routed {
                    agent: cached.agent.clone(),
                    score,
                    cached: true,
                });
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(f64, &Candidate<'_>)> = None;
        for candidate in candidates {
            if let Some(score) = self.score(&required, candidate) {
                if best.is_none_or(|(top, _)| score > top) {
                    best = Some((score, candidate));
                }
            }
        }
        let (score, picked) = best?;
        if !self.ttl.is_zero() {
            let pick = CachedPick {
                agent: picked.name.to_owned(),
                at: now,
                load: picked.load,
            };
            cache.insert(signature, pick);
        }
        Some(Routed {
            agent: picked.name.to_owned(),
            score,
            cached: false,
        })
    }
}

impl fmt::Debug for CapabilityRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapabilityRouter")
            .field("capabilities", &self.capabilities)
            .field("ttl", &self.ttl)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn router() -> CapabilityRouter {
        CapabilityRouter::new()
            .agent("a", ["x"])
            .agent("b", ["x", "y"])
    }

    #[test]
    fn picks_are_cached_by_signature_until_the_ttl_or_the_agent_stops_fitting() {
        let r = router();
        let task = json!({"capabilities": ["x"]});
        let loads = |a: u32, b: u32| [Candidate::new("a").load(a), Candidate::new("b").load(b)];
        assert_eq!(r.route(&task, &loads(1, 1)).unwrap().agent, "a");
        // As busy as when picked, or less: the cached pick stands.
        let again = r.route(&task, &loads(0, 0)).unwrap();
        assert_eq!((again.agent.as_str(), again.cached), ("a", true));
        // Busier than when picked: computed afresh, and `b` wins.
        let busier = r.route(&task, &loads(2, 1)).unwrap();
        assert_eq!((busier.agent.as_str(), busier.cached), ("b", false));
        // Its breaker opens: the cache no longer fits; computed afresh.
        let open = [
            Candidate::new("a"),
            Candidate::new("b").load(1).breaker(BreakerState::Open),
        ];
        assert_eq!(r.route(&task, &open).unwrap().agent, "a");
        assert_eq!(r.stats(), CacheStats { hits: 1, misses: 3 });
        let idle = loads(0, 0);

        let uncached = router().ttl(Duration::ZERO);
        uncached.route(&task, &idle);
        uncached.route(&task, &idle);
        assert_eq!(uncached.stats(), CacheStats { hits: 0, misses: 2 });
    }

    #[test]
    fn a_full_match_beats_a_partial_one_and_load_breaks_ties() {
        let r = router().ttl(Duration::ZERO);
        let both = json!({"capabilities": ["y", "x"]});
        let c = [Candidate::new("a"), Candidate::new("b").load(100)];
        assert_eq!(r.route(&both, &c).unwrap().agent, "b");
        let one = json!({"capability": "x"});
        let c = [Candidate::new("a").load(2), Candidate::new("b").load(1)];
        assert_eq!(r.route(&one, &c).unwrap().agent, "b");
        let half = [
            Candidate::new("a").breaker(BreakerState::HalfOpen),
            Candidate::new("b"),
        ];
        assert_eq!(r.route(&one, &half).unwrap().agent, "b");
        // Nothing required: every agent fits, even one the router does not know.
        assert_eq!(
            r.route(&json!(7), &[Candidate::new("z")]).unwrap().agent,
            "z"
        );
    }
}
