//! The admin page's request handlers: read the daemon's shared state, render a page, or carry out an
//! operator's action (checked for role and CSRF token, and audited).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::Markup;
use serde::Deserialize;
use serde_json::Map;
use tokio::sync::oneshot;

use super::sessions::random_token;
use super::{Shared, Who, cookie, pages};
use crate::daemon::Trigger;
use crate::daemon::history::{self, RunRecord};

const LOGIN_COOKIE: &str = "rewind_login";

pub(super) fn html(status: StatusCode, m: Markup) -> Response {
    (status, m).into_response()
}

/// A refused action: audited, and shown as a page with the status.
pub(super) fn refuse(
    admin: &Shared,
    who: &Who,
    status: StatusCode,
    action: &str,
    target: &str,
    why: &str,
) -> Response {
    admin
        .audit
        .record(&who.session.user, who.addr, action, target, why);
    html(status, pages::problem(Some(who), "Refused", why))
}

/// An operator's action from the page: who asks, what about, and the audit action a refusal gets.
pub(super) struct Action<'a> {
    pub admin: &'a Shared,
    pub who: &'a Who,
    pub refused: &'static str,
    pub target: String,
}

impl Action<'_> {
    pub fn refuse(&self, status: StatusCode, why: &str) -> Response {
        refuse(
            self.admin,
            self.who,
            status,
            self.refused,
            &self.target,
            why,
        )
    }

    /// The refusal when the user is not an operator (`viewers` says why).
    pub fn operator(&self, viewers: &str) -> Option<Response> {
        (!self.who.operator()).then(|| self.refuse(StatusCode::FORBIDDEN, viewers))
    }

    /// The refusal when the user is not an operator or the form's CSRF token is wrong.
    pub fn check(&self, csrf: &str, viewers: &str) -> Option<Response> {
        self.operator(viewers).or_else(|| {
            (!self.who.session.csrf_ok(csrf)).then(|| {
                self.refuse(
                    StatusCode::FORBIDDEN,
                    "the form's CSRF token is missing or wrong",
                )
            })
        })
    }

    /// A run the daemon started (audited as `action` with `detail`; the browser goes to its page), or
    /// its refusal.
    pub fn started(
        &self,
        action: &str,
        detail: &str,
        res: Result<String, (u16, String)>,
    ) -> Response {
        match res {
            Ok(id) => {
                let detail = format!("run {id} {detail}");
                let detail = detail.trim_end();
                self.admin.audit.record(
                    &self.who.session.user,
                    self.who.addr,
                    action,
                    &self.target,
                    detail,
                );
                Redirect::to(&format!("/runs/{id}")).into_response()
            }
            Err((code, msg)) => self.refuse(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &msg,
            ),
        }
    }
}

/// Only a safe, local path may follow a login (no `//host` or scheme).
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
}

/// The login form, with a fresh double-submit token (cookie and hidden field must match on POST).
pub async fn login_page(
    State(admin): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    login_form(&admin, &headers, safe_next(&q.next), None, StatusCode::OK)
}

/// The login form. The browser's login token is kept when it has one, so that a second load of the
/// page (another tab, a browser's speculative load) does not invalidate the form shown first.
fn login_form(
    admin: &Shared,
    headers: &HeaderMap,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let token = cookie(headers, LOGIN_COOKIE)
        .filter(|t| super::sessions::is_token(t))
        .map(str::to_string)
        .unwrap_or_else(random_token);
    let set = format!("{LOGIN_COOKIE}={token}; {}", admin.cookie_attrs());
    (
        status,
        [(header::SET_COOKIE, set)],
        pages::login(next, &token, error),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(admin): State<Shared>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let ip: IpAddr = addr.ip().to_canonical();
    let next = safe_next(&f.next).to_string();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if f.token.is_empty() || expected != f.token {
        admin.audit.record(
            &f.user,
            ip,
            "login-refused",
            "",
            "the login form's token is missing or stale",
        );
        return login_form(
            &admin,
            &headers,
            &next,
            Some("The form expired; please log in again."),
            StatusCode::FORBIDDEN,
        );
    }
    if let Err(wait) = admin.sessions.may_try(ip) {
        admin.audit.record(
            &f.user,
            ip,
            "login-refused",
            "",
            &format!("too many failed logins from {ip}"),
        );
        let mut r = login_form(
            &admin,
            &headers,
            &next,
            Some(&format!(
                "Too many failed logins from your address; try again in {wait} s."
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
        r.headers_mut().insert(header::RETRY_AFTER, wait.into());
        return r;
    }
    // argon2 takes tens of milliseconds of CPU: off the async threads.
    let check = {
        let admin = admin.clone();
        let (user, password) = (f.user.clone(), f.password);
        tokio::task::spawn_blocking(move || admin.users.check(&user, &password))
            .await
            .ok()
            .flatten()
    };
    let Some(role) = check else {
        admin.sessions.failed(ip);
        admin.audit.record(
            &f.user,
            ip,
            "login-failed",
            "",
            "wrong user name or password",
        );
        return login_form(
            &admin,
            &headers,
            &next,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        );
    };
    let id = admin.sessions.start(&f.user, role);
    admin.audit.record(&f.user, ip, "login", "", role.as_str());
    let mut r = Redirect::to(&next).into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        format!("{}={id}; {}", super::SESSION_COOKIE, admin.cookie_attrs())
            .parse()
            .unwrap(),
    );
    h.append(
        header::SET_COOKIE,
        format!("{LOGIN_COOKIE}=; Max-Age=0; {}", admin.cookie_attrs())
            .parse()
            .unwrap(),
    );
    r
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(admin): State<Shared>,
    Extension(who): Extension<Who>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !who.session.csrf_ok(&f.csrf) {
        return refuse(
            &admin,
            &who,
            StatusCode::FORBIDDEN,
            "logout-refused",
            "",
            "the form's CSRF token is missing or wrong",
        );
    }
    if let Some(id) = cookie(&headers, super::SESSION_COOKIE) {
        admin.sessions.end(id);
    }
    admin
        .audit
        .record(&who.session.user, who.addr, "logout", "", "");
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        format!(
            "{}=; Max-Age=0; {}",
            super::SESSION_COOKIE,
            admin.cookie_attrs()
        )
        .parse()
        .unwrap(),
    );
    r
}

/// The latest `n` runs of a job, newest first.
fn recent(admin: &Shared, job: &str, n: usize) -> Vec<RunRecord> {
    let s = admin.api.lock();
    s.history
        .runs
        .iter()
        .rev()
        .filter(|r| r.job == job)
        .take(n)
        .cloned()
        .collect()
}

pub async fn dashboard(State(admin): State<Shared>, Extension(who): Extension<Who>) -> Response {
    let (jobs, errors, restores, recent) = {
        let s = admin.api.lock();
        let (jobs, errors) = s.views();
        let restores: Vec<String> = s
            .jobs
            .values()
            .filter(|j| super::snapshots::is_restore(&j.def))
            .map(|j| j.def.name.clone())
            .collect();
        // Every job's last 10 runs in one pass over the history, newest first.
        let mut recent: HashMap<String, Vec<RunRecord>> = HashMap::new();
        for r in s.history.runs.iter().rev() {
            let list = recent.entry(r.job.clone()).or_default();
            if list.len() < 10 {
                list.push(r.clone());
            }
        }
        (jobs, errors, restores, recent)
    };
    html(
        StatusCode::OK,
        pages::dashboard(&who, &jobs, &errors, &restores, &recent),
    )
}

#[derive(Deserialize, Default)]
pub struct RunsQuery {
    #[serde(default)]
    job: String,
    #[serde(default)]
    status: String,
    limit: Option<usize>,
}

pub async fn runs_page(
    State(admin): State<Shared>,
    Extension(who): Extension<Who>,
    Query(q): Query<RunsQuery>,
) -> Response {
    let s = admin.api.lock();
    let runs: Vec<&RunRecord> = s
        .history
        .runs
        .iter()
        .rev()
        .filter(|r| q.job.is_empty() || r.job == q.job)
        .filter(|r| q.status.is_empty() || r.status.as_str() == q.status)
        .take(q.limit.unwrap_or(200).min(1000))
        .collect();
    let jobs: Vec<String> = s.jobs.keys().cloned().collect();
    html(
        StatusCode::OK,
        pages::runs(&who, &runs, &jobs, &q.job, &q.status),
    )
}

/// A job's params as shown on a page (see `JobDef::shown`).
fn shown_params(def: &crate::daemon::jobs::JobDef) -> Vec<(String, String)> {
    def.params
        .iter()
        .map(|(k, v)| (k.clone(), def.shown(k, v)))
        .collect()
}

pub async fn run_page(
    State(admin): State<Shared>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
) -> Response {
    if !history::valid_id(&id) {
        return html(
            StatusCode::BAD_REQUEST,
            pages::problem(Some(&who), "Bad run id", "That is not a run id."),
        );
    }
    let (run, log_path, params) = {
        let s = admin.api.lock();
        let Some(run) = s.history.get(&id).cloned() else {
            return html(
                StatusCode::NOT_FOUND,
                pages::problem(Some(&who), "No such run", &format!("There is no run {id}.")),
            );
        };
        let params = s
            .jobs
            .get(&run.job)
            .map(|j| shown_params(&j.def))
            .unwrap_or_default();
        (run, s.history.log_path(&id), params)
    };
    let bytes = tokio::fs::read(&log_path).await.unwrap_or_default();
    // The page shows whole lines; the live log continues from there.
    let upto = if run.status.as_str() == "running" {
        bytes
            .iter()
            .rposition(|b| *b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(0)
    } else {
        bytes.len()
    };
    let log = crate::base::redact::redact(&String::from_utf8_lossy(&bytes[..upto]));
    let view = pages::RunView {
        run: &run,
        params,
        log,
        log_bytes: upto as u64,
    };
    html(StatusCode::OK, pages::run(&who, view))
}

pub async fn job_page(
    State(admin): State<Shared>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
) -> Response {
    let found = {
        let s = admin.api.lock();
        s.jobs.get(&name).map(|j| {
            let specs = &j.def.param_specs;
            // An override field starts at the job's value, else the script's default.
            let overrides: Vec<(String, String, String)> = j
                .def
                .overrides
                .iter()
                .map(|n| {
                    let spec = specs.iter().find(|p| &p.name == n);
                    let value = j
                        .def
                        .params
                        .get(n)
                        .or_else(|| spec.and_then(|p| p.default.as_ref()))
                        .map(crate::base::values::display)
                        .unwrap_or_default();
                    let doc = spec.map(|p| p.doc.clone()).unwrap_or_default();
                    (n.clone(), value, doc)
                })
                .collect();
            (
                j.view(),
                shown_params(&j.def),
                overrides,
                super::snapshots::is_restore(&j.def),
            )
        })
    };
    let Some((view, params, overrides, restore)) = found else {
        return html(
            StatusCode::NOT_FOUND,
            pages::problem(
                Some(&who),
                "No such job",
                &format!("There is no job named {name}."),
            ),
        );
    };
    let runs = recent(&admin, &name, 20);
    let refs: Vec<&RunRecord> = runs.iter().collect();
    html(
        StatusCode::OK,
        pages::job(&who, &view, restore, &params, &overrides, &refs),
    )
}

/// Run now: operators only, with the CSRF token; `param.NAME` fields override the params the job lists
/// under `overrides` (any other is refused).
pub async fn run_now(
    State(admin): State<Shared>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let act = Action {
        admin: &admin,
        who: &who,
        refused: "run-refused",
        target: name.clone(),
    };
    let csrf = form.get("csrf").map(String::as_str).unwrap_or("");
    if let Some(r) = act.check(csrf, "viewers cannot run jobs") {
        return r;
    }
    let found = admin.api.lock().jobs.get(&name).map(|j| {
        (
            super::snapshots::is_restore(&j.def),
            j.def.overrides.clone(),
        )
    });
    let allowed = match found {
        None => {
            return act.refuse(
                StatusCode::NOT_FOUND,
                &format!("there is no job named {name}"),
            );
        }
        Some((true, _)) => {
            return act.refuse(
                StatusCode::BAD_REQUEST,
                "a restore starts from the Snapshots page, which shows its plan and asks for the snapshot id",
            );
        }
        Some((false, allowed)) => allowed,
    };
    let mut args = Vec::new();
    for (k, v) in &form {
        let Some(p) = k.strip_prefix("param.") else {
            continue;
        };
        if !allowed.iter().any(|a| a == p) {
            let why = format!("the job does not allow overriding '{p}'");
            return act.refuse(StatusCode::BAD_REQUEST, &why);
        }
        args.push((p.to_string(), v.clone()));
    }
    args.sort();
    let detail: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let (tx, rx) = oneshot::channel();
    let t = Trigger {
        job: name.clone(),
        params: Map::new(),
        args,
        reply: tx,
    };
    let stopping = || (503, "the daemon is stopping".to_string());
    let res = match admin.api.triggers.send(t) {
        Ok(()) => rx.await.unwrap_or_else(|_| Err(stopping())),
        Err(_) => Err(stopping()),
    };
    act.started("run", &detail.join(" "), res)
}

pub async fn audit_page(State(admin): State<Shared>, Extension(who): Extension<Who>) -> Response {
    let entries = admin.audit.newest(500);
    html(StatusCode::OK, pages::audit(&who, &entries))
}
