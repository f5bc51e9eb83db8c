//! Step conditions: `${expr}` alone (truthiness) or `${expr} <op> <json>`.

use serde_json::Value;

use super::{lookup, scan::find_close, Expr, Scope, Source};

/// A comparison operator of a [`Condition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<` (numbers only)
    Lt,
    /// `<=` (numbers only)
    Le,
    /// `>` (numbers only)
    Gt,
    /// `>=` (numbers only)
    Ge,
}

/// A parsed step condition.
///
/// `${expr}` alone is true unless the value is `null`, `false`, `0`, `""`,
/// `[]` or `{}`; `${expr} == <json>` compares with a JSON literal. A path that
/// does not resolve (and has no default) reads as `null`, so a condition
/// never fails an execution.
///
/// # Examples
///
/// ```
/// use orchestrate_graph::template::{Condition, Scope};
/// use serde_json::{json, Value};
///
/// struct Input(Value);
/// impl Scope for Input {
///     fn input(&self) -> &Value { &self.0 }
///     fn step_output(&self, _: usize) -> Option<&Value> { None }
/// }
///
/// let c = Condition::parse("${input.score} >= 0.5").unwrap();
/// assert!(c.evaluate(&Input(json!({"score": 0.7}))));
/// assert!(!c.evaluate(&Input(json!({"score": 0.1}))));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub(crate) expr: Expr,
    pub(crate) compare: Option<(CompareOp, Value)>,
}

impl Condition {
    /// Parses a condition.
    ///
    /// # Errors
    ///
    /// A description of what is malformed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let body = trimmed
            .strip_prefix("${")
            .ok_or_else(|| format!("condition `{text}` must start with `${{`"))?;
        let close = find_close(body).ok_or_else(|| format!("unterminated `${{` in `{text}`"))?;
        let expr = Expr::parse(&body[..close])?;
        let rest = body[close + 1..].trim();
        if rest.is_empty() {
            return Ok(Self {
                expr,
                compare: None,
            });
        }
        let ops = [
            ("==", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            ("<=", CompareOp::Le),
            (">=", CompareOp::Ge),
            ("<", CompareOp::Lt),
            (">", CompareOp::Gt),
        ];
        let (op, literal) = ops
            .iter()
            .find_map(|(sym, op)| rest.strip_prefix(sym).map(|l| (*op, l.trim())))
            .ok_or_else(|| {
                format!("expected `==`, `!=`, `<`, `<=`, `>` or `>=` before `{rest}`")
            })?;
        let value: Value = serde_json::from_str(literal)
            .map_err(|e| format!("`{literal}` is not a JSON literal: {e}"))?;
        if !matches!(op, CompareOp::Eq | CompareOp::Ne) && !value.is_number() {
            return Err(format!(
                "`{literal}` must be a number for an ordering comparison"
            ));
        }
        Ok(Self {
            expr,
            compare: Some((op, value)),
        })
    }

    /// The expression the condition reads.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Evaluates the condition.
    pub fn evaluate(&self, scope: &dyn Scope) -> bool {
        let base = match &self.expr.source {
            Source::Input => Some(scope.input()),
            Source::Step { index, .. } => scope.step_output(*index),
        };
        let value = base
            .and_then(|b| lookup(b, &self.expr.path))
            .or(self.expr.default.as_ref())
            .unwrap_or(&Value::Null);
        match &self.compare {
            None => truthy(value),
            Some((CompareOp::Eq, lit)) => value == lit,
            Some((CompareOp::Ne, lit)) => value != lit,
            Some((op, lit)) => match (value.as_f64(), lit.as_f64()) {
                (Some(a), Some(b)) => match op {
                    CompareOp::Lt => a < b,
                    CompareOp::Le => a <= b,
                    CompareOp::Gt => a > b,
                    _ => a >= b,
                },
                _ => false,
            },
        }
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct S(Value);
    impl Scope for S {
        fn input(&self) -> &Value {
            &self.0
        }
        fn step_output(&self, _: usize) -> Option<&Value> {
            None
        }
    }

    #[test]
    fn truthiness_and_comparisons() {
        let s = S(json!({"ok": true, "n": 3, "s": "", "kind": "bug"}));
        assert!(Condition::parse("${input.ok}").unwrap().evaluate(&s));
        assert!(!Condition::parse("${input.s}").unwrap().evaluate(&s));
        assert!(!Condition::parse("${input.absent}").unwrap().evaluate(&s));
        assert!(Condition::parse("${input.absent ?? true}")
            .unwrap()
            .evaluate(&s));
        assert!(Condition::parse("${input.kind} == \"bug\"")
            .unwrap()
            .evaluate(&s));
        assert!(Condition::parse("${input.kind} != \"feature\"")
            .unwrap()
            .evaluate(&s));
        assert!(Condition::parse("${input.n} > 2").unwrap().evaluate(&s));
        assert!(!Condition::parse("${input.n} < 3").unwrap().evaluate(&s));
        assert!(Condition::parse("${input.n} <= 3").unwrap().evaluate(&s));
    }

    #[test]
    fn malformed_conditions_are_rejected() {
        for bad in [
            "input.ok",
            "${input.ok",
            "${input.ok} = 1",
            "${input.ok} == nope",
            "${input.n} > \"a\"",
            "${env.x}",
        ] {
            assert!(Condition::parse(bad).is_err(), "`{bad}` should be rejected");
        }
    }
}
