//! OpenTelemetry export of the spans the orchestrate crates make (feature
//! `otel`): `orchestrate run --otlp-endpoint URL`, or, in a host
//! application, [`layer`] over a provider of its own.
//!
//! The crates trace with `tracing`: an `execution` span (execution id,
//! workflow, correlation id) holds a `step` span per step (step, agent,
//! correlation id), which holds an `attempt` span per attempt; a call an
//! agent makes is a `call` span (call id, agent, correlation id) inside
//! its caller's attempt, holding its own attempts. Retries ("retry
//! scheduled"), failures ("attempt failed"), timeouts ("attempt timed
//! out"), refusals ("attempt rejected") and breaker changes ("circuit
//! breaker transition") are events of the attempt they happened in. This
//! module only carries them to OpenTelemetry.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::error::CliError;

/// The `tracing` layer that turns the crates' spans and events into spans
/// of `provider`'s tracer.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("orchestrate"))
}

/// A provider that exports spans in batches over OTLP/HTTP (protobuf) to
/// `endpoint`: a collector's base URL (`http://localhost:4318`, to which
/// `/v1/traces` is added) or its full traces URL.
///
/// # Errors
///
/// [`CliError::Usage`] for an endpoint that is not a URL.
pub fn otlp(endpoint: &str) -> Result<SdkTracerProvider, CliError> {
    let url = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()
        .map_err(|e| CliError::Usage(format!("--otlp-endpoint `{endpoint}`: {e}")))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("orchestrate").build())
        .build())
}

/// Spans exported to an OTLP collector while a command runs.
pub(crate) struct Export {
    provider: SdkTracerProvider,
}

impl Export {
    /// Starts exporting every span of this process to `endpoint`.
    pub(crate) fn start(endpoint: &str) -> Result<Self, CliError> {
        let provider = otlp(endpoint)?;
        // The run's spans and events; the chatter of the libraries under
        // the stores and the clients only when it is a warning.
        let filter = Targets::new()
            .with_default(Level::INFO)
            .with_target("sqlx", Level::WARN)
            .with_target("hyper", Level::WARN)
            .with_target("hyper_util", Level::WARN)
            .with_target("reqwest", Level::WARN)
            .with_target("h2", Level::WARN)
            .with_target("redis", Level::WARN);
        let subscriber = tracing_subscriber::registry().with(layer(&provider).with_filter(filter));
        // Process-wide: the runtime's worker threads trace too.
        tracing::subscriber::set_global_default(subscriber).map_err(|_| {
            CliError::Usage(
                "--otlp-endpoint: this process already has a tracing subscriber".to_owned(),
            )
        })?;
        Ok(Self { provider })
    }

    /// Sends what is still buffered, waiting for the collector's answer.
    pub(crate) async fn finish(self) {
        let provider = self.provider;
        // The exporter's client blocks; not on a runtime thread.
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            eprintln!("warning: exporting the last spans failed: {e}");
        }
    }
}
