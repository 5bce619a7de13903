//! Blocking work started by the primitives.

use tokio::task::JoinHandle;

/// `tokio::task::spawn_blocking` in the caller's tracing span: what blocking work logs (tar warnings,
/// librdkafka, decompression) stays in the daemon run's log like the rest of the run. Use it for every
/// blocking job the primitives start.
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}
