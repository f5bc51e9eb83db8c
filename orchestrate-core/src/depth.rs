//! How deeply nested a JSON value the orchestrator accepts.
//!
//! Every value the executor accepts (an execution's input, a step's output
//! or fallback, an interrupt payload, a decision, a custom event's payload)
//! and every value a store is asked to keep (journal events, key-value
//! values, mailbox messages) is checked against [`MAX_VALUE_DEPTH`] when it
//! is produced. A deeper value is refused there, with an error naming the
//! limit, so nothing is ever accepted that a store could not read back: the
//! JSON decoder the durable stores use refuses documents nested deeper than
//! 127 levels, and a journal record wraps the value in its own object.

use serde_json::Value;

/// The deepest nesting of arrays and objects a value may have: a scalar is
/// depth 0, `[]` and `{}` depth 1, `[[1]]` depth 2.
///
/// # Examples
///
/// ```
/// use orchestrate_core::depth::{exceeds_max_depth, MAX_VALUE_DEPTH};
/// use serde_json::{json, Value};
///
/// let mut value = json!(1);
/// for _ in 0..MAX_VALUE_DEPTH {
///     value = Value::Array(vec![value]);
/// }
/// assert!(!exceeds_max_depth(&value));
/// assert!(exceeds_max_depth(&Value::Array(vec![value])));
/// ```
pub const MAX_VALUE_DEPTH: usize = 100;

/// Whether `value` nests deeper than [`MAX_VALUE_DEPTH`].
///
/// Looks no deeper than one level past the limit, so a value of any depth is
/// checked in bounded stack space.
pub fn exceeds_max_depth(value: &Value) -> bool {
    exceeds(value, MAX_VALUE_DEPTH)
}

/// Whether `value` nests deeper than `limit`.
fn exceeds(value: &Value, limit: usize) -> bool {
    match value {
        Value::Array(items) => limit == 0 || items.iter().any(|v| exceeds(v, limit - 1)),
        Value::Object(map) => limit == 0 || map.values().any(|v| exceeds(v, limit - 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Built by hand: `json!` would serialise the inner value, recursively.
    fn nested(depth: usize, object: bool) -> Value {
        (0..depth).fold(json!("leaf"), |v, _| {
            if object {
                Value::Object([(String::new(), v)].into_iter().collect())
            } else {
                Value::Array(vec![v])
            }
        })
    }

    #[test]
    fn scalars_and_empty_containers() {
        assert!(!exceeds(&json!(1), 0));
        assert!(exceeds(&json!([]), 0));
        assert!(!exceeds(&json!([]), 1));
        assert!(!exceeds(&json!({}), 1));
    }

    #[test]
    fn the_limit_itself_is_accepted_and_one_more_refused() {
        for object in [false, true] {
            assert!(!exceeds_max_depth(&nested(MAX_VALUE_DEPTH, object)));
            assert!(exceeds_max_depth(&nested(MAX_VALUE_DEPTH + 1, object)));
        }
    }

    #[test]
    fn the_deepest_branch_counts() {
        // Depth 98 under an array under an object: 100 in all.
        let deep = nested(MAX_VALUE_DEPTH - 2, true);
        let value = |deep: Value| {
            let b = Value::Array(vec![json!(1), json!({"c": []}), deep]);
            Value::Object(
                [
                    ("a".into(), json!(1)),
                    ("b".into(), b),
                    ("d".into(), json!([[[]]])),
                ]
                .into_iter()
                .collect(),
            )
        };
        assert!(!exceeds_max_depth(&value(deep.clone())));
        assert!(exceeds_max_depth(&value(Value::Array(vec![deep]))));
    }

    #[test]
    fn a_value_far_past_the_limit_is_checked_without_recursing_through_it() {
        let deep = nested(100_000, false);
        assert!(exceeds_max_depth(&deep));
        // Dropping it recursively would overflow the test thread's stack.
        let mut deep = deep;
        while let Value::Array(mut items) = deep {
            deep = items.pop().unwrap_or(Value::Null);
        }
    }
}
