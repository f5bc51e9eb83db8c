//! Failures, retry delays and breaker transitions are traced inside the
//! attempt span. Alone in its binary: tracing caches callsite interest
//! process-wide.

use std::io::Write;
use std::sync::{Arc, Mutex};

use orchestrate_resilience::{Backoff, BreakerConfig, Jitter, Policy, RetryConfig, Trip};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn policy_events_are_traced_inside_the_attempt_span() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let policy = Policy::builder()
        .retry(RetryConfig::attempts(2).with_backoff(Backoff::default().with_jitter(Jitter::None)))
        .circuit_breaker(BreakerConfig {
            trip: Trip::ConsecutiveFailures(2),
            ..BreakerConfig::default()
        })
        .key("svc")
        .build();
    let _ = policy
        .call(|| async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionReset)) })
        .await;
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{text}"))
            .to_owned()
    };
    assert!(
        line("attempt failed").contains("attempt{attempt=1}"),
        "{text}"
    );
    assert!(
        line("retry scheduled").contains("attempt{attempt=1}"),
        "{text}"
    );
    assert!(
        line("circuit breaker transition").contains("attempt{attempt=2}"),
        "{text}"
    );
}
