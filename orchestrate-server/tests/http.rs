//! The server on 127.0.0.1, driven by a real HTTP client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrate_core::store::{MemoryStore, Store};
use orchestrate_core::{agent_fn, AgentError, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_server::{router_with, ServerConfig};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

fn orchestrator() -> Orchestrator {
    replica(Arc::new(MemoryStore::new()))
}

/// One server process of several sharing `store`.
fn replica(store: Arc<dyn Store>) -> Orchestrator {
    Orchestrator::builder()
        .store(store)
        .watch_cancel_requests(Duration::from_millis(20))
        .agent(agent_fn("echo", |input, _| async move { Ok(input) }))
        .agent(agent_fn("wait", |input: Value, ctx| async move {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(60)) => Ok(input),
                () = ctx.cancellation_token().cancelled() => Err(AgentError::permanent("cancelled")),
            }
        }))
        .agent(agent_fn("ask", |input, _| async move {
            Err::<Value, _>(AgentError::interrupt(input))
        }))
        .workflow(
            WorkflowDef::builder("pair")
                .step(StepDef::new("first", "echo").input(json!({"got": "${input}"})))
                .step(
                    StepDef::new("second", "echo")
                        .depends_on(["first"])
                        .input(json!("${steps.first.output.got}")),
                )
                .build(),
        )
        .workflow(
            WorkflowDef::builder("slow")
                .step(StepDef::new("wait", "wait"))
                .build(),
        )
        .workflow(
            WorkflowDef::builder("ask")
                .step(StepDef::new("ask", "ask").input(json!("ship?")))
                .step(
                    StepDef::new("after", "echo")
                        .depends_on(["ask"])
                        .input(json!("${steps.ask.output}")),
                )
                .build(),
        )
        .build()
        .unwrap()
}

/// A server on a free port; its base URL.
async fn serve(config: ServerConfig) -> String {
    serve_replica(orchestrator(), config).await
}

async fn serve_replica(orchestrator: Orchestrator, config: ServerConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router_with(orchestrator, config);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn start(client: &Client, base: &str, workflow: &str, input: Value) -> String {
    let response = client
        .post(format!("{base}/workflows/{workflow}/executions"))
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/executions/{id}"));
    id
}

/// Polls the execution's status until it is `status` (within 10 s).
async fn until(client: &Client, base: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body: Value = get_json(client, format!("{base}/executions/{id}")).await;
        if body["status"] == status {
            return body;
        }
        assert!(Instant::now() < deadline, "still {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn get(client: &Client, url: String) -> reqwest::Response {
    client.get(url).send().await.unwrap()
}

async fn get_json(client: &Client, url: String) -> Value {
    get(client, url).await.json().await.unwrap()
}

async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    body
}

#[tokio::test]
async fn a_two_step_workflow_is_executed_polled_read_and_another_cancelled() {
    let base = serve(ServerConfig::default()).await;
    let client = Client::new();
    let workflows: Value = get_json(&client, format!("{base}/workflows")).await;
    assert_eq!(workflows, json!({"workflows": ["ask", "pair", "slow"]}));

    let id = start(&client, &base, "pair", json!("hi")).await;
    let done = until(&client, &base, &id, "succeeded").await;
    assert_eq!(done["progress"], json!({"finished": 2, "steps": 2}));
    assert_eq!(done["steps"][1]["id"], "second");

    let journal: Value = get_json(&client, format!("{base}/executions/{id}/journal")).await;
    let types: Vec<&str> = journal["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"execution_started"));
    assert_eq!(types.last(), Some(&"execution_finished"));
    let tree: Value = get_json(&client, format!("{base}/executions/{id}/tree")).await;
    assert_eq!(tree, json!({"calls": []}));

    let other = start(&client, &base, "slow", json!(null)).await;
    until(&client, &base, &other, "running").await;
    let cancelled = client
        .post(format!("{base}/executions/{other}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["cancel"], "cancelling");
    until(&client, &base, &other, "cancelled").await;

    // Two executions, a page of one at a time.
    let page: Value = get_json(&client, format!("{base}/executions?limit=1")).await;
    assert_eq!(page["executions"].as_array().unwrap().len(), 1);
    let next = page["next"].as_str().unwrap();
    let rest: Value = get_json(&client, format!("{base}/executions?limit=1&after={next}")).await;
    assert_eq!(rest["executions"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);
    let unknown = get(&client, format!("{base}/executions?after=nope")).await;
    assert_eq!(
        problem(unknown, StatusCode::BAD_REQUEST).await["code"],
        "bad_cursor"
    );
    let mut ids = vec![
        page["executions"][0]["id"].clone(),
        rest["executions"][0]["id"].clone(),
    ];
    ids.sort_by_key(|v| v.as_str().unwrap().to_owned());
    let mut expected = vec![json!(id), json!(other)];
    expected.sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!(ids, expected);

    let missing = get(&client, format!("{base}/executions/nope")).await;
    assert_eq!(
        problem(missing, StatusCode::NOT_FOUND).await["code"],
        "execution_not_found"
    );
    let unknown = client
        .post(format!("{base}/workflows/nope/executions"))
        .json(&json!(1))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(unknown, StatusCode::NOT_FOUND).await["code"],
        "unknown_workflow"
    );
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_execution() {
    let base = serve(ServerConfig::default()).await;
    let client = Client::new();
    let keyed = |workflow: &str, input: Value| {
        client
            .post(format!("{base}/workflows/{workflow}/executions"))
            .header("Idempotency-Key", "order-7")
            .json(&input)
            .send()
    };
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = keyed("pair", json!("once")).await.unwrap();
        let body: Value = response.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1]);
    let all: Value = get_json(&client, format!("{base}/executions")).await;
    assert_eq!(all["executions"].as_array().unwrap().len(), 1);

    // Reused on another input: refused, nothing started.
    let reused = keyed("pair", json!("twice")).await.unwrap();
    let body = problem(reused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["code"], "idempotency_key_reused");
    // The same key on another workflow is another execution.
    let other = keyed("ask", json!("once")).await.unwrap();
    assert_eq!(other.status(), StatusCode::CREATED);
    let other: Value = other.json().await.unwrap();
    assert_ne!(other["id"].as_str(), Some(&*ids[0]));
    let all: Value = get_json(&client, format!("{base}/executions")).await;
    assert_eq!(all["executions"].as_array().unwrap().len(), 2);
}

/// The `(id, event)` of each server-sent event in `text`.
fn sse(text: &str) -> Vec<(u64, String)> {
    text.split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            };
            Some((field("id:")?.parse().ok()?, field("event:")?))
        })
        .collect()
}

#[tokio::test]
async fn the_event_stream_carries_every_event_in_order_and_resumes_after_the_last_seen() {
    let base = serve(ServerConfig::default()).await;
    let client = Client::new();
    let id = start(&client, &base, "pair", json!("hi")).await;
    // The stream ends with the execution.
    let text = get(&client, format!("{base}/executions/{id}/events"))
        .await
        .text()
        .await
        .unwrap();
    let events = sse(&text);
    let seqs: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "{text}");
    assert_eq!(events[0].1, "execution_started");
    assert_eq!(events.last().unwrap().1, "execution_finished");
    let journal: Value = get_json(&client, format!("{base}/executions/{id}/journal")).await;
    assert_eq!(events.len(), journal["events"].as_array().unwrap().len());

    let resumed = client
        .get(format!("{base}/executions/{id}/events"))
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sse(&resumed), events[3..].to_vec());
    let bad = client
        .get(format!("{base}/executions/{id}/events"))
        .header("Last-Event-ID", "x")
        .send()
        .await
        .unwrap();
    problem(bad, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn without_the_token_every_route_but_health_is_refused() {
    let base = serve(ServerConfig::default().token("s3cret")).await;
    let client = Client::new();
    assert_eq!(
        get(&client, format!("{base}/health")).await.status(),
        StatusCode::OK
    );
    let bare = get(&client, format!("{base}/workflows")).await;
    problem(bare, StatusCode::UNAUTHORIZED).await;
    let wrong = client
        .get(format!("{base}/workflows"))
        .bearer_auth("s3cres")
        .send()
        .await
        .unwrap();
    problem(wrong, StatusCode::UNAUTHORIZED).await;
    let refused = client
        .post(format!("{base}/workflows/pair/executions"))
        .json(&json!(1))
        .send()
        .await
        .unwrap();
    problem(refused, StatusCode::UNAUTHORIZED).await;
    let right = client
        .get(format!("{base}/workflows"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let all: Value = client
        .get(format!("{base}/executions"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all["executions"],
        json!([]),
        "the refused start stored nothing"
    );
}

#[tokio::test]
async fn malformed_oversized_and_non_json_bodies_are_refused_and_nothing_is_stored() {
    let base = serve(ServerConfig::default().max_body_bytes(1_000)).await;
    let client = Client::new();
    let url = format!("{base}/workflows/pair/executions");
    let malformed = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"a\":")
        .send()
        .await
        .unwrap();
    problem(malformed, StatusCode::BAD_REQUEST).await;
    let big = json!("x".repeat(2_000));
    let oversized = client.post(&url).json(&big).send().await.unwrap();
    problem(oversized, StatusCode::PAYLOAD_TOO_LARGE).await;
    let text = client.post(&url).body("hello").send().await.unwrap();
    problem(text, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let all: Value = get_json(&client, format!("{base}/executions")).await;
    assert_eq!(all["executions"], json!([]));
    let query = get(&client, format!("{base}/executions?limit=many")).await;
    problem(query, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_parked_execution_is_approved_over_http() {
    let base = serve(ServerConfig::default()).await;
    let client = Client::new();
    let id = start(&client, &base, "ask", json!(null)).await;
    until(&client, &base, &id, "parked").await;
    let url = format!("{base}/executions/{id}/approve");
    let bad = client
        .post(&url)
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    let approved = client
        .post(&url)
        .json(&json!({"step": "ask", "value": "yes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::ACCEPTED);
    until(&client, &base, &id, "succeeded").await;
    let again = client
        .post(&url)
        .json(&json!({"step": "ask"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(again, StatusCode::CONFLICT).await["code"],
        "not_interrupted"
    );
}

#[tokio::test]
async fn a_cancel_sent_to_one_replica_stops_the_execution_another_runs() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let running = serve_replica(replica(store.clone()), ServerConfig::default()).await;
    let asked = serve_replica(replica(store), ServerConfig::default()).await;
    let client = Client::new();
    let id = start(&client, &running, "slow", json!(null)).await;
    until(&client, &running, &id, "running").await;
    // The other replica streams its events live, from the store.
    let stream = tokio::spawn({
        let (client, url) = (client.clone(), format!("{asked}/executions/{id}/events"));
        async move { get(&client, url).await.text().await.unwrap() }
    });

    let response = client
        .post(format!("{asked}/executions/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["cancel"], "requested", "{body}");
    until(&client, &running, &id, "cancelled").await;
    until(&client, &asked, &id, "cancelled").await;
    let streamed = tokio::time::timeout(Duration::from_secs(20), stream)
        .await
        .expect("the stream ended with the execution")
        .unwrap();
    let events = sse(&streamed);
    assert_eq!(events.first().map(|e| &*e.1), Some("execution_started"));
    assert_eq!(events.last().map(|e| &*e.1), Some("execution_finished"));

    // Nothing left to cancel.
    let again: Value = client
        .post(format!("{asked}/executions/{id}/cancel"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["cancel"], "finished", "{again}");
}
