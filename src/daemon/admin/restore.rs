//! A restore from the admin page: the restore job's dry-run plan for the chosen snapshot, then a
//! confirmation that asks for the snapshot id typed in, then the run with its live log.

use axum::extract::{Extension, Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::handlers::{Action, html};
use super::snapshots::{call, places, text};
use super::{Shared, Who, pages};
use crate::daemon::calls::Target;

#[derive(Deserialize)]
pub struct RestoreQuery {
    job: String,
    snapshot: String,
}

/// Whether a job restores from some place (only those are run with `snapshot=` by this page).
fn is_restore_job(admin: &Shared, job: &str) -> bool {
    places(admin)
        .values()
        .any(|j| j.restores.iter().any(|r| r == job))
}

/// The restore job's dry-run plan for one snapshot, and the confirmation form.
pub async fn plan(
    State(admin): State<Shared>,
    Extension(who): Extension<Who>,
    Query(q): Query<RestoreQuery>,
) -> Response {
    let act = Action {
        admin: &admin,
        who: &who,
        refused: "restore-refused",
        target: format!("{} {}", q.job, q.snapshot),
    };
    if let Some(r) = act.operator("viewers cannot restore") {
        return r;
    }
    if !is_restore_job(&admin, &q.job) {
        return act.refuse(StatusCode::NOT_FOUND, "no restore job of that name");
    }
    let args = vec![
        ("snapshot".to_string(), q.snapshot.clone()),
        ("dry_run".to_string(), "true".to_string()),
    ];
    let plan = match call(&admin, Target::Job(q.job.clone()), args, false).await {
        Ok(r) => r,
        Err((code, e)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            let why = format!("{} refused the dry run: {e}", q.job);
            return html(status, pages::problem(Some(&who), "No plan", &why));
        }
    };
    let lines: Vec<String> = plan["plan"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    let mut shown = plan.clone();
    crate::base::redact::redact_json(&mut shown);
    let body = html! {
        h1 { "Restore " code { (q.snapshot) } " with " (q.job) }
        h2 { "Plan (dry run: nothing was changed)" }
        @if lines.is_empty() { pre.json data-testid="plan" { (serde_json::to_string_pretty(&shown).unwrap_or_default()) } }
        @else { ol data-testid="plan" { @for l in &lines { li { (l) } } } }
        form.run method="post" action="/restore" data-testid="restore-form" {
            input type="hidden" name="csrf" value=(who.session.csrf);
            input type="hidden" name="job" value=(q.job);
            input type="hidden" name="snapshot" value=(q.snapshot);
            p { "This replaces what the plan names. Type the snapshot id " code { (q.snapshot) } " to confirm." }
            label { "Snapshot id " input name="confirm" autocomplete="off" required data-testid="confirm-id"; }
            button data-testid="restore-submit" { "Restore" }
        }
    };
    html(StatusCode::OK, pages::layout("restore", Some(&who), body))
}

#[derive(Deserialize)]
pub struct RestoreForm {
    #[serde(default)]
    csrf: String,
    job: String,
    snapshot: String,
    #[serde(default)]
    confirm: String,
}

pub async fn restore(
    State(admin): State<Shared>,
    Extension(who): Extension<Who>,
    Form(f): Form<RestoreForm>,
) -> Response {
    let act = Action {
        admin: &admin,
        who: &who,
        refused: "restore-refused",
        target: format!("{} {}", f.job, f.snapshot),
    };
    if let Some(r) = act.check(&f.csrf, "viewers cannot restore") {
        return r;
    }
    if !is_restore_job(&admin, &f.job) {
        return act.refuse(StatusCode::NOT_FOUND, "no restore job of that name");
    }
    if f.confirm.trim() != f.snapshot {
        return act.refuse(
            StatusCode::BAD_REQUEST,
            "the typed id does not match the snapshot id; nothing was restored",
        );
    }
    let args = vec![("snapshot".to_string(), f.snapshot.clone())];
    let res = call(&admin, Target::Job(f.job.clone()), args, true).await;
    act.started("restore", "", res.map(|id| text(&id)))
}
