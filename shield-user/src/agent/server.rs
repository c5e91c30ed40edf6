//! The control API: HTTP/JSON over a Unix socket (never TCP), versioned paths, errors as
//! `{"error": "..."}` with a status that says what kind of failure it was.

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;

use super::shield::{ControlError, Shield};
use crate::{
    api::{self, ErrorBody, GlobalUpdate, ListAdd, ListDelete, PolicyUpdate},
    lists::ListKind,
};

pub type Shared = Arc<Mutex<Shield>>;

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
