//! Spans on the hot path, made only once a `tracing` subscriber exists.

/// `make()`, or a disabled span while no `tracing` subscriber has been set.
/// Without one, a span is still created, entered and dropped, and with
/// `tracing`'s `log` feature (which a dependency may switch on) each of those
/// calls into the logger: a cost per step for spans nobody records. Events
/// still reach `log`.
pub(crate) fn traced(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if tracing::dispatcher::has_been_set() {
        make()
    } else {
        tracing::Span::none()
    }
}
