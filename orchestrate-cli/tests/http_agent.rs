//! The built-in `http` agent, run by the real binary against a server on
//! 127.0.0.1: a JSON answer as the output, a transient status retried with
//! the same idempotency key, a permanent one failing the run.
#![cfg(feature = "http")]

mod support;

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// The `Idempotency-Key` of every request the server saw, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// A server on a free port; its base URL.
fn server(seen: Seen) -> String {
    let app = Router::new()
        .route("/echo", post(echo))
        .route("/flaky", get(flaky))
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no such thing") }),
        )
        .with_state(seen);
    support::serve_in_background(app)
}

fn remember(seen: &Seen, headers: &HeaderMap) -> usize {
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mut seen = seen.lock().unwrap();
    seen.push(key);
    seen.len()
}

async fn echo(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    remember(&seen, &headers);
    let token = headers
        .get("x-token")
        .map(|v| v.to_str().unwrap().to_owned());
    Json(json!({"got": body, "token": token}))
}

/// Unavailable at the first request, fine after.
async fn flaky(State(seen): State<Seen>, headers: HeaderMap) -> impl IntoResponse {
    if remember(&seen, &headers) == 1 {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "0")],
            "busy",
        )
            .into_response()
    } else {
        "fine".into_response()
    }
}

fn run(dir: &std::path::Path, workflow: &Value) -> Output {
    let file = dir.join("w.json");
    std::fs::write(&file, workflow.to_string()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_orchestrate"))
        .args(["run", file.to_str().unwrap()])
        .current_dir(dir)
        .env_remove("ORCHESTRATE_STORE")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_json_request_returns_the_status_headers_and_json_body() {
    let seen = Seen::default();
    let base = server(seen.clone());
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &json!({"name": "post", "steps": [{"id": "post", "agent": "http", "input": {
            "method": "post", "url": format!("{base}/echo"),
            "headers": {"x-token": "t0k"}, "body": {"n": 1}
        }}]}),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let output: Value = serde_json::from_str(
        stdout
            .lines()
            .last()
            .unwrap()
            .trim_start_matches("output: "),
    )
    .unwrap();
    assert_eq!(output["status"], 200);
    assert_eq!(output["body"], json!({"got": {"n": 1}, "token": "t0k"}));
    assert_eq!(output["headers"]["content-type"], "application/json");
    assert!(
        !seen.lock().unwrap()[0].is_empty(),
        "an idempotency key was sent"
    );
}

#[test]
fn a_transient_status_is_retried_with_the_same_idempotency_key() {
    let seen = Seen::default();
    let base = server(seen.clone());
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &json!({"name": "flaky", "steps": [{"id": "get", "agent": "http",
            "input": {"url": format!("{base}/flaky")}}]}),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(r#""body":"fine""#),
        "{}",
        text(&out.stdout)
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn a_permanent_status_or_a_bad_input_fails_the_run_naming_it() {
    let base = server(Seen::default());
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &json!({"name": "missing", "steps": [{"id": "get", "agent": "http",
            "input": {"url": format!("{base}/missing")}}]}),
    );
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains("404 Not Found: no such thing"), "{all}");

    let out = run(
        dir.path(),
        &json!({"name": "bad", "steps": [{"id": "get", "agent": "http",
            "input": {"url": "ftp://example.com/x"}}]}),
    );
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains("only http and https"), "{all}");
}

#[tokio::test]
async fn http_with_sends_through_the_hosts_own_client() {
    use orchestrate_core::{Agent as _, Context};
    let base = server(Seen::default());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-token", "from-host".parse().unwrap());
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let agent = orchestrate_cli::agents::http_with(client);
    let input = json!({"method": "POST", "url": format!("{base}/echo"), "body": 1});
    let out = agent.call(input, &Context::detached("step")).await.unwrap();
    assert_eq!(out["body"], json!({"got": 1, "token": "from-host"}));
}
