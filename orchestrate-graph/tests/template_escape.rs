//! The `$${` escape: a template with no `${` expression evaluates to itself
//! with every `$${` turned into `${`, at any depth of the template.

use orchestrate_graph::template::{Scope, Template};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

struct NoScope;

impl Scope for NoScope {
    fn input(&self) -> &Value {
        &Value::Null
    }

    fn step_output(&self, _index: usize) -> Option<&Value> {
        None
    }
}

/// Strings made of dollars, braces and text, escaped or not; those holding
/// an expression (a `${` left once every `$${` is taken out) are dropped.
fn literal_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("$"),
            Just("$${"),
            Just("{"),
            Just("}"),
            Just("a"),
            Just("é"),
            Just(" "),
            Just("input.x"),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
    .prop_filter("holds an expression", |s| {
        !s.replace("$${", "").contains("${")
    })
}

/// A template tree with such strings at its leaves (and as keys, which are
/// never interpolated), and the value it must evaluate to.
fn template() -> impl Strategy<Value = (Value, Value)> {
    let leaf = prop_oneof![
        literal_text().prop_map(|s| (json!(s), json!(s.replace("$${", "${")))),
        any::<i32>().prop_map(|n| (json!(n), json!(n))),
        Just((Value::Null, Value::Null)),
    ];
    leaf.prop_recursive(8, 64, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|items| {
                let (t, v): (Vec<_>, Vec<_>) = items.into_iter().unzip();
                (Value::Array(t), Value::Array(v))
            }),
            prop::collection::vec((literal_text(), inner), 0..5).prop_map(|fields| {
                let mut t = Map::new();
                let mut v = Map::new();
                for (k, (ft, fv)) in fields {
                    t.insert(k.clone(), ft);
                    v.insert(k, fv);
                }
                (Value::Object(t), Value::Object(v))
            }),
        ]
    })
}

proptest! {
    #[test]
    fn a_template_without_expressions_is_itself_unescaped((template, expected) in template()) {
        let parsed = Template::parse(&template).unwrap();
        prop_assert!(parsed.exprs().is_empty());
        prop_assert_eq!(parsed.evaluate("s", &NoScope).unwrap(), expected);
    }
}

#[test]
fn escapes_inside_objects_and_arrays() {
    let t = Template::parse(&json!({"text": "cost: $${input.x}", "list": ["$${a}", ["$${b}"]]}))
        .unwrap();
    assert_eq!(
        t.evaluate("s", &NoScope).unwrap(),
        json!({"text": "cost: ${input.x}", "list": ["${a}", ["${b}"]]})
    );
}

#[test]
fn an_escape_beside_an_expression_stays_an_escape() {
    let t = Template::parse(&json!({"a": ["$${x} ${input}"]})).unwrap();
    struct Input;
    impl Scope for Input {
        fn input(&self) -> &Value {
            static V: Value = Value::Bool(true);
            &V
        }
        fn step_output(&self, _index: usize) -> Option<&Value> {
            None
        }
    }
    assert_eq!(
        t.evaluate("s", &Input).unwrap(),
        json!({"a": ["${x} true"]})
    );
}
