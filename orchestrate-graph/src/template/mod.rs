//! Input templates: JSON values whose strings interpolate `${...}`.
//!
//! A template is parsed once when the workflow is planned and evaluated for
//! every attempt, so evaluation only walks the pre-parsed tree.

mod condition;
mod expr;
mod scan;

use std::fmt::Write as _;

use serde_json::{Map, Value};
use thiserror::Error;

pub use condition::{CompareOp, Condition};
pub(crate) use expr::{is_ident_char, lookup};
pub use expr::{Expr, Segment, Source};

/// What a template reads at run time: the execution input and the outputs of
/// completed steps, by plan index.
pub trait Scope {
    /// The execution's input.
    fn input(&self) -> &Value;
    /// The output of the step at `index`, if it completed.
    fn step_output(&self, index: usize) -> Option<&Value>;
}

/// A parsed input template.
#[derive(Clone, Debug, PartialEq)]
pub enum Template {
    /// A value with no expression in it; evaluation clones it.
    Literal(Value),
    /// A string that is exactly one expression: yields the referenced value
    /// with its own type. (Boxed: a template is a value of every step.)
    Expr(Box<Expr>),
    /// A string mixing text and expressions: yields a string.
    Concat(Vec<Part>),
    /// An array with at least one expression inside.
    Array(Vec<Template>),
    /// An object with at least one expression inside.
    Object(Vec<(String, Template)>),
}

/// A piece of a [`Template::Concat`].
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// An expression, rendered as text (strings raw, other values as JSON).
    Expr(Expr),
}

/// A template that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("at `{location}`: {reason}")]
pub struct ParseError {
    /// JSON pointer of the offending string inside the template (`""` for the root).
    pub location: String,
    /// What is wrong.
    pub reason: String,
}

/// A template that could not be evaluated.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The path does not exist and the expression has no `??` default.
    #[error("step `{step}`: `${{{expr}}}` does not resolve and has no `??` default")]
    MissingPath {
        /// The step whose input was being evaluated.
        step: String,
        /// The expression as written.
        expr: String,
    },
}

impl Template {
    /// Parses a JSON value, finding the expressions in its strings.
    ///
    /// # Errors
    ///
    /// A [`ParseError`] naming the JSON pointer of the first malformed string.
    ///
    /// # Examples
    ///
    /// ```
    /// use orchestrate_graph::template::Template;
    /// use serde_json::json;
    ///
    /// let t = Template::parse(&json!({"n": "${input.n}", "k": 1})).unwrap();
    /// assert!(matches!(t, Template::Object(_)));
    /// assert!(Template::parse(&json!("${nope}")).is_err());
    /// ```
    pub fn parse(value: &Value) -> Result<Self, ParseError> {
        let mut errors = Vec::new();
        let t = parse_value(value, &mut String::new(), &mut errors);
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(t),
        }
    }

    /// Parses, collecting every malformed string instead of the first.
    pub(crate) fn parse_all(value: &Value, errors: &mut Vec<ParseError>) -> Self {
        parse_value(value, &mut String::new(), errors)
    }

    /// Every expression in the template, in document order.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        self.visit(&mut |e| out.push(e));
        out
    }

    fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        match self {
            Template::Literal(_) => {}
            Template::Expr(e) => f(e),
            Template::Concat(parts) => parts.iter().for_each(|p| {
                if let Part::Expr(e) = p {
                    f(e)
                }
            }),
            Template::Array(items) => items.iter().for_each(|t| t.visit(f)),
            Template::Object(fields) => fields.iter().for_each(|(_, t)| t.visit(f)),
        }
    }

    pub(crate) fn exprs_mut(&mut self, f: &mut impl FnMut(&mut Expr)) {
        match self {
            Template::Literal(_) => {}
            Template::Expr(e) => f(e),
            Template::Concat(parts) => parts.iter_mut().for_each(|p| {
                if let Part::Expr(e) = p {
                    f(e)
                }
            }),
            Template::Array(items) => items.iter_mut().for_each(|t| t.exprs_mut(f)),
            Template::Object(fields) => fields.iter_mut().for_each(|(_, t)| t.exprs_mut(f)),
        }
    }

    /// Evaluates the template for step `step` against `scope`.
    ///
    /// # Errors
    ///
    /// [`EvalError::MissingPath`] when an expression without default does
    /// not resolve.
    pub fn evaluate(&self, step: &str, scope: &dyn Scope) -> Result<Value, EvalError> {
        Ok(match self {
            Template::Literal(v) => v.clone(),
            Template::Expr(e) => resolve(e, step, scope)?.clone(),
            Template::Concat(parts) => {
                let mut s = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => s.push_str(t),
                        Part::Expr(e) => match resolve(e, step, scope)? {
                            Value::String(v) => s.push_str(v),
                            other => {
                                let _ = write!(s, "{other}");
                            }
                        },
                    }
                }
                Value::String(s)
            }
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.evaluate(step, scope))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Object(fields) => {
                let mut map = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    map.insert(k.clone(), t.evaluate(step, scope)?);
                }
                Value::Object(map)
            }
        })
    }
}

/// Resolves one expression, falling back to its default.
pub(crate) fn resolve<'s>(
    e: &'s Expr,
    step: &str,
    scope: &'s dyn Scope,
) -> Result<&'s Value, EvalError> {
    let base = match &e.source {
        Source::Input => Some(scope.input()),
        Source::Step { index, .. } => scope.step_output(*index),
    };
    base.and_then(|b| lookup(b, &e.path))
        .or(e.default.as_ref())
        .ok_or_else(|| EvalError::MissingPath {
            step: step.to_owned(),
            expr: e.text.to_string(),
        })
}

fn parse_value(value: &Value, pointer: &mut String, errors: &mut Vec<ParseError>) -> Template {
    match value {
        Value::String(s) => match scan::parse_string(s) {
            Ok(t) => t,
            Err(reason) => {
                errors.push(ParseError {
                    location: pointer.clone(),
                    reason,
                });
                Template::Literal(value.clone())
            }
        },
        Value::Array(items) => {
            let parsed: Vec<Template> = items
                .iter()
                .enumerate()
                .map(|(i, v)| with_segment(pointer, &i.to_string(), |p| parse_value(v, p, errors)))
                .collect();
            match literals(parsed) {
                // Built from the parsed items, not copied from `value`: an
                // item may be a string whose `$${` was unescaped.
                Ok(items) => Template::Literal(Value::Array(items)),
                Err(parsed) => Template::Array(parsed),
            }
        }
        Value::Object(map) => {
            let parsed: Vec<(String, Template)> = map
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        with_segment(pointer, k, |p| parse_value(v, p, errors)),
                    )
                })
                .collect();
            let (keys, templates): (Vec<String>, Vec<Template>) = parsed.into_iter().unzip();
            match literals(templates) {
                Ok(values) => {
                    Template::Literal(Value::Object(keys.into_iter().zip(values).collect()))
                }
                Err(templates) => Template::Object(keys.into_iter().zip(templates).collect()),
            }
        }
        other => Template::Literal(other.clone()),
    }
}

/// The values of `templates` when every one is a literal; otherwise the
/// templates, unchanged.
fn literals(templates: Vec<Template>) -> Result<Vec<Value>, Vec<Template>> {
    if !templates.iter().all(|t| matches!(t, Template::Literal(_))) {
        return Err(templates);
    }
    Ok(templates
        .into_iter()
        .map(|t| match t {
            Template::Literal(v) => v,
            // Every template was checked to be a literal just above.
            _ => Value::Null,
        })
        .collect())
}

fn with_segment<T>(pointer: &mut String, seg: &str, f: impl FnOnce(&mut String) -> T) -> T {
    let len = pointer.len();
    pointer.push('/');
    // JSON pointer escaping (RFC 6901).
    pointer.push_str(&seg.replace('~', "~0").replace('/', "~1"));
    let out = f(pointer);
    pointer.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct TestScope {
        input: Value,
        outputs: Vec<Option<Value>>,
    }

    impl Scope for TestScope {
        fn input(&self) -> &Value {
            &self.input
        }
        fn step_output(&self, index: usize) -> Option<&Value> {
            self.outputs.get(index)?.as_ref()
        }
    }

    fn with_step_index(mut t: Template, index: usize) -> Template {
        t.exprs_mut(&mut |e| {
            if let Source::Step { index: i, .. } = &mut e.source {
                *i = index;
            }
        });
        t
    }

    fn scope() -> TestScope {
        TestScope {
            input: json!({"name": "Ada", "items": [10, 20, 30], "n": 7}),
            outputs: vec![Some(json!({"score": 0.5, "tags": ["x", "y"]}))],
        }
    }

    #[test]
    fn single_expression_keeps_the_type() {
        let t = Template::parse(&json!("${input.items}")).unwrap();
        assert_eq!(t.evaluate("s", &scope()).unwrap(), json!([10, 20, 30]));
        let t = Template::parse(&json!("${input.items[2]}")).unwrap();
        assert_eq!(t.evaluate("s", &scope()).unwrap(), json!(30));
    }

    #[test]
    fn mixed_text_becomes_a_string() {
        let t = Template::parse(&json!("Hi ${input.name}, n=${input.n}")).unwrap();
        assert_eq!(t.evaluate("s", &scope()).unwrap(), json!("Hi Ada, n=7"));
    }

    #[test]
    fn step_outputs_resolve_by_index() {
        let t = with_step_index(
            Template::parse(
                &json!({"s": "${steps.a.output.score}", "t": ["${steps.a.output.tags[1]}"]}),
            )
            .unwrap(),
            0,
        );
        assert_eq!(
            t.evaluate("b", &scope()).unwrap(),
            json!({"s": 0.5, "t": ["y"]})
        );
    }

    #[test]
    fn defaults_are_json_literals() {
        let t = Template::parse(&json!("${input.missing ?? {\"a\": [1, \"}\"]}}")).unwrap();
        assert_eq!(t.evaluate("s", &scope()).unwrap(), json!({"a": [1, "}"]}));
    }

    #[test]
    fn missing_path_names_step_and_expression() {
        let t = Template::parse(&json!({"x": "${input.nope.deeper}"})).unwrap();
        let err = t.evaluate("step-9", &scope()).unwrap_err();
        assert_eq!(
            err,
            EvalError::MissingPath {
                step: "step-9".into(),
                expr: "input.nope.deeper".into()
            }
        );
        assert!(err.to_string().contains("step-9"));
    }

    #[test]
    fn parse_errors_carry_a_json_pointer() {
        let err = Template::parse(&json!({"a": [1, "${oops}"]})).unwrap_err();
        assert_eq!(err.location, "/a/1");
    }

    #[test]
    fn literal_subtrees_stay_literal() {
        let t = Template::parse(&json!({"a": [1, 2], "b": "plain $ text"})).unwrap();
        assert!(matches!(t, Template::Literal(_)));
    }
}
