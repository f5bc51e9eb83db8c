//! Reading stream replies (`XREADGROUP`, `XAUTOCLAIM`, `XPENDING`).

use redis::Value;

/// One stream entry: its id and its field/value pairs.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub(super) id: String,
    pub(super) fields: Vec<(String, Vec<u8>)>,
}

impl Entry {
    pub(super) fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// A reply's text, its bytes moved out instead of copied.
fn into_text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn into_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn into_items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => Vec::new(),
    }
}

/// `[id, [field, value, ...]]` entries; a deleted entry (nil fields) is kept
/// with no fields so that it can be acknowledged. Takes the reply, so that
/// ids and payloads move out of it instead of being copied.
pub(super) fn entries(v: Value) -> Vec<Entry> {
    into_items(v)
        .into_iter()
        .filter_map(|e| {
            let mut parts = into_items(e).into_iter();
            let id = into_text(parts.next()?)?;
            let mut flat = parts.next().map(into_items).unwrap_or_default().into_iter();
            let mut fields = Vec::with_capacity(flat.len() / 2);
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                if let (Some(k), Some(v)) = (into_text(k), into_bytes(v)) {
                    fields.push((k, v));
                }
            }
            Some(Entry { id, fields })
        })
        .collect()
}

/// The entries of an `XREADGROUP` reply for one stream (nil on timeout).
pub(super) fn read_group(v: Value) -> Vec<Entry> {
    match v {
        Value::Nil => Vec::new(),
        Value::Map(streams) => streams
            .into_iter()
            .next()
            .map(|(_, e)| entries(e))
            .unwrap_or_default(),
        other => into_items(other)
            .into_iter()
            .next()
            .and_then(|stream| into_items(stream).into_iter().nth(1))
            .map(entries)
            .unwrap_or_default(),
    }
}

/// `XAUTOCLAIM` replies `[next-start, entries, deleted-ids]`.
pub(super) fn autoclaim(v: Value) -> Vec<Entry> {
    into_items(v)
        .into_iter()
        .nth(1)
        .map(entries)
        .unwrap_or_default()
}

/// Delivery counts from an extended `XPENDING` reply:
/// `[[id, consumer, idle-ms, deliveries], ...]`.
pub(super) fn delivery_counts(v: Value) -> Vec<(String, u64)> {
    into_items(v)
        .into_iter()
        .filter_map(|e| {
            let mut parts = into_items(e).into_iter();
            let id = into_text(parts.next()?)?;
            let count = match parts.nth(2)? {
                Value::Int(n) => u64::try_from(n).ok()?,
                other => into_text(other)?.parse().ok()?,
            };
            Some((id, count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_read_group_replies_in_both_protocols() {
        let entry = Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![bulk("event"), bulk("{}")]),
        ]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![entry.clone()]),
        ])]);
        let resp3 = Value::Map(vec![(bulk("s"), Value::Array(vec![entry]))]);
        for reply in [resp2, resp3] {
            let got = read_group(reply);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].id, "1-0");
            assert_eq!(got[0].field("event"), Some(&b"{}"[..]));
        }
        assert!(read_group(Value::Nil).is_empty());
    }

    #[test]
    fn parses_pending_counts_and_deleted_entries() {
        let pending = Value::Array(vec![Value::Array(vec![
            bulk("2-0"),
            bulk("c"),
            Value::Int(10),
            Value::Int(3),
        ])]);
        assert_eq!(delivery_counts(pending), [("2-0".to_owned(), 3)]);
        let claimed = Value::Array(vec![
            bulk("0-0"),
            Value::Array(vec![Value::Array(vec![bulk("3-0"), Value::Nil])]),
            Value::Array(vec![]),
        ]);
        let got = autoclaim(claimed);
        assert_eq!((got[0].id.as_str(), got[0].fields.len()), ("3-0", 0));
    }
}
