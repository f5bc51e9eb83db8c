//! Exporting a journal as JSON with size caps and secret redaction.

use std::borrow::Borrow;

use serde_json::{json, Map, Value};

use super::event::Event;

/// Marker appended to a value cut at [`ExportOptions::max_field_bytes`].
pub const TRUNCATED: &str = "[truncated]";
/// Replacement for a value under a secret-looking key.
pub const REDACTED: &str = "[redacted]";

/// Limits and redaction rules for [`export_json`].
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Upper bound of the whole document in bytes (default 10 MB); events
    /// past it are left out and counted in `omitted_events`.
    pub max_total_bytes: usize,
    /// Upper bound of one string value in bytes (default 8 KB); longer
    /// strings are cut and end with `[truncated]`.
    pub max_field_bytes: usize,
    /// Case-insensitive substrings of object keys whose values are replaced
    /// by `[redacted]` (default `password`, `token`, `api_key`).
    pub secret_patterns: Vec<String>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            max_total_bytes: 10 * 1024 * 1024,
            max_field_bytes: 8 * 1024,
            secret_patterns: vec!["password".into(), "token".into(), "api_key".into()],
        }
    }
}

impl ExportOptions {
    /// Sets the total cap.
    pub fn with_max_total_bytes(mut self, bytes: usize) -> Self {
        self.max_total_bytes = bytes;
        self
    }

    /// Sets the per-field cap.
    pub fn with_max_field_bytes(mut self, bytes: usize) -> Self {
        self.max_field_bytes = bytes;
        self
    }

    /// Replaces the secret key patterns.
    pub fn with_secret_patterns<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.secret_patterns = patterns
            .into_iter()
            .map(|p| p.into().to_lowercase())
            .collect();
        self
    }
}

/// Renders events as `{"events": [...], "truncated": bool, "omitted_events": n}`.
///
/// # Examples
///
/// ```
/// use orchestrate_core::journal::{export_json, Event, EventKind, ExportOptions};
/// use serde_json::json;
///
/// let event = Event {
///     execution_id: "x".into(), seq: 0, at_us: 0,
///     kind: EventKind::Custom { step: "s".into(), name: "login".into(),
///                               payload: Box::new(json!({"user": "ada", "password": "hunter2"})) },
/// };
/// let text = export_json(&[event], &ExportOptions::default());
/// assert!(text.contains("[redacted]") && !text.contains("hunter2"));
/// ```
pub fn export_json<E: Borrow<Event>>(events: &[E], options: &ExportOptions) -> String {
    let patterns: Vec<String> = options
        .secret_patterns
        .iter()
        .map(|p| p.to_lowercase())
        .collect();
    // Room for the envelope around the events.
    let budget = options.max_total_bytes.saturating_sub(96);
    let mut used = 0usize;
    let mut kept = Vec::new();
    let mut omitted = 0usize;
    for event in events {
        if omitted > 0 {
            omitted += 1;
            continue;
        }
        let mut value = serde_json::to_value(event.borrow()).unwrap_or(Value::Null);
        scrub(&mut value, options.max_field_bytes, &patterns);
        let size = value.to_string().len() + 1;
        if used + size > budget {
            omitted = 1;
            continue;
        }
        used += size;
        kept.push(value);
    }
    json!({
        "events": kept,
        "truncated": omitted > 0,
        "omitted_events": omitted,
    })
    .to_string()
}

fn scrub(value: &mut Value, max_field: usize, patterns: &[String]) {
    match value {
        Value::String(s) if s.len() > max_field => {
            let mut cut = max_field.saturating_sub(TRUNCATED.len());
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str(TRUNCATED);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, max_field, patterns)),
        Value::Object(map) => scrub_object(map, max_field, patterns),
        _ => {}
    }
}

fn scrub_object(map: &mut Map<String, Value>, max_field: usize, patterns: &[String]) {
    for (key, v) in map.iter_mut() {
        let lower = key.to_lowercase();
        if patterns.iter().any(|p| lower.contains(p.as_str())) {
            *v = Value::String(REDACTED.into());
        } else {
            scrub(v, max_field, patterns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::EventKind;

    fn custom(seq: u64, payload: Value) -> Event {
        Event {
            execution_id: "x".into(),
            seq,
            at_us: 0,
            kind: EventKind::Custom {
                step: "s".into(),
                name: "n".into(),
                payload: Box::new(payload),
            },
        }
    }

    #[test]
    fn long_fields_are_cut_and_marked() {
        let long = "é".repeat(10_000);
        let text = export_json(
            &[custom(0, json!({"body": long}))],
            &ExportOptions::default(),
        );
        let doc: Value = serde_json::from_str(&text).unwrap();
        let body = doc["events"][0]["payload"]["body"].as_str().unwrap();
        assert!(body.ends_with(TRUNCATED));
        assert!(body.len() <= 8 * 1024);
    }

    #[test]
    fn secrets_are_redacted_at_any_depth_case_insensitively() {
        let text = export_json(
            &[custom(
                0,
                json!({"auth": {"API_KEY": "k1", "Bearer_Token": "t1"}, "list": [{"password": "p"}]}),
            )],
            &ExportOptions::default(),
        );
        for secret in ["k1", "t1", "\"p\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(text.matches(REDACTED).count(), 3);
    }

    #[test]
    fn total_cap_drops_the_tail_and_counts_it() {
        let events: Vec<Event> = (0..100)
            .map(|i| custom(i, json!("x".repeat(100))))
            .collect();
        let options = ExportOptions::default().with_max_total_bytes(2_000);
        let text = export_json(&events, &options);
        assert!(text.len() <= 2_000, "{} bytes", text.len());
        let doc: Value = serde_json::from_str(&text).unwrap();
        let kept = doc["events"].as_array().unwrap().len();
        assert!(kept > 0 && kept < 100);
        assert_eq!(doc["truncated"], json!(true));
        assert_eq!(doc["omitted_events"], json!(100 - kept));
    }
}
