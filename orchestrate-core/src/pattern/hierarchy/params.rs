//! The hierarchy as a registered pattern: a JSON step's parameters.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Authority, Hierarchy, HierarchyError, Node, Resolve};
use crate::agent::BoxAgent;
use crate::pattern::{params, ParamError, Pattern, PatternEnv};

/// `"pattern": "hierarchy"`: nodes name registered agents (a manager's
/// `decomposer` and `join`, a leaf's `agent`).
///
/// ```json
/// {"root": "ceo", "confidence": 0.6,
///  "authority": {"strategic": ["tactical"], "tactical": ["operational"]},
///  "nodes": [
///    {"name": "ceo", "role": "strategic", "decomposer": "plan", "children": ["lead"]},
///    {"name": "lead", "role": "tactical", "decomposer": "split", "children": ["dev"],
///     "resolve": ["retry", "reassign"]},
///    {"name": "dev", "role": "operational", "agent": "code", "budget": 100}]}
/// ```
pub(crate) struct HierarchyPattern;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    root: String,
    nodes: Vec<NodeParams>,
    #[serde(default)]
    authority: BTreeMap<String, Vec<String>>,
    confidence: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeParams {
    name: String,
    role: String,
    agent: Option<String>,
    decomposer: Option<String>,
    #[serde(default)]
    children: Vec<String>,
    join: Option<String>,
    budget: Option<u64>,
    #[serde(default)]
    resolve: Vec<Resolve>,
}

impl Pattern for HierarchyPattern {
    fn name(&self) -> &str {
        "hierarchy"
    }

    fn build(&self, raw: &Value, env: &PatternEnv<'_>) -> Result<BoxAgent, ParamError> {
        let p: Params = params(raw)?;
        let mut authority = Authority::new();
        for (from, to) in p.authority {
            authority = authority.allow(from, to);
        }
        let mut builder =
            Hierarchy::builder(format!("hierarchy:{}", env.step()), &p.root).authority(authority);
        if let Some(threshold) = p.confidence {
            builder = builder.confidence(threshold);
        }
        let mut places = BTreeMap::new();
        for (i, n) in p.nodes.into_iter().enumerate() {
            let at = |field: &str| format!("nodes[{i}].{field}");
            places.insert(n.name.clone(), i);
            let node = match (n.agent, n.decomposer) {
                (Some(agent), None) => {
                    env.require_agent(&at("agent"), &agent)?;
                    Node::leaf(n.name, n.role, agent)
                }
                (None, Some(decomposer)) => {
                    env.require_agent(&at("decomposer"), &decomposer)?;
                    Node::manager(n.name, n.role, decomposer).children(n.children)
                }
                _ => {
                    return Err(ParamError::new(
                        format!("nodes[{i}]"),
                        "a node has an `agent` (a leaf) or a `decomposer` (a manager)",
                    ))
                }
            };
            let node = match n.join {
                Some(join) => {
                    env.require_agent(&at("join"), &join)?;
                    node.join(join)
                }
                None => node,
            };
            let node = match n.budget {
                Some(amount) => node.budget(amount),
                None => node,
            };
            builder = builder.node(node.resolve(n.resolve));
        }
        let place = |name: &str, field: &str| match places.get(name) {
            Some(i) => format!("nodes[{i}].{field}"),
            None => "root".to_owned(),
        };
        let hierarchy = builder.build().map_err(|error| match &error {
            HierarchyError::Authority { parent, .. } => {
                ParamError::new(place(parent, "children"), error.to_string())
            }
            HierarchyError::Shape { node, .. } => {
                ParamError::new(place(node, "name"), error.to_string())
            }
            _ => ParamError::new("nodes", error.to_string()),
        })?;
        Ok(std::sync::Arc::new(hierarchy))
    }
}
