//! The admin page: server-rendered HTML on the daemon's HTTP listener, for operators who start, watch
//! and audit runs from a browser. Enabled by `--users FILE` (logins with argon2id password hashes) or
//! `--trust-proxy ADDR` (a `Remote-User` header from that address, as Authelia sends it).
//!
//! Access, in order: the address allowlist (403, checked before this module sees the request), then a
//! session (or the trusted proxy's header), then the role: viewers read, operators also run. Every form
//! that changes something carries the session's CSRF token; sessions live in an HttpOnly,
//! SameSite=Strict cookie. The pages work without JavaScript, except the live log (EventSource).

mod audit;
mod handlers;
mod live;
mod pages;
mod restore;
pub mod sessions;
mod snapshots;
pub mod users;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::api::Api;
pub use sessions::Limits;
use sessions::{Session, Sessions};
use users::{Role, Users};

/// What `rewind daemon` was given for the admin page.
pub struct Config {
    pub users: Users,
    pub trust_proxy: Option<IpAddr>,
    pub limits: Limits,
    /// Cookies get `Secure` (the listener speaks TLS).
    pub secure_cookies: bool,
}

pub struct Admin {
    pub api: Api,
    pub users: Users,
    pub sessions: Sessions,
    pub audit: audit::Audit,
    pub trust_proxy: Option<IpAddr>,
    pub secure_cookies: bool,
}

type Shared = Arc<Admin>;

pub const SESSION_COOKIE: &str = "rewind_session";

/// The admin page's routes, ready to merge into the HTTP listener's router.
pub fn router(api: Api, config: Config, state_dir: &std::path::Path) -> Router {
    let admin = Arc::new(Admin {
        api,
        users: config.users,
        sessions: Sessions::new(config.limits),
        audit: audit::Audit::new(state_dir.join("audit.jsonl")),
        trust_proxy: config.trust_proxy,
        secure_cookies: config.secure_cookies,
    });
    let pages = Router::new()
        .route("/", get(handlers::dashboard))
        .route("/jobs/{name}", get(handlers::job_page))
        .route("/jobs/{name}/run", post(handlers::run_now))
        .route("/runs", get(handlers::runs_page))
        .route("/runs/{id}", get(handlers::run_page))
        .route("/runs/{id}/events", get(live::events))
        .route("/audit", get(handlers::audit_page))
        .route("/snapshots", get(snapshots::list))
        .route("/snapshots/show", get(snapshots::show))
        .route("/snapshots/verify", post(snapshots::verify))
        .route("/restore", get(restore::plan).post(restore::restore))
        .route("/logout", post(handlers::logout))
        .layer(middleware::from_fn_with_state(admin.clone(), require_login));
    Router::new()
        .merge(pages)
        .route("/login", get(handlers::login_page).post(handlers::login))
        .route("/static/style.css", get(style))
        .route("/static/live.js", get(live_js))
        .layer(middleware::map_response(protective_headers))
        .with_state(admin)
}

/// Headers every answer of the page carries: no framing (clickjacking), scripts, styles and forms from
/// this origin only, no MIME sniffing, and pages (which hold CSRF tokens) never cached.
async fn protective_headers(mut r: Response) -> Response {
    use axum::http::HeaderValue;
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// The signed-in user of a request, put there by `require_login`.
#[derive(Clone)]
pub struct Who {
    pub session: Session,
    pub addr: IpAddr,
}

impl Who {
    pub fn operator(&self) -> bool {
        self.session.role == Role::Operator
    }
}

fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Admin {
    /// The session of a request: the trusted proxy's user, or the session cookie's.
    fn identify(&self, headers: &HeaderMap, ip: IpAddr) -> Option<Session> {
        if self.trust_proxy == Some(ip)
            && let Some(user) = headers.get("remote-user").and_then(|v| v.to_str().ok())
            && !user.trim().is_empty()
        {
            let user = user.trim();
            let role = self.users.get(user).map(|u| u.role).unwrap_or_default();
            return Some(self.sessions.for_proxy_user(user, role));
        }
        cookie(headers, SESSION_COOKIE)
            .filter(|id| sessions::is_token(id))
            .and_then(|id| self.sessions.get(id))
    }

    pub fn cookie_attrs(&self) -> &'static str {
        if self.secure_cookies {
            "Path=/; HttpOnly; SameSite=Strict; Secure"
        } else {
            "Path=/; HttpOnly; SameSite=Strict"
        }
    }
}

/// Pages need a user: a browser without a session is sent to the login page (GET), a form post
/// without one is refused (401).
async fn require_login(State(admin): State<Shared>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(&req);
    match admin.identify(req.headers(), ip) {
        Some(session) => {
            req.extensions_mut().insert(Who { session, addr: ip });
            next.run(req).await
        }
        None if req.method() == axum::http::Method::GET => {
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let next_q: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
            Redirect::to(&format!("/login?next={next_q}")).into_response()
        }
        None => (StatusCode::UNAUTHORIZED, "log in first\n").into_response(),
    }
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}

async fn live_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("live.js"),
    )
        .into_response()
}
