//! A digest of a call's input, stable across processes, platforms and
//! releases: the journal keeps it to tell a replayed call from another.

use serde_json::Value;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// A 64-bit digest of `value`, the same in every process, platform and
/// release: what the journal records of a call's input, and what a host
/// may key a value by.
///
/// FNV-1a over a canonical walk of the value: each node's kind, then its
/// contents (numbers by their JSON text, strings and keys with their
/// length), objects in key order. No allocation but a number's text. Not
/// a cryptographic hash.
///
/// ```
/// use orchestrate_core::call::digest;
/// use serde_json::json;
///
/// assert_eq!(digest(&json!({"a": 1, "b": [true]})), digest(&json!({"b": [true], "a": 1})));
/// assert_ne!(digest(&json!("1")), digest(&json!(1)));
/// ```
pub fn digest(value: &Value) -> u64 {
    let mut hash = Fnv(OFFSET);
    hash.value(value);
    hash.0
}

struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }

    fn text(&mut self, text: &str) {
        self.bytes(&(text.len() as u64).to_le_bytes());
        self.bytes(text.as_bytes());
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.bytes(b"n"),
            Value::Bool(b) => self.bytes(if *b { b"t" } else { b"f" }),
            Value::Number(n) => {
                self.bytes(b"#");
                self.text(&n.to_string());
            }
            Value::String(s) => {
                self.bytes(b"s");
                self.text(s);
            }
            Value::Array(items) => {
                self.bytes(b"[");
                self.bytes(&(items.len() as u64).to_le_bytes());
                for item in items {
                    self.value(item);
                }
            }
            Value::Object(map) => {
                self.bytes(b"{");
                self.bytes(&(map.len() as u64).to_le_bytes());
                for (k, v) in map {
                    self.text(k);
                    self.value(v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_share_a_digest_and_others_do_not() {
        let a = json!({"b": [1, "x", null], "a": {"c": true}});
        let b: Value = serde_json::from_str(r#"{"a":{"c":true},"b":[1,"x",null]}"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
        for other in [
            json!({"b": [1, "x", null], "a": {"c": false}}),
            json!({"b": [1, "x"], "a": {"c": true}}),
            json!({"b": [[1, "x", null]], "a": {"c": true}}),
            json!(["ab", "c"]),
            json!(["a", "bc"]),
            json!(1.0),
            json!(1),
            json!("1"),
        ] {
            assert_ne!(digest(&a), digest(&other), "{other}");
        }
        assert_ne!(digest(&json!(["ab", "c"])), digest(&json!(["a", "bc"])));
        assert_ne!(digest(&json!(1.0)), digest(&json!(1)));
    }

    #[test]
    fn the_digest_is_pinned() {
        // The journal keeps digests: changing the function makes every
        // recorded call look non-deterministic on resume.
        // FNV-1a 64 of the walk's bytes, computed apart from this code.
        assert_eq!(digest(&json!(null)), 0xaf63_e34c_8601_f871);
        assert_eq!(digest(&json!({"q": [1, "two"]})), 0xe569_a9aa_4ca6_b507);
    }
}
