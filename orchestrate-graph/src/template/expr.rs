//! One `${...}` expression: a source, a path into it, and a default.

use std::fmt;

use serde_json::Value;

/// Where an expression reads from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// `${input...}`: the execution's input.
    Input,
    /// `${steps.<id>.output...}`: the output of an upstream step.
    Step {
        /// The step's id as written.
        id: String,
        /// The step's index in the plan, filled in when the workflow is planned.
        index: usize,
    },
}

/// One segment of a path: an object key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// `.name`
    Key(String),
    /// `[n]`
    Index(usize),
}

/// A parsed `${...}` expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub(crate) source: Source,
    pub(crate) path: Vec<Segment>,
    pub(crate) default: Option<Value>,
    pub(crate) text: Box<str>,
}

impl Expr {
    /// What the expression reads from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The path below the source.
    pub fn path(&self) -> &[Segment] {
        &self.path
    }

    /// The `??` default, if any.
    pub fn default_value(&self) -> Option<&Value> {
        self.default.as_ref()
    }

    /// The expression as written, without `${` and `}`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Parses the text between `${` and `}`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let (path_text, default) = match text.find("??") {
            Some(at) => {
                let literal = text[at + 2..].trim();
                if literal.is_empty() {
                    return Err("`??` must be followed by a JSON literal".into());
                }
                let value: Value = serde_json::from_str(literal)
                    .map_err(|e| format!("default `{literal}` is not a JSON literal: {e}"))?;
                (&text[..at], Some(value))
            }
            None => (text, None),
        };
        let path_text = path_text.trim();
        if path_text.is_empty() {
            return Err("empty expression".into());
        }
        let (root, rest) = split_ident(path_text);
        let (source, rest) = match root {
            "input" => (Source::Input, rest),
            "steps" => {
                let rest = rest
                    .strip_prefix('.')
                    .ok_or("`steps` must be followed by `.<step id>.output`")?;
                let (id, rest) = split_ident(rest);
                if id.is_empty() {
                    return Err("missing step id after `steps.`".into());
                }
                let rest = rest
                    .strip_prefix(".output")
                    .filter(|r| r.is_empty() || r.starts_with(['.', '[']))
                    .ok_or_else(|| format!("`steps.{id}` must be followed by `.output`"))?;
                (
                    Source::Step {
                        id: id.to_owned(),
                        index: usize::MAX,
                    },
                    rest,
                )
            }
            "" => {
                return Err(format!(
                    "expression `{path_text}` must start with `input` or `steps`"
                ))
            }
            other => {
                return Err(format!(
                    "unknown root `{other}`: expressions start with `input` or `steps`"
                ))
            }
        };
        Ok(Self {
            source,
            path: parse_path(rest)?,
            default,
            text: text.trim().into(),
        })
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}}}", self.text)
    }
}

pub(crate) fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn split_ident(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !is_ident_char(c)).unwrap_or(s.len());
    s.split_at(end)
}

fn parse_path(mut rest: &str) -> Result<Vec<Segment>, String> {
    let mut path = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let (key, tail) = split_ident(after);
            if key.is_empty() {
                return Err(format!("expected a key after `.` in `{rest}`"));
            }
            path.push(Segment::Key(key.to_owned()));
            rest = tail;
        } else if let Some(after) = rest.strip_prefix('[') {
            let close = after
                .find(']')
                .ok_or_else(|| format!("unclosed `[` in `{rest}`"))?;
            let index = after[..close]
                .trim()
                .parse::<usize>()
                .map_err(|_| format!("`[{}]` is not an array index", &after[..close]))?;
            path.push(Segment::Index(index));
            rest = &after[close + 1..];
        } else {
            return Err(format!("unexpected `{rest}` in path"));
        }
    }
    Ok(path)
}

/// Follows `path` inside `value`.
pub(crate) fn lookup<'v>(mut value: &'v Value, path: &[Segment]) -> Option<&'v Value> {
    for segment in path {
        value = match segment {
            Segment::Key(k) => value.as_object()?.get(k)?,
            Segment::Index(i) => value.as_array()?.get(*i)?,
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_input_paths_with_indices_and_defaults() {
        let e = Expr::parse("input.items[2].name ?? \"none\"").unwrap();
        assert_eq!(e.source, Source::Input);
        assert_eq!(
            e.path,
            vec![
                Segment::Key("items".into()),
                Segment::Index(2),
                Segment::Key("name".into())
            ]
        );
        assert_eq!(e.default, Some(json!("none")));
    }

    #[test]
    fn parses_step_outputs() {
        let e = Expr::parse("steps.fetch-1.output.body").unwrap();
        assert!(matches!(&e.source, Source::Step { id, .. } if id == "fetch-1"));
        assert_eq!(e.path, vec![Segment::Key("body".into())]);
        let whole = Expr::parse("steps.a.output").unwrap();
        assert!(whole.path.is_empty());
    }

    #[test]
    fn rejects_malformed_expressions() {
        for bad in [
            "",
            "env.HOME",
            "steps.a",
            "steps.a.outputs",
            "steps..output",
            "input.",
            "input[x]",
            "input[1",
            "input ?? ",
            "input ?? {nope",
            "input.a b",
        ] {
            assert!(Expr::parse(bad).is_err(), "`{bad}` should be rejected");
        }
    }

    #[test]
    fn lookup_follows_keys_and_indices() {
        let v = json!({"a": [{"b": 1}, {"b": 2}]});
        let path = vec![
            Segment::Key("a".into()),
            Segment::Index(1),
            Segment::Key("b".into()),
        ];
        assert_eq!(lookup(&v, &path), Some(&json!(2)));
        assert_eq!(lookup(&v, &[Segment::Index(0)]), None);
    }
}
