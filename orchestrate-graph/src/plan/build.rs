//! Validation and planning in one pass over the definition.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use foldhash::fast::RandomState;

use super::index::StepIndex;
use super::links::Links;
use super::{cycle, dependency_graph, Plan, PlannedStep, StepList};
use crate::def::{StepPolicy, WorkflowDef};
use crate::problem::{Problem, ValidationErrors};
use crate::template::{is_ident_char, Condition, ParseError, Source, Template};

pub(super) fn build(def: &WorkflowDef) -> Result<Plan, ValidationErrors> {
    let mut problems = Vec::new();
    let n = def.steps.len();
    if n == 0 {
        return Err(ValidationErrors::new(&def.name, vec![Problem::Empty]));
    }

    // Ids are allocated once and key the index the plan keeps; each is
    // indexed as it is made, while it is still in cache.
    // Agent names and policies likewise, in the same pass over the
    // definition's strings: a plan of 100,000 steps is bound by reading
    // them from memory.
    let mut ids: Vec<Arc<str>> = Vec::with_capacity(n);
    let mut agent_of: Vec<u32> = Vec::with_capacity(n);
    let mut agents = Agents::default();
    let mut policies: Vec<Option<Arc<StepPolicy>>> = Vec::with_capacity(n);
    let default_policy = StepPolicy::default();
    let mut index = StepIndex::with_capacity(n);
    let mut declared_deps = 0;
    for (i, step) in def.steps.iter().enumerate() {
        ids.push(step.id.clone());
        declared_deps += step.depends_on.len();
        // A pattern step's agent is made from the pattern: it counts
        // under the pattern's name.
        let runner = match &step.pattern {
            Some(pattern) if step.agent.is_empty() => pattern,
            _ => &step.agent,
        };
        agent_of.push(agents.index(runner));
        policies.push((step.policy != default_policy).then(|| Arc::new(step.policy.clone())));
        if step.id.is_empty() || !step.id.chars().all(is_ident_char) {
            problems.push(Problem::InvalidId {
                step: step.id.to_string(),
            });
        }
        match (&step.pattern, step.agent.trim().is_empty()) {
            (Some(pattern), true) if pattern.trim().is_empty() => {
                problems.push(Problem::MissingAgent {
                    step: step.id.to_string(),
                })
            }
            (Some(_), false) => problems.push(Problem::AgentAndPattern {
                step: step.id.to_string(),
            }),
            (None, true) => problems.push(Problem::MissingAgent {
                step: step.id.to_string(),
            }),
            _ => {}
        }
        if step.params.is_some() && step.pattern.is_none() {
            problems.push(Problem::ParamsWithoutPattern {
                step: step.id.to_string(),
            });
        }
        if step.cost.is_some_and(|c| !c.is_finite() || c < 0.0) {
            problems.push(Problem::InvalidCost {
                step: step.id.to_string(),
            });
        }
        // A duplicate keeps the first definition, so that references
        // resolve consistently.
        if index.insert(i, |j| &ids[j]).is_some() {
            problems.push(Problem::DuplicateId {
                step: step.id.to_string(),
            });
        }
    }

    // Dependencies, de-duplicated with a stamp array instead of a set per step.
    let mut links = Links::with_capacity(n, declared_deps);
    let mut stamp = vec![usize::MAX; n];
    for (i, step) in def.steps.iter().enumerate() {
        for dep in &step.depends_on {
            match index.get(dep.as_str(), |j| &ids[j]) {
                Some(d) if stamp[d] != i => {
                    stamp[d] = i;
                    links.push_dep(d);
                }
                Some(_) => {}
                None => problems.push(Problem::UnknownDependency {
                    step: step.id.to_string(),
                    dependency: dep.clone(),
                }),
            }
        }
        links.end_step();
    }
    drop(stamp);
    let links = links.finish();

    // Kahn's algorithm, one generation at a time: yields both the topological
    // order and the parallel batches.
    let mut indegree: Vec<usize> = (0..n).map(|i| links.deps(i).len()).collect();
    let mut generations: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    if current.is_empty() {
        problems.push(Problem::NoEntry);
    }
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in links.dependents(i) {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    next.push(j);
                }
            }
        }
        order.extend_from_slice(&current);
        next.sort_unstable();
        generations.push(std::mem::replace(&mut current, next));
    }
    let acyclic = order.len() == n;
    if !acyclic {
        let graph = dependency_graph(&links);
        let cycles = cycle::find_cycles(&graph);
        let mut on_cycle = vec![false; n];
        for c in &cycles.members {
            on_cycle[*c] = true;
        }
        for path in cycles.paths {
            problems.push(Problem::Cycle {
                path: path.iter().map(|&i| def.steps[i].id.to_string()).collect(),
            });
        }
        // Whatever Kahn's pass did not reach and is not on a cycle waits on one.
        let mut reached = vec![false; n];
        for &i in &order {
            reached[i] = true;
        }
        for i in 0..n {
            if !reached[i] && !on_cycle[i] {
                problems.push(Problem::Unreachable {
                    step: def.steps[i].id.to_string(),
                });
            }
        }
    }

    // The steps, built in place: their templates are filled in below, so
    // that nothing as large as a step is built twice or moved.
    let mut steps: Vec<PlannedStep> = def
        .steps
        .iter()
        .zip(agent_of.into_iter().zip(policies))
        .map(|(step, (agent, policy))| PlannedStep {
            agent,
            input: Template::Literal(serde_json::Value::Null),
            condition: None,
            input_refs: Box::default(),
            policy,
            cost: step.cost.unwrap_or(1.0),
            pattern: step
                .pattern
                .as_ref()
                .map(|_| Arc::new(step.params.clone().unwrap_or(serde_json::Value::Null))),
        })
        .collect();

    // Templates and conditions: parse, resolve step references, check that
    // every referenced step is upstream.
    let mut ancestors = Ancestors::new(n);
    for (i, step) in def.steps.iter().enumerate() {
        let mut parse_errors = Vec::new();
        let mut input = Template::parse_all(&step.input, &mut parse_errors);
        for ParseError { location, reason } in parse_errors {
            problems.push(Problem::MalformedInterpolation {
                step: step.id.to_string(),
                field: "input",
                location,
                reason,
            });
        }
        let mut condition = match step.condition.as_deref().map(Condition::parse) {
            Some(Ok(c)) => Some(c),
            Some(Err(reason)) => {
                problems.push(Problem::MalformedInterpolation {
                    step: step.id.to_string(),
                    field: "condition",
                    location: String::new(),
                    reason,
                });
                None
            }
            None => None,
        };
        let mut check = |e: &mut crate::template::Expr| {
            let Source::Step { id, index: slot } = &mut e.source else {
                return;
            };
            match index.get(id.as_str(), |j| &ids[j]) {
                None => problems.push(Problem::UnknownReference {
                    step: step.id.to_string(),
                    referenced: id.clone(),
                    expr: e.text.to_string(),
                }),
                Some(r) => {
                    *slot = r;
                    let upstream = links.deps(i).contains(&r)
                        || (acyclic && ancestors.is_ancestor(r, i, &links));
                    if !upstream {
                        problems.push(Problem::NotUpstream {
                            step: step.id.to_string(),
                            referenced: id.clone(),
                            expr: e.text.to_string(),
                        });
                    }
                }
            }
        };
        let mut input_refs = StepList::new();
        input.exprs_mut(&mut |e| {
            check(e);
            if let Source::Step { index, .. } = e.source {
                if !input_refs.contains(&index) {
                    input_refs.push(index);
                }
            }
        });
        if let Some(c) = condition.as_mut() {
            check(&mut c.expr);
        }
        steps[i].input = input;
        steps[i].input_refs = input_refs.into_boxed_slice();
        steps[i].condition = condition.map(Box::new);
    }

    if !problems.is_empty() {
        return Err(ValidationErrors::new(&def.name, problems));
    }

    let (critical_path, critical_cost) = critical_path(&steps, &links, &order);
    Ok(Plan {
        name: Arc::from(def.name.as_str()),
        version: Arc::from(def.version.as_str()),
        steps,
        ids,
        links,
        agents: agents.names,
        index,
        graph: OnceLock::new(),
        order,
        generations,
        critical_path,
        critical_cost,
    })
}

/// The agent names of a plan, each allocated once, and the index of each.
#[derive(Default)]
struct Agents<'d> {
    names: Vec<Arc<str>>,
    index: HashMap<&'d str, u32, RandomState>,
    /// Steps in a row mostly share their agent: the last name is compared
    /// before any hashing.
    last: Option<(&'d str, u32)>,
}

impl<'d> Agents<'d> {
    fn index(&mut self, name: &'d str) -> u32 {
        if let Some((last, i)) = self.last {
            if last == name {
                return i;
            }
        }
        let next = self.names.len() as u32;
        let i = *self.index.entry(name).or_insert(next);
        if i == next {
            self.names.push(Arc::from(name));
        }
        self.last = Some((name, i));
        i
    }
}

/// Longest path by cost over a topological order.
fn critical_path(steps: &[PlannedStep], links: &Links, order: &[usize]) -> (Vec<usize>, f64) {
    let mut dist = vec![0.0f64; steps.len()];
    let mut prev = vec![usize::MAX; steps.len()];
    let mut best = (0.0f64, usize::MAX);
    for &v in order {
        let (base, from) =
            links
                .deps(v)
                .iter()
                .map(|&d| (dist[d], d))
                .fold((0.0, usize::MAX), |acc, x| {
                    if x.0 > acc.0 || acc.1 == usize::MAX {
                        x
                    } else {
                        acc
                    }
                });
        dist[v] = base + steps[v].cost;
        prev[v] = from;
        if dist[v] > best.0 || best.1 == usize::MAX {
            best = (dist[v], v);
        }
    }
    let mut path = Vec::new();
    let mut at = best.1;
    while at != usize::MAX {
        path.push(at);
        at = prev[at];
    }
    path.reverse();
    (path, best.0)
}

/// Reusable ancestor search that only allocates once per plan.
struct Ancestors {
    seen: Vec<usize>,
    stack: Vec<usize>,
    round: usize,
}

impl Ancestors {
    fn new(n: usize) -> Self {
        Self {
            seen: vec![usize::MAX; n],
            stack: Vec::new(),
            round: 0,
        }
    }

    /// Whether `a` is reachable backwards from `of` along the steps' deps.
    fn is_ancestor(&mut self, a: usize, of: usize, links: &Links) -> bool {
        self.round += 1;
        self.stack.clear();
        self.stack.push(of);
        while let Some(v) = self.stack.pop() {
            for &d in links.deps(v) {
                if d == a {
                    return true;
                }
                if self.seen[d] != self.round {
                    self.seen[d] = self.round;
                    self.stack.push(d);
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::{Plan, StepDef, WorkflowDef};

    #[test]
    fn a_plan_holds_its_definitions_ids_and_one_string_per_agent() {
        let def = WorkflowDef::builder("w")
            .step(StepDef::new("a", "agent"))
            .step(StepDef::new("b", "agent").depends_on(["a"]))
            .step(StepDef::new("c", "other").depends_on(["a"]))
            .build();
        let plan = Plan::new(&def).unwrap();
        for (planned, step) in plan.ids().iter().zip(&def.steps) {
            assert!(Arc::ptr_eq(planned, &step.id), "{}", step.id);
        }
        let agents: Vec<&Arc<str>> = (0..plan.len()).map(|i| plan.agent_of(i)).collect();
        assert!(Arc::ptr_eq(agents[0], agents[1]));
        assert_eq!(&**agents[2], "other");
        assert_eq!(plan.agents().len(), 2);
        assert_eq!(plan.steps()[2].agent_index(), 1);
    }
}
