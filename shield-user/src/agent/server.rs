//! The control API: HTTP/JSON over a Unix socket (never TCP), versioned paths, errors as
//! `{"error": "..."}` with a status that says what kind of failure it was.

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;

use super::shield::{ControlError, Shield};
use crate::{
    api::{self, ErrorBody, GlobalUpdate, Import, ListAdd, ListDelete, PolicyUpdate},
    lists::ListKind,
};

pub type Shared = Arc<Mutex<Shield>>;

/// Largest import request body.
const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;

/// The API's routes.
pub fn router(shield: Shared) -> Router {
    Router::new()
        .route(api::STATUS, get(status))
        .route(api::STATS, get(stats))
        .route(
            api::list_path(ListKind::Block),
            get(block_list).post(block_add).delete(block_delete),
        )
        .route(
            api::list_path(ListKind::Allow),
            get(allow_list).post(allow_add).delete(allow_delete),
        )
        .route(api::POLICIES, get(policy_list))
        .route(&format!("{}/{{name}}", api::POLICIES), axum::routing::put(policy_set))
        .route(api::GLOBAL, get(global).put(global_set))
        .route(api::RELOAD, axum::routing::post(reload))
        .route(api::EVENTS, get(events))
        .route(api::TOP, get(top))
        .route(
            api::BLOCK_IMPORT,
            // Feeds of 10^6 entries are ~25 MB of JSON.
            axum::routing::post(import)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .fallback(|| async {
            reply::<()>(Err(Failure(404, "no such API path; see `shield --help`".into())))
        })
        .with_state(shield)
}

struct Failure(u16, String);

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Self {
        Failure(e.status(), e.to_string())
    }
}

fn reply<T: Serialize>(result: Result<T, Failure>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(Failure(code, error)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, Json(ErrorBody { error })).into_response()
        }
    }
}

/// Run `f` on the shield. A poisoned lock means an operation panicked half-way; report it
/// rather than carry on with state that may be inconsistent.
fn with<T: Serialize>(
    shield: &Shared,
    f: impl FnOnce(&mut Shield) -> Result<T, Failure>,
) -> Response {
    let result = match shield.lock() {
        Ok(mut guard) => f(&mut guard),
        Err(_) => Err(Failure(500, "the agent's state lock is poisoned; restart the agent".into())),
    };
    reply(result)
}

async fn status(State(s): State<Shared>) -> Response {
    with(&s, |s| Ok(s.status()))
}

async fn stats(State(s): State<Shared>) -> Response {
    with(&s, |s| Ok(s.stats()))
}

async fn block_list(State(s): State<Shared>) -> Response {
    with(&s, |s| Ok(s.list_entries(ListKind::Block)))
}

async fn allow_list(State(s): State<Shared>) -> Response {
    with(&s, |s| Ok(s.list_entries(ListKind::Allow)))
}

async fn block_add(State(s): State<Shared>, Json(req): Json<ListAdd>) -> Response {
    with(&s, |s| Ok(s.list_add(ListKind::Block, &req)?))
}

async fn allow_add(State(s): State<Shared>, Json(req): Json<ListAdd>) -> Response {
    with(&s, |s| Ok(s.list_add(ListKind::Allow, &req)?))
}

async fn block_delete(State(s): State<Shared>, Json(req): Json<ListDelete>) -> Response {
    with(&s, |s| Ok(s.list_delete(ListKind::Block, &req)?))
}

async fn allow_delete(State(s): State<Shared>, Json(req): Json<ListDelete>) -> Response {
    with(&s, |s| Ok(s.list_delete(ListKind::Allow, &req)?))
}

async fn policy_list(State(s): State<Shared>) -> Response {
    with(&s, |s| Ok(s.policy_list()))
}

async fn policy_set(
    State(s): State<Shared>,
    axum::extract::Path(name): axum::extract::Path<String>,
    Json(update): Json<PolicyUpdate>,
) -> Response {
    with(&s, |s| Ok(s.policy_set(&name, &update)?))
}

async fn global(State(s): State<Shared>) -> Response {
    with(&s, |s| Ok(s.global()))
}

async fn global_set(State(s): State<Shared>, Json(update): Json<GlobalUpdate>) -> Response {
    with(&s, |s| Ok(s.global_set(&update)?))
}

async fn reload(State(s): State<Shared>) -> Response {
    blocking(s, |s| {
        s.reload()?;
        Ok(s.status())
    })
    .await
}

async fn import(State(s): State<Shared>, Json(req): Json<Import>) -> Response {
    blocking(s, move |s| Ok(s.import(&req)?)).await
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
}

async fn events(State(s): State<Shared>, Query(q): Query<EventsQuery>) -> Response {
    with(&s, |s| Ok(s.recent_events(q.limit.unwrap_or(50))))
}

#[derive(serde::Deserialize)]
struct TopQuery {
    interval_ms: Option<u64>,
    limit: Option<usize>,
}

/// Two snapshots of the per-source counters, `interval_ms` apart, without holding the lock
/// in between.
async fn top(State(s): State<Shared>, Query(q): Query<TopQuery>) -> Response {
    let interval_ms = q.interval_ms.unwrap_or(1000).clamp(100, 10_000);
    let limit = q.limit.unwrap_or(10);
    let snapshot = |s: Shared| {
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            s.lock().map(|g| (g.source_counters(), started)).map_err(|_| ())
        })
    };
    let Ok(Ok((first, t0))) = snapshot(s.clone()).await else {
        return reply::<()>(Err(Failure(500, "reading the source map failed".into())));
    };
    tokio::time::sleep(std::time::Duration::from_millis(interval_ms)).await;
    let Ok(Ok((second, t1))) = snapshot(s.clone()).await else {
        return reply::<()>(Err(Failure(500, "reading the source map failed".into())));
    };
    let secs = t1.duration_since(t0).as_secs_f64().max(0.001);
    let before: std::collections::HashMap<(ipnet::IpNet, u8), (u64, u64)> =
        first.into_iter().map(|(n, p, pk, l, _)| ((n, p), (pk, l))).collect();
    let tracked = second.len();
    let mut rows: Vec<api::TopSource> = second
        .into_iter()
        .map(|(net, policy, packets, limited, offences)| {
            let (p0, l0) = before.get(&(net, policy)).copied().unwrap_or((0, 0));
            api::TopSource {
                source: net,
                policy: policy.to_string(),
                packets_per_sec: packets.saturating_sub(p0) as f64 / secs,
                limited_per_sec: limited.saturating_sub(l0) as f64 / secs,
                packets,
                limited,
                offences,
            }
        })
        .collect();
    rows.sort_by(|a, b| b.packets_per_sec.total_cmp(&a.packets_per_sec));
    rows.truncate(limit);
    with(&s, move |s| {
        for r in &mut rows {
            r.policy = s.policy_name_of(r.policy.parse().unwrap_or(0));
        }
        Ok(api::Top { interval_ms, tracked, sources: rows })
    })
}

/// Like `with`, on a blocking thread (for operations that write many map entries or files).
async fn blocking<T: Serialize + Send + 'static>(
    shield: Shared,
    f: impl FnOnce(&mut Shield) -> Result<T, Failure> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(move || {
        let result = match shield.lock() {
            Ok(mut guard) => f(&mut guard),
            Err(_) => {
                Err(Failure(500, "the agent's state lock is poisoned; restart the agent".into()))
            }
        };
        reply(result)
    })
    .await
    {
        Ok(response) => response,
        Err(e) => reply::<()>(Err(Failure(500, format!("the operation failed: {e}")))),
    }
}
