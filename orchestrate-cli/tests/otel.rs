//! OpenTelemetry (feature `otel`): the span tree of a run with a retried
//! step, kept by the SDK's in-memory exporter; and `--otlp-endpoint`
//! sending spans to a collector over OTLP/HTTP.
//!
//! Alone in its test binary, as tracing caches callsite interest
//! process-wide.
#![cfg(feature = "otel")]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::SpanId;
use opentelemetry::Value as OtelValue;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use orchestrate_core::graph::{StepDef, WorkflowDef};
use orchestrate_core::resilience::{BreakerConfig, Trip};
use orchestrate_core::{agent_fn, Orchestrator, RunOptions};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt as _;

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| match &kv.value {
            OtelValue::String(s) => s.to_string(),
            other => other.to_string(),
        })
}

fn events(span: &SpanData) -> Vec<String> {
    span.events.iter().map(|e| e.name.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_retried_step_makes_the_tree_execution_step_attempt_call() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(orchestrate_cli::otel::layer(&provider));
    let _guard = tracing::subscriber::set_default(subscriber);

    // `lead` calls `leaf`, then, the first time, hangs past its timeout.
    let tries = Arc::new(AtomicU32::new(0));
    let orchestrator = Orchestrator::builder()
        .agent(agent_fn("leaf", |input, _| async move { Ok(input) }))
        .agent(agent_fn("lead", move |input, ctx| {
            let first = tries.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                let out = ctx.call("leaf", input).await?;
                if first {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok(out)
            }
        }))
        // Its breaker opens at the first failure and closes at the next
        // success: transitions to see in the attempts' events.
        .agent_policy(
            "lead",
            orchestrate_core::default_policy().circuit_breaker(BreakerConfig {
                trip: Trip::ConsecutiveFailures(1),
                open_duration: Duration::ZERO,
                half_open_probes: 1,
                success_threshold: 1,
            }),
        )
        .build()
        .unwrap();
    let workflow = orchestrator
        .bind(
            &WorkflowDef::builder("traced")
                .step(
                    StepDef::new("lead", "lead")
                        .input(json!(7))
                        .timeout(Duration::from_secs(1))
                        .retries(1),
                )
                .build(),
        )
        .unwrap();
    let options = RunOptions::default().correlation_id("corr-7");
    let execution = orchestrator
        .run_with(&workflow, json!(null), options)
        .await
        .unwrap();
    execution.wait().await.unwrap();
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    let named =
        |name: &str| -> Vec<&SpanData> { spans.iter().filter(|s| s.name == name).collect() };
    let parent_of = |span: &SpanData| -> Option<&SpanData> {
        spans
            .iter()
            .find(|p| p.span_context.span_id() == span.parent_span_id)
    };
    let [execution_span] = named("execution")[..] else {
        panic!("one execution span: {spans:#?}")
    };
    assert_eq!(execution_span.parent_span_id, SpanId::INVALID);
    assert_eq!(
        attribute(execution_span, "correlation_id").as_deref(),
        Some("corr-7")
    );
    assert_eq!(
        attribute(execution_span, "execution_id"),
        Some(execution.id().to_string())
    );

    let [step] = named("step")[..] else {
        panic!("one step span: {spans:#?}")
    };
    assert_eq!(parent_of(step).map(|p| &*p.name), Some("execution"));
    assert_eq!(attribute(step, "step").as_deref(), Some("lead"));
    assert_eq!(attribute(step, "correlation_id").as_deref(), Some("corr-7"));

    // The step's two attempts: the first timed out and scheduled a retry.
    let step_attempts: Vec<&SpanData> = named("attempt")
        .into_iter()
        .filter(|a| parent_of(a).is_some_and(|p| p.name == "step"))
        .collect();
    assert_eq!(step_attempts.len(), 2, "{spans:#?}");
    let first = step_attempts
        .iter()
        .find(|a| attribute(a, "attempt").as_deref() == Some("1"))
        .unwrap();
    let first_events = events(first);
    assert!(
        first_events.iter().any(|e| e == "attempt timed out"),
        "{first_events:?}"
    );
    assert!(
        first_events.iter().any(|e| e == "retry scheduled"),
        "{first_events:?}"
    );
    assert!(
        first_events
            .iter()
            .any(|e| e == "circuit breaker transition"),
        "{first_events:?}"
    );
    let opened = &first
        .events
        .iter()
        .find(|e| e.name == "circuit breaker transition")
        .unwrap();
    let to = opened.attributes.iter().find(|kv| kv.key.as_str() == "to");
    assert_eq!(to.map(|kv| kv.value.to_string()).as_deref(), Some("open"));

    // Each attempt's call to `leaf`, inside it, with its own attempt.
    let calls = named("call");
    assert_eq!(calls.len(), 2, "{spans:#?}");
    for call in &calls {
        assert_eq!(parent_of(call).map(|p| &*p.name), Some("attempt"));
        assert_eq!(attribute(call, "agent").as_deref(), Some("leaf"));
        assert_eq!(attribute(call, "correlation_id").as_deref(), Some("corr-7"));
        let inside = spans
            .iter()
            .filter(|s| s.name == "attempt" && s.parent_span_id == call.span_context.span_id())
            .count();
        assert_eq!(inside, 1, "the call's attempt: {spans:#?}");
    }
    // All one trace.
    let trace = execution_span.span_context.trace_id();
    assert!(spans.iter().all(|s| s.span_context.trace_id() == trace));
}

/// What the collector received: each request's path and body.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

#[test]
fn otlp_endpoint_sends_the_spans_of_a_run_to_a_collector() {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::Uri;

    let received = Received::default();
    let app = axum::Router::new()
        .fallback(
            |State(received): State<Received>, uri: Uri, body: Bytes| async move {
                received
                    .lock()
                    .unwrap()
                    .push((uri.path().to_owned(), body.to_vec()));
                axum::http::StatusCode::OK
            },
        )
        .with_state(received.clone());
    let collector = support::serve_in_background(app);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.json");
    std::fs::write(
        &file,
        r#"{"name": "exported", "steps": [{"id": "only-step", "agent": "echo", "input": 1}]}"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orchestrate"))
        .args(["run", file.to_str().unwrap(), "--otlp-endpoint"])
        .arg(collector)
        .current_dir(dir.path())
        .env_remove("ORCHESTRATE_STORE")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sent before the process ended: protobuf, holding the spans' names
    // and attributes as plain strings.
    let received = received.lock().unwrap();
    assert!(!received.is_empty(), "nothing was exported");
    assert!(received.iter().all(|(path, _)| path == "/v1/traces"));
    let bodies: Vec<u8> = received.iter().flat_map(|(_, b)| b.clone()).collect();
    let contains = |s: &str| bodies.windows(s.len()).any(|w| w == s.as_bytes());
    for expected in ["execution", "step", "attempt", "only-step", "orchestrate"] {
        assert!(contains(expected), "`{expected}` was not exported");
    }
}
