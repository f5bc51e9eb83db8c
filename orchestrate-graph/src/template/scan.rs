//! Splitting a string into text and `${...}` expressions.

use super::{Expr, Part, Template};
use serde_json::Value;

/// Finds the end of an expression starting just after `${`: the `}` at depth
/// zero, skipping braces inside JSON strings of a `??` default.
pub(super) fn find_close(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Parses one string of a template. `$${` stands for a literal `${`.
pub(super) fn parse_string(s: &str) -> Result<Template, String> {
    if !s.contains("${") {
        return Ok(Template::Literal(Value::String(s.to_owned())));
    }
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            text.push_str(&rest[..at - 1]);
            text.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        text.push_str(&rest[..at]);
        let body = &rest[at + 2..];
        let close = find_close(body).ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
        let expr = Expr::parse(&body[..close]).map_err(|r| format!("in `{s}`: {r}"))?;
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(Part::Expr(expr));
        rest = &body[close + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(match parts.as_slice() {
        [Part::Expr(_)] => match parts.pop() {
            Some(Part::Expr(e)) => Template::Expr(Box::new(e)),
            _ => unreachable!("matched a single expression above"),
        },
        [] => Template::Literal(Value::String(String::new())),
        [Part::Text(_)] => match parts.pop() {
            Some(Part::Text(t)) => Template::Literal(Value::String(t)),
            _ => unreachable!("matched a single text part above"),
        },
        _ => Template::Concat(parts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_dollar_is_literal() {
        let t = parse_string("cost: $${input.x}").unwrap();
        assert_eq!(
            t,
            Template::Literal(Value::String("cost: ${input.x}".into()))
        );
    }

    #[test]
    fn unterminated_is_an_error() {
        assert!(parse_string("a ${input.x")
            .unwrap_err()
            .contains("unterminated"));
    }

    #[test]
    fn close_skips_braces_in_strings_and_nesting() {
        assert_eq!(find_close(r#"input ?? {"a": "}"}} tail"#), Some(19));
        assert_eq!(find_close("input.x}"), Some(7));
        assert_eq!(find_close("input.x"), None);
    }
}
