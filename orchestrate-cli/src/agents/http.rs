use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orchestrate_core::{agent_fn, Agent, AgentError};

use super::bounded::bounded;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, SET_COOKIE};
use reqwest::{Client, Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// How much of a response body is read: an output is journaled.
const MAX_BODY: usize = 1 << 20;

/// The input of agent [`http`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpInput {
    /// `GET` (the default), `POST`, `PUT`, `PATCH`, `DELETE`, ...
    #[serde(default = "get")]
    pub method: String,
    /// `http://` or `https://`.
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as JSON (`Content-Type: application/json`) when present.
    #[serde(default)]
    pub body: Option<Value>,
    /// After this long the attempt fails (transient); none by default,
    /// beyond the step's own timeout.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn get() -> String {
    "GET".to_owned()
}

/// Agent `http`: sends one request ([`HttpInput`]) and returns
/// `{"status", "headers", "body"}`, the body as JSON when it parses as
/// JSON and as text otherwise (at most 1 MiB, or the attempt fails).
///
/// A `2xx` or `3xx` answer is the output. `408`, `429` and `5xx` are
/// transient failures (retried under the step's policy, after the
/// server's `Retry-After` when it gives seconds); other statuses are
/// permanent, naming the status and the start of the body. A connection
/// that cannot be made or breaks is transient; a bad URL, method or
/// header is permanent.
///
/// Each request carries `Idempotency-Key` (unless the input sets it): the
/// same on every attempt and after a resume, so a server that honours it
/// applies the request once. `Set-Cookie` is left out of the output,
/// which is journaled.
///
/// Its client waits 10 s for a connection; [`http_with`] takes the
/// host's own.
pub fn http() -> impl Agent {
    // One client, and its connection pool, for every attempt; built at
    // the first, since building it can fail.
    let client: Arc<OnceLock<Result<Client, String>>> = Arc::default();
    http_agent(move || {
        client
            .get_or_init(|| {
                Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .clone()
    })
}

/// Agent [`http`] sending through `client`: the host's own timeouts,
/// proxy, root certificates or middleware.
pub fn http_with(client: Client) -> impl Agent {
    http_agent(move || Ok(client.clone()))
}

/// How long the default client waits for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn http_agent(client: impl Fn() -> Result<Client, String> + Send + Sync + 'static) -> impl Agent {
    let client = Arc::new(client);
    agent_fn("http", move |input: Value, ctx| {
        let client = client.clone();
        async move {
            let input: HttpInput = serde_json::from_value(input)
                .map_err(|e| AgentError::permanent(format!("http: bad input: {e}")))?;
            let client =
                client().map_err(|e| AgentError::permanent(format!("http: no client: {e}")))?;
            let request = request(&client, &input, &ctx.idempotency_key())?;
            let what = format!("http: {} {}", input.method, input.url);
            bounded(send(request, &what), input.timeout_ms, &ctx, &what).await?
        }
    })
}

fn request(
    client: &Client,
    input: &HttpInput,
    idempotency_key: &str,
) -> Result<reqwest::RequestBuilder, AgentError> {
    let method = Method::from_bytes(input.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| AgentError::permanent(format!("http: bad method `{}`", input.method)))?;
    let url = reqwest::Url::parse(&input.url)
        .map_err(|e| AgentError::permanent(format!("http: bad url `{}`: {e}", input.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AgentError::permanent(format!(
            "http: `{}`: only http and https",
            input.url
        )));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| AgentError::permanent(format!("http: bad header name `{name}`")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| AgentError::permanent(format!("http: bad value of header `{name}`")))?;
        headers.insert(header, value);
    }
    if !headers.contains_key("idempotency-key") {
        if let Ok(key) = HeaderValue::from_str(idempotency_key) {
            headers.insert("idempotency-key", key);
        }
    }
    let mut request = client.request(method, url).headers(headers);
    if let Some(body) = &input.body {
        request = request.json(body);
    }
    Ok(request)
}

/// Sends `request` (`what`: "http: METHOD URL") and reads its answer.
async fn send(request: reqwest::RequestBuilder, what: &str) -> Result<Value, AgentError> {
    let mut response = request
        .send()
        .await
        .map_err(|e| AgentError::transient(format!("{what}: {e}")).with_source(e))?;
    let status = response.status();
    let headers = headers_of(response.headers());
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| AgentError::transient(format!("{what}: reading the body: {e}")))?
    {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(AgentError::permanent(format!(
                "{what}: the response body exceeds {MAX_BODY} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    let body = body_of(&bytes);
    if status.is_success() || status.is_redirection() {
        return Ok(json!({"status": status.as_u16(), "headers": headers, "body": body}));
    }
    let start: String = match &body {
        Value::String(text) => text.chars().take(200).collect(),
        other => other.to_string().chars().take(200).collect(),
    };
    let message = format!("{what}: {status}: {start}");
    let transient = status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error();
    Err(match (transient, retry_after) {
        (true, Some(delay)) => AgentError::retry_after(message, delay),
        (true, None) => AgentError::transient(message),
        (false, _) => AgentError::permanent(message),
    })
}

/// The response headers as the output shows them; cookies left out, as
/// the output is journaled.
fn headers_of(headers: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in headers {
        if name == SET_COOKIE {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        // A repeated header joins its values, as HTTP allows.
        match out.get_mut(name.as_str()) {
            Some(Value::String(seen)) => {
                seen.push_str(", ");
                seen.push_str(&value);
            }
            _ => {
                out.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    out
}

/// The body as JSON when it parses as JSON, whatever its declared type
/// (many servers send JSON as `text/plain`), as text otherwise; nothing
/// is `null`.
fn body_of(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice::<Value>(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_when_they_parse_and_text_otherwise() {
        assert_eq!(body_of(br#"{"a": 1}"#), json!({"a": 1}));
        assert_eq!(body_of(b"plain"), json!("plain"));
        assert_eq!(body_of(b""), Value::Null);
    }

    #[test]
    fn repeated_headers_join_their_values() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        headers.append(SET_COOKIE, HeaderValue::from_static("session=s3cret"));
        assert_eq!(Value::Object(headers_of(&headers)), json!({"x-a": "1, 2"}));
    }
}
