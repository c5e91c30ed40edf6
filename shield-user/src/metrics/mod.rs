//! Prometheus metrics: `GET /metrics` on a TCP listener (loopback by default), read from the
//! BPF maps and the agent's state at scrape time, plus a small landing page at `/`. Every
//! metric is described in docs/metrics.md.

mod collect;
pub mod exposition;

use anyhow::Context as _;
use axum::{Router, http::header, response::IntoResponse, routing::get};

pub use self::collect::collect;
use crate::agent::server::Shared;

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serve metrics on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, shield: Shared) -> anyhow::Result<()> {
    if let Ok(listen) = listener.local_addr() {
        tracing::info!(%listen, "serving metrics");
    }
    let app =
        Router::new().route("/", get(landing)).route("/metrics", get(metrics)).with_state(shield);
    axum::serve(listener, app).await.context("the metrics listener stopped")
}

async fn metrics(axum::extract::State(shield): axum::extract::State<Shared>) -> impl IntoResponse {
    let body = tokio::task::spawn_blocking(move || match shield.lock() {
        Ok(s) => collect(&s),
        Err(_) => String::from("# the agent's state lock is poisoned\n"),
    })
    .await
    .unwrap_or_else(|e| format!("# collecting metrics failed: {e}\n"));
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}

async fn landing() -> impl IntoResponse {
    let version = env!("CARGO_PKG_VERSION");
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!(
            "<!doctype html><html><head><title>shield {version}</title></head><body>\
             <h1>shield {version}</h1><p>XDP traffic shield for this host's APIs.</p>\
             <ul><li><a href=\"/metrics\">/metrics</a>: Prometheus metrics</li></ul>\
             <p>Operate it with the <code>shield</code> command (<code>shield status</code>, \
             <code>shield stats</code>, <code>shield top</code>).</p></body></html>\n"
        ),
    )
}
