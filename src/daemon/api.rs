//! The control API. Over the unix socket `<state>/daemon.sock` (mode 0600: file permissions are the
//! access control) for `rewind jobs run`; over HTTP with `--listen`, where every route but `/healthz`
//! needs a client address in the allowlist, and the API's routes the bearer token (compared in constant
//! time). The admin page (`admin/`) shares the listener with its own logins.
//!
//! Routes: `GET /healthz`, `GET /metrics`, `GET /api/jobs`, `POST /api/jobs/{name}/run` (body
//! `{"params": {...}, "args": ["k=v"]}`), `GET /api/runs?job=&limit=`, `GET /api/runs/{id}`,
//! `GET /api/runs/{id}/log`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

use super::{Shared, Trigger, history};

#[derive(Clone)]
pub struct Api {
    pub shared: Arc<Mutex<Shared>>,
    pub triggers: mpsc::UnboundedSender<Trigger>,
    /// Scripts the admin page runs (see `calls`).
    pub calls: mpsc::UnboundedSender<super::calls::Call>,
    pub token: Option<Arc<String>>,
    pub allow: Arc<Vec<ipnet::IpNet>>,
}

impl Api {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn routes() -> Router<Api> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/jobs", get(list_jobs))
        .route("/api/jobs/{name}/run", post(run_job))
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{id}", get(get_run))
        .route("/api/runs/{id}/log", get(get_log))
}

pub fn unix_router(api: Api) -> Router {
    routes().route("/healthz", get(healthz)).with_state(api)
}

/// The HTTP listener's routes: the address allowlist before everything but `/healthz`; the bearer token
/// for the JSON API and `/metrics`; the admin page's own login for its pages (when enabled).
pub fn tcp_router(api: Api, admin: Option<Router>) -> Router {
    let mut app: Router = routes()
        .layer(middleware::from_fn_with_state(api.clone(), bearer))
        .with_state(api.clone());
    if let Some(pages) = admin {
        app = app.merge(pages);
    }
    app.layer(middleware::from_fn_with_state(api.clone(), allowlist))
        .route("/healthz", get(healthz))
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

/// Only clients in the allowlist get an answer other than 403.
async fn allowlist(
    State(api): State<Api>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let ip = addr.ip().to_canonical();
    if !api.allow.iter().any(|n| n.contains(&ip)) {
        tracing::warn!("HTTP: refused {ip}: not in the allowlist");
        return error(
            StatusCode::FORBIDDEN,
            format!("{ip} is not in the allowlist"),
        );
    }
    next.run(req).await
}

/// The JSON API needs the bearer token (401 without it).
async fn bearer(State(api): State<Api>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok = match &api.token {
        Some(t) => bool::from(t.as_bytes().ct_eq(given.as_bytes())),
        None => false,
    };
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "a valid bearer token is required"})),
        )
            .into_response();
    }
    next.run(req).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(api): State<Api>) -> Response {
    let s = api.lock();
    let errors = s.file_errors.len() + s.jobs.values().filter(|j| j.error.is_some()).count();
    let text = s.metrics.render(s.jobs.len(), errors);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn list_jobs(State(api): State<Api>) -> Response {
    let (jobs, load_errors) = api.lock().views();
    Json(json!({"jobs": jobs, "load_errors": load_errors})).into_response()
}

#[derive(Deserialize, Default)]
struct RunBody {
    #[serde(default)]
    params: Map<String, Value>,
    #[serde(default)]
    args: Vec<String>,
}

async fn run_job(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Option<Json<RunBody>>,
) -> Response {
    let body = body.map(|b| b.0).unwrap_or_default();
    let mut args = Vec::new();
    for a in body.args {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => args.push((k.to_string(), v.to_string())),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("params are key=value; '{a}' has no '='"),
                );
            }
        }
    }
    let (tx, rx) = oneshot::channel();
    let t = Trigger {
        job: name,
        params: body.params,
        args,
        reply: tx,
    };
    if api.triggers.send(t).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping");
    }
    match rx.await {
        Ok(Ok(id)) => (StatusCode::ACCEPTED, Json(json!({"run_id": id}))).into_response(),
        Ok(Err((code, msg))) => error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            msg,
        ),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping"),
    }
}

#[derive(Deserialize)]
struct RunsQuery {
    job: Option<String>,
    limit: Option<usize>,
}

async fn list_runs(State(api): State<Api>, Query(q): Query<RunsQuery>) -> Response {
    let s = api.lock();
    let limit = q.limit.unwrap_or(100);
    let runs: Vec<&history::RunRecord> = s
        .history
        .runs
        .iter()
        .rev()
        .filter(|r| q.job.as_ref().is_none_or(|j| &r.job == j))
        .take(limit)
        .collect();
    Json(json!({"runs": runs})).into_response()
}

async fn get_run(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match api.lock().history.get(&id) {
        Some(r) => Json(r).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no run {id}")),
    }
}

async fn get_log(State(api): State<Api>, Path(id): Path<String>) -> Response {
    if !history::valid_id(&id) {
        return error(StatusCode::BAD_REQUEST, "bad run id");
    }
    let path = api.lock().history.log_path(&id);
    match tokio::fs::read_to_string(&path).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        Err(_) => error(StatusCode::NOT_FOUND, format!("no log for run {id}")),
    }
}
