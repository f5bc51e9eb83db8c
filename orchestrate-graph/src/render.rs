//! Renderings of a plan: plain text batches, Mermaid and Graphviz DOT.

use std::fmt::Write as _;

use crate::plan::Plan;

impl Plan {
    /// One line per generation: `Batch 1: [a, b]`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (k, generation) in self.generations.iter().enumerate() {
            let _ = write!(out, "Batch {}: [", k + 1);
            for (j, &i) in generation.iter().enumerate() {
                if j > 0 {
                    out.push_str(", ");
                }
                out.push_str(&self.ids[i]);
            }
            out.push_str("]\n");
        }
        out
    }

    /// A Mermaid flowchart; critical-path nodes get the `critical` class.
    ///
    /// # Examples
    ///
    /// ```
    /// # use orchestrate_graph::{Plan, StepDef, WorkflowDef};
    /// let def = WorkflowDef::builder("w")
    ///     .step(StepDef::new("a", "x"))
    ///     .step(StepDef::new("b", "y").depends_on(["a"]))
    ///     .build();
    /// let m = Plan::new(&def).unwrap().to_mermaid();
    /// assert!(m.starts_with("flowchart TD\n"));
    /// assert!(m.contains("    a --> b\n"));
    /// ```
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for (s, id) in self.steps.iter().zip(&self.ids) {
            let _ = writeln!(
                out,
                "    {}[\"{}<br/><i>{}</i>\"]",
                id,
                id,
                self.agents[s.agent as usize].replace('"', "#quot;")
            );
        }
        for (i, id) in self.ids.iter().enumerate() {
            for &d in self.deps(i) {
                let _ = writeln!(out, "    {} --> {}", self.ids[d], id);
            }
        }
        if !self.critical_path.is_empty() {
            out.push_str("    classDef critical stroke-width:3px\n    class ");
            out.push_str(&self.critical_path_ids().join(","));
            out.push_str(" critical\n");
        }
        out
    }

    /// A Graphviz DOT digraph.
    ///
    /// # Examples
    ///
    /// ```
    /// # use orchestrate_graph::{Plan, StepDef, WorkflowDef};
    /// let def = WorkflowDef::builder("w")
    ///     .step(StepDef::new("a", "x"))
    ///     .step(StepDef::new("b", "y").depends_on(["a"]))
    ///     .build();
    /// let dot = Plan::new(&def).unwrap().to_dot();
    /// assert!(dot.contains("\"a\" -> \"b\";"));
    /// ```
    pub fn to_dot(&self) -> String {
        let mut out = format!(
            "digraph \"{}\" {{\n    rankdir=LR;\n",
            dot_escape(&self.name)
        );
        for (s, id) in self.steps.iter().zip(&self.ids) {
            let _ = writeln!(
                out,
                "    \"{}\" [label=\"{}\\n{}\"];",
                id,
                id,
                dot_escape(&self.agents[s.agent as usize])
            );
        }
        for (i, id) in self.ids.iter().enumerate() {
            for &d in self.deps(i) {
                let _ = writeln!(out, "    \"{}\" -> \"{}\";", self.ids[d], id);
            }
        }
        out.push_str("}\n");
        out
    }
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
